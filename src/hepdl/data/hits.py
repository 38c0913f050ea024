"""Zero-suppressed calorimeter events as their hits: the non-zero cells of each event.

A 25 x 25 x 25 ECAL image of the LCD data holds about 400 non-zero cells of 15,625 (2-3 %; the
HCAL about 4 %). :class:`Hits` keeps only those, in compressed-sparse-row form: event ``i`` is
the cells ``index[indptr[i]:indptr[i+1]]`` (flat cell numbers, C order of the event shape)
with energies ``value[...]``. A network whose first layer gathers one weight row per hit
(:class:`~hepdl.models.layers.CellLinear`) then trains without touching the empty cells, and
the data take a twentieth of the memory.

``base`` is what every cell holds besides its hits, the same for every event: zero for raw
energies; ``-mean / std`` once a per-cell standardization has been applied. A per-cell affine
map ``(x - shift) / scale`` keeps the form exact (hits scaled, base shifted), so standardized
inputs stay sparse for the first layer (``W x = W_hits x_hits + W base``).

On disk (HDF5) an input stored as hits is a group with the datasets ``indptr`` (N + 1,),
``index`` (nnz,) and ``value`` (nnz,) and the attributes ``hits = True`` and ``shape`` (the event
shape); ``hepdl data hits`` writes such files from dense ones.

Example
-------
>>> hits = Hits.from_dense(torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]))
>>> hits.indptr, hits.index, hits.value
(tensor([0, 1, 2]), tensor([1, 0]), tensor([2., 1.]))
>>> torch.equal(hits[1:].to_dense(), torch.tensor([[1.0, 0.0, 0.0]]))
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Hits:
    """A batch of events as their non-zero cells (CSR); see the module docstring.

    Attributes
    ----------
    indptr : Tensor
        (N + 1,) int64; event ``i`` owns entries ``indptr[i]:indptr[i + 1]``.
    index : Tensor
        (nnz,) int64 flat cell numbers within an event.
    value : Tensor
        (nnz,) float32 cell contents.
    event_shape : tuple of int
        Shape of one dense event.
    base : Tensor or None
        (n_cells,) what every cell holds besides its hits; None means zero.
    """

    indptr: torch.Tensor
    index: torch.Tensor
    value: torch.Tensor
    event_shape: tuple[int, ...]
    base: torch.Tensor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dense(cls, x: torch.Tensor | np.ndarray) -> Hits:
        """The non-zero cells of dense events ``x`` (N, *event_shape)."""
        x = torch.as_tensor(x)
        flat = x.reshape(len(x), -1)
        rows, cells = torch.nonzero(flat, as_tuple=True)  # row-major: events in order
        counts = torch.bincount(rows, minlength=len(x))
        indptr = torch.zeros(len(x) + 1, dtype=torch.int64, device=x.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        return cls(indptr, cells, flat[rows, cells].to(torch.float32), tuple(x.shape[1:]))

    @classmethod
    def concatenate(cls, parts: Sequence[Hits]) -> Hits:
        """The events of ``parts`` one after another (same event shape, no base)."""
        shapes = {p.event_shape for p in parts}
        if len(shapes) != 1 or any(p.base is not None for p in parts):
            raise ValueError(f"cannot concatenate hits of event shapes {sorted(shapes)}")
        starts = np.cumsum([0] + [int(p.indptr[-1]) for p in parts[:-1]])
        indptr = torch.cat([parts[0].indptr[:1]] + [
            p.indptr[1:] + int(s) for p, s in zip(parts, starts, strict=True)])
        return cls(indptr, torch.cat([p.index for p in parts]),
                   torch.cat([p.value for p in parts]), shapes.pop())

    # ------------------------------------------------------------------ what it holds
    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, *event_shape)``, as the dense array would have."""
        return (len(self), *self.event_shape)

    @property
    def device(self) -> torch.device:
        return self.indptr.device

    @property
    def n_cells(self) -> int:
        return math.prod(self.event_shape)

    @property
    def counts(self) -> torch.Tensor:
        """Hits per event."""
        return self.indptr[1:] - self.indptr[:-1]

    def rows(self) -> torch.Tensor:
        """The event number of each hit (nnz,)."""
        return torch.repeat_interleave(torch.arange(len(self), device=self.device), self.counts)

    def to_dense(self) -> torch.Tensor:
        """The dense events (N, *event_shape), base included."""
        dense = torch.zeros(len(self), self.n_cells, dtype=self.value.dtype, device=self.device)
        if self.base is not None:
            dense += self.base
        dense.index_put_((self.rows(), self.index), self.value, accumulate=True)
        return dense.reshape(self.shape)

    # ------------------------------------------------------------------ selecting events
    def __getitem__(self, events) -> Hits:
        """Events by slice (step 1) or by an index array (a gather, vectorized)."""
        if isinstance(events, slice):
            lo, hi, step = events.indices(len(self))
            if step == 1:
                hi = max(hi, lo)
                a, b = int(self.indptr[lo]), int(self.indptr[hi])
                return Hits(self.indptr[lo:hi + 1] - a, self.index[a:b], self.value[a:b],
                            self.event_shape, self.base)
            events = torch.arange(lo, hi, step)
        if not isinstance(events, torch.Tensor):
            events = np.asarray(events)  # a numpy mask selects where true, as numpy does
            events = torch.from_numpy(np.flatnonzero(events) if events.dtype == bool
                                      else events.astype(np.int64).reshape(-1))
        return self.index_select(0, events.to(self.device))

    def index_select(self, dim: int, events: torch.Tensor) -> Hits:
        """The events at ``events`` (``dim`` must be 0, as for a tensor's event axis)."""
        if dim != 0:
            raise ValueError("hits are selected along the event axis (dim 0) only")
        if events.dtype == torch.bool:
            events = torch.nonzero(events)[:, 0]
        events = events.to(torch.int64)
        starts, counts = self.indptr[events], self.counts[events]
        indptr = torch.zeros(len(events) + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        # entry j of the result is entry starts[event] + (j - indptr[event]) of this one
        take = torch.arange(int(indptr[-1]), device=self.device) + torch.repeat_interleave(
            starts - indptr[:-1],
                                                                       counts)
        return Hits(indptr, self.index[take], self.value[take], self.event_shape, self.base)

    def to(self, device) -> Hits:
        """The same hits on another device."""
        return Hits(self.indptr.to(device), self.index.to(device), self.value.to(device),
                    self.event_shape, None if self.base is None else self.base.to(device))

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """Dense chunks of ``size`` events (for fitting preprocessing in bounded memory)."""
        for lo in range(0, len(self), size):
            yield self[lo:lo + size].to_dense()

    # ------------------------------------------------------------------ maps of the cells
    def with_values(self, value: torch.Tensor) -> Hits:
        """The same cells with new contents (a map that keeps empty cells empty)."""
        if self.base is not None:
            raise ValueError("a map of the hits alone needs empty cells to hold zero")
        return Hits(self.indptr, self.index, value, self.event_shape)

    def affine(self, shift: torch.Tensor | float, scale: torch.Tensor | float) -> Hits:
        """``(x - shift) / scale`` per cell, exactly: hits scaled, base shifted and scaled.

        ``shift`` and ``scale`` are scalars or tensors of the event shape.
        """
        options = {"dtype": self.value.dtype, "device": self.device}
        shift = torch.as_tensor(shift, **options).expand(self.event_shape).reshape(-1)
        scale = torch.as_tensor(scale, **options).expand(self.event_shape).reshape(-1)
        value = self.value / scale[self.index]
        if self.base is None and not bool(shift.any()):  # a pure rescaling keeps zeros zero
            return Hits(self.indptr, self.index, value, self.event_shape)
        base = torch.zeros(self.n_cells, **options) if self.base is None else self.base
        return Hits(self.indptr, self.index, value, self.event_shape, (base - shift) / scale)

    def event_reduce(self, values: torch.Tensor, reduce: str) -> torch.Tensor:
        """Per-event ``sum`` or ``amax`` of per-hit ``values`` (0 for an event without hits)."""
        out = torch.zeros(len(self), dtype=values.dtype, device=self.device)
        return out.scatter_reduce_(0, self.rows(), values, reduce, include_self=True)


# --------------------------------------------------------------------------- HDF5


def is_hits_group(node) -> bool:
    """Whether an HDF5 node is an input stored as hits (a group marked ``hits``)."""
    import h5py

    return isinstance(node, h5py.Group) and bool(node.attrs.get("hits", False))


def hits_shape(node) -> tuple[int, ...]:
    """``(N, *event_shape)`` of a hits group, from its header."""
    return (node["indptr"].shape[0] - 1, *(int(s) for s in node.attrs["shape"]))


def read_hits(node, where: str) -> Hits:
    """Every event of a hits group.

    Raises
    ------
    DataError
        The group's arrays disagree (a truncated or damaged file).
    """
    from hepdl.errors import DataError

    try:
        indptr = torch.from_numpy(node["indptr"][()].astype(np.int64))
        index = torch.from_numpy(node["index"][()].astype(np.int64))
        value = torch.from_numpy(node["value"][()].astype(np.float32))
    except (OSError, KeyError) as exc:
        raise DataError(where, f"cannot be read as hits ({exc}); truncated file?") from None
    shape = tuple(int(s) for s in node.attrs["shape"])
    if (len(indptr) == 0 or int(indptr[0]) != 0 or int(indptr[-1]) != len(index)
            or len(index) != len(value) or bool((indptr[1:] < indptr[:-1]).any())
            or (len(index) and not 0 <= int(index.min()) <= int(index.max()) < math.prod(shape))):
        raise DataError(where, f"hits are inconsistent: indptr ends at {int(indptr[-1])} for "
                               f"{len(index)} cells, values {len(value)}, event shape {shape}")
    return Hits(indptr, index, value, shape)


def write_hits(handle, key: str, hits: Hits) -> None:
    """Store ``hits`` (no base) as the group ``key`` of an open, writable HDF5 file."""
    group = handle.create_group(key)
    group.attrs["hits"] = True
    group.attrs["shape"] = np.asarray(hits.event_shape, dtype=np.int64)
    group.create_dataset("indptr", data=hits.indptr.numpy())
    cell_dtype = np.int32 if hits.n_cells < 2**31 else np.int64
    group.create_dataset("index", data=hits.index.numpy().astype(cell_dtype),
                         compression="gzip", compression_opts=1, chunks=True)
    group.create_dataset("value", data=hits.value.numpy(), compression="gzip",
                         compression_opts=1, chunks=True)


def convert_to_hits(source: str | Path, out: str | Path, keys: Sequence[str],
                    chunk_events: int = 1024) -> dict[str, float]:
    """Copy an HDF5 file with the datasets ``keys`` stored as hits (everything else as is).

    The dense datasets are read ``chunk_events`` at a time; the file is written under a
    temporary name and renamed when complete.

    Returns
    -------
    dict
        Occupancy (fraction of non-zero cells) of each converted key.

    Raises
    ------
    DataError, KeyNotFoundError
        The file cannot be read, or a key is missing or not an array of events.
    """
    import os

    import h5py

    from hepdl.data.readers import hdf5_dataset, open_hdf5
    from hepdl.errors import DataError
    from hepdl.runs import temporary_path

    source, out = Path(source), Path(out)
    occupancy = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        with open_hdf5(source) as inp, h5py.File(tmp, "w") as handle:
            for name, value in inp.attrs.items():
                handle.attrs[name] = value
            for key in keys:
                node = hdf5_dataset(inp, source, key)
                if node.ndim < 2:
                    raise DataError(f"{source}:{key}", f"holds shape {node.shape}; expected "
                                                       "events of cells (N, ...)")
                if node.shape[0] == 0:
                    raise DataError(f"{source}:{key}", "holds no events; nothing to convert")
            for key in inp:
                if key not in keys:
                    inp.copy(inp[key], handle, name=key)
            for key in keys:
                node = inp[key]
                try:
                    parts = [Hits.from_dense(node[lo:lo + chunk_events])
                             for lo in range(0, node.shape[0], chunk_events)]
                except OSError as exc:
                    raise DataError(f"{source}:{key}",
                                    f"cannot be read ({exc}); truncated file?") from None
                hits = Hits.concatenate(parts)
                write_hits(handle, key, hits)
                occupancy[key] = len(hits.value) / max(len(hits) * hits.n_cells, 1)
                handle.attrs[f"occupancy_{key}"] = occupancy[key]
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return occupancy
