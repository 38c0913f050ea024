"""The transform contract, after scikit-learn's StandardScaler, as torch modules.

A transform is a ``torch.nn.Module`` whose learned state is a set of buffers ending in ``_``
(saved in the model's state dict, so preprocessing travels with the model and its ONNX export).
``fit`` = reset + ``partial_fit``; ``partial_fit`` takes chunks (streaming); ``forward`` refuses
to run before a fit and checks the event shape.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hepdl.errors import ConfigError, DataError

_TRANSFORMS: dict[str, type[Transform]] = {}


def register_transform(name: str) -> Callable[[type[Transform]], type[Transform]]:
    """Class decorator adding a transform to the registry under ``name`` (once)."""

    def add(cls: type[Transform]) -> type[Transform]:
        if name in _TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        _TRANSFORMS[name] = cls
        cls.name = name
        return cls

    return add


def list_transforms() -> list[str]:
    return sorted(_TRANSFORMS)


class Transform(nn.Module):
    """Base class: an event-shaped, fitted, invertible-where-possible map of one input.

    Parameters
    ----------
    shape : tuple of int
        Shape of one event of the input (without the batch axis).
    """

    name = "transform"

    def __init__(self, *, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)
        self.register_buffer("fitted_", torch.tensor(False))

    # -- the contract
    def reset(self) -> None:
        """Forget what was learned."""

    def partial_fit(self, x: torch.Tensor) -> Transform:
        """Update the learned state with one chunk of training events."""
        self.fitted_.fill_(True)
        return self

    def fit(self, x: torch.Tensor) -> Transform:
        self.reset()
        return self.partial_fit(x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no inverse")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            if not bool(self.fitted_):
                raise RuntimeError(f"{self.name} is not fitted; call fit() on training data first")
            if tuple(x.shape[1:]) != self.shape:
                raise DataError(self.name, f"expected events of shape {self.shape}, "
                                           f"got {tuple(x.shape[1:])}")
        return self.transform(x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def build_transform(spec: str | dict[str, dict[str, Any]], shape: Sequence[int],
                    where: str) -> Transform:
    """One transform from its config spec: ``"name"`` or ``{name: {option: value}}``."""
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, dict) and len(spec) == 1:
        name, options = next(iter(spec.items()))
        options = options or {}
    else:
        raise ConfigError(where, f"expected a transform name or {{name: {{options}}}}, "
                                 f"got {spec!r}")
    if name not in _TRANSFORMS:
        close = difflib.get_close_matches(name, _TRANSFORMS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(where, f"unknown transform {name!r}{hint} (known: "
                                 f"{', '.join(list_transforms())})")
    try:
        return _TRANSFORMS[name](shape=shape, **options)
    except TypeError as exc:
        raise ConfigError(f"{where}.{name}", f"bad options {options}: {exc}") from None


class Chain(nn.Sequential):
    """The transforms of one input, applied in order; fitted in order on training data."""

    def fit(self, x: torch.Tensor) -> Chain:
        for transform in self:
            transform.fit(x)
            x = transform(x)
        return self


def build_chain(specs: Sequence[Any], shape: Sequence[int], where: str) -> Chain:
    return Chain(*(build_transform(s, shape, f"{where}[{i}]") for i, s in enumerate(specs)))
