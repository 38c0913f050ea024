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


def _train_in_child(config_path: Path) -> dict:
    """One epoch of ``hepdl train`` in a fresh process: its peak resident memory and rate."""
    import json
    import subprocess
    import sys

    # A forked child starts with its parent's high-water mark of resident memory (ru_maxrss
    # and VmHWM count from the fork), so the child resets it first (Linux: /proc/PID/clear_refs,
    # "5") and reads VmHWM at the end.
    code = ("import json, re, sys\n"
            "from pathlib import Path\n"
            "Path('/proc/self/clear_refs').write_text('5')\n"
            "from hepdl.config import load_config\n"
            "from hepdl.runs import Run\n"
            "from hepdl.training import fit\n"
            "run = Run.load(fit(load_config(sys.argv[1])))\n"
            "peak = re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text())\n"
            "print(json.dumps({'peak_mb': int(peak.group(1)) / 1024,"
            " 'rate': float(run.history['events_per_second'].iloc[-1])}))\n")
    done = subprocess.run([sys.executable, "-c", code, str(config_path)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache, so that the next read comes from disk."""
    import os

    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def peak_memory(sizes: tuple[int, ...] = (8000, 32000), buffer_mb: int = 64) -> list[dict]:
    """Peak memory of one training epoch of the LCD MLP, streamed, in memory, and in memory
    from the hits file, for files of ``sizes`` events: streamed, it should stay put as the file
    grows (the shuffle buffer, the model and the libraries); in memory it grows with the file.
    Each run is a fresh process and starts with the file evicted from the page cache, so its
    reads come from disk."""
    import yaml

    from hepdl.data.hits import convert_to_hits
    from hepdl.generate.calo import make_calo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for events in sizes:
            dense = tmp / f"calo{events}.h5"
            make_calo(dense, events, seed=3, workers=2)
            hits = tmp / f"calo{events}_hits.h5"
            convert_to_hits(dense, hits, ["ECAL", "HCAL"])
            dense_mb = events * (25**3 + 5 * 5 * 60) * 4 / 2**20
            for mode, path, in_memory in (("streamed", dense, False), ("in memory", dense, True),
                                          ("in memory, as hits", hits, True)):
                config = {
                    "name": f"mem{events}{path.stem}{in_memory}", "seed": 1,
                    "runs_dir": str(tmp / "runs"),
                    "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(path)},
                             "in_memory": in_memory, "shuffle_buffer_mb": buffer_mb,
                             "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
                    "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
                    "model": {"width": 256, "depth": 3},
                    "train": {"epochs": 1, "batch_size": 1024, "health_every": 0}}
                config_path = tmp / f"{config['name']}.yaml"
                config_path.write_text(yaml.safe_dump(config))
                _evict(path)
                result = _train_in_child(config_path)
                mode = f"streamed, {buffer_mb} MB buffer" if mode == "streamed" else mode
                rows.append({
                    "benchmark": f"train LCD MLP one epoch, {events} events ({dense_mb:,.0f} MB "
                                 f"of images), {mode}", "workers": 1,
                    "events_per_second": result["rate"], "peak_mb": result["peak_mb"],
                    "file_mb": path.stat().st_size / 2**20,
                    "goal": f"peak memory {result['peak_mb']:,.0f} MB"})
    return rows
