"""Where a training step's time goes (torch.profiler), for the statements of
docs/performance.md: the small MLP (what stands between it and the dense limit) and the LCD MLP
reading hits (what limits the sparse path).

Each row is one operator class's share of the profiled CPU time, largest first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

GROUPS = {
    "matrix products": ("aten::mm", "aten::addmm"),
    "ReLU forward and backward": ("aten::clamp_min", "aten::threshold_backward", "aten::relu"),
    "optimizer step (all of it)": ("Optimizer.step#Adam.step",),
    "fused Adam kernel": ("aten::_fused_adam_",),
    "embedding_bag backward": ("aten::_embedding_bag_dense_backward",),
    "embedding_bag forward": ("aten::_embedding_bag",),
    "zeroing (fill_)": ("aten::fill_",),
    "batch gather (index, index_select)": ("aten::index_select", "aten::index"),
    "copies": ("aten::copy_",),
}


def _shares(steps, n: int) -> dict[str, float]:
    from torch.profiler import profile

    steps(10)  # warm-up
    with profile() as prof:
        steps(n)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    by_name = {e.key: e for e in events}
    shares = {}
    for group, names in GROUPS.items():
        # the optimizer step is a range: its total time, not its own
        time = sum((by_name[k].cpu_time_total if k.startswith("Optimizer") else
                    by_name[k].self_cpu_time_total) for k in names if k in by_name)
        if time:
            shares[group] = time / total
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def _stepper(network, inputs: dict, labels, batch: int, loss_fn):
    import torch

    from hepdl.config import OptimizerConfig
    from hepdl.data.hits import Hits
    from hepdl.training.optim import build_optimizer

    optimizer = build_optimizer(OptimizerConfig(name="adam"), list(network.parameters()), 1e-3)
    n = len(labels)

    def steps(count: int) -> None:
        order = torch.randperm(n)
        for b in range(count):
            index = order[(b * batch) % (n - batch):][:batch]
            x = {k: v.index_select(0, index) if not isinstance(v, Hits) else v[index]
                 for k, v in inputs.items()}
            loss = loss_fn(network(x), labels.index_select(0, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return steps


def profiles() -> list[dict]:
    import torch

    from hepdl.config import config_from_dict
    from hepdl.data.dataset import load_splits
    from hepdl.data.hits import convert_to_hits
    from hepdl.generate.calo import make_calo
    from hepdl.models import Network, network_spec

    rows = []
    torch.manual_seed(0)
    small = config_from_dict({"name": "x", "data": {"source": {"kind": "digits"}},
                              "preprocess": {"x": ["standardize"]},
                              "model": {"width": 200, "depth": 2}, "train": {"loss": "bce"}})
    x, y = torch.randn(180_000, 18), torch.randint(0, 2, (180_000,)).float()
    network = Network(network_spec(small, {"x": (18,)}, ["b", "s"]))
    network.fit_preprocessing({"x": x})
    steps = _stepper(network, {"x": x}, y, 1024, lambda out, t: torch.nn.functional.
                     binary_cross_entropy_with_logits(out[:, 0], t))
    for group, share in _shares(steps, 60).items():
        rows.append({"benchmark": f"profile: MLP 18-200-200-1, batch 1024: {group}",
                     "workers": 1, "events_per_second": float("nan"), "share": share,
                     "goal": f"{share:.1%} of the step"})

    with tempfile.TemporaryDirectory() as tmp:
        dense, hits = Path(tmp) / "calo.h5", Path(tmp) / "calo_hits.h5"
        make_calo(dense, 6000, seed=4, workers=2)
        convert_to_hits(dense, hits, ["ECAL", "HCAL"])
        config = config_from_dict({
            "name": "x", "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(hits)}},
            "preprocess": {"ecal": ["standardize"], "hcal": ["standardize"]},
            "model": {"width": 256, "depth": 3}})
        train = load_splits(config.data, "classification", 1)["train"]
        network = Network(network_spec(config, train.input_shapes, train.class_names,
                                       train.hits_inputs))
        network.fit_preprocessing(train.inputs)
        steps = _stepper(network, train.inputs, torch.from_numpy(train.labels), 1024,
                         torch.nn.functional.cross_entropy)
        for group, share in _shares(steps, 10).items():
            rows.append({"benchmark": f"profile: LCD MLP from hits, batch 1024: {group}",
                         "workers": 1, "events_per_second": float("nan"), "share": share,
                         "goal": f"{share:.1%} of the step"})
    return rows
