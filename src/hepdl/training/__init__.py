"""Training: the loop, optimizers and schedules, the objective, and what stops a run."""

from hepdl.training.loop import INTERRUPTED_EXIT_CODE, Interrupted, fit

__all__ = ["INTERRUPTED_EXIT_CODE", "Interrupted", "fit"]
