"""A normalization the network learns: the log-tanh family with trainable parameters.

seeds/000's "Thoughts": a nonlinear normalization is a first-layer activation, so let training
choose it. ``x' = tanh(a * sign(x) * ln(|x| / s + 1) + b)`` with a trainable slope ``a``,
scale ``s`` (kept positive as exp(log_s)) and offset ``b``; initialized to CaloDNN's nonlinear
transform (a = 1/2, s = 1 or the given scale, b = 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hepdl.preprocess.base import Transform, positive, register_transform


@register_transform("learnable_log_tanh")
class LearnableLogTanh(Transform):
    """The log-tanh normalization with trainable ``a``, ``s`` and ``b``.

    Parameters
    ----------
    scale : float
        Initial ``s``.
    per_feature : bool
        One (a, s, b) per input cell instead of one for the whole input.
    """

    def __init__(self, *, shape, scale: float = 1.0, per_feature: bool = False):
        super().__init__(shape=shape)
        scale = positive("scale", scale)
        size = self.shape if per_feature else ()
        self.per_feature = per_feature
        self.slope = nn.Parameter(torch.full(size, 0.5))
        self.log_scale = nn.Parameter(torch.full(size, math.log(scale)))
        self.offset = nn.Parameter(torch.zeros(size))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        scaled = x / self.log_scale.exp()
        return torch.tanh(self.slope * torch.sign(scaled) * torch.log1p(scaled.abs())
                          + self.offset)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, per_feature={self.per_feature}"
