"""The transform contract, after scikit-learn's StandardScaler, as torch modules.

A transform is a ``torch.nn.Module`` whose learned state is a set of buffers ending in ``_``
(saved in the model's state dict, so preprocessing travels with the model and its ONNX export).
``fit`` = reset + ``partial_fit``; ``partial_fit`` takes chunks (streaming); ``forward`` refuses
to run before a fit and checks the event shape. Transforms that keep empty cells empty, or map
each cell affinely, also take zero-suppressed events (:class:`~hepdl.data.hits.Hits`) in
``transform_hits``; the others make the network densify hits first.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hepdl.data.hits import Hits
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

    def end_fit(self) -> Transform:
        """Finish a fit after its last :meth:`partial_fit`. A transform that needs all its data
        at once (PCA, quantiles) only collects in ``partial_fit``, computes here, once, and lets
        go of what it kept (so a chunked fit costs one fit, not one per chunk)."""
        return self

    def fit(self, x: torch.Tensor) -> Transform:
        self.reset()
        self.partial_fit(x)
        return self.end_fit()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no inverse")

    #: A map of each cell on its own with f(0) = 0 (log1p, log-tanh): hits map by value.
    cellwise_zero = False
    #: Maps an empty cell away from zero (standardize: -mean / std), leaving hits a base.
    shifts_zero = False
    #: Keeps hits sparse only where empty cells hold zero (cell-wise maps, per-event norms).
    needs_zero_base = False

    @property
    def keeps_hits(self) -> bool:
        """Whether zero-suppressed events map exactly as hits (:meth:`transform_hits`)."""
        return self.cellwise_zero or type(self).transform_hits is not Transform.transform_hits

    def transform_hits(self, hits: Hits) -> Hits:
        """The transform of zero-suppressed events; here for :attr:`cellwise_zero` maps,
        overridden by the per-cell affine maps (standardize) and the per-event norms."""
        if not self.cellwise_zero:
            raise NotImplementedError(f"{self.name} does not keep empty cells empty")
        if hits.base is not None:  # f(base + hit) is not a map of the hits alone
            return Hits.from_dense(self.transform(hits.to_dense()))
        return hits.with_values(self.transform(hits.value))

    def forward(self, x: torch.Tensor | Hits) -> torch.Tensor | Hits:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            if not bool(self.fitted_):
                raise RuntimeError(f"{self.name} is not fitted; call fit() on training data first")
            if tuple(x.shape[1:]) != self.shape:
                raise DataError(self.name, f"expected events of shape {self.shape}, "
                                           f"got {tuple(x.shape[1:])}")
        if isinstance(x, Hits):
            return self.transform_hits(x)
        return self.transform(x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def positive(name: str, value: float) -> float:
    """An option that must be positive (a scale), as float; TypeError otherwise."""
    if value <= 0:
        raise TypeError(f"{name} must be positive, got {value}")
    return float(value)


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

    @property
    def keeps_hits(self) -> bool:
        """Whether zero-suppressed events go through every transform as hits, and stay sparse:
        no cell-wise map or per-event norm after a transform that moves empty cells from 0."""
        shifted = False
        for transform in self:
            if not transform.keeps_hits or (shifted and (transform.cellwise_zero
                                                          or transform.needs_zero_base)):
                return False
            shifted |= transform.shifts_zero
        return True

    def fit(self, x: torch.Tensor) -> Chain:
        for transform in self:
            transform.fit(x)
            x = transform(x)
        return self

    def fit_stream(self, chunks: Callable[[], Iterable[torch.Tensor]]) -> Chain:
        """Fit on data too large for memory, from passes over chunks of training events.

        See :func:`fit_streaming`; ``chunks()`` starts a new pass each time it is called.
        """
        fit_streaming({"x": self}, lambda: ({"x": chunk} for chunk in chunks()))
        return self


def _learns(transform: Transform) -> bool:
    """Whether fitting changes a transform (it overrides ``partial_fit``), so needs a pass."""
    return type(transform).partial_fit is not Transform.partial_fit


def fit_streaming(chains: Mapping[str, Chain],
                  chunks: Callable[[], Iterable[Mapping[str, torch.Tensor]]]) -> int:
    """Fit the chains of several inputs with ``partial_fit`` over passes of chunked data.

    Transform ``k`` of a chain learns from what transforms ``0..k-1`` make of the data, so it can
    only be fitted once they are: pass ``k`` over the data feeds each chunk through the fitted
    transforms ``0..k-1`` and into ``transform_k.partial_fit``. Transform ``k`` of every input is
    fitted in the same pass, so the passes number the longest chain's transforms that learn
    something; a transform with nothing to learn (no ``partial_fit`` of its own) costs no pass.
    The result is :meth:`Chain.fit` on all the data at once, up to rounding, for every transform
    whose ``partial_fit`` is exact (Standardize's is).

    Parameters
    ----------
    chains : mapping of str to Chain
        Input name -> its chain (``Network.preprocess``).
    chunks : callable
        Returns an iterable over chunks ``{input name: (n, *shape) tensor}`` of the training
        split; called once per pass.

    Returns
    -------
    int
        The number of passes made over the data.

    Example
    -------
    >>> fit_streaming(network.preprocess, loader.chunks)
    1
    """
    passes = 0
    depth = max((len(chain) for chain in chains.values()), default=0)
    for k in range(depth):
        learning = {}
        for name, chain in chains.items():
            if k < len(chain):
                chain[k].reset()
                if _learns(chain[k]):
                    learning[name] = chain
                else:
                    chain[k].partial_fit(torch.empty(0, *chain[k].shape))
        if not learning:
            continue
        passes += 1
        with torch.no_grad():
            for chunk in chunks():
                for name, chain in learning.items():
                    x = chunk[name]
                    for transform in chain[:k]:
                        x = transform(x)
                    chain[k].partial_fit(x)
        for chain in learning.values():
            chain[k].end_fit()
    return passes


def build_chain(specs: Sequence[Any], shape: Sequence[int], where: str) -> Chain:
    return Chain(*(build_transform(s, shape, f"{where}[{i}]") for i, s in enumerate(specs)))
