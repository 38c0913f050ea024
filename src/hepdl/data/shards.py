"""How the ranks of a data-parallel job share a split: each rank's part of every batch.

Both loaders follow one rule (:mod:`hepdl.training.distributed`). Batch ``k`` of ``g_k`` events
is cut into contiguous parts, one a rank, as even as can be; a batch too small to give every rank
two events goes to fewer ranks, so no rank gets a part of exactly one event of a larger batch
(BatchNorm cannot normalize a single event) and the parts may be empty.

* In memory a rank's *shard* is its part of every batch of the split in file order
  (:func:`shard`): the parts of batch ``k`` together are one process's batch ``k``.
* Streamed, a rank reads a contiguous run of the epoch's events, as many as its parts add up to
  (:func:`batch_parts`), and cuts it into parts of the same sizes.
"""

from __future__ import annotations

import numpy as np


def batch_sizes(n: int, batch_size: int) -> np.ndarray:
    """Events of each batch of ``n`` in batches of ``batch_size`` (the last may be smaller)."""
    return np.minimum(batch_size, n - np.arange(0, n, batch_size))


def part_bounds(sizes: np.ndarray, rank: int, world: int) -> tuple[np.ndarray, np.ndarray]:
    """Where rank ``rank``'s part of batches of ``sizes`` events begins and ends in each."""
    sizes = np.asarray(sizes)
    used = np.clip(sizes // 2, 1, world)  # ranks that take a part: at least 2 events each
    mine = rank < used
    lo = np.where(mine, rank * sizes // used, sizes)
    return lo, np.where(mine, (rank + 1) * sizes // used, sizes)


def batch_parts(n: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """Events of rank ``rank`` in each batch of a split of ``n`` (they add up to its shard)."""
    lo, hi = part_bounds(batch_sizes(n, batch_size), rank, world)
    return hi - lo


def shard(n: int, batch_size: int, rank: int, world: int) -> np.ndarray:
    """Positions (sorted) of rank ``rank``'s events in a split of ``n`` taken in order: its part
    of every batch. Each rank's shard holds events from all over the split, so no rank sees
    only one file (or one class of a sorted file)."""
    lo, hi = part_bounds(batch_sizes(n, batch_size), rank, world)
    position = np.arange(n)
    batch = position // batch_size
    within = position - batch * batch_size
    return position[(within >= lo[batch]) & (within < hi[batch])]
