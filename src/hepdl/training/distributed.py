"""Data-parallel training over processes: PyTorch DistributedDataParallel under torchrun.

``torchrun --nproc-per-node N -m hepdl train CONFIG`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) starts N copies of the same command; torchrun's environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ...) tells each which it is, and :meth:`Ranks.from_env` joins
them in one process group: gloo on CPU, nccl on GPU. Nothing changes for one process.

How the ranks share the work:

* each rank holds its own *shard* of the training and validation events, never the whole split
  (:mod:`hepdl.data.shards`):

  - in memory (``data.in_memory: true``) the shard is the rank's contiguous part of every batch
    of the split in file order (:meth:`Ranks.shard`); with ``data.shuffle: false`` the ranks'
    parts of batch ``k`` together are exactly one process's batch ``k``, so the run is one
    process's run up to rounding (tested); with shuffling each rank draws its own order of its
    shard each epoch, so batches mix events differently than in one process;
  - streamed (``data.in_memory: false``) each rank reads a contiguous run of each epoch's
    shuffled blocks, about ``1/world`` of the events
    (:class:`~hepdl.data.streaming.StreamingLoader`);

  rank 0 reads the whole training split first, to fit the preprocessing exactly as one process
  would, and hands the fitted constants to the others with the initial weights;
* ``train.batch_size`` stays the *global* batch, and every rank takes the same number of steps;
* DDP averages the gradients over ranks, so each rank's mean loss is weighted by its share of the
  batch (``w_rank x world / w_batch``, ``w`` its events or their class weights, summed over the
  ranks every step): the averaged gradient is the global batch's, for uneven batches too;
* losses, accuracies and event counts are summed over ranks (:meth:`Ranks.sum`) before they are
  written, and a stop request or a non-finite loss on any rank stops all of them at the same batch;
* rank 0 alone writes the run directory; every rank reads ``last.pt`` to resume (with the same
  number of ranks for the same batches: another number re-deals the shards from the next batch).
  Each rank draws its own random numbers (dropout); ``last.pt`` keeps every rank's state.

A rank that dies makes the others fail in their next collective call (gloo: connection closed);
they stop with :class:`~hepdl.errors.TrainingError` naming the checkpoint to resume from, and
torchrun ends the job.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch

from hepdl.data import shards


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of a data-parallel job (rank 0 of 1 alone)."""

    rank: int = 0
    world: int = 1
    joined: bool = field(default=False, compare=False)
    """Whether :meth:`from_env` started the process group (and :meth:`close` ends it)."""

    @classmethod
    def from_env(cls, backend: str = "gloo", timeout_s: float = 1800) -> Ranks:
        """The process group the caller started, as it is (left open by :meth:`close`: a script
        under torchrun can train several runs in one group, as torch cannot start a second one
        from torchrun's environment once the first is destroyed); else torchrun's, joined when
        ``WORLD_SIZE`` > 1; else one rank alone.

        ``timeout_s`` bounds a wait in a collective call: long enough for rank 0 to read and fit
        the preprocessing on a large training split while the others wait (torch's default);
        a rank that dies is noticed at once anyway, by its closed connections."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            world = dist.get_world_size()
            return cls(dist.get_rank(), world) if world > 1 else cls()
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
        return cls(dist.get_rank(), dist.get_world_size(), joined=True)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    def part(self, n: int) -> slice:
        """This rank's contiguous part of a batch of ``n`` events (:mod:`hepdl.data.shards`)."""
        lo, hi = shards.part_bounds(np.array([n]), self.rank, self.world)
        return slice(int(lo[0]), int(hi[0]))

    def batch_parts(self, n: int, batch_size: int) -> np.ndarray:
        """Events of this rank in each batch of a split of ``n`` in batches of ``batch_size``."""
        return shards.batch_parts(n, batch_size, self.rank, self.world)

    def shard(self, n: int, batch_size: int) -> np.ndarray:
        """Positions of this rank's events in a split of ``n``: its part of every batch."""
        return shards.shard(n, batch_size, self.rank, self.world)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks (float64)."""
        if not self.distributed:
            return list(values)
        import torch.distributed as dist

        total = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(total)
        return total.tolist()

    def any(self, *flags: bool) -> list[bool]:
        """Each flag: true on any rank."""
        return [bool(v) for v in self.sum(*(float(f) for f in flags))]

    def gather(self, value) -> list:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values: list = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def broadcast(self, value):
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def backend(self, device_type: str) -> str | None:
        """The process group's backend for tensors on ``device_type`` (``"cpu:gloo,cuda:nccl"``
        gives nccl for cuda): the group's own, a caller's group included; None alone."""
        if not self.distributed:
            return None
        import torch.distributed as dist

        name = dist.get_backend()
        if ":" not in name:
            return name
        return dict(part.split(":", 1) for part in name.split(",")).get(device_type, name)

    def close(self, finished: bool = False) -> None:
        """Leave the process group this object joined (a caller's stays open); after a
        ``finished`` run wait first for every rank (a rank whose peer closed the connections
        first can abort in gloo's threads at exit). A rank that is gone would make the others
        wait at that barrier: not after a failure."""
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                if finished:
                    # a rank lost after the loop: the barrier fails at the group's timeout
                    with contextlib.suppress(RuntimeError):
                        dist.barrier()
                if self.joined:
                    dist.destroy_process_group()


ALONE = Ranks()
"""One process, no process group."""


def is_lost_rank(exc: BaseException) -> bool:
    """Whether an exception is a collective call failing because another rank is gone."""
    import torch.distributed as dist

    lost = (getattr(dist, "DistBackendError", ()), getattr(dist, "DistNetworkError", ()))
    text = str(exc).lower()
    return isinstance(exc, lost) or (isinstance(exc, RuntimeError) and any(
        s in text for s in ("connection closed by peer", "connection reset", "gloo",
                            "timed out", "broken pipe")))
