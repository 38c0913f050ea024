"""Running a scan: the objective (one full hepdl run per trial) and the worker processes.

Every trial is a run directory ``RUNS_DIR/NAME/trial_NNNN`` that can be evaluated, reported or
resumed like any run. A trial whose training failed (a NaN loss) or collapsed (constant output)
is recorded as FAIL with the reason, never as an AUC of 0.5.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hepdl.config import Config
from hepdl.errors import HepdlError
from hepdl.scans.space import configure, grid, suggest
from hepdl.scans.storage import default_storage, open_storage, redact


class TrialFailed(Exception):
    """A trial's training failed or collapsed; Optuna records it as FAIL with this message."""


def _pruned(message: str):
    """An ``optuna.TrialPruned`` that marks the trial's run directory "pruned"."""
    import optuna

    class ScanPruned(optuna.TrialPruned):
        run_status = "pruned"

    return ScanPruned(message)


def _pruner(config: Config):
    import optuna

    if config.scan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if config.scan.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.train.epochs)
    return optuna.pruners.NopPruner()


def intermediate(row: dict, direction: str) -> float:
    """The per-epoch value a pruner compares, oriented like the study: validation accuracy
    (or minus the loss) when maximizing, the validation loss when minimizing."""
    loss = row.get("val_loss", row["train_loss"])
    if direction == "maximize":
        return row.get("val_accuracy", -loss)
    return loss


def budget_used(study) -> int:
    """Trials that count against the budget: finished ones, not those lost with a worker."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done)
               if not t.user_attrs.get("lost"))


def reap_lost_trials(study, config: Config) -> list[int]:
    """Mark failed the running trials silent for ``grace_seconds`` (their worker was killed)
    and queue their values again; returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    now, lost = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        alive = trial.user_attrs.get("alive_at") or trial.datetime_start.timestamp()
        if now - alive < config.scan.grace_seconds or trial.user_attrs.get("lost"):
            continue  # alive, or already queued again by its own worker (SIGTERM)
        handle = optuna.trial.Trial(study, trial._trial_id)
        try:
            handle.set_user_attr("failure", f"worker lost: no epoch ended for {now - alive:.0f} s")
            handle.set_user_attr("lost", True)
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker starting now reaped it first
            continue
        _queue_again(study, trial)
        lost.append(trial.number)
    return lost


def _queue_again(study, trial) -> None:
    """Put the values of a trial whose worker went away (marked ``lost``: it does not count
    against the budget) back in the queue for another worker."""
    attrs = {"requeued_from": trial.number}
    if trial.user_attrs.get("grid_point"):
        attrs["grid_point"] = True
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs=attrs)


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
    startup = scan.startup_trials
    if scan.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if scan.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def open_study(config: Config, storage: str | None = None, seed: int | None = None):
    """The scan's Optuna study, created on first use, named after the config."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # hepdl says what it does itself
    url = storage or config.scan.storage or default_storage(config)
    return optuna.create_study(
        study_name=config.name, storage=open_storage(url), load_if_exists=True,
        direction=config.scan.direction, pruner=_pruner(config),
        sampler=_sampler(config, config.seed if seed is None else seed))


def objective(config: Config, threads: int | None, console=None):
    """The function Optuna calls for each trial: train, evaluate, return the metric."""
    from hepdl import api
    from hepdl.training.loop import Interrupted

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
        trial.set_user_attr("run", str(run.resolve()))  # found from any directory
        trial.set_user_attr("alive_at", time.time())
        if run.exists():  # a trial number is never reused: this is debris of a killed worker
            shutil.rmtree(run)

        last_sign = [time.time()]

        def on_epoch(row: dict) -> None:
            # every storage write takes the study's lock: sign of life at most every 1/20 of
            # the grace period, intermediate values only for a pruner that reads them
            if time.time() - last_sign[0] > config.scan.grace_seconds / 20:
                last_sign[0] = time.time()
                trial.set_user_attr("alive_at", last_sign[0])
            if config.scan.pruner == "none":
                return
            value = intermediate(row, config.scan.direction)
            trial.report(value, row["epoch"])
            if trial.should_prune():
                raise _pruned(f"pruned at epoch {row['epoch']} ({value:.4g})")

        try:
            api.train(trial_config, run_dir=run, console=console, on_epoch=on_epoch)
        except Interrupted as exc:
            if exc.signal_name is None:  # train.time_limit: the trial's own budget, spent
                trial.set_user_attr("failure", str(exc))
                raise TrialFailed(str(exc)) from None
            # the job is ending (SIGTERM, SIGINT): this worker stops, and the values go back in
            # the queue for a worker with time left
            trial.set_user_attr("failure", f"interrupted, values queued again: {exc}")
            trial.set_user_attr("lost", True)
            _queue_again(trial.study, trial)
            raise
        except HepdlError as exc:
            trial.set_user_attr("failure", str(exc))
            raise TrialFailed(str(exc)) from None
        metrics = json.loads((run / "metrics.json").read_text())
        meta = json.loads((run / "meta.json").read_text())
        trial.set_user_attr("auc", metrics.get("auc", {}))
        if metrics.get("findings"):  # exploding gradients, dead units, overfitting ...
            trial.set_user_attr("findings", metrics["findings"])
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


def freeze_long_lived(study, trial) -> None:
    """After a worker's first trial (torch, scikit-learn and matplotlib all imported), move every
    object alive into the garbage collector's permanent generation: the collection after each
    trial then scans what the trial made, not the ~400k objects of the imported libraries
    (0.3 s a trial otherwise)."""
    if not gc.get_freeze_count():
        gc.freeze()


def run_worker(config: Config, *, storage: str | None = None, threads: int | None = None,
               seed: int | None = None, console=None) -> None:
    """Take trials from the shared study until its budget (trials or time) is reached."""
    from optuna.trial import TrialState

    study = open_study(config, storage, seed)
    reap_lost_trials(study, config)
    if config.scan.sampler == "grid":
        enqueue_grid(study, config)
        run = objective(config, threads, console)
        while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            study.optimize(run, n_trials=1, catch=(TrialFailed,), gc_after_trial=True,
                           callbacks=[freeze_long_lived])
        return
    callbacks = [freeze_long_lived]
    if config.scan.trials is not None:
        if budget_used(study) >= config.scan.trials:
            if console is not None:
                console.print(f"scan {config.name}: its budget of {config.scan.trials} trials "
                              "is used; nothing to do (raise scan.trials to go on)")
            return

        def stop_at_budget(study, trial) -> None:
            if budget_used(study) >= config.scan.trials:
                study.stop()

        callbacks.append(stop_at_budget)
    study.optimize(objective(config, threads, console), n_trials=None,
                   timeout=config.scan.timeout, catch=(TrialFailed,), callbacks=callbacks,
                   gc_after_trial=True)


@contextlib.contextmanager
def worker_threads(threads: int) -> Iterator[None]:
    """Every thread pool of this process (torch's, and the BLAS under numpy and scikit-learn)
    gets this worker's share of the cores, so N workers do not oversubscribe the machine."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


def _worker_process(config_json: str, storage: str | None, threads: int, seed: int) -> None:
    from hepdl.config import Config

    with worker_threads(threads):
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
    reap_lost_trials(study, config)
    if config.scan.sampler == "grid":
        enqueue_grid(study, config)
    if console is not None:
        console.print(f"scan {config.name}: {config.scan.sampler} sampler, budget "
                      f"{config.scan.trials} trials, storage {redact(url)}, {workers} workers")
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers <= 1:
        run_worker(config, storage=url, threads=threads, console=console)
        return study
    # this process is worker 0 and spawns the others: one process fewer to start (each new one
    # spends seconds importing torch and scikit-learn before its first trial)
    context = multiprocessing.get_context("spawn")  # torch and fork do not mix
    processes = [context.Process(target=_worker_process,
                                 args=(config.model_dump_json(), url, threads, config.seed + i))
                 for i in range(1, workers)]
    for process in processes:
        process.start()
    try:
        with worker_threads(threads):
            run_worker(config, storage=url, threads=threads, seed=config.seed, console=console)
    finally:
        for process in processes:
            process.join()
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise HepdlError(f"{len(failed)} of {workers} scan workers exited with codes {failed}; "
                         f"the study keeps their finished trials, run the scan again to go on")
    return study
