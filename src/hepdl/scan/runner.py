"""Running a scan: the objective (one full hepdl run per trial) and the worker processes.

Every trial is a run directory ``RUNS_DIR/NAME/trial_NNNN`` that can be evaluated, reported or
resumed like any run. A trial whose training failed (a NaN loss) or collapsed (constant output)
is recorded as FAIL with the reason, never as an AUC of 0.5.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from hepdl.config import Config
from hepdl.errors import HepdlError
from hepdl.scan.space import configure, grid, suggest
from hepdl.scan.storage import default_storage, open_storage, redact


class TrialFailed(Exception):
    """A trial's training failed or collapsed; Optuna records it as FAIL with this message."""


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """A metric by name, dotted into nested ones: ``mean_auc``, ``auc.Pi0``."""
    value: Any = metrics
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            raise HepdlError(f"scan.objective: no metric {name!r} in the trial's metrics.json")
        value = value[key]
    if value is None:
        raise HepdlError(f"scan.objective: metric {name!r} is undefined for this trial")
    return float(value)


def _sampler(config: Config, seed: int):
    import optuna

    scan = config.scan
    if scan.sampler in ("grid", "random"):  # grid points are enqueued trials (enqueue_grid)
        return optuna.samplers.RandomSampler(seed=seed)
    if scan.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if scan.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def open_study(config: Config, storage: str | None = None, seed: int | None = None):
    """The scan's Optuna study, created on first use, named after the config."""
    import optuna

    url = storage or config.scan.storage or default_storage(config)
    return optuna.create_study(
        study_name=config.name, storage=open_storage(url), load_if_exists=True,
        direction=config.scan.direction,
        sampler=_sampler(config, config.seed if seed is None else seed))


def objective(config: Config, threads: int | None, console=None):
    """The function Optuna calls for each trial: train, evaluate, return the metric."""
    from hepdl import api

    out = Path(config.runs_dir) / config.name

    def run_trial(trial) -> float:
        if config.scan.sampler == "grid" and not trial.user_attrs.get("grid_point"):
            # every grid point was taken by another worker between our look and our ask
            import optuna

            trial.set_user_attr("grid_exhausted", True)
            raise optuna.TrialPruned("the grid is exhausted")
        values = suggest(trial, config.scan.space)
        trial_config = configure(config, values)
        if threads:
            trial_config.train.threads = threads
        run = out / f"trial_{trial.number:04d}"
        trial.set_user_attr("run", str(run))
        if run.exists():  # a trial number is never reused: this is debris of a killed worker
            shutil.rmtree(run)
        try:
            api.train(trial_config, run_dir=run, console=console)
        except HepdlError as exc:
            trial.set_user_attr("failure", str(exc))
            raise TrialFailed(str(exc)) from None
        metrics = json.loads((run / "metrics.json").read_text())
        meta = json.loads((run / "meta.json").read_text())
        trial.set_user_attr("auc", metrics.get("auc", {}))
        trial.set_user_attr("epochs", meta.get("epochs_trained"))
        if metrics.get("warnings"):
            from hepdl.study import diagnose

            reason = f"{metrics['warnings'][0].split(':')[0]}: {diagnose(run)}"
            trial.set_user_attr("failure", reason)
            raise TrialFailed(reason)
        return metric_value(metrics, config.scan.objective)

    return run_trial


def enqueue_grid(study, config: Config) -> int:
    """Put every grid point in the study as a waiting trial, once (the storage hands each
    waiting trial to exactly one worker); returns the number of points."""
    import itertools

    points = grid(config.scan.space)
    combos = [dict(zip(points, values, strict=True))
              for values in itertools.product(*points.values())]
    if not study.user_attrs.get("grid_enqueued"):
        study.set_user_attr("grid_enqueued", True)
        for params in combos:
            study.enqueue_trial(params, user_attrs={"grid_point": True}, skip_if_exists=True)
    return len(combos)


def run_worker(config: Config, *, storage: str | None = None, threads: int | None = None,
               seed: int | None = None, console=None) -> None:
    """Take trials from the shared study until its budget (trials or time) is reached."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(config, storage, seed)
    if config.scan.sampler == "grid":
        enqueue_grid(study, config)
        run = objective(config, threads, console)
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.optimize(run, n_trials=1, catch=(TrialFailed,), gc_after_trial=True)
        return
    callbacks = []
    if config.scan.trials is not None:
        done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        if len(study.get_trials(deepcopy=False, states=done)) >= config.scan.trials:
            return
        callbacks.append(MaxTrialsCallback(config.scan.trials, states=done))
    study.optimize(objective(config, threads, console), n_trials=None,
                   timeout=config.scan.timeout, catch=(TrialFailed,), callbacks=callbacks,
                   gc_after_trial=True)


def _worker_process(config_json: str, storage: str | None, threads: int, seed: int) -> None:
    from hepdl.config import Config

    run_worker(Config.model_validate_json(config_json), storage=storage, threads=threads,
               seed=seed)


def run_scan(config: Config, *, workers: int = 1, storage: str | None = None,
             console=None) -> Any:
    """Run a scan with ``workers`` processes on this machine (each with cores / workers torch
    threads, so they do not oversubscribe the CPU); returns the study."""
    import multiprocessing

    if config.scan is None:
        raise HepdlError("the config has no scan section (scan: {space: {...}})")
    url = storage or config.scan.storage or default_storage(config)
    study = open_study(config, url)  # created once here, before workers race to create it
    if config.scan.sampler == "grid":
        enqueue_grid(study, config)
    if console is not None:
        console.print(f"scan {config.name}: {config.scan.sampler} sampler, budget "
                      f"{config.scan.trials} trials, storage {redact(url)}, {workers} workers")
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers <= 1:
        run_worker(config, storage=url, threads=threads, console=console)
        return study
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    processes = [context.Process(target=_worker_process,
                                 args=(config.model_dump_json(), url, threads, config.seed + i))
                 for i in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise HepdlError(f"{len(failed)} of {workers} scan workers exited with codes {failed}; "
                         f"the study keeps their finished trials, run the scan again to go on")
    return study
