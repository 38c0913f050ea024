"""CaloDNN's "nonlinear" normalization of calorimeter cells (seeds/000).

x' = tanh(sign(x) ln(|x| + 1) / 2): logarithmic for the steep spectrum of cell energies, bounded
in (-1, 1), zero stays zero. Nothing is fitted; ``scale`` divides x first (the unit of x).
"""

from __future__ import annotations

import torch

from hepdl.preprocess.base import Transform, positive, register_transform


@register_transform("nonlinear_log_tanh")
class NonlinearLogTanh(Transform):
    """``tanh(sign(x / scale) * ln(|x / scale| + 1) / 2)`` (Farbin, seeds/000).

    Parameters
    ----------
    scale : float
        Unit of the input; 1 keeps the cells' energies as they are.

    Example
    -------
    >>> t = NonlinearLogTanh(shape=(2,)).fit(torch.zeros(1, 2))
    >>> t(torch.tensor([[0.0, 1.0]]))
    tensor([[0.0000, 0.3331]])
    """

    cellwise_zero = True

    def __init__(self, *, shape, scale: float = 1.0):
        super().__init__(shape=shape)
        self.scale = positive("scale", scale)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = x / self.scale
        return torch.tanh(torch.sign(x) * torch.log1p(x.abs()) / 2)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        y = 2 * torch.atanh(x.clamp(-1 + 1e-7, 1 - 1e-7))
        return torch.sign(y) * torch.expm1(y.abs()) * self.scale

    def extra_repr(self) -> str:
        return f"shape={self.shape}, scale={self.scale:g}"
