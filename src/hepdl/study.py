"""Studies: one base config trained over a grid of changes, ending in the table of seeds/000.

``hepdl study normalization CONFIG`` trains the config's base over every combination of its
``study.grid`` (ECAL norm x HCAL norm x width x depth in seeds/000), each trial a full run
directory, and writes ``table.csv``, ``table.md``, ``auc_by_trial.png`` and ``study.json``. The
grid runs in order here; the scan machinery of Optuna can take it over later.

A trial whose network collapsed (constant output: the first row of seeds/000, every AUC 0.5000)
is flagged with its cause found in the network (input scale after normalization, dead or
saturated units) instead of being listed as a result.
"""

from __future__ import annotations

import copy
import itertools
import json
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepdl.config import Config, config_from_dict, with_absolute_paths
from hepdl.errors import HepdlError
from hepdl.runs import atomic_write
from hepdl.training.loop import Interrupted


@dataclass
class Trial:
    number: int
    values: dict[str, Any]
    run: Path
    status: str = "pending"
    metrics: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    finding: str | None = None


def _set(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = copy.deepcopy(value)


def describe_norm(chain: Any) -> str:
    """A short name for a preprocessing chain, as seeds/000 writes it (150.0, 'nonlinear'), with
    any other options of a step: 'quantile'(q=0.99), 'log'(offset=20)."""
    names = []
    for spec in chain if isinstance(chain, list) else [chain]:
        name, options = (spec, {}) if isinstance(spec, str) else next(iter(spec.items()))
        options = dict(options or {})
        if name == "divide":
            by = options.pop("by", "max")
            text = f"{float(by):g}" if not isinstance(by, str) else f"'{by}'"
        elif name in ("nonlinear_log_tanh", "learnable_log_tanh"):
            text = f"'{name.split('_')[0]}'"
        else:
            text = f"'{name}'"
        given = ",".join(f"{k}={v}" for k, v in options.items())
        names.append(text + (f"({given})" if given else ""))
    return "+".join(names) or "'none'"


def _describe(value: Any, path: str) -> str:
    return describe_norm(value) if path.startswith("preprocess.") else f"{value}"


def trials(config: Config) -> list[tuple[dict[str, Any], Config]]:
    """Every combination of the grid as (values, config), the base with them set."""
    base = config.model_dump(mode="json")
    study = base.pop("study")
    grid = study["grid"]
    out = []
    for combination in itertools.product(*grid.values()):
        values = dict(zip(grid, combination, strict=True))
        raw = copy.deepcopy(base)
        for path, value in values.items():
            _set(raw, path, value)
        out.append((values, config_from_dict(raw, origin=f"study grid {values}")))
    return out


def with_replicates(config: Config, folds: int | None = None, seeds: int | None = None
                    ) -> Config:
    """The study ``config`` with every setting repeated: over the ``folds`` folds of a k-fold
    split (grid ``data.split.fold``), and over ``seeds`` seeds from the config's own (grid
    ``seed``). The table then reads each setting as mean and spread, and the winners as paired
    differences with errors (:mod:`hepdl.replicates`).

    Raises
    ------
    ConfigError
        The config has no study grid, the grid varies that field already, the config's split
        has another number of folds, or the split cannot take folds (split files).
    """
    from hepdl.errors import ConfigError

    if config.study is None or not config.study.grid:
        raise ConfigError("study.grid", "the config has no study grid to repeat")
    raw = config.model_dump(mode="json")
    grid, split = raw["study"]["grid"], raw["data"]["split"]
    for option, path, given in (("--folds", "data.split.fold", folds), ("--seeds", "seed", seeds)):
        if given and path in grid:
            raise ConfigError(option, f"the study grid varies {path} already")
    if folds:
        if split["folds"] not in (None, folds):
            raise ConfigError("--folds", f"the config splits into data.split.folds = "
                                         f"{split['folds']} folds; give --folds {split['folds']}")
        split.update(folds=folds, fold=0)  # the grid sets the fold of each trial
        grid["data.split.fold"] = list(range(folds))
    if seeds:
        grid["seed"] = list(range(config.seed, config.seed + seeds))
    origin = " ".join(f"{o} {v}" for o, v in (("--folds", folds), ("--seeds", seeds)) if v)
    return config_from_dict(raw, origin=origin)


def diagnose(run: Path, n_events: int = 2048) -> str:
    """Why a network's output is constant: input scale after normalization, dead ReLU units and
    saturated tanh/sigmoid units per hidden layer, on test events."""
    import torch

    from hepdl.data import load_split
    from hepdl.data.hits import Hits
    from hepdl.runs import Run

    loaded = Run.load(run)
    test = load_split(loaded.config.data, loaded.config.task, loaded.config.seed, "test")
    network = loaded.network()
    inputs = {k: v[:n_events].to_dense() if isinstance(v, Hits) else torch.from_numpy(
        v[:n_events]) for k, v in test.inputs.items()}
    found = []
    with torch.no_grad():
        for name, chain in network.preprocess.items():
            scale = float(chain(inputs[name]).abs().max())
            if scale > 10:
                found.append(f"{name} inputs reach |x| = {scale:.3g} after normalization")
        outputs: list[tuple[str, torch.Tensor]] = []
        hooks = [m.register_forward_hook(lambda mod, i, o, n=n: outputs.append((n, o)))
                 for n, m in network.body.named_modules()
                 if isinstance(m, torch.nn.ReLU | torch.nn.Tanh | torch.nn.Sigmoid)]
        network(inputs)
        for hook in hooks:
            hook.remove()
    for layer, (_, value) in enumerate(outputs, start=1):
        flat = value.flatten(1)
        dead = float((flat.amax(0) <= 0).float().mean())
        saturated = float((flat.abs() > 0.99).float().mean())
        if dead > 0.5:
            found.append(f"{dead:.0%} of the units of hidden layer {layer} dead")
        elif saturated > 0.5:
            found.append(f"{saturated:.0%} of hidden layer {layer} saturated")
    return "; ".join(found) or "no saturated or dead units found"


def config_differences(saved: dict, now: dict, limit: int = 3) -> str:
    """The fields where two dumped configs differ, as ``field: was -> now``, the first
    ``limit`` of them; a long list (a data glob's files) shows the entries added and removed."""
    def flat(tree, prefix=""):
        if isinstance(tree, dict):
            return {k: v for key, sub in tree.items()
                    for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): tree}

    def show(tree: dict, key: str) -> str:
        text = repr(tree[key]) if key in tree else "(not set)"
        return text if len(text) <= 120 else f"{text[:100]} ... ({len(text)} characters)"

    def change(key: str) -> str:
        was, is_ = before.get(key), after.get(key)
        if isinstance(was, list) and isinstance(is_, list) and len(was) + len(is_) > 6:
            # a long list (a glob's files): what moved, by value (entries may be dicts)
            def value(x) -> str:
                return json.dumps(x, sort_keys=True, default=str)

            had, has = {value(x) for x in was}, {value(x) for x in is_}
            added = [x for x in is_ if value(x) not in had]
            gone = [x for x in was if value(x) not in has]
            parts = [f"{sign}{len(items)} ({reprlib.repr(items)})"
                     for sign, items in (("+", added), ("-", gone)) if items]
            return f"{key}: {len(was)} -> {len(is_)} entries, " + (
                ", ".join(parts) or "the same entries in another order")
        return f"{key}: {show(before, key)} -> {show(after, key)}"

    before, after = flat(saved), flat(now)
    changed = [key for key in sorted(before.keys() | after.keys())
               if before.get(key, before) != after.get(key, after)]
    if not changed:
        return "the same fields, in another form"
    shown = [change(key) for key in changed[:limit]]
    more = len(changed) - limit
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def train_or_resume(trial: Trial, config: Config, console) -> None:
    """Train a trial, or take what its run directory already holds when the study is run again:
    a completed trial as it is, an interrupted (or killed) one resumed, a failed one as failed.

    Raises
    ------
    HepdlError
        The run directory was made by a different config (the grid or base changed).
    """
    from hepdl import api
    from hepdl.runs import Run, read_meta

    run = trial.run
    status = None
    if (run / "config.yaml").is_file():
        saved = with_absolute_paths(Run.load(run).config).model_dump(mode="json")
        now = with_absolute_paths(config).model_dump(mode="json")  # paths as runs store them
        if saved != now:
            raise HepdlError(f"{run} was trained with a different config "
                             f"({config_differences(saved, now)}); remove it or give the study "
                             "another name")
        status = read_meta(run).get("status")
    try:
        if status == "completed" and (run / "metrics.json").is_file():
            pass
        elif status == "failed":
            raise HepdlError(read_meta(run).get("reason") or "failed")
        elif status in ("interrupted", "running") and (run / "last.pt").is_file():
            api.resume(run, console=console)
        else:
            if run.exists():
                nested = run.is_dir() and any(run.glob("*/**/config.yaml"))
                if not run.is_dir() or nested or (
                        any(run.iterdir()) and not (run / "meta.json").is_file()):
                    raise HepdlError(f"{run} holds files but no run of its own (no meta.json, or "
                                     "runs inside it); it is not removed: give the study "
                                     "another directory")
                import shutil

                shutil.rmtree(run)  # a run that never checkpointed: start it over
            api.train(config, run_dir=run, console=console)
        trial.status = "completed"
    except Interrupted:
        trial.status = "interrupted"
        raise
    except HepdlError as exc:
        trial.status, trial.finding = "failed", str(exc)


def run_study(config: Config, *, out: Path | None = None, console=None) -> list[Trial]:
    """Train every trial of ``config.study`` and write the study's table, plot and summary.

    Returns
    -------
    list of Trial
        In grid order; ``status`` is completed, collapsed or failed.
    """
    from hepdl.runs import Run, read_meta

    if config.study is None or not config.study.grid:
        raise HepdlError("the config has no study grid (study: {grid: {...}})")
    out = Path(out) if out is not None else Path(config.runs_dir) / config.name
    out.mkdir(parents=True, exist_ok=True)
    results = []
    grid = trials(config)
    for number, (values, trial_config) in enumerate(grid):
        run = out / f"trial_{number:03d}"
        trial = Trial(number, values, run)
        if console is not None:
            shown = ", ".join(f"{config.study.columns.get(k, k)}={_describe(v, k)}"
                              for k, v in values.items())
            console.rule(f"trial {number + 1}/{len(grid)}: {shown}")
        try:
            train_or_resume(trial, trial_config, console)
        except Interrupted:
            write_study(config, [*results, trial], out)  # the table so far; resume goes on
            raise
        if trial.status == "completed":
            trial.metrics = json.loads((run / "metrics.json").read_text())
            meta = read_meta(run)
            trial.epochs = int(meta.get("epochs_trained") or 0)
            trial.seconds = float(Run.load(run).history["seconds"].sum())
            if trial.metrics.get("warnings"):
                trial.status = "collapsed"
                trial.finding = f"{trial.metrics['warnings'][0].split(':')[0]}: {diagnose(run)}"
            elif trial.metrics.get("findings"):  # overfitting, dead units ... (docs/training.md)
                trial.finding = "; ".join(trial.metrics["findings"])
        results.append(trial)
    write_study(config, results, out)
    return results


def _trial_rows(config: Config, results: list[Trial]) -> list[dict[str, Any]]:
    """The trials' rows in grid order, each with its score as ``_score`` (None unless
    completed)."""
    rows = []
    metric = config.study.metric
    for trial in results:
        labels = {config.study.columns.get(k, k): _describe(v, k) for k, v in trial.values.items()}
        row: dict[str, Any] = {"trial": trial.number,
                               "model": " ".join(f"{k}={v}" for k, v in labels.items())}
        for name, auc in trial.metrics.get("auc", {}).items():
            row[f"{name}_AUC"] = auc
        row.update(labels)
        row.update(epochs=trial.epochs, seconds=round(trial.seconds, 1), status=trial.status,
                   finding=trial.finding or "")
        row["_score"] = trial.metrics.get(metric) if trial.status == "completed" else None
        rows.append(row)
    return rows


def table_rows(config: Config, results: list[Trial]) -> list[dict[str, Any]]:
    """One row per trial as seeds/000 writes them, best first (collapsed and failed last)."""
    rows = sorted(_trial_rows(config, results),
                  key=lambda r: (r["_score"] is None, -(r["_score"] or 0)))
    for row in rows:
        del row["_score"]
    return rows


def replicate_fields(config: Config) -> list[str]:
    """The grid's replicate fields (seed, data.split.fold, data.split.seed: see
    :mod:`hepdl.replicates`), in grid order."""
    from hepdl.replicates import replicate_fields as among

    return among(config.study.grid)


def group_trials(config: Config, results: list[Trial]):
    """The trials grouped by setting (every grid value but the replicates), and the
    :class:`~hepdl.replicates.Design` of the replicates."""
    from hepdl.replicates import design, group_settings

    columns = config.study.columns
    replicates = design(config.data.split, replicate_fields(config), columns)
    raw = [{columns.get(k, k): v for k, v in trial.values.items()} for trial in results]
    settings = group_settings(_trial_rows(config, results),
                              [columns.get(k, k) for k in config.study.grid], replicates,
                              "_score", raw)
    return settings, replicates


def setting_table(config: Config, results: list[Trial]) -> list[dict[str, Any]]:
    """One row per setting, best first: each AUC and the metric as mean and sample standard
    deviation (``..._sd``) over its replicates, ``runs``, how many were scored, and the metric's
    paired difference to the best setting (``vs_best`` ± ``vs_best_err``,
    :func:`hepdl.replicates.setting_rows`)."""
    from hepdl.replicates import setting_rows

    settings, replicates = group_trials(config, results)
    return setting_rows(settings, "_score", replicates, score_name=config.study.metric)


def winners(config: Config, results: list[Trial]) -> list[str]:
    """For each grid dimension: the value with the best trial, and its margin over the next.

    With replicates in the grid the settings are ranked by their mean, and the margin is the
    difference paired over the replicates, with its error and significance
    (:func:`hepdl.replicates.winner_lines`)."""
    from hepdl.replicates import winner_lines

    settings, replicates = group_trials(config, results)
    columns = config.study.columns
    dimensions = {columns.get(p, p): len(values) for p, values in config.study.grid.items()
                  if columns.get(p, p) not in replicates.columns}
    return winner_lines(settings, dimensions, config.study.metric, replicates)


def write_study(config: Config, results: list[Trial], out: Path) -> None:
    """``table.csv``, ``table.md``, ``study.json`` and ``auc_by_trial.png``; with replicates in
    the grid also ``table_by_setting.csv`` and ``auc_by_setting.png`` (mean and spread), and the
    table by setting first in ``table.md``."""
    import pandas as pd

    from hepdl.evaluation.plots import save_figure
    from hepdl.replicates import with_spread

    rows = table_rows(config, results)
    frame = pd.DataFrame(rows)
    summary = winners(config, results)
    varied = replicate_fields(config)
    by_setting = setting_table(config, results) if varied else None
    text = "".join(f"- {line}\n" for line in summary) + ("\n" if summary else "")
    if by_setting is not None:
        atomic_write(out / "table_by_setting.csv", pd.DataFrame(by_setting).to_csv(index=False))
        shown = _markdown(pd.DataFrame(with_spread(by_setting)))
        text += (f"By setting: the mean over the replicates ({', '.join(varied)}) ± the sample "
                 f"standard deviation; vs_best paired with the best setting:\n\n{shown}\n"
                 "Every trial:\n\n")
    atomic_write(out / "table.csv", frame.to_csv(index=False))
    atomic_write(out / "table.md", text + _markdown(frame))
    atomic_write(out / "study.json", json.dumps({
        "name": config.name, "metric": config.study.metric, "summary": summary, "rows": rows,
        **({"settings": by_setting} if by_setting is not None else {})},
        indent=2, default=str) + "\n")
    if any(t.status == "completed" for t in results):
        save_figure(plot_auc_by_trial(rows), out / "auc_by_trial.png")
        if by_setting is not None:
            save_figure(plot_auc_by_trial(by_setting, by_setting=True),
                        out / "auc_by_setting.png")


def _markdown(frame) -> str:
    def cell(column, value):
        if isinstance(value, float) and column.endswith("_AUC"):
            return f"{value:.4f}"
        return f"{value:g}" if isinstance(value, float) else str(value)

    columns = list(frame.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(columns, row, strict=True)) + " |"
              for row in frame.itertuples(False)]
    return "\n".join(lines) + "\n"


def plot_auc_by_trial(rows: list[dict[str, Any]], by_setting: bool = False):
    """Per-class AUC of each completed trial, best first; of rows by setting
    (:func:`setting_table`), the mean of each with its standard deviation as an error bar."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from hepdl.evaluation.plots import _figure, _style

    done = [r for r in rows if (r["runs"] if by_setting else r["status"] == "completed")]
    classes = [k for k in done[0] if k.endswith("_AUC")] if done else []
    with _style():
        fig, axes = _figure(size=(13.0, max(4.5, 0.55 * len(done) + 2.5)))
        ax = axes[0, 0]
        y = np.arange(len(done))[::-1]  # the best trial on top
        for i, name in enumerate(classes):
            x, y_shifted = [r[name] for r in done], y + (i - len(classes) / 2) * 0.06
            if by_setting:
                ax.errorbar(x, y_shifted, xerr=[r.get(f"{name}_sd") or 0 for r in done],
                            marker="o", linestyle="", label=name[:-4])
            else:
                ax.plot(x, y_shifted, marker="o", linestyle="", label=name[:-4])
        ax.set_yticks(y, [r["model"] for r in done], fontsize="x-small")
        ax.set_ylim(-0.6, len(done) - 0.4)
        ax.minorticks_off()
        ax.set_xlabel("AUC (one vs rest)" + (", mean ± sd over the replicates"
                                             if by_setting else ""))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.legend(fontsize="x-small", ncols=2, loc="best")
    return fig
