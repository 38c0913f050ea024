"""Writing generated datasets: blocks made in parallel, in a fixed order, into one HDF5 file.

Each block of events draws from its own random stream, ``SeedSequence([seed, block])``, and the
block size does not depend on the number of workers, so a file is the same for a seed whatever
``--workers`` is. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hepdl.runs import temporary_path

Block = dict[str, np.ndarray]


def block_ranges(n_events: int, block_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + block_size, n_events)) for lo in range(0, n_events, block_size)]


def block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, block]))


def run_blocks(make: Callable[..., Block], jobs: Iterable[tuple], workers: int) -> Iterable[Block]:
    """``make(*job)`` for every job, in order; in ``workers`` processes when more than one."""
    if workers <= 1:
        for job in jobs:
            yield make(*job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(make, *zip(*jobs, strict=True), chunksize=1)


def write_blocks(out: str | Path, n_events: int, blocks: Iterable[Block],
                 attrs: dict[str, Any], chunk_events: int = 128, compression: str | None = "gzip",
                 compression_opts: int | None = 1, progress: Callable[[int], None] | None = None
                 ) -> Path:
    """Write blocks of arrays (event on axis 0) as datasets of one HDF5 file, atomically.

    Keys with a ``/`` become nested groups (``truth/em_fraction``). Datasets are chunked along
    the event axis (``chunk_events``) so a streaming reader takes whole chunks.
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
                n = len(next(iter(block.values())))
                for key, value in block.items():
                    if key not in datasets:
                        chunks = (min(chunk_events, n_events), *value.shape[1:])
                        datasets[key] = handle.create_dataset(
                            key, shape=(n_events, *value.shape[1:]), dtype=value.dtype,
                            chunks=chunks, compression=compression,
                            compression_opts=compression_opts if compression == "gzip" else None)
                    datasets[key][written:written + n] = value
                written += n
                if progress is not None:
                    progress(n)
            handle.attrs["complete"] = True
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
