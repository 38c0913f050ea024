"""Training throughput (issue 10): hepdl's loop against a plain PyTorch ``DataLoader`` loop
written the usual way, on the same model, data, batch size and optimizer, and both against the
machine's dense limit (the measured float32 matrix-product rate).

The plain loop trains the very network hepdl builds (preprocessing included, fitted on the
training split) with the very optimizer (fused Adam), fed by a ``Dataset`` indexed per event
and a shuffling ``DataLoader`` that collates the batches; hepdl slices whole batches from
tensors (``InMemoryLoader``). Models:

* the small tabular MLP of issue 10 (SUSY-sized: 18 inputs, 2 x 200 ReLU, BCE), batch 1024;
* the digits MLP of ``examples/digits.yaml`` (64 pixels, 2 x 256, 10 classes), batch 64;
* the LCD-sized MLP (17,125 calorimeter cells, 3 x 256, 4 classes) on generated LCD events;
* the seeds/003 CNN ([Conv(64) -> BatchNorm -> ReLU -> MaxPool] x 3, Dense(128)) on 3 x 47 x 47
  images, batch 64. A convolution costs the same whatever the pixels hold, so these images are
  random sparse deposits: making Pythia electrons takes 20 minutes (``hepdl data make
  electrons``) and would time the generator, not the loop.

An MLP's rate in FLOP/s is samples/s x 6 x parameters (forward 2, backward 4 multiply-adds per
weight and sample); the convolutions' share is not counted that way, so the CNN has no
fraction of the dense limit.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Case:
    """One model and its data: ``make(tmp)`` writes the data and returns the source section."""

    name: str
    make: Callable[[Path], dict]
    preprocess: dict
    model: dict
    batch_size: int
    epochs: int
    loss: str = "cross_entropy"
    dense_limit: bool = True  # an MLP: count 6 x parameters FLOP per sample


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of an n^3 matrix product, the best of ``repeats``."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _tabular(tmp: Path) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200_000)
    x = (rng.normal(size=(len(y), 18)) + 0.3 * y[:, None]).astype(np.float32)
    np.savez(tmp / "tabular.npz", x=x, y=y)
    return {"kind": "npz", "path": str(tmp / "tabular.npz"), "inputs": {"x": "x"}, "label": "y"}


def _digits(tmp: Path) -> dict:
    return {"kind": "digits"}


def _lcd(tmp: Path) -> dict:
    from hepdl.generate.calo import make_calo

    make_calo(tmp / "calo.h5", 8192, seed=5, workers=2)
    return {"kind": "lcd", "layout": "v2", "files": str(tmp / "calo.h5")}


def _towers(tmp: Path) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (1536, 3, 47, 47)
    towers = (rng.exponential(1.0, shape) * (rng.random(shape) < 0.05)).astype(np.float32)
    np.savez(tmp / "towers.npz", towers=towers, label=rng.integers(0, 2, shape[0]))
    return {"kind": "npz", "path": str(tmp / "towers.npz"), "inputs": {"towers": "towers"},
            "label": "label"}


CASES = [
    Case("MLP 18-200-200-1 (SUSY-sized)", _tabular, {"x": ["standardize"]},
         {"width": 200, "depth": 2}, batch_size=1024, epochs=3, loss="bce"),
    Case("digits MLP 64-256-256-10", _digits, {"pixels": ["standardize"]},
         {"width": 256, "depth": 2}, batch_size=64, epochs=8),
    Case("LCD MLP 17125-3x256-4", _lcd, {"ecal": ["standardize"], "hcal": ["standardize"]},
         {"width": 256, "depth": 3}, batch_size=1024, epochs=3),
    Case("seeds/003 CNN, 3x47x47 towers", _towers, {"towers": [{"image_norm": {"norm": "max"}}]},
         {"name": "cnn", "dims": 2, "channels": [64, 64, 64], "batch_norm": True,
          "global_pool": "flatten", "dense_width": 128}, batch_size=64, epochs=3, loss="bce",
         dense_limit=False),
]


def _config(case: Case, source: dict, runs: Path, run: int):
    from hepdl.config import config_from_dict

    return config_from_dict({
        "name": f"loop{run}", "seed": 1, "runs_dir": str(runs),
        "data": {"source": source, "split": {"train": 0.9, "val": 0.05, "test": 0.05}},
        "preprocess": case.preprocess, "model": case.model,
        "train": {"epochs": case.epochs, "batch_size": case.batch_size, "loss": case.loss,
                  "health_every": 0}})


def hepdl_rate(config) -> tuple[float, int, Path]:
    """Median training events/s over epochs 2 onwards, the parameter count and the run."""
    from hepdl.runs import Run
    from hepdl.training import fit

    run = Run.load(fit(config))
    params = sum(t.numel() for t in run.network().body.parameters())
    return float(run.history["events_per_second"].iloc[1:].median()), params, run.path


def dataloader_rate(config) -> float:
    """The usual loop: a Dataset indexed per event, batches collated by a DataLoader."""
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    from hepdl.data.dataset import load_splits
    from hepdl.models import Network, network_spec
    from hepdl.training.losses import objective_for
    from hepdl.training.optim import build_optimizer  # the same (fused) Adam as hepdl's loop

    train = load_splits(config.data, config.task, config.seed)["train"]

    class Events(TorchDataset):
        def __init__(self, inputs, labels):
            self.inputs = {k: torch.from_numpy(v) for k, v in inputs.items()}
            self.labels = torch.from_numpy(labels)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {k: v[i] for k, v in self.inputs.items()}, self.labels[i]

    torch.manual_seed(1)
    network = Network(network_spec(config, train.input_shapes, train.class_names))
    network.fit_preprocessing({k: torch.from_numpy(v) for k, v in train.inputs.items()})
    optimizer = build_optimizer(config.train.optimizer, list(network.parameters()), 1e-3)
    objective = objective_for(config, train.labels, train.class_names)
    loader = DataLoader(Events(train.inputs, train.labels), batch_size=config.train.batch_size,
                        shuffle=True)
    rates = []
    for _ in range(config.train.epochs):
        start, seen = time.perf_counter(), 0
        for inputs, labels in loader:
            loss = objective.data_loss(network(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def evaluation_rate(run_dir: Path) -> float:
    """Events/s of hepdl's prediction (no autograd, batches of 4096) over the training split."""
    from hepdl.data.dataset import load_splits
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run

    run = Run.load(run_dir)
    events = load_splits(run.config.data, run.config.task, run.config.seed)["train"]
    network = run.network()
    predict(network, events)  # warm-up
    return len(events) / _timed(lambda: predict(network, events))


def throughput(repeats: int = 3, cases: list[Case] | None = None) -> list[dict]:
    limit = matmul_rate()
    rows = []
    for case in cases or CASES:
        with tempfile.TemporaryDirectory() as tmp:
            source = case.make(Path(tmp))
            ours, plain, evaluation, params = [], [], [], 0
            for run in range(repeats):  # alternating, so a busy spell of the machine hits both
                config = _config(case, source, Path(tmp) / "runs", run)
                rate, params, run_dir = hepdl_rate(config)
                ours.append(rate)
                if case is CASES[0]:
                    evaluation.append(evaluation_rate(run_dir))
                plain.append(dataloader_rate(config))
        ratio = statistics.median(ours) / statistics.median(plain)
        for label, rates in (("hepdl loop", ours), ("plain DataLoader loop", plain)):
            rate = statistics.median(rates)
            row = {"benchmark": f"train {case.name}, Adam, batch {case.batch_size}: {label} "
                                f"(median of {repeats})", "workers": 1,
                   "events_per_second": rate, "all_rates": rates, "parameters": params,
                   "goal": ""}
            if case.dense_limit:
                row["flops_fraction"] = rate * 6 * params / limit
                row["goal"] = f"{row['flops_fraction']:.1%} of the dense limit"
            rows.append(row)
        goal = f"{ratio:.2f}x the DataLoader loop"
        if case is CASES[0]:
            goal += f" (goal >= 2.5x); dense limit {limit / 1e9:.0f} GFLOP/s (goal >= 50%)"
        rows[-2]["goal"] = "; ".join(filter(None, [goal, rows[-2]["goal"]]))
        if evaluation:
            rate = statistics.median(evaluation)
            rows.append({"benchmark": f"evaluate the {case.name} (hepdl predict, batch 4096; "
                                      f"median of {repeats})", "workers": 1,
                         "events_per_second": rate, "all_rates": evaluation,
                         "goal": f"{rate / rows[-2]['events_per_second']:.1f}x training "
                                 "(goal >= 10x)"})
    return rows
