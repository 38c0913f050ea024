"""Training throughput (issue 10): hepdl's loop against a plain PyTorch ``DataLoader`` loop
written the usual way, on the same model, data, batch size and optimizer, and both against the
machine's dense limit (the measured float32 matrix-product rate).

Model: the small tabular MLP of issue 10 as hepdl builds it (18 inputs, 2 hidden layers of 200
ReLU units, one output, BCE), Adam, batch 1024, 200,000 events. The achieved rate in FLOP/s is
samples/s x 6 x parameters (forward 2, backward 4 multiply-adds per weight and sample).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

EVENTS, FEATURES, BATCH, EPOCHS = 200_000, 18, 1024, 3


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


def _data(tmp: Path):
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, EVENTS)
    x = (rng.normal(size=(EVENTS, FEATURES)) + 0.3 * y[:, None]).astype(np.float32)
    np.savez(tmp / "tabular.npz", x=x, y=y)
    return x, y


def hepdl_rate(tmp: Path, run: int) -> tuple[float, int]:
    from hepdl.config import config_from_dict
    from hepdl.runs import Run
    from hepdl.train import fit

    config = config_from_dict({
        "name": f"loop{run}", "seed": 1, "runs_dir": str(tmp / "runs"),
        "data": {"source": {"kind": "npz", "path": str(tmp / "tabular.npz"), "inputs": {"x": "x"},
                            "label": "y"}, "split": {"train": 0.9, "val": 0.05, "test": 0.05}},
        "preprocess": {"x": ["standardize"]}, "model": {"width": 200, "depth": 2},
        "train": {"epochs": EPOCHS, "batch_size": BATCH, "loss": "bce", "health_every": 0}})
    run_dir = fit(config)
    history = Run.load(run_dir).history
    params = sum(t.numel() for t in Run.load(run_dir).network().body.parameters())
    return float(history["events_per_second"].iloc[1:].median()), params, run_dir


def evaluation_rate(run_dir: Path) -> float:
    """Events/s of hepdl's prediction (no autograd, batches of 4096) over the training split."""
    from hepdl.data.dataset import load_splits
    from hepdl.evaluate.predict import predict
    from hepdl.runs import Run

    run = Run.load(run_dir)
    events = load_splits(run.config.data, run.config.task, run.config.seed)["train"]
    network = run.network()
    predict(network, events)  # warm-up
    return len(events) / _timed(lambda: predict(network, events))


def dataloader_rate(x, y) -> float:
    """The usual loop: a Dataset indexed per event, batches collated by a DataLoader."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    class Events(Dataset):
        def __init__(self, x, y):
            self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).float()

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    n = int(0.9 * len(x))
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(FEATURES, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                          nn.Linear(200, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(Events(x[:n], y[:n]), batch_size=BATCH, shuffle=True)
    rates = []
    for _ in range(EPOCHS):
        start, seen = time.perf_counter(), 0
        for xb, yb in loader:
            loss = loss_fn(model(xb)[:, 0], yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(xb)
        rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def throughput(repeats: int = 3) -> list[dict]:
    limit = matmul_rate()
    with tempfile.TemporaryDirectory() as tmp:
        x, y = _data(Path(tmp))
        ours, plain, evaluation, params = [], [], [], 0
        for run in range(repeats):  # alternating, so a busy spell of the machine hits both
            rate, params, run_dir = hepdl_rate(Path(tmp), run)
            ours.append(rate)
            evaluation.append(evaluation_rate(run_dir))
            plain.append(dataloader_rate(x, y))
    rows = []
    for label, rates in (("hepdl loop", ours), ("plain DataLoader loop", plain)):
        rate = statistics.median(rates)
        rows.append({"benchmark": f"train MLP 18-200-200-1, Adam, batch {BATCH}: {label} "
                                  f"(median of {repeats})", "workers": 1,
                     "events_per_second": rate, "all_rates": rates,
                     "flops_fraction": rate * 6 * params / limit, "goal": ""})
    ratio = rows[0]["events_per_second"] / rows[1]["events_per_second"]
    rows[0]["goal"] = (f"{ratio:.2f}x the DataLoader loop (goal >= 2.5x); "
                       f"{rows[0]['flops_fraction']:.1%} of the dense limit "
                       f"{limit / 1e9:.0f} GFLOP/s (goal >= 50%)")
    rows[1]["goal"] = f"{rows[1]['flops_fraction']:.1%} of the dense limit"
    rate = statistics.median(evaluation)
    rows.append({"benchmark": f"evaluate the same MLP (hepdl predict, batch 4096; median of "
                              f"{repeats})", "workers": 1, "events_per_second": rate,
                 "all_rates": evaluation,
                 "goal": f"{rate / rows[0]['events_per_second']:.1f}x training (goal >= 10x)"})
    return rows
