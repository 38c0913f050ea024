"""Scan throughput: trials per hour with 1 and 2 workers on the same small scan, and the
scheduler's own time per trial (Optuna storage and sampling, outside training).

Goal (issue 6): 2 workers reach at least 1.8x the trials/hour of 1 worker; overhead < 1 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _config(tmp: Path, name: str, trials: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    features = (rng.normal(size=(4000, 16)) + labels[:, None] * 0.5).astype(np.float32)
    np.savez(tmp / "blobs.npz", x=features, y=labels)
    return {"name": name, "seed": 1, "runs_dir": str(tmp / "runs"),
            "data": {"source": {"kind": "npz", "path": str(tmp / "blobs.npz"),
                                "inputs": {"x": "x"}, "label": "y"}},
            "preprocess": {"x": ["standardize"]}, "model": {"width": 64, "depth": 2},
            "train": {"epochs": 8, "batch_size": 128},
            "scan": {"sampler": "random", "trials": trials,
                     "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                            "log": True}}}}


def throughput(trials: int = 32) -> list[dict]:
    """Trials/hour of the same scan with 1 and 2 workers."""
    from hepdl.config import config_from_dict
    from hepdl.scan import run_scan

    rows = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            config = config_from_dict(_config(Path(tmp), f"bench{workers}", trials))
            start = time.perf_counter()
            study = run_scan(config, workers=workers)
            elapsed = time.perf_counter() - start
            done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
            trained = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
            rows.append({"benchmark": "scan trials/hour (random, 8 epochs, MLP 2x64)",
                         "workers": workers, "events_per_second": 3600 * len(done) / elapsed,
                         "overhead_s_per_trial": (elapsed * workers - trained) / max(len(done), 1),
                         "goal": "2 workers >= 1.8x" if workers == 2 else ""})
    return rows
