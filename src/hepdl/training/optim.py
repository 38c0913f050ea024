"""Optimizers and learning-rate schedules from torch.optim, by the names of seeds/002."""

from __future__ import annotations

import math

import torch

from hepdl.config import OptimizerConfig, ScheduleConfig
from hepdl.errors import ConfigError

# name -> (torch.optim class, options implied by the name); the config's options override these.
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {}),
    "rmsprop": (torch.optim.RMSprop, {}),
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "amsgrad": (torch.optim.Adam, {"amsgrad": True}),
    "adadelta": (torch.optim.Adadelta, {}),
}

FUSED = (torch.optim.SGD, torch.optim.Adagrad, torch.optim.Adam, torch.optim.AdamW)
"""Optimizers built with ``fused=True`` unless the config sets ``fused`` or ``foreach``: the
update of each tensor in one kernel instead of several dispatched ops, what took the small MLP
past half the dense compute limit (docs/performance.md); the same update to rounding."""


def build_optimizer(config: OptimizerConfig, parameters, lr: float) -> torch.optim.Optimizer:
    """The torch.optim optimizer named by ``config.name`` with learning rate ``lr``.

    Raises
    ------
    ConfigError
        An option the optimizer does not take, or a value it rejects.
    """
    cls, implied = OPTIMIZERS[config.name]
    options = {**implied, **config.options}
    if cls in FUSED and not {"fused", "foreach"} & set(options):
        options["fused"] = True
    try:
        return cls(parameters, lr=lr, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("train.optimizer.options", f"{cls.__name__} rejects {options}: {exc}") \
            from None


def build_schedule(config: ScheduleConfig, optimizer: torch.optim.Optimizer, epochs: int):
    """The per-epoch schedule (stepped once per epoch; plateau with the monitored loss).

    time: l0 / (1 + k t);  step: l0 gamma^int(t / tau);  exponential: l0 exp(-t / tau)
    (seeds/002); cosine: to ``min_lr`` over the run; plateau: x gamma after ``patience`` epochs.
    """
    from torch.optim import lr_scheduler

    if config.name == "constant":
        return lr_scheduler.LambdaLR(optimizer, lambda t: 1.0)
    if config.name == "time":
        return lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + config.k * t))
    if config.name == "step":
        return lr_scheduler.LambdaLR(optimizer, lambda t: config.gamma ** int(t / config.tau))
    if config.name == "exponential":
        return lr_scheduler.ExponentialLR(optimizer, gamma=math.exp(-1.0 / config.tau))
    if config.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=config.min_lr)
    if config.name == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.gamma,
                                              patience=config.patience, min_lr=config.min_lr)
    raise ConfigError("train.schedule.name", f"unknown schedule {config.name!r}")


def step_schedule(schedule, monitored: float) -> None:
    """Advance the schedule by one epoch."""
    import warnings

    from torch.optim.lr_scheduler import ReduceLROnPlateau

    if isinstance(schedule, ReduceLROnPlateau):
        schedule.step(monitored)
        return
    with warnings.catch_warnings():
        # A run resumed exactly at an epoch's end steps its schedule before its first
        # optimizer step in this process; the epoch count in the schedule's state is right.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        schedule.step()
