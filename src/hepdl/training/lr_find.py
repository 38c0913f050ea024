"""The learning-rate range test (Smith, "Cyclical learning rates", arXiv:1506.01186, Sec. 3.3).

The config's network is trained from its initialization for a few hundred steps while the
learning rate grows exponentially from ``start`` to ``end``; the loss, smoothed by an exponential
moving average (bias-corrected, as Adam's moments), is recorded at every step. The rate at which
training explodes is the first where the smoothed loss exceeds ``explode_factor`` times its
minimum so far (or is not finite); seeds/004's advice is a rate about a tenth of it, which is
the suggestion and what ``train.lr: auto`` uses. torch.optim has no range test, and the usual
packages (fastai, torch-lr-finder) bring their own training loops: the loop here is the
project's own, on the same splits, preprocessing, optimizer and loss as ``hepdl train``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hepdl.config import Config
from hepdl.data.dataset import load_split
from hepdl.data.loader import InMemoryLoader
from hepdl.errors import ConfigError
from hepdl.models import Network, network_spec
from hepdl.preprocess.base import fit_streaming
from hepdl.runs import atomic_write
from hepdl.training.augment import Mirroring
from hepdl.training.device import autocast, grad_scaler, to_device
from hepdl.training.losses import Objective, objective_for
from hepdl.training.optim import build_optimizer


@dataclass
class RangeTest:
    """The sweep: learning rates and smoothed losses per step, and what follows from them."""

    lrs: list[float]
    losses: list[float]
    explodes_at: float | None  # None: no explosion up to the end of the sweep
    suggestion: float
    steps: int

    def summary(self) -> str:
        if self.explodes_at is None:
            return (f"training did not explode up to lr {self.lrs[-1]:.3g}; suggested lr "
                    f"{self.suggestion:.3g} (a tenth of the largest rate tried)")
        return (f"training explodes at lr {self.explodes_at:.3g}; suggested lr "
                f"{self.suggestion:.3g} (about a tenth of it, seeds/004)")


def range_test(config: Config, *, network: Network | None = None, start: float = 1e-6,
               end: float = 1.0, steps: int = 300, **options) -> RangeTest:
    """Read the training split, shuffled, and :func:`sweep` ``network`` over it (``hepdl
    lr-find``; None: the config's network, built and its preprocessing fitted here)."""
    _check_sweep(start, end, steps)  # before the data is read
    label_dtype = torch.float32 if config.task == "regression" else torch.long
    if config.data.in_memory:
        train = load_split(config.data, config.task, config.seed, "train")  # this split only
        loader = InMemoryLoader(train, batch_size=config.train.batch_size, shuffle=True,
                                seed=config.seed, label_dtype=label_dtype)
    else:  # streamed as training streams it: the sweep reads only the batches it takes
        from hepdl.data.streaming import StreamingLoader, streaming_splits

        train = streaming_splits(config.data, config.task, config.seed)["train"]
        loader = StreamingLoader(train, batch_size=config.train.batch_size, shuffle=True,
                                 seed=config.seed, label_dtype=label_dtype,
                                 buffer_bytes=config.data.shuffle_buffer_mb * 2**20)
    if network is None:  # as training builds it; a given one's random state goes on as it is
        torch.manual_seed(config.seed)
        network = Network(network_spec(config, train.input_shapes, train.class_names,
                                       getattr(train, "hits_inputs", [])))
        if config.data.in_memory:
            network.fit_preprocessing(loader.inputs)
        else:  # passes over the training split, chunk by chunk, as in training
            fit_streaming(network.preprocess, loader.chunks)
    objective = objective_for(config, train.labels, network.spec["class_names"])
    return sweep(network, loader, objective, config, start=start, end=end, steps=steps,
                 **options)


def _check_sweep(start: float, end: float, steps: int) -> None:
    if not 0 < start < end:
        raise ConfigError("--start/--end", f"need 0 < start < end, got {start} and {end}")
    if steps < 10:
        raise ConfigError("--steps", f"need at least 10 steps, got {steps}")


def sweep(network: Network, loader, objective: Objective, config: Config, *,
          start: float = 1e-6, end: float = 1.0, steps: int = 300, smoothing: float = 0.05,
          explode_factor: float = 4.0) -> RangeTest:
    """Train a copy of ``network`` (preprocessing fitted; the weights to start from) on
    ``loader``'s batches, epoch after epoch, while the rate grows from ``start`` to ``end`` over
    ``steps`` batches. ``hepdl train`` with ``lr: auto`` passes its own network and loader, so
    the data is neither read nor fitted a second time; on the network's device, in training's
    precision (``train.precision``) and with its mirroring (``train.augment``)."""
    _check_sweep(start, end, steps)
    network = copy.deepcopy(network)
    network.train()
    device = next(network.parameters()).device
    precision = config.train.precision
    scaler = grad_scaler(device, precision)  # fp16 only; a pass-through otherwise
    shapes = {name: tuple(shape) for name, shape in network.spec["input_shapes"].items()}
    mirroring = Mirroring.from_config(config.train.augment, shapes, config.seed,
                                      network.spec.get("hits_inputs", []))
    if objective.class_weights is not None:  # a copy: the caller's objective stays as it is
        objective = copy.copy(objective)
        objective.class_weights = objective.class_weights.to(device)
    optimizer = build_optimizer(config.train.optimizer,
                                [p for p in network.parameters() if p.requires_grad], start)
    rates = start * (end / start) ** (np.arange(steps) / (steps - 1))
    lrs, losses, average, best, explodes_at = [], [], 0.0, math.inf, None

    def batches():
        epoch = 0
        while True:
            for batch, (inputs, labels) in enumerate(loader.batches(epoch)):
                if mirroring is not None:  # as training mirrors its batches
                    inputs = mirroring(inputs, epoch, batch)
                yield inputs, labels
            epoch += 1

    # the rates first: zip stops at the last rate without drawing (and mirroring) another batch
    for step, (lr, (inputs, labels)) in enumerate(zip(rates, batches(), strict=False)):
        for group in optimizer.param_groups:
            group["lr"] = float(lr)
        inputs, labels = to_device(inputs, device), labels.to(device)
        if config.train.gradient_penalty:
            inputs = {k: v.detach().requires_grad_() for k, v in inputs.items()}
        with autocast(device, precision):
            loss, data_loss = objective(network, network(inputs), labels, inputs)
        value = float(data_loss.item())
        if not (math.isfinite(value) and torch.isfinite(loss)):
            explodes_at = float(lr)
            break
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        average = (1 - smoothing) * average + smoothing * value
        smoothed = average / (1 - (1 - smoothing) ** (step + 1))
        lrs.append(float(lr))
        losses.append(smoothed)
        best = min(best, smoothed)
        if step > 10 and smoothed > explode_factor * best:
            explodes_at = float(lr)
            break
    suggestion = (explodes_at if explodes_at is not None else lrs[-1]) / 10.0
    return RangeTest(lrs, losses, explodes_at, suggestion, len(lrs))


def write_range_test(result: RangeTest, out: Path) -> None:
    """``lr_find.json``, ``lr_find.csv`` (step, lr, smoothed loss) and ``lr_find.png``."""
    from hepdl.evaluation.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "lr_find.json", json.dumps(asdict(result), indent=2) + "\n")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["step", "lr", "smoothed_loss"])
    writer.writerows((i, lr, loss) for i, (lr, loss) in enumerate(
        zip(result.lrs, result.losses, strict=True)))
    atomic_write(out / "lr_find.csv", text.getvalue())
    save_figure(plot_range_test(result), out / "lr_find.png")


def plot_range_test(result: RangeTest):
    """Smoothed training loss against the learning rate, with the explosion and suggestion."""
    from hepdl.evaluation.plots import _figure, _style

    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        ax.plot(result.lrs, result.losses)
        ax.set_xscale("log")
        if result.explodes_at is not None:
            ax.axvline(result.explodes_at, color="tab:red", linestyle="--",
                       label=f"explodes at {result.explodes_at:.2g}")
        ax.axvline(result.suggestion, color="tab:green", label=f"suggested {result.suggestion:.2g}")
        low, high = min(result.losses), max(result.losses[: max(len(result.losses) // 10, 1)])
        ax.set_ylim(low - 0.05 * (high - low), high + 0.3 * (high - low))
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (smoothed)")
        ax.legend(fontsize="small")
    return fig
