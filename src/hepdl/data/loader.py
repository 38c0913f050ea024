"""The in-memory batch loader: batches are slices of tensors, never per-sample Python.

A ``Dataset.__getitem__`` + ``DataLoader`` collate loop spends most of a small network's step in
Python; gathering a whole batch with one index tensor does not (issue 10 measures the ratio).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from hepdl.data.dataset import Dataset
from hepdl.data.hits import Hits
from hepdl.data.shards import batch_sizes


def as_tensors(inputs: dict[str, np.ndarray | Hits]) -> dict[str, torch.Tensor | Hits]:
    """Model inputs as tensors sharing the arrays' memory (hits stay hits)."""
    return {k: v if isinstance(v, Hits) else torch.from_numpy(np.ascontiguousarray(v))
            for k, v in inputs.items()}


class InMemoryLoader:
    """Shuffled mini-batches of a dataset held as tensors.

    The order of epoch ``e`` depends only on ``(seed, e)`` (and the rank), so a resumed run sees
    the same batches as an uninterrupted one.

    Parameters
    ----------
    dataset : Dataset
        The events; inputs are turned into tensors once. In data-parallel training: this rank's
        shard of the split (:meth:`~hepdl.training.distributed.Ranks.shard`).
    batch_size : int
        Events per batch (of all ranks together); the last batch of an epoch may be smaller.
    shuffle : bool
        Draw a new permutation each epoch (training) or keep file order (evaluation).
    seed : int
        Seed of the permutations.
    ranks : hepdl.training.distributed.Ranks, optional
        In data-parallel training, the rank whose shard ``dataset`` is: each batch holds this
        rank's part of the split's batch (its shard in order, or shuffled within the shard).
    n_events : int, optional
        Events of the whole split, when ``dataset`` is a rank's shard of it.
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                 label_dtype: torch.dtype | None = None, ranks=None, n_events: int | None = None):
        self.inputs = as_tensors(dataset.inputs)
        self.labels = None if dataset.labels is None else torch.from_numpy(dataset.labels)
        if self.labels is not None and label_dtype is not None:
            self.labels = self.labels.to(label_dtype)
        self.n_events = len(dataset) if n_events is None else n_events  # of all ranks
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = 0 if ranks is None else ranks.rank
        sizes = (ranks.batch_parts(self.n_events, batch_size) if ranks is not None
                 else batch_sizes(self.n_events, batch_size))
        if sizes.sum() != len(dataset):
            raise ValueError(f"{len(dataset)} events given for a shard of {sizes.sum()}")
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()  # batch b: bounds[b:b+2]

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return len(self.bounds) - 1

    def order(self, epoch: int) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        seed = self.seed * 100_003 + epoch
        if self.rank:  # each rank its own order of its own shard (rank 0's is one process's)
            seed = (seed * 1_000_003 + self.rank) % 2**63
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(self.bounds[-1], generator=generator)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[
            tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        """Yield ``(inputs, labels)`` for the batches of ``epoch`` from batch number ``start``."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            lo, hi = self.bounds[b], self.bounds[b + 1]
            if order is None:
                inputs = {k: v[lo:hi] for k, v in self.inputs.items()}
                labels = None if self.labels is None else self.labels[lo:hi]
            else:
                index = order[lo:hi]
                inputs = {k: v.index_select(0, index) for k, v in self.inputs.items()}
                labels = None if self.labels is None else self.labels.index_select(0, index)
            yield inputs, labels
