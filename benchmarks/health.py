"""The cost of watching training health (issue 9), per training step.

The MLP of the other benchmarks (3 hidden layers of 256 ReLU units, batch 128, Adam) takes
steps in turn watched and not watched by :class:`hepdl.training.health.HealthMonitor`; the median
time of each kind gives the cost of one watched step, and the cost at the default (every 10th
batch watched) is a tenth of it. Interleaving step by step makes both medians see the same
machine, which timing whole runs one after another (noise of +-5% here) does not.

Goal: the default monitoring costs under 5% of a training step.
"""

from __future__ import annotations

import statistics
import time


def overhead(steps: int = 3000, every: int = 10) -> list[dict]:
    import torch
    from torch import nn

    from hepdl.training.health import HealthMonitor

    torch.manual_seed(0)
    layers, size = [], 32
    for _ in range(3):
        layers += [nn.Linear(size, 256), nn.ReLU()]
        size = 256
    network = nn.Sequential(*layers, nn.Linear(size, 2))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    monitor = HealthMonitor(network, every=2)  # even steps watched, odd ones not
    x, y = torch.randn(128, 32), torch.randint(0, 2, (128,))
    times: dict[bool, list[float]] = {True: [], False: []}
    for step in range(steps):
        start = time.perf_counter()
        watched = monitor.watch(step)
        loss = nn.functional.cross_entropy(network(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        monitor.before_step()
        optimizer.step()
        monitor.after_step()
        if step >= 100:  # warm-up
            times[watched].append(time.perf_counter() - start)
    plain, watched_step = statistics.median(times[False]), statistics.median(times[True])
    per_watched = watched_step / plain - 1
    return [{"benchmark": "training step, not watched (MLP 3x256, batch 128; median)",
             "workers": 1, "events_per_second": 128 / plain, "goal": ""},
            {"benchmark": "training step, watched by the health monitor",
             "workers": 1, "events_per_second": 128 / watched_step,
             "goal": f"+{per_watched:.1%} a watched step; every {every}th watched (default): "
                     f"+{per_watched / every:.1%} (goal < 5%)"}]
