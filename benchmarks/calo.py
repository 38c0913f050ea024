"""Calorimeter data: generation rate and streaming versus the training loop's consumption.

Goals (issue 4): at least 2,000 LCD events/s generated on a 2-core machine; the training loop
waits on streamed data less than 10% of its time.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def generation(events: int = 6000) -> list[dict]:
    """Events/s of ``make_calo`` (simulation and gzip HDF5 writing) with 1 and 2 workers, and
    of the simulation alone in one process."""
    import numpy as np

    from hepdl.generate.calo import Simulation, make_calo, simulate

    rows = []
    sim = Simulation()
    rng = np.random.default_rng(0)
    simulate(np.full(8, 211), np.full(8, 50.0), sim, rng)  # imports and first-call costs
    pdg = rng.choice([11, 22, 111, 211], 2048)
    energy = rng.uniform(10, 510, 2048)
    start = time.perf_counter()
    for lo in range(0, 2048, 256):
        simulate(pdg[lo:lo + 256], energy[lo:lo + 256], sim, rng)
    rows.append({"benchmark": "calo simulation only", "workers": 1,
                 "events_per_second": 2048 / (time.perf_counter() - start)})
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            make_calo(Path(tmp) / f"w{workers}.h5", events, seed=1, workers=workers)
            rows.append({"benchmark": "make_calo to HDF5 (gzip)", "workers": workers,
                         "events_per_second": events / (time.perf_counter() - start),
                         "goal": ">= 2000 ev/s" if workers == 2 else ""})
    return rows


def streaming(events: int = 20000, batch_size: int = 256, buffer_mb: int = 64) -> list[dict]:
    """One epoch of the LCD-sized MLP fed by the streaming loader: the fraction of the epoch
    spent waiting for the next batch (the first buffer's read included), and the loader's own
    rate without training."""
    import torch

    from hepdl.config import config_from_dict
    from hepdl.data.streaming import StreamingLoader, streaming_splits
    from hepdl.generate.calo import make_calo
    from hepdl.models import Network, network_spec
    from hepdl.preprocess.base import fit_streaming

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calo.h5"
        make_calo(path, events, seed=2, workers=2)
        config = config_from_dict({
            "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(path)},
                     "in_memory": False, "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
            "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
            "model": {"width": 256, "depth": 3}})
        split = streaming_splits(config.data, "classification", 1)["train"]
        loader = StreamingLoader(split, batch_size=batch_size, shuffle=True, seed=1,
                                 label_dtype=torch.long, buffer_bytes=buffer_mb * 2**20)
        start = time.perf_counter()
        delivered = sum(len(labels) for _, labels in loader.batches(0))
        rows.append({"benchmark": "streaming loader alone", "workers": 1,
                     "events_per_second": delivered / (time.perf_counter() - start)})

        network = Network(network_spec(config, split.input_shapes, split.class_names))
        fit_streaming(network.preprocess, loader.chunks)
        optimizer = torch.optim.Adam(network.parameters(), 1e-3)
        waiting, seen = 0.0, 0
        start = time.perf_counter()
        batches = loader.batches(1)
        while True:
            tick = time.perf_counter()
            batch = next(batches, None)
            waiting += time.perf_counter() - tick
            if batch is None:
                break
            inputs, labels = batch
            loss = torch.nn.functional.cross_entropy(network(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(labels)
        total = time.perf_counter() - start
        rows.append({"benchmark": f"training fed by streaming (LCD MLP 3x256, {buffer_mb} MB "
                                  "shuffle buffer)", "workers": 1,
                     "events_per_second": seen / total,
                     "wait_fraction": waiting / total, "goal": "wait < 10%"})
    return rows
