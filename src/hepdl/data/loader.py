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


class InMemoryLoader:
    """Shuffled mini-batches of a dataset held as tensors.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a resumed run sees the same batches
    as an uninterrupted one.

    Parameters
    ----------
    dataset : Dataset
        The events; inputs are turned into tensors once.
    batch_size : int
        Events per batch; the last batch of an epoch may be smaller.
    shuffle : bool
        Draw a new permutation each epoch (training) or keep file order (evaluation).
    seed : int
        Seed of the permutations.
    ranks : hepdl.training.distributed.Ranks, optional
        In data-parallel training, this rank's part of each batch is yielded (every rank draws
        the same permutation).
    """

    def __init__(self, dataset: Dataset, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                 label_dtype: torch.dtype | None = None, ranks=None):
        self.inputs = {k: v if isinstance(v, Hits) else torch.from_numpy(np.ascontiguousarray(v))
                       for k, v in dataset.inputs.items()}
        self.labels = None if dataset.labels is None else torch.from_numpy(dataset.labels)
        if self.labels is not None and label_dtype is not None:
            self.labels = self.labels.to(label_dtype)
        self.n_events = len(dataset)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.ranks = ranks  # data-parallel: each rank yields its part of every batch

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.n_events // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor | None:
        if not self.shuffle:
            return None
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.n_events, generator=generator)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[
            tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        """Yield ``(inputs, labels)`` for the batches of ``epoch`` from batch number ``start``."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.n_events)
            if self.ranks is not None and self.ranks.distributed:
                part = self.ranks.part(hi - lo)
                lo, hi = lo + part.start, lo + part.stop
            if order is None:
                inputs = {k: v[lo:hi] for k, v in self.inputs.items()}
                labels = None if self.labels is None else self.labels[lo:hi]
            else:
                index = order[lo:hi]
                inputs = {k: v.index_select(0, index) for k, v in self.inputs.items()}
                labels = None if self.labels is None else self.labels.index_select(0, index)
            yield inputs, labels
