"""Gradient and activation health of a network while it trains (seeds/001, 002, 004).

Every ``every``-th training batch is watched; the others run untouched, which keeps the cost a
small fraction of a step (``python -m benchmarks --only health``). On a watched batch, per layer:

- weighted layers (Linear, Conv): the gradient norm ||dL/dW|| and the update-to-weight ratio
  ||W_after - W_before|| / ||W_before|| of the optimizer step (healthy: around 1e-3, Karpathy's
  rule of thumb; far below, the layer does not learn, far above, it is thrown around);
- activations (ReLU-like, tanh, sigmoid): the mean and spread (over the epoch's watched
  batches) of the outputs, the fraction of
  dead units (never positive on any event of the batch; ReLU-like) and of saturated outputs
  (|tanh| > 0.99, sigmoid outside 0.01 ... 0.99), where gradients vanish.

Each epoch's watched batches are averaged into one row per layer of ``health.csv``.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from hepdl.models.layers import CellLinear

RECTIFIERS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU)
SATURATING = (nn.Tanh, nn.Sigmoid)
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, CellLinear)


def _weight(layer: nn.Module) -> torch.Tensor:
    """A layer's weight tensor (the by-cell layer keeps it transposed; norms do not care)."""
    return layer.weight_t if isinstance(layer, CellLinear) else layer.weight


COLUMNS = ("epoch", "layer", "kind", "grad_norm", "update_ratio", "activation_mean",
           "activation_std", "dead_fraction", "saturated_fraction")


class HealthMonitor:
    """Watches one network's layers; ``watch(batch)`` says whether this batch is measured.

    The statistics stay tensors until the end of the epoch (one conversion per epoch, not
    a few per layer and batch): a watched step costs about half a plain one on a small MLP.
    """

    def __init__(self, network: nn.Module, every: int = 10):
        self.every = max(1, every)
        modules = list(network.named_modules())
        self.order = {name: i for i, (name, _) in enumerate(modules)}
        self.weighted = [(name, m) for name, m in modules if isinstance(m, WEIGHTED)]
        self.activations = [(name, m) for name, m in modules
                            if isinstance(m, RECTIFIERS + SATURATING)]
        self._active = False
        self._weight_stats: list[torch.Tensor] = []  # per watched batch: (layers, 2)
        self._activation_stats: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._grads: torch.Tensor | None = None
        self._before: list[torch.Tensor] = []
        # hooks exist only during a watched batch's forward pass: a module with hooks takes
        # torch's slower call path on every batch otherwise
        self._hooks: list = []

    def _activation_hook(self, name: str, module: nn.Module):
        def hook(_module, _inputs, output):
            if not len(output):  # a data-parallel rank's empty part of a batch
                return
            with torch.no_grad():
                flat = output.detach().flatten(1)
                if isinstance(module, RECTIFIERS):
                    third = (flat.amax(0) <= 0).float().mean()  # dead units
                elif isinstance(module, nn.Tanh):
                    third = (flat.abs() > 0.99).float().mean()  # saturated outputs
                else:
                    third = ((flat < 0.01) | (flat > 0.99)).float().mean()
                # E[a] and E[a^2], the spread at the epoch's end: ~10x faster than std_mean
                self._activation_stats[name].append(
                    torch.stack([flat.mean(), (flat * flat).mean(), third]))
        return hook

    def watch(self, batch: int) -> bool:
        """Put the activation hooks on for a watched batch (before its forward pass)."""
        self._active = batch % self.every == 0
        if self._active:
            self._hooks = [m.register_forward_hook(self._activation_hook(name, m))
                           for name, m in self.activations]
        return self._active

    def before_step(self) -> None:
        """After backward, before the optimizer step: gradient norms and a copy of the weights."""
        if not self._active:
            return
        self.close()
        with torch.no_grad():
            weights = [_weight(m) for _, m in self.weighted]
            self._grads = torch.stack([
                w.grad.norm() if w.grad is not None else torch.tensor(float("nan"), device=w.device)
                for w in weights])
            self._before = [w.detach().clone() for w in weights]

    def after_step(self) -> None:
        if not self._active:
            return
        with torch.no_grad():
            ratios = torch.stack([torch.dist(_weight(m), before) / before.norm().clamp_min(1e-12)
                                  for (_, m), before in zip(self.weighted, self._before,
                                                            strict=True)])
            self._weight_stats.append(torch.stack([self._grads, ratios], dim=1))
        self._before, self._active = [], False

    def epoch_rows(self, epoch: int) -> list[dict]:
        """One row per layer, in the network's order: this epoch's watched batches averaged."""
        rows = []
        if self._weight_stats:
            means = torch.stack(self._weight_stats).mean(0).tolist()
            for (name, module), (grad, ratio) in zip(self.weighted, means, strict=True):
                rows.append({"layer": name, "kind": type(module).__name__, "grad_norm": grad,
                             "update_ratio": ratio})
        for name, module in self.activations:
            if self._activation_stats.get(name):
                mean, square, third = torch.stack(self._activation_stats[name]).mean(0).tolist()
                std = max(square - mean * mean, 0.0) ** 0.5
                column = "dead_fraction" if isinstance(module, RECTIFIERS) else (
                    "saturated_fraction")
                rows.append({"layer": name, "kind": type(module).__name__,
                             "activation_mean": mean, "activation_std": std, column: third})
        self._weight_stats.clear()
        self._activation_stats.clear()
        rows.sort(key=lambda row: self.order[row["layer"]])
        return [{"epoch": epoch, **{c: row.get(c) for c in COLUMNS[1:]}} for row in rows]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
