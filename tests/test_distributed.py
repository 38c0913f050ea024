"""Data-parallel training under torchrun: 2 CPU ranks on 127.0.0.1 with gloo give the
single-process result; a rank that dies stops the job with a usable checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hepdl.runs import Run, load_checkpoint
from hepdl.training.distributed import Ranks

pytestmark = pytest.mark.slow


def test_each_rank_takes_its_contiguous_part_of_a_batch():
    for n in (0, 1, 44, 45):
        parts = [Ranks(rank, 2).part(n) for rank in range(2)]
        assert parts[0].start == 0 and parts[0].stop == parts[1].start and parts[1].stop == n
        assert abs((parts[0].stop - parts[0].start) - (parts[1].stop - parts[1].start)) <= 1
    assert Ranks().part(7) == slice(0, 7) and Ranks().sum(1.0, 2.0) == [1.0, 2.0]


def write_config(tmp_path: Path, events: int, epochs: int, batch: int = 45) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, events)
    features = (rng.normal(size=(events, 6)) + 0.5 * labels[:, None]).astype(np.float32)
    np.savez(tmp_path / "blobs.npz", x=features, y=labels)
    config = {
        "name": "ddp", "seed": 3, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "npz", "path": str(tmp_path / "blobs.npz"),
                            "inputs": {"x": "x"}, "label": "y"},
                 "split": {"train": 0.7, "val": 0.15, "test": 0.15}},
        "preprocess": {"x": ["standardize"]},
        "model": {"width": 16, "depth": 2},
        "train": {"epochs": epochs, "batch_size": batch, "threads": 1}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def torchrun(*args, **popen) -> subprocess.Popen:
    env = os.environ | {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", "-m", "hepdl", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def hepdl(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hepdl", *map(str, args)], capture_output=True,
                          text=True)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model.pt")["model"]


# 700 training events: in batches of 45 the last (25) splits 12 / 13; in batches of 233 the
# last holds 1 event, and rank 0's part of it is empty
@pytest.mark.parametrize("batch", [45, 233])
def test_two_ranks_give_the_single_process_result(tmp_path, batch):
    config = write_config(tmp_path, 1000, epochs=3, batch=batch)
    job = torchrun("train", config, "--run-dir", tmp_path / "two")
    output = job.communicate(timeout=300)[0]
    assert job.returncode == 0, output
    assert "2 ranks (DDP, gloo)" in output
    single = hepdl("train", config, "--run-dir", tmp_path / "one")
    assert single.returncode == 0, single.stdout + single.stderr
    two, one = Run.load(tmp_path / "two"), Run.load(tmp_path / "one")
    for column in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(two.history[column], one.history[column], rtol=1e-5)
    for key, value in weights(one.path).items():
        torch.testing.assert_close(weights(two.path)[key], value, rtol=1e-5, atol=1e-6)
    assert two.meta["status"] == "completed" and two.metrics["auc"] == one.metrics["auc"]
    assert not (tmp_path / "runs").exists()  # no rank made a run directory of its own


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
    output = job.communicate(timeout=300)[0]
    assert job.returncode != 0
    assert Run.load(run).meta["status"] in ("failed", "interrupted", "running"), output
    state = load_checkpoint(run / "last.pt")  # written atomically: always readable
    assert 1 <= state["epoch"] < 40
    resumed = hepdl("train", run, "--resume")  # one process goes on where two stopped
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert len(Run.load(run).history) == 40 and Run.load(run).meta["status"] == "completed"
