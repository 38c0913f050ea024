"""What stops training: early stopping, a wall-time limit, SIGTERM/SIGINT from a batch system."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without the monitored loss improving by ``min_delta``."""

    patience: int
    min_delta: float = 0.0
    best: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's value; return True when it is the best so far."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.bad_epochs = (state["best"], state["best_epoch"],
                                                       state["bad_epochs"])


class StopRequest:
    """Collects reasons to stop cleanly after the current step: SIGTERM, SIGINT or a time limit.

    Batch systems send SIGTERM before killing a job; the loop finishes its step, writes a
    checkpoint and exits, and ``hepdl train RUN --resume`` continues. Use as a context manager:
    the previous signal handlers are restored on exit.
    """

    def __init__(self, time_limit: float | None = None):
        self.deadline = None if time_limit is None else time.monotonic() + time_limit
        self.time_limit = time_limit
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def reason(self) -> str | None:
        if self.signal_name:
            return f"{self.signal_name} received"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return f"time limit of {self.time_limit:g} s reached"
        return None
