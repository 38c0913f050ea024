"""Training on zero-suppressed calorimeter images as hits (issue 10): the LCD-sized MLP
(17,125 inputs, 3 x 256) on generated LCD events, dense file against the same events stored as
hits (``hepdl data hits``), with the same config, seed and initial weights.

Reported: training samples/s of both (median over epochs 2 onwards, runs alternating), the
largest difference of the two paths' outputs on one batch, and the test AUC of each class
(one against the rest) after training, with the paired-bootstrap error of the difference.
The paired bootstrap error covers the test events only; two trainings that differ only in the
order of floating-point sums (the first layer's gather against the dense matrix product) drift
apart as training amplifies rounding. So the AUC check has a control: the dense path trained
again from other initial weights (same data, batches and preprocessing). The hits path agrees
when it differs from the dense one no more than that control does.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

EVENTS, EPOCHS, BATCH = 24_000, 8, 1024


def _config(path: Path, runs: Path, name: str, **train):
    from hepdl.config import config_from_dict

    return config_from_dict({
        "name": name, "seed": 1, "runs_dir": str(runs),
        "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(path)},
                 "split": {"train": 0.7, "val": 0.1, "test": 0.2}},
        "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
        "model": {"width": 256, "depth": 3},
        "train": {"epochs": EPOCHS, "batch_size": BATCH, "lr": 1e-3, "health_every": 0,
                  **train}})


def _test_scores(run_dir: Path, path: Path):
    from hepdl.data.dataset import load_splits
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run

    run = Run.load(run_dir)
    test = load_splits(_config(path, run_dir.parent, "x").data, "classification", 1)["test"]
    return predict(run.network(), test)


def _largest_output_difference(dense: Path, hits: Path, runs: Path) -> float:
    """One batch of 1024 events through one network, dense and as hits."""
    import torch

    from hepdl.data.dataset import load_splits
    from hepdl.models import Network, network_spec

    config = _config(hits, runs, "x")
    as_hits = load_splits(config.data, "classification", 1)["train"]
    as_dense = load_splits(_config(dense, runs, "x").data, "classification", 1)["train"]
    network = Network(network_spec(config, as_hits.input_shapes, as_hits.class_names,
                                   as_hits.hits_inputs))
    network.fit_preprocessing(as_hits.inputs)
    with torch.no_grad():
        a = network({k: v[:BATCH] for k, v in as_hits.inputs.items()})
        b = network({k: torch.from_numpy(v[:BATCH]) for k, v in as_dense.inputs.items()})
    return float((a - b).abs().max())


def _other_initial_weights(dense: Path, runs: Path) -> Path:
    """A checkpoint of the dense network with initial weights of another seed (the control)."""
    import torch

    from hepdl.data.dataset import load_splits
    from hepdl.models import Network, network_spec

    config = _config(dense, runs, "x")
    train = load_splits(config.data, "classification", 1)["train"]
    torch.manual_seed(12345)
    network = Network(network_spec(config, train.input_shapes, train.class_names))
    network.fit_preprocessing({k: torch.from_numpy(v) for k, v in train.inputs.items()})
    path = runs / "other_init.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": network.state_dict()}, path)
    return path


def throughput(repeats: int = 2) -> list[dict]:
    import numpy as np

    from hepdl.data.hits import convert_to_hits
    from hepdl.evaluation.cuts import auc, bootstrap_difference
    from hepdl.generate.calo import make_calo
    from hepdl.runs import Run
    from hepdl.training import fit

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dense, hits = tmp / "calo.h5", tmp / "calo_hits.h5"
        make_calo(dense, EVENTS, seed=4, workers=2)
        occupancy = convert_to_hits(dense, hits, ["ECAL", "HCAL"])
        rates: dict[str, list[float]] = {"dense": [], "hits": []}
        runs: dict[str, Path] = {}
        for r in range(repeats):  # alternating, so a busy spell of the machine hits both
            for label, path in (("dense", dense), ("hits", hits)):
                run_dir = fit(_config(path, tmp / "runs", f"{label}{r}"))
                history = Run.load(run_dir).history
                rates[label].append(float(history["events_per_second"].iloc[1:].median()))
                runs[label] = run_dir
        start = _other_initial_weights(dense, tmp / "runs")
        runs["control"] = fit(_config(dense, tmp / "runs", "control", init_from=str(start)))
        difference = _largest_output_difference(dense, hits, tmp / "runs")
        scored = {label: _test_scores(run_dir, hits if label == "hits" else dense)
                  for label, run_dir in runs.items()}
        truth = scored["dense"].labels
        aucs = []
        for c, name in enumerate(scored["dense"].class_names):
            is_c = (truth == c).astype(int)
            value = {k: auc(is_c, p.scores[:, c]) for k, p in scored.items()}
            shift = {k: bootstrap_difference(is_c, scored[k].scores[:, c],
                                             scored["dense"].scores[:, c], statistic=auc,
                                             n_boot=200, seed=1)
                     for k in ("hits", "control")}
            aucs.append(f"{name}: dense {value['dense']:.4f}, hits - dense "
                        f"{shift['hits']['difference']:+.4f} +- {shift['hits']['error']:.4f}, "
                        f"control (dense, other initial weights) - dense "
                        f"{shift['control']['difference']:+.4f} +- "
                        f"{shift['control']['error']:.4f}")
    median = {k: statistics.median(v) for k, v in rates.items()}
    ratio = median["hits"] / median["dense"]
    for label in ("dense", "hits"):
        rows.append({"benchmark": f"train LCD MLP 17125-3x256, Adam, batch {BATCH}, "
                                  f"{label} (median of {repeats})", "workers": 1,
                     "events_per_second": median[label], "all_rates": rates[label],
                     "goal": "" if label == "dense" else
                     f"{ratio:.2f}x the dense path (goal >= 2x); occupancy ECAL "
                     f"{occupancy['ECAL']:.1%}, HCAL {occupancy['HCAL']:.1%}"})
    rows.append({"benchmark": "hits vs dense: test AUC per class (one vs rest)", "workers": 1,
                 "events_per_second": float(np.nan), "auc": aucs,
                 "max_output_difference": difference,
                 "goal": f"outputs differ by {difference:.1e} at most; " + "; ".join(aucs)})
    return rows
