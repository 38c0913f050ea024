"""Standardization: each feature to mean 0 and width 1 (seeds/002: rescale to mu 0, sigma 1)."""

from __future__ import annotations

import torch

from hepdl.preprocess.base import Transform, register_transform


@register_transform("standardize")
class Standardize(Transform):
    """``(x - mean) / std`` per feature, statistics of the training split.

    Statistics accumulate over chunks with the pairwise update of Chan, Golub & LeVeque (1979),
    in float64; a feature whose spread is below ``10 * eps`` (a pixel that is always empty) keeps
    scale 1, as scikit-learn's StandardScaler does.

    Example
    -------
    >>> t = Standardize(shape=(3,)).fit(torch.randn(1000, 3) * 5 + 2)
    >>> t(torch.randn(10, 3)).shape
    torch.Size([10, 3])
    """

    shifts_zero = True

    def __init__(self, *, shape):
        super().__init__(shape=shape)
        self.register_buffer("n_seen_", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean_", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("m2_", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("shift_", torch.zeros(self.shape))
        self.register_buffer("scale_", torch.ones(self.shape))

    def reset(self) -> None:
        for buffer in (self.n_seen_, self.mean_, self.m2_, self.shift_):
            buffer.zero_()
        self.scale_.fill_(1)
        self.fitted_.fill_(False)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> Standardize:
        x = x.to(torch.float64)
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        n_a = self.n_seen_.clone()
        n = n_a + n_b
        delta = mean_b - self.mean_
        self.mean_ += delta * (n_b / n)
        self.m2_ += m2_b + delta**2 * (n_a * n_b / n)
        self.n_seen_.fill_(n)
        std = (self.m2_ / n).sqrt()
        std = torch.where(std < 10 * torch.finfo(torch.float64).eps, torch.ones_like(std), std)
        self.shift_.copy_(self.mean_)
        self.scale_.copy_(std)
        return super().partial_fit(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift_) / self.scale_


    def transform_hits(self, hits):
        return hits.affine(self.shift_, self.scale_)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_ + self.shift_
