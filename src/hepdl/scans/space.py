"""The search space of a scan: configs' dotted fields drawn by an Optuna trial."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from hepdl.config import Config, ParameterSpec, config_from_dict, set_path
from hepdl.errors import ConfigError


def suggest(trial, space: dict[str, ParameterSpec]) -> dict[str, Any]:
    """Draw every parameter of ``space`` with the trial's ``suggest_*``.

    Categorical choices that are not plain values (a preprocessing chain) are offered to Optuna
    as their JSON text and turned back into values here.
    """
    values = {}
    for path, spec in space.items():
        if spec.type == "categorical":
            labels = [json.dumps(c) for c in spec.choices]
            values[path] = json.loads(trial.suggest_categorical(path, labels))
        elif spec.type == "int":
            values[path] = trial.suggest_int(path, int(spec.low), int(spec.high),
                                             step=int(spec.step or 1), log=spec.log)
        else:
            values[path] = trial.suggest_float(path, spec.low, spec.high, step=spec.step,
                                               log=spec.log)
    return values


def grid(space: dict[str, ParameterSpec]) -> dict[str, list[Any]]:
    """The points of a grid scan, as Optuna's GridSampler takes them.

    Raises
    ------
    ConfigError
        A float range without a step (a grid needs a finite set of points).
    """
    points = {}
    for path, spec in space.items():
        if spec.type == "categorical":
            points[path] = [json.dumps(c) for c in spec.choices]
        elif spec.type == "int":
            points[path] = list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
        else:
            if spec.step is None:
                raise ConfigError(f"scan.space.{path}", "a grid scan needs a step for a float "
                                  "range (or give categorical choices)")
            points[path] = [float(v) for v in np.arange(spec.low, spec.high + spec.step / 2,
                                                        spec.step)]
    return points


def configure(base: Config, values: dict[str, Any]) -> Config:
    """The base config with the trial's values set at their dotted paths (validated)."""
    raw = base.model_dump(mode="json")
    raw.pop("scan", None)
    raw.pop("study", None)
    for path, value in values.items():
        set_path(raw, path.split("."), copy.deepcopy(value), f"scan.space.{path}")
    return config_from_dict(raw, origin=f"scan values {values}")
