"""Shared fixtures: small configs, data files in every format, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hepdl.cli import app

ROOT = Path(__file__).resolve().parents[1]


def blobs(n: int = 400, seed: int = 0, n_features: int = 4):
    """Two overlapping Gaussian classes: class 1 shifted by +1 in every feature."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    features = rng.normal(size=(n, n_features)) + labels[:, None]
    energy = rng.uniform(10, 100, n)
    return features.astype(np.float32), labels, energy


@pytest.fixture
def blob_arrays():
    return blobs()


@pytest.fixture
def npz_file(tmp_path, blob_arrays):
    features, labels, energy = blob_arrays
    path = tmp_path / "blobs.npz"
    np.savez(path, features=features, label=labels, energy=energy)
    return path


@pytest.fixture
def h5_file(tmp_path, blob_arrays):
    import h5py

    features, labels, energy = blob_arrays
    path = tmp_path / "blobs.h5"
    with h5py.File(path, "w") as f:
        f["features"] = features
        f["Event/label"] = labels
        f["Event/energy"] = energy
    return path


def write_table(path: Path, features, labels, energy, class_names=("bkg", "sig")):
    import pandas as pd

    frame = pd.DataFrame({f"x{i}": features[:, i] for i in range(features.shape[1])})
    frame["kind"] = [class_names[v] for v in labels]
    frame["energy"] = energy
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def root_file(tmp_path, blob_arrays):
    import uproot

    features, labels, energy = blob_arrays
    path = tmp_path / "blobs.root"
    branches = {**{f"x{i}": features[:, i] for i in range(features.shape[1])},
                "label": labels.astype(np.int32), "energy": energy}
    with uproot.recreate(path) as f:
        f.mktree("events", {k: v.dtype for k, v in branches.items()})
        f["events"].extend(branches)
    return path


def small_config(tmp_path: Path, **sections) -> dict:
    """A quick digits config as a dict; sections override the defaults given here. It writes
    no figure files (most of a small run's time): a test of the figures asks for them with
    ``evaluate={"plots": True}``."""
    config = {
        "name": "t",
        "seed": 3,
        "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "digits"}},
        "preprocess": {"pixels": ["standardize"]},
        "model": {"width": 32, "depth": 1},
        "train": {"epochs": 3, "batch_size": 64, "lr": 3e-3, "threads": 1},
        "evaluate": {"plots": False},
    }
    for key, value in sections.items():
        if key in {"train", "model"} and isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def one_error_line(result) -> str:
    """The CLI's contract for bad input: exit 2, one line on stderr, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]
