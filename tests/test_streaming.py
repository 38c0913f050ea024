"""Streaming HDF5 data larger than memory: the same events as in memory, in a resumable order."""

from __future__ import annotations

import threading
import time

import h5py
import numpy as np
import pytest
import torch

from hepdl.config import DataConfig, config_from_dict
from hepdl.data import load_splits
from hepdl.data.dataset import load_shards, load_split
from hepdl.data.streaming import READ_BYTES, StreamingLoader, load_together, streaming_splits
from hepdl.errors import ConfigError, DataError
from hepdl.preprocess.base import Chain, Transform, fit_streaming
from hepdl.preprocess.pca import PCA
from hepdl.preprocess.scaling import Divide, Robust
from hepdl.preprocess.standardize import Standardize

from .conftest import blobs, small_config

SIZES = (100, 70, 130)  # events per file
CHUNKS = (16, 10, 32)  # HDF5 chunk rows per file
SMALL = {"read_bytes": 1, "buffer_bytes": 3 * 32 * 20}  # one chunk a block, ~3 blocks a buffer


def write_files(folder, sizes=SIZES, chunks=CHUNKS, seed=0) -> list[str]:
    """HDF5 files of two-class blobs; input ``id`` is each event's number over all files."""
    paths, first = [], 0
    for i, (n, rows) in enumerate(zip(sizes, chunks, strict=True)):
        features, labels, energy = blobs(n, seed=seed + i)
        path = folder / f"part{i}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("features", data=features, chunks=(rows, 4), compression="gzip")
            f.create_dataset("event_id", data=np.arange(first, first + n, dtype=np.float64),
                             chunks=(rows,))
            f["label"] = labels
            f["energy"] = energy
        paths.append(str(path))
        first += n
    return paths


def data_config(paths, **options) -> DataConfig:
    return DataConfig.model_validate({
        "source": {"kind": "hdf5", "path": paths, "inputs": {"x": "features", "id": "event_id"},
                   "label": "label", "observers": {"energy": "energy"}},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2}, **options})


@pytest.fixture
def files(tmp_path):
    return write_files(tmp_path)


@pytest.fixture
def splits(files):
    return streaming_splits(data_config(files, in_memory=False), "classification", seed=4)


def ids(batches) -> np.ndarray:
    return np.concatenate([inputs["id"][:, 0].numpy() for inputs, _ in batches]).astype(int)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "hepdl-prefetch" and t.is_alive()]


def test_each_split_event_once_per_epoch(files, splits):
    memory = load_splits(data_config(files), "classification", seed=4)
    labels_of = np.concatenate([blobs(n, seed=i)[1] for i, n in enumerate(SIZES)])
    for name in ("train", "val", "test"):
        loader = StreamingLoader(splits[name], batch_size=16, shuffle=name == "train", seed=4,
                                 **SMALL)
        batches = list(loader.batches(epoch=1))
        assert len(batches) == len(loader) == -(-len(memory[name]) // 16)
        assert all(len(labels) == 16 for _, labels in batches[:-1])
        seen = ids(batches)
        np.testing.assert_array_equal(np.sort(seen), memory[name].inputs["id"][:, 0])
        np.testing.assert_array_equal(torch.cat([lab for _, lab in batches]).numpy(),
                                      labels_of[seen])
        assert loader.n_events == len(memory[name])
    val = ids(StreamingLoader(splits["val"], batch_size=16, **SMALL).batches())
    assert np.all(np.diff(val) > 0)  # evaluation keeps file order


def test_order_depends_on_seed_and_epoch_only(splits):
    loader = StreamingLoader(splits["train"], batch_size=16, shuffle=True, seed=4, **SMALL)
    assert loader.blocks_per_buffer == 3 and len(loader.blocks) > 10
    first = ids(loader.batches(epoch=2))
    np.testing.assert_array_equal(ids(loader.batches(epoch=2)), first)
    again = StreamingLoader(splits["train"], batch_size=16, shuffle=True, seed=4, **SMALL)
    np.testing.assert_array_equal(ids(again.batches(epoch=2)), first)
    assert not np.array_equal(ids(loader.batches(epoch=3)), first)
    other = StreamingLoader(splits["train"], batch_size=16, shuffle=True, seed=5, **SMALL)
    assert not np.array_equal(ids(other.batches(epoch=2)), first)
    # shuffled across files: the first batches already mix events of different files
    file_of = np.searchsorted(np.cumsum(SIZES), first[:48], side="right")
    assert len(np.unique(file_of)) > 1
    assert not np.all(np.diff(first) > 0)


@pytest.mark.parametrize("batch_size", [16, 7, 1000])
def test_resume_mid_epoch_gives_the_same_tail(splits, batch_size):
    loader = StreamingLoader(splits["train"], batch_size=batch_size, shuffle=True, seed=4,
                             **SMALL)
    full = list(loader.batches(epoch=5))
    for start in sorted({0, 1, len(full) // 3, len(full) // 2, len(full) - 1}):
        tail = list(loader.batches(epoch=5, start=start))
        assert len(tail) == len(full) - start
        for (a, la), (b, lb) in zip(full[start:], tail, strict=True):
            torch.testing.assert_close(a["x"], b["x"])
            torch.testing.assert_close(la, lb)
    assert list(loader.batches(epoch=5, start=len(full))) == []


def test_one_file_and_one_buffer(files):
    (split,) = [streaming_splits(data_config(files[:1], in_memory=False), "classification",
                                 seed=1)["train"]]
    loader = StreamingLoader(split, batch_size=8, shuffle=True, seed=1)  # default sizes
    assert len(loader.blocks) == 1
    assert sorted(ids(loader.batches())) == sorted(split.index)


def test_the_prefetch_thread_stops_when_the_consumer_does(splits):
    loader = StreamingLoader(splits["train"], batch_size=4, shuffle=True, seed=4, **SMALL)
    before = len(prefetch_threads())
    for _ in loader.batches():
        break  # a generator left early is closed: its thread must end
    assert len(prefetch_threads()) == before

    def train_until_error():
        for b, _ in enumerate(loader.batches(epoch=1)):
            if b == 3:
                raise RuntimeError("loss became nan")

    with pytest.raises(RuntimeError, match="loss became nan"):
        train_until_error()
    deadline = time.monotonic() + 5
    while prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(prefetch_threads()) == before

    batches = loader.batches()
    next(batches)
    batches.close()  # explicit close: the producer blocked on a full queue is released
    assert len(prefetch_threads()) == before


def test_read_errors_reach_the_consumer(tmp_path):
    paths = write_files(tmp_path)
    with h5py.File(paths[2], "r") as f:
        info = f["features"].id.get_chunk_info(2)
    with open(paths[2], "r+b") as handle:  # a partially written chunk
        handle.seek(info.byte_offset)
        handle.write(b"\xff" * info.size)
    split = streaming_splits(data_config(paths, in_memory=False), "classification", 4)["train"]
    loader = StreamingLoader(split, batch_size=16, **SMALL)
    with pytest.raises(DataError, match=r"part2.h5:features: cannot be read .*truncated file"):
        list(loader.batches())
    assert not prefetch_threads()


def test_nan_in_a_streamed_block(tmp_path):
    features, labels, _ = blobs(50)
    features[31, 2] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["features"], f["event_id"], f["label"], f["energy"] = (
            features, np.arange(50.0), labels, np.ones(50))
    split = streaming_splits(data_config(str(tmp_path / "nan.h5"), in_memory=False),
                             "classification", 4)["train"]
    with pytest.raises(DataError, match=r"nan.h5:features: NaN or Inf in input 'x' at event 31"):
        list(StreamingLoader(split, batch_size=8).batches())


def whole_then_split(config: DataConfig, seed: int) -> dict:
    """The splits cut from the whole file read at once: what block-by-block reads must give."""
    from hepdl.data.dataset import load_dataset, split_indices

    dataset = load_dataset(config)
    return {name: dataset.subset(index)
            for name, index in split_indices(len(dataset), config.split, seed).items()}


def test_in_memory_splits_are_read_block_by_block_without_a_second_copy(tmp_path):
    import tracemalloc

    n, width = 32_000, 512  # 64 MiB of float32 images, chunks of 500 events (1 MiB)
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=rng.normal(size=(n, width)).astype(np.float32),
                         chunks=(500, width))
        f["label"] = rng.integers(0, 2, n)
    config = DataConfig.model_validate({"source": {"kind": "hdf5", "path": str(path),
                                                   "inputs": {"x": "x"}, "label": "label"}})
    def peak_of(load):
        tracemalloc.start()
        try:
            loaded = load()
            return loaded, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    images = n * width * 4
    splits, peak = peak_of(lambda: load_splits(config, "classification", seed=2))
    # the splits, one 16 MiB block and its NaN check; reading whole, then splitting, peaks at
    # twice the images
    assert peak < images + 1.5 * READ_BYTES
    expected = whole_then_split(config, seed=2)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(splits[name].inputs["x"], expected[name].inputs["x"])
        np.testing.assert_array_equal(splits[name].labels, expected[name].labels)
    # a data-parallel rank's shard, every other event of train and val: half of them, one block
    (shards, sizes), peak = peak_of(lambda: load_shards(
        config, "classification", 2, lambda name, size: np.arange(0, size, 2)))
    kept = sum(len(shard) for shard in shards.values()) * width * 4
    assert peak < kept + 1.5 * READ_BYTES  # was the train and val splits whole, and the shard
    for name in ("train", "val"):
        np.testing.assert_array_equal(shards[name].inputs["x"], expected[name].inputs["x"][::2])
        assert sizes[name] == len(expected[name])


def test_one_split_loads_alone_and_matches_memory(files):
    memory = whole_then_split(data_config(files), seed=4)
    streamed = data_config(files, in_memory=False)
    lazy = load_splits(streamed, "classification", seed=4)
    test = lazy["test"]
    assert set(lazy) == {"test"}  # train and val were never read
    alone = load_split(streamed, "classification", 4, "val")
    for split, name in ((test, "test"), (alone, "val")):
        for key in ("x", "id"):
            np.testing.assert_array_equal(split.inputs[key], memory[name].inputs[key])
        np.testing.assert_array_equal(split.labels, memory[name].labels)
        np.testing.assert_array_equal(split.observers["energy"], memory[name].observers["energy"])
        assert split.class_names == memory[name].class_names == ["0", "1"]


def test_split_files_stream_every_event_of_their_files(files):
    config = DataConfig.model_validate({
        "source": {"kind": "hdf5", "path": "unused", "inputs": {"x": "features",
                                                                "id": "event_id"},
                   "label": "label"},
        "split": {"files": {"train": files[:2], "test": files[2]}}, "in_memory": False})
    splits = streaming_splits(config, "classification", seed=0)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [170, 0, 130]
    loader = StreamingLoader(splits["train"], batch_size=32, shuffle=True, seed=0, **SMALL)
    np.testing.assert_array_equal(np.sort(ids(loader.batches())), np.arange(170))
    assert StreamingLoader(splits["val"], batch_size=32).n_events == 0
    assert list(StreamingLoader(splits["val"], batch_size=32).batches()) == []


def test_in_memory_reads_keep_one_file_open_and_take_an_empty_split(files, monkeypatch):
    from hepdl.data import streaming

    opened = []

    def open_hdf5(path):
        assert sum(handle.id.valid for handle in opened) == 0, "a file is still open"
        opened.append(h5py.File(path, "r"))
        return opened[-1]

    monkeypatch.setattr(streaming, "open_hdf5", open_hdf5)  # blocks read in file order
    no_val = data_config(files, split={"train": 0.8, "val": 0.0, "test": 0.2})
    splits = load_splits(no_val, "classification", seed=4)
    assert opened and not any(handle.id.valid for handle in opened)
    assert [len(splits[name]) for name in ("train", "val", "test")] == [240, 0, 60]
    assert splits["val"].inputs["x"].shape == (0, 4)
    by_files = DataConfig.model_validate({
        "source": {"kind": "hdf5", "path": "unused", "inputs": {"x": "features"},
                   "label": "label"}, "split": {"files": {"train": files[:2], "test": files[2]}}})
    splits = load_splits(by_files, "classification", seed=0)
    assert [len(splits[name]) for name in ("train", "val", "test")] == [170, 0, 130]


def test_streaming_config_is_validated(tmp_path):
    with pytest.raises(ConfigError, match=r"in_memory: false streams HDF5, Parquet and ROOT "
                                          r"files; source kind 'npz' is read whole"):
        config_from_dict(small_config(tmp_path, data={
            "source": {"kind": "npz", "path": "a.npz", "inputs": {"x": "a"}, "label": "y"},
            "in_memory": False}))
    with pytest.raises(ConfigError, match=r"a CSV file is read whole: rewrite it as Parquet "
                                          r"with `hepdl data convert`"):
        config_from_dict(small_config(tmp_path, data={
            "source": {"kind": "table", "path": "a.csv", "inputs": {"x": ["a"]}, "label": "y"},
            "in_memory": False}))
    with pytest.raises(ConfigError, match=r"nonfinite: drop needs in_memory: true"):
        config_from_dict(small_config(tmp_path, data={
            "source": {"kind": "hdf5", "path": "a.h5", "inputs": {"x": "a"}, "label": "y"},
            "in_memory": False, "nonfinite": "drop"}))


# --------------------------------------------------------------------------- preprocessing


class Square(Transform):
    """x**2: nothing to learn, so a streamed fit spends no pass on it."""

    name = "square"

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x**2


def test_streamed_fit_of_a_chain_matches_the_in_memory_fit():
    x = torch.from_numpy(blobs(500, n_features=3)[0]) * 3 + 1
    chunks = lambda: iter(x.split(37))  # noqa: E731
    for make in (lambda: Chain(Standardize(shape=(3,)), Standardize(shape=(3,))),
                 lambda: Chain(Square(shape=(3,)), Standardize(shape=(3,))),
                 # these keep the chunks of a pass and fit once at its end, then let them go
                 lambda: Chain(Divide(shape=(3,), by="quantile", q=0.9), PCA(shape=(3,))),
                 lambda: Chain(Robust(shape=(3,)))):
        whole, streamed = make().fit(x), make()
        passes = fit_streaming({"x": streamed}, lambda: ({"x": c} for c in chunks()))
        assert passes == sum(not isinstance(t, Square) for t in streamed)
        assert not any(getattr(t, "_chunks", None) or getattr(t, "_values", None)
                       for t in [*whole, *streamed])
        for a, b in zip(whole, streamed, strict=True):
            for name, buffer in a.named_buffers():
                torch.testing.assert_close(buffer, dict(b.named_buffers())[name], rtol=1e-9,
                                           atol=1e-9)
        torch.testing.assert_close(streamed(x), whole(x))
    second = make().fit_stream(chunks)
    torch.testing.assert_close(second(x), whole(x))


# --------------------------------------------------------------------------- training


def test_training_streamed_matches_in_memory_statistics_and_learns(tmp_path):
    paths = write_files(tmp_path, sizes=(400, 300), chunks=(32, 50))
    runs = {}
    for in_memory in (True, False):
        config = config_from_dict(small_config(
            tmp_path, name=f"stream-{in_memory}",
            data={"source": {"kind": "hdf5", "path": paths, "inputs": {"x": "features"},
                             "label": "label"}, "in_memory": in_memory, "shuffle_buffer_mb": 1},
            preprocess={"x": ["standardize"]},
            train={"epochs": 4, "batch_size": 32, "lr": 1e-2}))
        from hepdl.training import fit

        runs[in_memory] = fit(config)
    states = {k: torch.load(run / "model.pt", weights_only=True)["model"]
              for k, run in runs.items()}
    for name in ("preprocess.x.0.mean_", "preprocess.x.0.m2_", "preprocess.x.0.scale_",
                 "preprocess.x.0.n_seen_"):
        torch.testing.assert_close(states[False][name], states[True][name], rtol=1e-9,
                                   atol=1e-9)
    import pandas as pd

    history = pd.read_csv(runs[False] / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_accuracy"].iloc[-1] > 0.7  # blobs one sigma apart in 4 features
    assert not prefetch_threads()


def test_training_streamed_lcd_files_resumes(tmp_path):
    from hepdl.training import fit
    from hepdl.training.loop import Interrupted

    from .test_lcd import particle_events, write_layout

    events = {name: particle_events(name, 20, seed) for seed, name in enumerate(["Ele", "Pi0"])}
    files = write_layout(tmp_path / "data", "v2", events, chunks=(4, 25, 25, 25))
    raw = small_config(tmp_path, name="lcd-stream",
                       data={"source": {"kind": "lcd", "layout": "v2",
                                        "files": [str(f) for f in files]}, "in_memory": False},
                       preprocess={"hcal": ["standardize"]},
                       train={"epochs": 2, "batch_size": 4, "time_limit": 1e-9})
    with pytest.raises(Interrupted):  # stops after every batch, checkpointed
        fit(config_from_dict(raw))
    run = tmp_path / "runs" / "lcd-stream"
    for _ in range(40):  # each resume starts mid-epoch, at the next batch
        try:
            resumed = fit(resume=run)
            break
        except Interrupted:
            continue
    raw["train"].pop("time_limit")
    raw["name"] = "lcd-straight"
    straight = fit(config_from_dict(raw))
    a = torch.load(resumed / "model.pt", weights_only=True)["model"]
    b = torch.load(straight / "model.pt", weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name])
    test = load_splits(config_from_dict(raw).data, "classification", 3)["test"]
    assert test.class_names == ["Ele", "Pi0"] and test.inputs["ecal"].shape[1:] == (25, 25, 25)


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_read_their_own_blocks_and_take_the_same_steps(splits, monkeypatch, shuffle):
    from hepdl.data.streaming import EventFiles
    from hepdl.training.distributed import Ranks

    read: list[tuple[int, int, int]] = []
    real = EventFiles.read_block

    def counted(self, handles, file, lo, hi, check_finite=True):
        read.append((file, lo, hi))
        return real(self, handles, file, lo, hi, check_finite)

    monkeypatch.setattr(EventFiles, "read_block", counted)
    split = splits["train"]
    loaders = [StreamingLoader(split, batch_size=16, shuffle=shuffle, seed=4,
                               ranks=Ranks(rank, 2), **SMALL) for rank in range(2)]
    alone = StreamingLoader(split, batch_size=16, shuffle=shuffle, seed=4, **SMALL)
    for epoch in (0, 1):
        read.clear()
        parts = [list(loader.batches(epoch)) for loader in loaders]
        every = loaders[0].blocks
        blocks = set(zip(every.file.tolist(), every.lo.tolist(), every.hi.tolist(), strict=True))
        # every block read, once, but for the one the two ranks' runs share
        assert set(read) == blocks and len(read) <= len(blocks) + 1
        assert [len(p) for p in parts] == [len(alone)] * 2  # the same number of steps
        seen = [ids(p) for p in parts]
        assert abs(len(seen[0]) - len(seen[1])) <= 2 * len(alone)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(ids(alone.batches(
            epoch))))  # together: every event of the split once
        steps = np.array([[len(labels) for _, labels in p] for p in parts]).sum(axis=0)
        one = np.array([len(labels) for _, labels in alone.batches(epoch)])
        np.testing.assert_array_equal(steps, one)  # the ranks' parts make one batch
    # a resumed rank skips to its part of batch 5 without reading what comes before
    np.testing.assert_array_equal(ids(loaders[1].batches(1, start=5)),
                                  ids(list(loaders[1].batches(1))[5:]))


def test_ranks_share_a_file_of_one_chunk(tmp_path):
    from hepdl.training.distributed import Ranks

    files = write_files(tmp_path, sizes=(300,), chunks=(300,))
    split = streaming_splits(data_config(files, in_memory=False), "classification", 4)["train"]
    loaders = [StreamingLoader(split, batch_size=16, shuffle=True, seed=4, ranks=Ranks(r, 3))
               for r in range(3)]
    assert len(loaders[0].blocks) == 1
    seen = [ids(loader.batches(2)) for loader in loaders]
    # 180 events: parts 5, 5, 6 of 11 batches of 16, and 2, 2, 0 of the last 4
    assert [len(s) for s in seen] == [57, 57, 66]
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), split.index)


# --------------------------------------------------------------------------- Parquet and ROOT


def numbered_columns(tmp_path, n=300):
    """The same events as a Parquet file of row groups of 40 and a ROOT tree of baskets of 64:
    each event carries its own number in every column, and a 3-vector branch for ROOT."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    number = np.arange(n, dtype=np.float64)
    label = (np.arange(n) % 3 == 0).astype(np.int32)
    names = np.where(label == 1, "sig", "bkg")
    pq.write_table(pa.table({"a": number, "b": 2 * number, "energy": number + 0.5,
                             "kind": names}), tmp_path / "n.parquet", row_group_size=40)
    with uproot.recreate(tmp_path / "n.root") as f:
        f.mktree("events", {"a": np.float64, "b": np.float64, "v": ("f4", (3,)),
                            "label": np.int32, "energy": np.float64})
        for lo in range(0, n, 64):  # one basket per extend
            sl = slice(lo, min(lo + 64, n))
            f["events"].extend({"a": number[sl], "b": 2 * number[sl],
                                "v": np.repeat(number[sl, None], 3, 1).astype("f4"),
                                "label": label[sl], "energy": number[sl] + 0.5})
    return tmp_path / "n.parquet", tmp_path / "n.root"


def column_data(path, inputs, observers=True, **more):
    source = {"kind": "table" if path.suffix == ".parquet" else "root", "path": str(path),
              "inputs": inputs, "observers": {"energy": "energy"} if observers else {},
              "label": "kind" if path.suffix == ".parquet" else "label"}
    if path.suffix == ".root":
        source["tree"] = "events"
    return DataConfig.model_validate({"source": source, **more})


@pytest.mark.parametrize("which", ["parquet", "root"])
def test_parquet_and_root_stream_by_chunk_the_events_memory_holds(tmp_path, which, monkeypatch):
    import hepdl.data.dataset
    from hepdl.data.dataset import load_dataset, split_indices
    from hepdl.data.readers import ParquetRows, RootRows

    path = numbered_columns(tmp_path)[which == "root"]
    inputs = {"x": ["a", "b"], **({"v": "v"} if which == "root" else {})}
    streamed_config = column_data(path, inputs, in_memory=False)
    expected = split_indices(300, streamed_config.split, seed=5)
    reads = []
    rows = RootRows if which == "root" else ParquetRows
    read = rows.read
    monkeypatch.setattr(rows, "read", lambda self, keys, lo, hi: reads.append((lo, hi)) or
                        read(self, keys, lo, hi) if "b" in keys else read(self, keys, lo, hi))
    splits = streaming_splits(streamed_config, "classification", seed=5)
    # the inputs never as a whole file: blocks of whole row groups (40) or clusters (64), one
    # read each (labels and observers are columns read whole)
    events = splits["train"].events
    assert list(events.chunk_rows) == [64 if which == "root" else 40]
    loader = StreamingLoader(splits["train"], batch_size=32, shuffle=True, seed=5,
                             read_bytes=events.chunk_rows[0] * events.event_bytes)
    seen = np.concatenate([inputs_["x"][:, 0].numpy() for inputs_, _ in loader.batches(0)])
    np.testing.assert_array_equal(np.sort(seen), expected["train"])
    assert reads and max(hi - lo for lo, hi in reads) <= events.chunk_rows[0]
    for name, split in load_together(splits).items():  # the same events, labels, observers
        np.testing.assert_array_equal(split.inputs["x"], np.stack([expected[name],
                                                                   2 * expected[name]], 1))
        np.testing.assert_array_equal(split.labels, (expected[name] % 3 == 0).astype(int))
        np.testing.assert_array_equal(split.observers["energy"], expected[name] + 0.5)
        if which == "root":
            np.testing.assert_array_equal(split.inputs["v"], np.repeat(expected[name][:, None],
                                                                       3, 1))
    # in memory the column files are read block by block too: the same as a whole read
    whole = load_dataset(column_data(path, inputs), "classification")
    monkeypatch.setattr(hepdl.data.dataset, "_read_file_source", None)  # never read whole
    in_memory = load_splits(column_data(path, inputs), "classification", seed=5)
    assert in_memory["test"].class_names == whole.class_names == (
        ["bkg", "sig"] if which == "parquet" else ["0", "1"])
    for name, split in in_memory.items():
        for key in inputs:
            np.testing.assert_array_equal(split.inputs[key], whole.inputs[key][expected[name]])


def test_column_files_that_cannot_stream_are_one_line(tmp_path):
    import uproot

    parquet, root = numbered_columns(tmp_path)
    import awkward

    with uproot.recreate(tmp_path / "jagged.root") as f:
        f.mktree("events", {"hits": "var * float64", "label": np.int32})
        f["events"].extend({"hits": awkward.Array([[1.0], [2.0, 3.0]]),
                            "label": np.array([0, 1], dtype=np.int32)})
    cases = [
        (column_data(tmp_path / "jagged.root", {"x": "hits"}, False, in_memory=False),
         "is a jagged branch; expected a flat branch"),
        (column_data(parquet, {"x": ["a", "kind"]}, in_memory=False),
         "'kind' holds object values; expected numbers"),
        (column_data(parquet, {"x": ["a", "c"]}, in_memory=False), "no column 'c'"),
        (column_data(root, {"x": ["a", "v"]}, in_memory=False),
         "'v' is not a scalar column; give it as one key instead"),
    ]
    for data, message in cases:
        with pytest.raises(DataError, match=message):
            streaming_splits(data, "classification", seed=0)
    (tmp_path / "t.csv").write_text("a,kind\n1,x\n")
    glob = column_data(parquet, {"x": ["a"]}, in_memory=False)
    glob.source.path = [str(parquet), str(tmp_path / "t.csv")]
    with pytest.raises(DataError, match="t.csv: in_memory: false streams Parquet tables"):
        streaming_splits(glob, "classification", seed=0)


@pytest.mark.parametrize("kind", ["table", "root"])
def test_training_streams_an_ntuple_as_it_reads_it_in_memory(tmp_path, kind, blob_arrays):
    import pyarrow.parquet as pq
    import uproot

    from hepdl.api import train

    from .conftest import write_table

    columns = [f"x{i}" for i in range(4)]
    if kind == "table":  # row groups of 16 events: buffers of many blocks, shuffled together
        path = tmp_path / "b.parquet"
        pq.write_table(pq.read_table(write_table(path, *blob_arrays)), path, row_group_size=16)
        source = {"kind": "table", "path": str(path), "inputs": {"x": columns}, "label": "kind"}
    else:  # baskets of 16 entries
        features, labels, _ = blob_arrays
        branches = {**{c: features[:, i] for i, c in enumerate(columns)},
                    "label": labels.astype(np.int32)}
        with uproot.recreate(tmp_path / "b.root") as f:
            f.mktree("events", {k: v.dtype for k, v in branches.items()})
            for lo in range(0, len(labels), 16):
                f["events"].extend({k: v[lo:lo + 16] for k, v in branches.items()})
        source = {"kind": "root", "path": str(tmp_path / "b.root"), "tree": "events",
                  "inputs": {"x": columns}, "label": "label"}
    runs = {}
    for in_memory in (True, False):
        runs[in_memory] = train(config_from_dict(small_config(
            tmp_path, name=f"{kind}-{in_memory}",
            data={"source": source, "in_memory": in_memory, "shuffle_buffer_mb": 1},
            preprocess={"x": ["standardize"]},
            train={"epochs": 3, "batch_size": 32, "lr": 1e-2})), console=None)
    states = {k: torch.load(run.path / "model.pt", weights_only=True)["model"]
              for k, run in runs.items()}
    for name in ("preprocess.x.0.mean_", "preprocess.x.0.scale_", "preprocess.x.0.n_seen_"):
        torch.testing.assert_close(states[False][name], states[True][name], rtol=1e-9,
                                   atol=1e-9)  # fitted on the same training events
    metrics = runs[False].metrics
    assert metrics["n_events"] == 60 and metrics["mean_auc"] > 0.8  # blobs 1 sigma apart
    assert not prefetch_threads()


def irregular_parquet(path, sizes=(3, 200, 0, 50, 47)):
    """Row groups of the given sizes (a writer that appended batches), event i holding i."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = 0
    schema = pa.schema([("a", pa.float64()), ("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for size in sizes:
            number = np.arange(start, start + size, dtype=np.float64)
            writer.write_table(pa.table({"a": number, "label": number.astype(np.int64) % 2},
                                        schema=schema), row_group_size=max(size, 1))
            start += size
    return start


def test_parquet_rows_of_any_range_and_each_row_group_decoded_once(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from hepdl.data.readers import ParquetRows

    n = irregular_parquet(tmp_path / "r.parquet")
    rows = ParquetRows(tmp_path / "r.parquet")
    rng = np.random.default_rng(0)
    edges = [0, 3, 203, 253, n]
    ranges = [(lo, hi) for lo in edges for hi in edges if lo < hi]
    ranges += [tuple(sorted(rng.choice(n + 1, 2, replace=False))) for _ in range(200)]
    for lo, hi in ranges:  # across row groups, inside one, at the ends
        np.testing.assert_array_equal(rows.read(["a"], lo, hi)["a"], np.arange(lo, hi))
    assert len(rows.read(["a"], n, n)["a"]) == 0
    rows.close()
    decoded = []
    read_row_groups = pq.ParquetFile.read_row_groups
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", lambda self, groups, **kw: (
        "a" in kw["columns"] and decoded.extend(groups)  # the inputs (labels are read whole)
        or read_row_groups(self, groups, **kw)))
    data = DataConfig.model_validate({"source": {
        "kind": "table", "path": str(tmp_path / "r.parquet"), "inputs": {"x": ["a"]},
        "label": "label"}})
    events = streaming_splits(data, "classification", seed=1)["train"].events
    for read_bytes in (8 * 39, 8 * 1000):  # blocks smaller than a row group, and several
        decoded.clear()
        splits = load_together(streaming_splits(data, "classification", seed=1), read_bytes)
        assert sorted(g for g in decoded if g != 2) == [0, 1, 3, 4]  # each once (2 is empty)
        np.testing.assert_array_equal(np.sort(np.concatenate(
            [s.inputs["x"][:, 0] for s in splits.values()])), np.arange(n))
    assert [list(e) for e in events.chunk_edges] == [[0, 3, 203, 253, 300]]


def test_empty_and_broken_column_files_are_one_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import uproot

    pq.write_table(pa.table({"a": np.zeros(0), "label": np.zeros(0, np.int64)}),
                   tmp_path / "empty.parquet")
    with uproot.recreate(tmp_path / "empty.root") as f:
        f.mktree("events", {"a": np.float64, "label": np.int32})
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really" * 20)
    numbered_columns(tmp_path)
    cases = [("empty.parquet", {}, "the dataset is empty"),
             ("empty.root", {"tree": "events"}, "the dataset is empty"),
             ("bad.parquet", {}, "bad.parquet: not a readable Parquet file"),
             ("n.root", {"tree": "Events"}, "no tree 'Events'; the file has 'events'")]
    for name, extra, message in cases:
        kind = "root" if name.endswith(".root") else "table"
        for in_memory in (True, False):
            data = DataConfig.model_validate({"source": {
                "kind": kind, "path": str(tmp_path / name), "inputs": {"x": ["a"]},
                "label": "label", **extra}, "in_memory": in_memory})
            with pytest.raises(DataError, match=message) as error:
                load_split(data, "classification", 0, "train")
            assert "\n" not in str(error.value)


def test_a_parquet_row_group_larger_than_a_block_is_read_batch_by_batch(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from hepdl.data.readers import ParquetRows

    # the group holds 300 x 8 bytes of column a: "large", cut in batches of 16 rows
    for name, value in (("large_bytes", 1000), ("batch_bytes", 1), ("min_batch_rows", 16),
                        ("column_bytes", 0)):
        monkeypatch.setattr(ParquetRows, name, value)
    n = irregular_parquet(tmp_path / "one.parquet", sizes=(300,))  # pandas' default: one group
    rows = ParquetRows(tmp_path / "one.parquet")
    assert list(rows.chunk_edges(["a"])) == [*range(0, 300, 16), 300]
    rng = np.random.default_rng(1)
    for lo, hi in [tuple(sorted(rng.choice(n + 1, 2, replace=False))) for _ in range(100)]:
        np.testing.assert_array_equal(rows.read(["a"], lo, hi)["a"], np.arange(lo, hi))
    for lo in range(0, 300, 40):  # in order: the batches go on where the last read ended
        hi = min(lo + 40, 300)
        np.testing.assert_array_equal(rows.read(["a"], lo, hi)["a"], np.arange(lo, hi))
    rows.close()
    started, yielded = [], []
    iter_batches = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        started.append(1)
        for batch in iter_batches(self, *args, **kwargs):
            yielded.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    data = DataConfig.model_validate({"source": {
        "kind": "table", "path": str(tmp_path / "one.parquet"), "inputs": {"x": ["a"]},
        "label": "label"}})
    splits = load_together(streaming_splits(data, "classification", seed=1), read_bytes=4 * 40)
    assert started == [1] and sum(yielded) == 300  # one pass: every batch decoded once
    np.testing.assert_array_equal(np.sort(np.concatenate(
        [s.inputs["x"][:, 0] for s in splits.values()])), np.arange(n))


def test_one_batch_reader_is_alive_across_many_parquet_files(tmp_path, monkeypatch):
    from hepdl.data import streaming
    from hepdl.data.readers import ParquetRows

    for name, value in (("large_bytes", 100), ("batch_bytes", 1), ("min_batch_rows", 16),
                        ("column_bytes", 0)):
        monkeypatch.setattr(ParquetRows, name, value)
    files = []
    for i in range(4):  # one row group each, as pandas writes
        files.append(tmp_path / f"f{i}.parquet")
        irregular_parquet(files[-1], sizes=(100,))
    opened, alive = [], []
    init, fill = ParquetRows.__init__, streaming.RowReader.fill
    monkeypatch.setattr(ParquetRows, "__init__", lambda self, path: (
        opened.append(self), init(self, path))[1])

    def counted(self, *args):
        fill(self, *args)
        alive.append(sum(rows._cursor is not None for rows in opened))

    monkeypatch.setattr(streaming.RowReader, "fill", counted)
    data = DataConfig.model_validate({"source": {
        "kind": "table", "path": [str(f) for f in files], "inputs": {"x": ["a"]},
        "label": "label"}, "in_memory": False})
    splits = streaming_splits(data, "classification", seed=2)
    list(splits["train"].events.read_all(read_bytes=8 * 16))  # as hepdl predict reads
    loader = StreamingLoader(splits["train"], batch_size=8, shuffle=True, seed=2,
                             buffer_bytes=8 * 64, read_bytes=8 * 16)
    seen = np.concatenate([x["x"][:, 0].numpy() for x, _ in loader.batches(0)])
    assert len(seen) == len(splits["train"]) and len(alive) > 20
    assert max(alive) == 1  # never a reader per file
