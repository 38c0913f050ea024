"""Rescalings of seeds/000, 002 and 003: divide, min-max, robust, shared scale, logs, image norms.

Each is a :class:`~hepdl.preprocess.base.Transform`: learned state in buffers ending in ``_``,
fitted on the training split (``partial_fit`` over chunks where the statistic allows it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from hepdl.data.hits import Hits
from hepdl.preprocess.base import Transform, positive, register_transform


@register_transform("divide")
class Divide(Transform):
    """``x / c`` with ``c`` a constant, or a statistic of the training data over all its values.

    Parameters
    ----------
    by : float or {"max", "quantile"}
        A constant (150 for CaloDNN's ECAL), the largest training value (its 480.4), or the
        ``q`` quantile of the nonzero training values.
    q : float
        The quantile for ``by: quantile``.
    """

    def __init__(self, *, shape, by: float | Literal["max", "quantile"] = "max", q: float = 0.99):
        super().__init__(shape=shape)
        if isinstance(by, str) and by not in ("max", "quantile"):
            raise TypeError(f"by must be a number, 'max' or 'quantile', got {by!r}")
        if not isinstance(by, str) and by <= 0:
            raise TypeError(f"by must be positive, got {by}")
        if not 0 < q <= 1:
            raise TypeError(f"q must be in (0, 1], got {q}")
        self.by, self.q = by, q
        self.register_buffer("scale_", torch.tensor(1.0 if isinstance(by, str) else float(by)))
        self._values: list[torch.Tensor] = []

    def reset(self) -> None:
        self.fitted_.fill_(False)
        self._values = []
        self.scale_.fill_(1.0 if isinstance(self.by, str) else float(self.by))

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> Divide:
        if self.by == "max":
            self.scale_.fill_(max(float(self.scale_) if bool(self.fitted_) else 0.0,
                                  float(x.abs().max()) if x.numel() else 0.0))
        elif self.by == "quantile":
            # quantiles need all values: keep the nonzero ones (calorimeter images are sparse)
            # until end_fit
            self._values.append(x[x != 0].abs().flatten().float().numpy())
            return self
        if float(self.scale_) <= 0:
            self.scale_.fill_(1.0)
        return super().partial_fit(x)

    @torch.no_grad()
    def end_fit(self) -> Divide:
        if self.by == "quantile":
            values = np.concatenate(self._values) if self._values else np.zeros(0)
            self._values = []
            # numpy: torch.quantile refuses more than 2^24 values
            self.scale_.fill_(float(np.quantile(values, self.q)) if values.size else 1.0)
            if float(self.scale_) <= 0:
                self.scale_.fill_(1.0)
            self.fitted_.fill_(True)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.scale_

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_


    def transform_hits(self, hits):
        return hits.affine(0.0, self.scale_)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, by={self.by}"


@register_transform("minmax")
class MinMax(Transform):
    """``(x - min) / (max - min)`` per feature, to [0, 1] on the training data."""

    shifts_zero = True

    def __init__(self, *, shape):
        super().__init__(shape=shape)
        self.register_buffer("min_", torch.full(self.shape, float("inf")))
        self.register_buffer("max_", torch.full(self.shape, float("-inf")))

    def reset(self) -> None:
        self.min_.fill_(float("inf"))
        self.max_.fill_(float("-inf"))
        self.fitted_.fill_(False)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> MinMax:
        if len(x):
            torch.minimum(self.min_, x.amin(0), out=self.min_)
            torch.maximum(self.max_, x.amax(0), out=self.max_)
        return super().partial_fit(x)

    def _range(self) -> torch.Tensor:
        span = self.max_ - self.min_
        return torch.where(span > 0, span, torch.ones_like(span))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.min_) / self._range()


    def transform_hits(self, hits):
        return hits.affine(self.min_, self._range())

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._range() + self.min_


@register_transform("robust")
class Robust(Transform):
    """``(x - median) / (q_high - q_low)`` per feature (scikit-learn's RobustScaler: the 25-75%
    interquantile range by default), insensitive to the tails. Quantiles need all the values:
    streamed chunks are kept until the fit ends (use on features, not on whole images)."""

    shifts_zero = True

    def __init__(self, *, shape, quantiles: tuple[float, float] = (0.25, 0.75)):
        super().__init__(shape=shape)
        low, high = quantiles
        if not 0 <= low < high <= 1:
            raise TypeError(f"quantiles must be 0 <= low < high <= 1, got {quantiles}")
        self.quantiles = (float(low), float(high))
        self.register_buffer("center_", torch.zeros(self.shape))
        self.register_buffer("scale_", torch.ones(self.shape))
        self._chunks: list[np.ndarray] = []

    def reset(self) -> None:
        self._chunks = []
        self.center_.zero_()
        self.scale_.fill_(1)
        self.fitted_.fill_(False)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> Robust:
        if len(x):  # kept until end_fit: the quantiles need every event at once
            self._chunks.append(x.reshape(len(x), -1).double().numpy())
        return self

    @torch.no_grad()
    def end_fit(self) -> Robust:
        from sklearn.preprocessing import RobustScaler

        if self._chunks:
            scaler = RobustScaler(quantile_range=tuple(100 * q for q in self.quantiles))
            scaler.fit(np.concatenate(self._chunks))
            self.center_.copy_(torch.from_numpy(scaler.center_).reshape(self.shape))
            self.scale_.copy_(torch.from_numpy(scaler.scale_).reshape(self.shape))
        self._chunks = []
        self.fitted_.fill_(True)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center_) / self.scale_


    def transform_hits(self, hits):
        return hits.affine(self.center_, self.scale_)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_ + self.center_


@register_transform("shared_scale")
class SharedScale(Transform):
    """Per-feature mean removed, one width shared by each group of correlated features
    (seeds/002: "use the same scale for p_i,mu", so their ratios survive).

    Parameters
    ----------
    groups : list of list of int
        Feature indices of each group; features in no group get their own width.
    """

    def __init__(self, *, shape, groups: list[list[int]]):
        super().__init__(shape=shape)
        if len(self.shape) != 1:
            raise TypeError(f"shared_scale needs flat features, got event shape {self.shape}")
        seen = [i for group in groups for i in group]
        if len(seen) != len(set(seen)) or any(not 0 <= i < self.shape[0] for i in seen):
            raise TypeError(f"groups must be disjoint indices below {self.shape[0]}, got {groups}")
        self.groups = [list(map(int, g)) for g in groups]
        from hepdl.preprocess.standardize import Standardize

        self.stats = Standardize(shape=self.shape)
        self.register_buffer("scale_", torch.ones(self.shape))

    def reset(self) -> None:
        self.stats.reset()
        self.scale_.fill_(1)
        self.fitted_.fill_(False)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> SharedScale:
        self.stats.partial_fit(x)
        scale = self.stats.scale_.clone()
        variance = self.stats.scale_**2
        for group in self.groups:  # the pooled width of the group
            scale[group] = variance[group].mean().sqrt()
        self.scale_.copy_(scale)
        return super().partial_fit(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.stats.shift_) / self.scale_

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_ + self.stats.shift_


@register_transform("log")
class Log(Transform):
    """``ln(x - offset)``, for steep spectra (seeds/002: E' = log(E - 20)); values at or below
    the offset are clamped to ``offset + eps`` (the training data's minimum is checked)."""

    def __init__(self, *, shape, offset: float = 0.0, eps: float = 1e-6):
        super().__init__(shape=shape)
        self.offset, self.eps = float(offset), float(eps)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> Log:
        if len(x) and float(x.min()) <= self.offset:
            from hepdl.errors import DataError

            raise DataError("log", f"training values go down to {float(x.min()):g}, at or below "
                                   f"the offset {self.offset:g}; lower the offset or use log1p")
        return super().partial_fit(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log((x - self.offset).clamp_min(self.eps))

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x) + self.offset


@register_transform("log1p")
class Log1p(Transform):
    """``sign(x) ln(1 + |x| / scale)``: a log for spectra that reach zero (cell energies)."""

    cellwise_zero = True

    def __init__(self, *, shape, scale: float = 1.0):
        super().__init__(shape=shape)
        self.scale = positive("scale", scale)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.log1p(x.abs() / self.scale)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x) * torch.expm1(x.abs()) * self.scale


@register_transform("image_norm")
class ImageNorm(Transform):
    """Each event divided by its own L1, L2 or max norm over all its cells (seeds/003)."""

    needs_zero_base = True

    def __init__(self, *, shape, norm: Literal["l1", "l2", "max"] = "max"):
        super().__init__(shape=shape)
        if norm not in ("l1", "l2", "max"):
            raise TypeError(f"norm must be l1, l2 or max, got {norm!r}")
        self.norm = norm

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1)
        if self.norm == "l1":
            size = flat.abs().sum(1)
        elif self.norm == "l2":
            size = flat.pow(2).sum(1).sqrt()
        else:
            size = flat.abs().amax(1)
        size = torch.where(size > 0, size, torch.ones_like(size))
        return x / size.reshape(-1, *([1] * (x.ndim - 1)))


    def transform_hits(self, hits):
        if hits.base is not None:  # the norm would run over every cell
            return Hits.from_dense(self.transform(hits.to_dense()))
        value = hits.value
        if self.norm == "l1":
            size = hits.event_reduce(value.abs(), "sum")
        elif self.norm == "l2":
            size = hits.event_reduce(value.pow(2), "sum").sqrt()
        else:
            size = hits.event_reduce(value.abs(), "amax")
        size = torch.where(size > 0, size, torch.ones_like(size))
        return hits.with_values(value / size[hits.rows()])

    def extra_repr(self) -> str:
        return f"shape={self.shape}, norm={self.norm}"
