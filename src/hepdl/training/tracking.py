"""Logging of runs to TensorBoard and MLflow (``tracking:`` in the config; off by default).

Both are optional: nothing is imported unless the config switches one on, and a missing package
is then a one-line error naming what to install. The run directory stays the record; these are
views of it for people who browse many runs:

* TensorBoard: ``RUN/tensorboard/``: every number of each epoch's history row (losses, accuracy,
  learning rate, events/s) as scalars, the resolved config as text, the test metrics at the end;
* MLflow: one MLflow run per hepdl run (named as the run directory): the config's fields as
  parameters (``train.lr``, ``model.width``), the history per epoch as metrics with ``step`` =
  epoch, the test metrics (``test_auc_<class>``, ``test_accuracy``), and the report, config and
  metrics files as artifacts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from pathlib import Path
from typing import Any

from hepdl.config import Config
from hepdl.errors import ConfigError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _require(module: str, option: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"tracking.{option}", f"needs {module}, which is not installed: "
                                                f"pip install {install}")


def flat_params(tree: Any, prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.001}}`` -> ``{"train.lr": "0.001"}`` (MLflow parameters are strings)."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(flat_params(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: str(tree)[:500]}


class Tracker:
    """The trackers a config switches on, fed by the training loop (rank 0 only).

    Training opens it and :meth:`suspend` closes it when the loop ends; evaluation opens it
    again and :meth:`finish` adds the test metrics and files. The MLflow run's id is kept in
    ``meta.json``, so a resumed run, and its evaluation, go on in the same MLflow run.
    """

    def __init__(self, config: Config, run: Path, strict: bool = True):
        from hepdl.runs import read_meta, update_meta

        settings = config.tracking
        self.run = Path(run)
        self.writer = None
        self.mlflow = None
        if settings.tensorboard:
            _require("tensorboard", "tensorboard", "tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run / "tensorboard"))
            self.writer.add_text("config", "```\n" + (self.run / "config.yaml").read_text()
                                 + "\n```")
        if settings.mlflow:
            _require("mlflow", "mlflow", "mlflow-skinny sqlalchemy alembic")
            import mlflow

            runs_dir = Path(config.runs_dir).resolve()
            uri = settings.mlflow_uri or f"sqlite:///{runs_dir / 'mlflow.db'}"
            known = read_meta(self.run).get("mlflow_run_id")
            try:  # strict: a server that cannot be reached stops the run before it trains
                mlflow.set_tracking_uri(uri)
                name = settings.experiment or config.name
                if mlflow.get_experiment_by_name(name) is None:
                    mlflow.create_experiment(name,
                                             artifact_location=(runs_dir / "mlruns").as_uri())
                mlflow.set_experiment(name)
                if known:  # a resumed run, or its evaluation: the same MLflow run
                    active = mlflow.start_run(run_id=known)
                else:
                    active = mlflow.start_run(run_name=self.run.name)
                    mlflow.log_params(flat_params(config.model_dump(mode="json")))
            except Exception as exc:  # MLflow's and its backends' errors, of many kinds
                with contextlib.suppress(Exception):  # no run left open in this process
                    mlflow.end_run(status="FAILED")
                if strict:
                    raise ConfigError("tracking.mlflow", f"cannot log to {uri}: "
                                                         f"{_first_line(exc)}") from None
                warnings.warn(f"MLflow logging skipped ({_first_line(exc)}); {self.run} holds "
                              "every number", RuntimeWarning, stacklevel=2)
            else:
                if not known:
                    update_meta(self.run, mlflow_run_id=active.info.run_id)
                self.mlflow = mlflow

    @property
    def active(self) -> bool:
        return self.writer is not None or self.mlflow is not None

    def epoch(self, row: dict[str, float]) -> None:
        """One history row (its ``epoch`` is the step)."""
        step = int(row["epoch"])
        numbers = {k: float(v) for k, v in row.items()
                   if k != "epoch" and isinstance(v, int | float) and math.isfinite(v)}
        if self.writer is not None:
            for key, value in numbers.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()
        self._to_mlflow(lambda mlflow: mlflow.log_metrics(numbers, step=step))

    def _to_mlflow(self, log) -> None:
        """``log(mlflow)``, where an MLflow that fails while the run goes on (a server gone)
        costs the MLflow view only: one warning, then no more MLflow; the run directory stays
        the record."""
        if self.mlflow is None:
            return
        try:
            log(self.mlflow)
        except Exception as exc:  # MLflow's and its backends' errors, of many kinds
            warnings.warn(f"MLflow logging stopped ({_first_line(exc)}); the run goes on and "
                          f"{self.run} holds every number", RuntimeWarning, stacklevel=2)
            with contextlib.suppress(Exception):
                self.mlflow.end_run(status="FAILED")
            self.mlflow = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        """Training's end: finished, stopped to be resumed (KILLED), or failed."""
        stopped = kind is not None and (issubclass(kind, KeyboardInterrupt)
                                        or getattr(exc, "resumable", False))
        self.suspend("FINISHED" if kind is None else "KILLED" if stopped else "FAILED")

    def suspend(self, status: str = "FINISHED") -> None:
        """Close both trackers until :meth:`finish` (training ended, or stopped: ``status``
        FAILED or KILLED)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self._to_mlflow(lambda mlflow: mlflow.end_run(status=status))
        self.mlflow = None

    def finish(self, metrics: dict[str, Any] | None, status: str = "FINISHED") -> None:
        """Test metrics and the run's files; closes both trackers."""
        scalars = {}
        for key, value in (metrics or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                scalars[f"test_{key}"] = float(value)
            elif key == "auc" and isinstance(value, dict):
                scalars.update({f"test_auc_{name}": float(v) for name, v in value.items()
                                if v is not None})
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(key, value, 0)
        def files(mlflow) -> None:
            if scalars:
                mlflow.log_metrics(scalars)
            for name in ("report.html", "config.yaml", "metrics.json", "history.csv"):
                if (self.run / name).is_file():
                    mlflow.log_artifact(str(self.run / name))

        self._to_mlflow(files)
        self.suspend(status)


def tracker(config: Config, run: Path, strict: bool = True) -> Tracker | None:
    """The run's tracker when the config switches one on, else None (nothing imported).
    ``strict``: an MLflow that cannot be reached is a ConfigError (before training), else a
    warning (after it: the run is done and only the MLflow view is lost)."""
    if config.tracking.tensorboard or config.tracking.mlflow:
        return Tracker(config, run, strict)
    return None
