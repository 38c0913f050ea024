"""Data-parallel training under torchrun: 2 CPU ranks on 127.0.0.1 with gloo give the
single-process result; a rank that dies stops the job with a usable checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from hepdl.config import DataConfig, load_config
from hepdl.data.dataset import Dataset, load_shards, load_splits
from hepdl.data.loader import InMemoryLoader
from hepdl.runs import Run, load_checkpoint
from hepdl.training.distributed import Ranks

pytestmark = pytest.mark.slow


def test_each_rank_takes_its_contiguous_part_of_a_batch():
    for n in (0, 1, 44, 45):
        parts = [Ranks(rank, 2).part(n) for rank in range(2)]
        assert parts[0].start == 0 and parts[0].stop == parts[1].start and parts[1].stop == n
        assert abs((parts[0].stop - parts[0].start) - (parts[1].stop - parts[1].start)) <= 1
    assert Ranks().part(7) == slice(0, 7) and Ranks().sum(1.0, 2.0) == [1.0, 2.0]


def test_the_backend_named_is_the_groups_for_the_device(monkeypatch):
    import torch.distributed as dist

    # hepdl's own group on GPUs; a caller's gloo-only group carries GPU gradients over gloo
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "cpu:gloo,cuda:nccl")
    assert Ranks(0, 2).backend("cuda") == "nccl" and Ranks(0, 2).backend("cpu") == "gloo"
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert Ranks(0, 2).backend("cuda") == "gloo" and Ranks().backend("cpu") is None


def test_shards_cover_a_split_once_and_hold_each_ranks_part_of_every_batch():
    for n, batch in ((0, 4), (1, 4), (700, 45), (700, 233), (701, 700)):
        shards = [Ranks(rank, 2).shard(n, batch) for rank in range(2)]
        np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(n))
        for rank, shard in enumerate(shards):
            parts = Ranks(rank, 2).batch_parts(n, batch)
            assert parts.sum() == len(shard) and len(parts) == -(-n // batch)
            for k, size in enumerate(parts):  # its part of batch k: Ranks.part of that batch
                part = Ranks(rank, 2).part(min(batch, n - k * batch))
                assert size == part.stop - part.start
                expected = np.arange(k * batch + part.start, k * batch + part.stop)
                np.testing.assert_array_equal(shard[parts[:k].sum():parts[:k + 1].sum()],
                                              expected)
    assert np.array_equal(Ranks().shard(5, 2), np.arange(5))


def test_no_rank_gets_a_single_event_of_a_larger_batch():  # BatchNorm needs two
    for world in (2, 3, 4):
        for n in range(0, 12):
            parts = [Ranks(rank, world).part(n) for rank in range(world)]
            sizes = [p.stop - p.start for p in parts]
            assert sum(sizes) == n and all(
                p.stop == q.start for p, q in zip(parts, parts[1:], strict=False))
            assert n < 2 or 1 not in sizes, (world, n, sizes)


def test_in_memory_shards_make_one_process_batches_in_order_and_shuffle_apart():
    rng = np.random.default_rng(1)
    whole = Dataset({"x": rng.normal(size=(101, 3)).astype(np.float32)},
                    rng.integers(0, 2, 101))
    alone = InMemoryLoader(whole, batch_size=20)
    for shuffle in (False, True):
        loaders = [InMemoryLoader(whole.subset(Ranks(rank, 2).shard(101, 20)), batch_size=20,
                                  ranks=Ranks(rank, 2), n_events=101, shuffle=shuffle, seed=3)
                   for rank in range(2)]
        assert [len(loader) for loader in loaders] == [len(alone)] * 2 == [6, 6]
        parts = [list(loader.batches(epoch=2)) for loader in loaders]
        if not shuffle:  # batch k of the two ranks together: batch k of one process
            for k, (inputs, labels) in enumerate(alone.batches()):
                torch.testing.assert_close(torch.cat([p[k][0]["x"] for p in parts]), inputs["x"])
                torch.testing.assert_close(torch.cat([p[k][1] for p in parts]), labels)
        else:  # each rank: its own shard, once, in an order of its own
            for loader, part in zip(loaders, parts, strict=True):
                seen = torch.cat([inputs["x"] for inputs, _ in part])
                torch.testing.assert_close(seen[torch.argsort(seen[:, 0])], loader.inputs["x"][
                    torch.argsort(loader.inputs["x"][:, 0])])
            assert not torch.equal(loaders[0].order(2)[:40], loaders[1].order(2)[:40])
    with pytest.raises(ValueError, match="events given for a shard"):
        InMemoryLoader(whole, batch_size=20, ranks=Ranks(0, 2), n_events=101)


@pytest.mark.parametrize("kind", ["npz", "hdf5", "hdf5 select"])
def test_a_rank_loads_the_events_of_its_shards_only(tmp_path, kind):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(500, 4)).astype(np.float32), rng.integers(0, 2, 500)
    path = tmp_path / f"d.{'npz' if kind == 'npz' else 'h5'}"
    if kind == "npz":
        np.savez(path, x=x, y=y, e=x[:, 0])
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=x, chunks=(32, 4))
            f["y"], f["e"] = y, x[:, 0]
    source = {"kind": kind.split()[0], "path": str(path), "inputs": {"x": "x"}, "label": "y"}
    if kind.endswith("select"):  # a selection is made on every event: read whole, then cut
        source["select"] = {"e": [[0.0, None]]}
    data = DataConfig.model_validate({"source": source})
    whole = load_splits(data, "classification", seed=5)
    rank = Ranks(1, 3)
    shards, sizes = load_shards(data, "classification", 5, lambda name, n: rank.shard(n, 16))
    assert sizes == {name: len(split) for name, split in whole.items()}
    assert sum(sizes.values()) == (500 if "select" not in kind else np.sum(x[:, 0] >= 0))
    for name in ("train", "val"):
        expected = whole[name].subset(rank.shard(len(whole[name]), 16))
        np.testing.assert_array_equal(shards[name].inputs["x"], expected.inputs["x"])
        np.testing.assert_array_equal(shards[name].labels, expected.labels)


def write_config(tmp_path: Path, events: int, epochs: int, batch: int = 45, chunk: int = 32,
                 model: dict | None = None, train: dict | None = None, **data) -> Path:
    """Two-class blobs in HDF5 (chunks of ``chunk`` events), each a 2 x 3 "image" of six
    features, and a small MLP's config."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, events)
    features = (rng.normal(size=(events, 6)) + 0.5 * labels[:, None]).astype(np.float32)
    with h5py.File(tmp_path / "blobs.h5", "w") as f:
        f.create_dataset("x", data=features.reshape(events, 2, 3),
                         chunks=(min(chunk, events), 2, 3))
        f["y"] = labels
    config = {
        "name": "ddp", "seed": 3, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": str(tmp_path / "blobs.h5"),
                            "inputs": {"x": "x"}, "label": "y"},
                 "split": {"train": 0.7, "val": 0.15, "test": 0.15}, **data},
        "preprocess": {"x": ["standardize"]},
        "model": model or {"width": 16, "depth": 2},
        "train": {"epochs": epochs, "batch_size": batch, "threads": 1, **(train or {})}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(*args, **popen) -> subprocess.Popen:
    """``hepdl ARGS`` in 2 ranks; with a first argument ending in .py, that script instead."""
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = list(map(str, args)) if str(args[0]).endswith(".py") else ["-m", "hepdl", *args]
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", *map(str, command)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)


def finish(job: subprocess.Popen, timeout: float = 600) -> str:
    """The job's output once it ends; past ``timeout`` torchrun and its ranks are killed."""
    try:
        return job.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        raise


def hepdl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hepdl", *map(str, args)], capture_output=True,
                          text=True)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model.pt")["model"]


# 700 training events: in batches of 45 the last (25) splits 12 / 13; in batches of 233 the
# last holds 1 event, and rank 1's part of it is empty. In file order the two ranks' shards make
# one process's batches, so the runs agree up to rounding; with class weights too, each rank's
# weighted mean counting by its share of the batch's weight; mirrored, each rank mirrors its
# slice of the events one process mirrors.
IN_ORDER = {"batch 45": (45, {}), "batch 233": (233, {}),
            "class weights": (45, {"class_weights": [1.0, 3.0]}),
            "mirrored": (45, {"augment": {"flip_eta": True, "flip_phi": True}})}


def ddp_configs(tmp_path: Path) -> dict[str, Path]:
    """Every config the 2-rank tests train, each in a directory of its own."""
    configs = {}
    for case, (batch, train) in IN_ORDER.items():
        configs[case] = write_config(tmp_path / case.replace(" ", "_"), 1000, epochs=3,
                                     batch=batch, train=train, shuffle=False)
    # in batches of 349 the last holds 2 events: both go to rank 0 (BatchNorm needs two)
    configs["batch norm"] = write_config(
        tmp_path / "batch_norm", 1000, epochs=3, batch=349, shuffle=False,
        model={"width": 16, "depth": 2, "batch_norm": True})
    for in_memory in (True, False):  # shuffled: in memory, and streamed from one HDF5 chunk
        configs[f"shuffled, in memory {in_memory}"] = write_config(
            tmp_path / f"shuffled_{in_memory}", 4000, epochs=4, batch=64,
            chunk=32 if in_memory else 4000, in_memory=in_memory,
            model={"width": 16, "depth": 2, "dropout": 0.1})
    return configs


@pytest.fixture(scope="module")
def two_ranks_and_one(tmp_path_factory) -> dict[str, tuple[Run, Run]]:
    """Each config trained by 2 ranks under torchrun and by one process: the two runs per case.
    The first case runs as `torchrun -m hepdl train`, hepdl starting and ending the process
    group; the others in one more launch (tests/ddp_runs.py), in a group the script starts.
    Every case is trained whichever of the tests is selected."""
    from hepdl.api import train

    tmp = tmp_path_factory.mktemp("ddp")
    configs = ddp_configs(tmp)
    first, *others = configs.values()
    output = finish(job := torchrun("train", first, "--run-dir", first.parent / "two"))
    assert job.returncode == 0 and "2 ranks (DDP, gloo)" in output, output
    output = finish(job := torchrun(Path(__file__).with_name("ddp_runs.py"), *(
        x for config in others for x in (config, config.parent / "two"))))
    assert job.returncode == 0, output
    runs = {}
    for case, config in configs.items():
        one = train(load_config(config), run_dir=config.parent / "one", console=None)
        runs[case] = Run.load(config.parent / "two"), one
        assert not (config.parent / "runs").exists()  # no rank made a run directory of its own
    return runs


@pytest.mark.parametrize("case", IN_ORDER)
def test_two_ranks_give_the_single_process_result(two_ranks_and_one, case):
    two, one = two_ranks_and_one[case]
    assert two.config.train.batch_size == IN_ORDER[case][0]
    assert len(load_checkpoint(two.path / "last.pt")["rng_ranks"]) == 2  # trained by 2 ranks
    for column in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two.history[column], one.history[column], rtol=1e-5)
    for key, value in weights(one.path).items():
        torch.testing.assert_close(weights(two.path)[key], value, rtol=1e-5, atol=1e-6)
    assert two.meta["status"] == "completed" and two.metrics["auc"] == one.metrics["auc"]


# BatchNorm normalizes each rank's part of a batch (torch's SyncBatchNorm is for GPUs only), so
# the run is close to one process's, not equal.
def test_batch_norm_ranks_never_get_a_single_event(two_ranks_and_one):
    two, one = two_ranks_and_one["batch norm"]
    assert two.meta["status"] == "completed"
    assert len(load_checkpoint(two.path / "last.pt")["rng_ranks"]) == 2
    np.testing.assert_allclose(two.history["val_loss"], one.history["val_loss"], rtol=0.01)


# Shuffled, and streamed: each rank reads its own events each epoch, so the batches mix events
# differently than in one process; the network learns the same separation. The streamed file is
# one HDF5 chunk, fewer blocks than ranks: the ranks share the block, each keeping its half.
@pytest.mark.parametrize("in_memory", [True, False])
def test_two_ranks_shuffling_their_shards_train_as_well_as_one_process(two_ranks_and_one,
                                                                       in_memory):
    two, one = two_ranks_and_one[f"shuffled, in memory {in_memory}"]
    assert len(two.history) == 4 and two.meta["status"] == "completed"
    # each rank draws its own dropout masks, and its random state is saved for a resume
    states = load_checkpoint(two.path / "last.pt")["rng_ranks"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])
    # the same preprocessing (fitted on rank 0 from the whole training split) ...
    for key, value in weights(one.path).items():
        if key.startswith("preprocess"):
            torch.testing.assert_close(weights(two.path)[key], value)
    # ... and a network as good: blobs 0.5 sigma apart in 6 features give an AUC of about 0.8
    assert abs(two.metrics["mean_auc"] - one.metrics["mean_auc"]) < 0.01
    assert abs(two.history["val_loss"].iloc[-1] - one.history["val_loss"].iloc[-1]) < 0.01


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the worker with ``RANK=rank`` among ``parent``'s descendants (Linux /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            status = (proc / "status").read_text()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and b"TORCHELASTIC_RUN_ID" in b" ".join(
                e[:20] for e in environ) and f"PPid:\t{parent}" in status:
            return int(proc.name)
    return None


def test_a_rank_that_dies_stops_the_job_and_the_checkpoint_resumes(tmp_path):
    config = write_config(tmp_path, 4000, epochs=40)
    run = tmp_path / "killed"
    job = torchrun("train", config, "--run-dir", run)
    deadline = time.time() + 120
    while not (run / "history.csv").exists() and time.time() < deadline:  # epoch 1 is done
        time.sleep(0.05)
    victim = _rank_pid(job.pid, 1)
    assert victim is not None, "no rank 1 worker found"
    os.kill(victim, signal.SIGKILL)
    output = finish(job)
    assert "2 ranks (DDP, gloo)" in output and job.returncode != 0, output
    assert Run.load(run).meta["status"] in ("failed", "interrupted", "running"), output
    state = load_checkpoint(run / "last.pt")  # written atomically: always readable
    assert 1 <= state["epoch"] < 40
    resumed = hepdl("train", run, "--resume")  # one process goes on where two stopped
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(Run.load(run).history) == 40 and Run.load(run).meta["status"] == "completed"
