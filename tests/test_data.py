import re

import numpy as np
import pytest

from hepdl.config import DataConfig, SplitConfig
from hepdl.data import load_dataset, load_splits, split_indices
from hepdl.data.inspect import inspect_file
from hepdl.errors import DataError, KeyNotFoundError

from .conftest import blobs, write_table

FEATURES = ["x0", "x1", "x2", "x3"]


def data(**source) -> DataConfig:
    return DataConfig.model_validate({"source": source})


def test_every_format_reads_the_same_events(npz_file, h5_file, root_file, tmp_path, blob_arrays):
    features, labels, energy = blob_arrays
    readers = [
        data(kind="npz", path=str(npz_file), inputs={"x": "features"}, label="label",
             observers={"energy": "energy"}),
        data(kind="hdf5", path=str(h5_file), inputs={"x": "features"}, label="Event/label",
             observers={"energy": "Event/energy"}),
        data(kind="root", path=str(root_file), tree="events", inputs={"x": FEATURES},
             label="label", observers={"energy": "energy"}),
    ]
    for suffix in (".parquet", ".csv"):
        path = write_table(tmp_path / f"t{suffix}", features, labels, energy)
        readers.append(data(kind="table", path=str(path), inputs={"x": FEATURES}, label="kind",
                            observers={"energy": "energy"}))
    for config in readers:
        dataset = load_dataset(config)
        np.testing.assert_allclose(dataset.inputs["x"], features, rtol=1e-6)
        np.testing.assert_array_equal(dataset.labels, labels)
        np.testing.assert_allclose(dataset.observers["energy"], energy)
        assert dataset.inputs["x"].dtype == np.float32
    # class names: sorted string labels, or the given order
    assert load_dataset(readers[-1]).class_names == ["bkg", "sig"]
    ordered = readers[-1].model_copy(deep=True)
    ordered.source.class_names = ["sig", "bkg"]
    np.testing.assert_array_equal(load_dataset(ordered).labels, 1 - labels)


def test_select_keeps_events_in_any_range_of_each_key(h5_file, blob_arrays):
    features, labels, energy = blob_arrays
    ranges = [[None, 20.0], [60.0, None]]
    dataset = load_dataset(data(kind="hdf5", path=str(h5_file), inputs={"x": "features"},
                                label="Event/label", observers={"energy": "Event/energy"},
                                select={"Event/energy": ranges}))
    keep = (energy <= 20) | (energy >= 60)
    assert 0 < keep.sum() < len(energy)
    np.testing.assert_array_equal(dataset.inputs["x"], features[keep])
    np.testing.assert_array_equal(dataset.observers["energy"], energy[keep])
    with pytest.raises(ValueError, match="select needs in_memory"):
        DataConfig.model_validate({"source": {"kind": "hdf5", "path": "x.h5", "inputs": {"x": "x"},
                                              "select": {"e": ranges}}, "in_memory": False})


def test_files_are_concatenated_from_globs(tmp_path):
    for i in range(3):
        f, y, _ = blobs(50, seed=i)
        np.savez(tmp_path / f"part{i}.npz", features=f, label=y)
    dataset = load_dataset(data(kind="npz", path=str(tmp_path / "part*.npz"),
                                inputs={"x": "features"}, label="label"))
    assert len(dataset) == 150
    np.testing.assert_allclose(dataset.inputs["x"][50:100], blobs(50, seed=1)[0])


def test_missing_file_and_glob(tmp_path):
    with pytest.raises(DataError, match="nope.npz: no such file"):
        load_dataset(data(kind="npz", path=str(tmp_path / "nope.npz"), inputs={"x": "a"}))
    with pytest.raises(DataError, match="no file matches"):
        load_dataset(data(kind="npz", path=str(tmp_path / "*.npz"), inputs={"x": "a"}))


def test_missing_key_lists_nearest_first(h5_file, root_file, npz_file):
    with pytest.raises(KeyNotFoundError, match=r"no dataset 'featurse'; the file has 'features'"):
        load_dataset(data(kind="hdf5", path=str(h5_file), inputs={"x": "featurse"}, label="l"))
    with pytest.raises(KeyNotFoundError, match=r"no branch 'enrgy'; the file has 'energy'"):
        load_dataset(data(kind="root", path=str(root_file), tree="events", inputs={"x": ["enrgy"]},
                          label="label"))
    with pytest.raises(KeyNotFoundError, match=r"no tree 'event'; the file has 'events'"):
        load_dataset(data(kind="root", path=str(root_file), tree="event", inputs={"x": ["x0"]}))
    with pytest.raises(KeyError):  # also a KeyError, like uproot's
        load_dataset(data(kind="npz", path=str(npz_file), inputs={"x": "nope"}, label="label"))


def test_nonfinite_inputs_error_with_counts_or_drop(tmp_path):
    f, y, _ = blobs(100)
    f[[5, 7], 2] = np.nan
    f[7, 3] = np.inf
    np.savez(tmp_path / "bad.npz", features=f, label=y)
    config = data(kind="npz", path=str(tmp_path / "bad.npz"), inputs={"x": "features"},
                  label="label")
    with pytest.raises(DataError, match=r"x: 3 values in 2 events \(first event 5, feature 2\)"):
        load_dataset(config)
    config.nonfinite = "drop"
    dataset = load_dataset(config)
    assert len(dataset) == 98 and np.isfinite(dataset.inputs["x"]).all()


def test_labels_out_of_range_and_single_class(tmp_path):
    f, y, _ = blobs(100)
    np.savez(tmp_path / "a.npz", features=f, label=np.where(np.arange(100) == 9, -1, y))
    with pytest.raises(DataError, match=r"1 labels out of range 0..1 \(first: -1 at event 9\)"):
        load_dataset(data(kind="npz", path=str(tmp_path / "a.npz"), inputs={"x": "features"},
                          label="label"))
    np.savez(tmp_path / "b.npz", features=f, label=y + 1)
    with pytest.raises(DataError, match=r"labels out of range 0..1 \(first: 2"):
        load_dataset(data(kind="npz", path=str(tmp_path / "b.npz"), inputs={"x": "features"},
                          label="label", class_names=["b", "s"]))
    pdg = np.where(y == 1, 211, 11) * np.where(np.arange(100) % 2, 1, -1)  # e+-, pi+-
    np.savez(tmp_path / "p.npz", features=f, label=pdg)
    with pytest.raises(DataError, match="look like PDG codes: .* source kind: lcd"):
        load_dataset(data(kind="npz", path=str(tmp_path / "p.npz"), inputs={"x": "features"},
                          label="label"))
    np.savez(tmp_path / "q.npz", features=f, label=np.where(y == 1, 111, 22))  # pi0, photon
    with pytest.raises(DataError, match=r"labels 22, 111 look like PDG codes, not class indices "
                                        r"\(112 classes, 110 of them empty\)"):
        load_dataset(data(kind="npz", path=str(tmp_path / "q.npz"), inputs={"x": "features"},
                          label="label"))
    np.savez(tmp_path / "c.npz", features=f, label=np.zeros(100, int))
    config = DataConfig.model_validate({"source": {
        "kind": "npz", "path": str(tmp_path / "c.npz"), "inputs": {"x": "features"},
        "label": "label"}})
    with pytest.raises(DataError, match="single class"):
        load_splits(config, "classification", seed=0)


def test_shape_mismatch_between_files_and_empty(tmp_path):
    np.savez(tmp_path / "a.npz", features=np.zeros((5, 4)), label=np.arange(5) % 2)
    np.savez(tmp_path / "b.npz", features=np.zeros((5, 3)), label=np.arange(5) % 2)
    with pytest.raises(DataError, match=r"event shape differs between files: a.npz \(4,\), "
                                        r"b.npz \(3,\)"):
        load_dataset(data(kind="npz", path=[str(tmp_path / "a.npz"), str(tmp_path / "b.npz")],
                          inputs={"x": "features"}, label="label"))
    np.savez(tmp_path / "e.npz", features=np.zeros((0, 4)), label=np.zeros(0, int))
    with pytest.raises(DataError, match=r"empty \(0 events\)"):
        load_dataset(data(kind="npz", path=str(tmp_path / "e.npz"), inputs={"x": "features"},
                          label="label"))


def test_corrupt_files_are_one_line(tmp_path):
    for name in ("bad.h5", "bad.npz", "bad.root", "bad.parquet"):
        (tmp_path / name).write_bytes(b"this is not a data file" * 10)
    kinds = {"bad.h5": "hdf5", "bad.npz": "npz", "bad.root": "root", "bad.parquet": "table"}
    for name, kind in kinds.items():
        extra = {"tree": "t"} if kind == "root" else {}
        with pytest.raises(DataError, match=f"{name}: not a readable"):
            load_dataset(data(kind=kind, path=str(tmp_path / name), inputs={"x": "a"}, **extra))


def test_splits_are_disjoint_deterministic_and_by_fraction():
    split = SplitConfig(train=0.6, val=0.2, test=0.2)
    a, b = split_indices(1000, split, seed=4), split_indices(1000, split, seed=4)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    together = np.concatenate(list(a.values()))
    assert len(together) == 1000 and len(np.unique(together)) == 1000
    assert [len(a[k]) for k in ("train", "val", "test")] == [600, 200, 200]
    assert not np.array_equal(split_indices(1000, split, seed=5)["test"], a["test"])


def test_k_folds_test_every_event_once():
    tests = []
    for fold in range(3):
        index = split_indices(1000, SplitConfig(folds=3, fold=fold, val=0.1), seed=4)
        together = np.concatenate(list(index.values()))
        assert len(together) == 1000 and len(np.unique(together)) == 1000
        assert len(index["val"]) == 100 and len(index["test"]) in (333, 334)
        tests.append(index["test"])
        assert len(index["train"]) == 1000 - 100 - len(index["test"])
    every = np.concatenate(tests)
    assert len(every) == 1000 and len(np.unique(every)) == 1000  # the folds never overlap


def test_the_loaders_test_the_fold(tmp_path):
    import h5py

    from hepdl.data.dataset import load_shards
    from hepdl.data.shards import shard
    from hepdl.data.streaming import load_together, streaming_splits

    path = tmp_path / "numbered.h5"
    numbers = np.arange(300, dtype=np.float32)[:, None] * np.ones(3, np.float32)
    with h5py.File(path, "w") as f:  # each event carries its own number
        f["x"] = numbers
        f["label"] = np.arange(300) % 2
    np.savez(tmp_path / "numbered.npz", x=numbers, label=np.arange(300) % 2)
    for fold in range(3):
        split = {"folds": 3, "fold": fold, "val": 0.1, "seed": 7}
        expected = split_indices(300, SplitConfig(**split), seed=0)

        def data(kind, suffix, split=split):
            return DataConfig(source={"kind": kind, "path": str(path.with_suffix(suffix)),
                                      "inputs": {"x": "x"}, "label": "label"}, split=split)

        on_demand = data("hdf5", ".h5").model_copy(update={"in_memory": False})
        for splits in (load_splits(data("npz", ".npz"), "classification", seed=1),  # in memory
                       load_splits(data("hdf5", ".h5"), "classification", seed=1),  # by block
                       load_together(streaming_splits(data("hdf5", ".h5"), "classification",
                                                      seed=1)),
                       load_splits(on_demand, "classification", seed=1)):  # in_memory: false
            for name in ("train", "val", "test"):  # split.seed, not the run's, sets them
                np.testing.assert_array_equal(splits[name].inputs["x"][:, 0], expected[name])
        for kind, suffix in (("npz", ".npz"), ("hdf5", ".h5")):  # two data-parallel ranks
            shards = [load_shards(data(kind, suffix), "classification", 1,
                                  lambda name, n, rank=rank: shard(n, 16, rank, 2))[0]
                      for rank in (0, 1)]
            for name in ("train", "val"):
                held = np.concatenate([s[name].inputs["x"][:, 0] for s in shards])
                np.testing.assert_array_equal(np.sort(held), expected[name])
    with pytest.raises(DataError, match=r"data.split.val: 10 validation events of 12 leave none "
                                        r"to train on beside fold 0 of 6"):
        split_indices(12, SplitConfig(folds=6, val=0.8), seed=0)


@pytest.mark.parametrize(("split", "error"), [
    ({"folds": 3, "fold": 3}, "split.fold must be below split.folds (3), got 3"),
    ({"folds": 4, "val": 0.75}, "split.val (0.75) leaves no training events beside 1 of 4"),
    ({"fold": 1}, "split.fold needs split.folds"),
    ({"folds": 1}, "greater than or equal to 2"),
    ({"folds": 3, "seed": -1}, "greater than or equal to 0"),
    ({"folds": 2, "files": {"train": "a.h5", "test": "b.h5"}}, "folds and split.files exclude"),
])
def test_bad_folds_are_named(split, error):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(error)):
        SplitConfig(**split)


def test_split_by_files(tmp_path):
    for name, seed in (("tr", 0), ("te", 1)):
        f, y, _ = blobs(80, seed=seed)
        np.savez(tmp_path / f"{name}.npz", features=f, label=y)
    config = DataConfig.model_validate({
        "source": {"kind": "npz", "path": "unused", "inputs": {"x": "features"}, "label": "label"},
        "split": {"files": {"train": str(tmp_path / "tr.npz"), "test": str(tmp_path / "te.npz")}}})
    splits = load_splits(config, "classification", seed=0)
    assert len(splits["train"]) == 80 and len(splits["val"]) == 0
    np.testing.assert_allclose(splits["test"].inputs["x"], blobs(80, seed=1)[0])


def test_inspect_reports_shape_range_and_nan(tmp_path, root_file):
    import h5py

    with h5py.File(tmp_path / "i.h5", "w") as f:
        values = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        values[1, 2, 3] = np.nan
        f.create_dataset("ECAL", data=values, chunks=(1, 3, 4), compression="gzip")
    (summary,) = inspect_file(tmp_path / "i.h5")
    assert summary.shape == (2, 3, 4) and summary.dtype == "float32"
    assert (summary.minimum, summary.maximum, summary.nonfinite) == (0.0, 22.0, 1)
    names = {s.name for s in inspect_file(root_file)}
    assert names == {"events/x0", "events/x1", "events/x2", "events/x3", "events/label",
                     "events/energy"}
    with pytest.raises(DataError, match="unknown file type '.dat'"):
        (tmp_path / "a.dat").write_text("x")
        inspect_file(tmp_path / "a.dat")


def test_inspect_reads_tables_block_by_block(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import hepdl.data.inspect

    x = np.arange(5_000, dtype=np.float64) - 1_000.5
    x[[7, 4_321]] = np.nan
    n = np.arange(5_000) % 7
    kind = np.where(n % 2 == 0, "sig", "bkg")
    pq.write_table(pa.table({"x": x, "n": n, "kind": kind}), tmp_path / "t.parquet",
                   row_group_size=1_000)
    import pandas as pd

    monkeypatch.setattr(hepdl.data.inspect, "read_csv", None)  # never the whole-file reads
    monkeypatch.setattr(pd, "read_parquet", None)
    monkeypatch.setattr(hepdl.data.inspect, "CSV_BLOCK_BYTES", 2**12)  # about 200 rows
    (tmp_path / "t.csv").write_text("x,n,kind\n" + "\n".join(
        f"{'' if np.isnan(a) else a},{b},{c}" for a, b, c in zip(x, n, kind, strict=True)) + "\n")
    for name in ("t.parquet", "t.csv"):
        rows = {s.name: s for s in inspect_file(tmp_path / name)}
        assert rows["x"].shape == (5_000,) and rows["x"].nonfinite == 2, name
        assert (rows["x"].minimum, rows["x"].maximum) == (-1_000.5, 3_998.5)
        assert (rows["n"].minimum, rows["n"].maximum, rows["n"].dtype) == (0, 6, "int64")
        assert rows["kind"].dtype == "object" and rows["kind"].minimum is None
    # a type that changes after the first block: the whole file is read again, typed from all
    (tmp_path / "late.csv").write_text("n\n" + "\n".join(map(str, range(2_000))) + "\n2.5\n")
    monkeypatch.setattr(hepdl.data.inspect, "read_csv", hepdl.data.readers.read_csv)
    (late,) = inspect_file(tmp_path / "late.csv")
    assert (late.shape, late.dtype, late.maximum) == ((2_001,), "float64", 1_999.0)
