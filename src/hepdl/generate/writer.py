"""Writing generated datasets: blocks made in parallel, in a fixed order, into one HDF5 file.

Each block of events draws from its own random stream, ``SeedSequence([seed, block])``, and the
block size does not depend on the number of workers, so a file is the same for a seed whatever
``--workers`` is. The workers also compress their blocks, chunk by chunk (zlib, the format of
HDF5's gzip filter), and the writing process stores the compressed chunks as they are with
h5py's ``write_direct_chunk``: compression would otherwise take a third of the machine in the
one writing process. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hepdl.runs import temporary_path

Block = dict[str, np.ndarray]


@dataclass
class CompressedBlock:
    """A block of events as compressed HDF5 chunks, ready to be stored.

    ``datasets`` maps a key to (event shape, dtype string, compressed chunks); ``extras`` holds
    the block's ``_``-prefixed values (statistics for the caller), never written.
    """

    n_events: int
    datasets: dict[str, tuple[tuple[int, ...], str, list[bytes]]]
    extras: dict[str, Any] = field(default_factory=dict)


def block_ranges(n_events: int, block_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + block_size, n_events)) for lo in range(0, n_events, block_size)]


def block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, block]))


def compress(block: Block, chunk_events: int, level: int) -> CompressedBlock:
    """Split each array of a block into chunks of ``chunk_events`` events (the last padded with
    zeros to a whole chunk, as HDF5 stores it) and deflate each one."""
    n = len(next(v for k, v in block.items() if not k.startswith("_")))
    datasets, extras = {}, {}
    for key, value in block.items():
        if key.startswith("_"):
            extras[key] = value
            continue
        value = np.ascontiguousarray(value)
        chunks = []
        for lo in range(0, n, chunk_events):
            part = value[lo:lo + chunk_events]
            if len(part) < chunk_events:
                padded = np.zeros((chunk_events, *value.shape[1:]), dtype=value.dtype)
                padded[:len(part)] = part
                part = padded
            chunks.append(zlib.compress(part.tobytes(), level))
        datasets[key] = (value.shape[1:], value.dtype.str, chunks)
    return CompressedBlock(n, datasets, extras)


def _make_compressed(make: Callable[..., Block], chunk_events: int, level: int,
                     *job) -> CompressedBlock:
    return compress(make(*job), chunk_events, level)


def run_blocks(make: Callable[..., Block], jobs: list[tuple], workers: int,
               chunk_events: int = 128, level: int = 1) -> Iterable[CompressedBlock]:
    """``make(*job)`` for every job, compressed, in order; in ``workers`` processes when more
    than one. ``chunk_events`` must divide every block but the last."""
    task = functools.partial(_make_compressed, make, chunk_events, level)
    if workers <= 1:
        for job in jobs:
            yield task(*job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(task, *zip(*jobs, strict=True), chunksize=1)


def write_blocks(out: str | Path, n_events: int, blocks: Iterable[CompressedBlock],
                 attrs: dict[str, Any], chunk_events: int = 128, level: int = 1,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Store compressed blocks as the datasets of one HDF5 file (gzip filter), atomically.

    Keys with a ``/`` become nested groups (``truth/em_fraction``). Datasets are chunked along
    the event axis (``chunk_events``), so a streaming reader takes whole chunks.
    """
    import h5py

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    written = 0
    try:
        with h5py.File(tmp, "w") as handle:
            for key, value in attrs.items():
                handle.attrs[key] = value
            datasets = {}
            for block in blocks:
                if written % chunk_events:
                    raise ValueError("only the last block may hold a partial chunk")
                for key, (shape, dtype, chunks) in block.datasets.items():
                    if key not in datasets:
                        datasets[key] = handle.create_dataset(
                            key, shape=(n_events, *shape), dtype=np.dtype(dtype),
                            chunks=(chunk_events, *shape), compression="gzip",
                            compression_opts=level)
                    zeros = (0,) * len(shape)
                    for i, data in enumerate(chunks):
                        datasets[key].id.write_direct_chunk(
                            (written + i * chunk_events, *zeros), data)
                written += block.n_events
                if progress is not None:
                    progress(block.n_events)
            handle.attrs["complete"] = True
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
