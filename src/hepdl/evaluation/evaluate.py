"""Evaluate a trained run: on its own test split, or with frozen weights on other data.

The second is the robustness check of seeds/003: the network and its fitted preprocessing stay
as trained, only the data changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hepdl.config import DataConfig
from hepdl.data.dataset import load_dataset, load_split
from hepdl.errors import DataError
from hepdl.evaluation import plots
from hepdl.evaluation.metrics import compute_metrics
from hepdl.evaluation.predictions import Predictions, predict
from hepdl.runs import HEALTH, HISTORY, METRICS, PLOTS, Run, atomic_write


def _check_compatible(run: Run, dataset, where: str) -> None:
    expected = {k: tuple(v) for k, v in run.spec["input_shapes"].items()}
    got = dataset.input_shapes
    if got != expected:
        raise DataError(where, f"inputs {got} do not match the trained model's {expected}")
    if run.config.task == "classification" and dataset.class_names != run.spec["class_names"]:
        raise DataError(where, f"classes {dataset.class_names} differ from the trained model's "
                               f"{run.spec['class_names']}")


def _in_bins(pred: Predictions, bins: dict[str, list[float]]):
    """(file name suffix, the predictions in the bin) for each bin holding both classes."""
    import numpy as np

    for observer, edges in bins.items():
        if observer not in pred.observers:
            continue
        index = np.digitize(pred.observers[observer], edges) - 1
        for b, (lo, hi) in enumerate(zip(edges, edges[1:], strict=False)):
            part = Predictions(pred.scores[index == b], pred.labels[index == b], {},
                               pred.class_names, pred.task)
            if len(np.unique(part.labels)) > 1:
                yield f"{observer}_{lo:g}-{hi:g}", part


def write_plots(pred: Predictions, metrics: dict[str, Any], out: Path,
                history: list[dict] | None = None,
                binned_plots: dict[str, list[float]] | None = None,
                health: list[dict] | None = None) -> list[str]:
    """Every figure of an evaluation as PNG files in ``out``; returns their names.
    ``binned_plots``: observer -> bin edges of ROC curves and output histograms per bin."""
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if history:
        figures["loss_curves.png"] = plots.plot_history(history)
    if health:
        figures["health.png"] = plots.plot_health(health)
    if pred.task == "regression":
        figures["regression.png"] = plots.plot_regression(pred)
    else:
        figures["roc.png"] = plots.plot_roc(pred, metrics.get("auc"))
        figures["outputs.png"] = plots.plot_outputs(pred)
        figures["confusion.png"] = plots.plot_confusion(metrics["confusion"], pred.class_names)
    if pred.task == "classification" and binned_plots:
        for suffix, part in _in_bins(pred, binned_plots):
            figures[f"roc_{suffix}.png"] = plots.plot_roc(part)
            figures[f"outputs_{suffix}.png"] = plots.plot_outputs(part)
    for observer, binned in metrics.get("binned", {}).items():
        if "error" not in binned:
            figures[f"binned_{observer}.png"] = plots.plot_binned(binned, observer)
    for name, fig in figures.items():
        plots.save_figure(fig, out / name)
    return sorted(figures)


def _event_sums(x):
    """Each event's sum over its cells (float64), dense or as hits."""
    import numpy as np

    from hepdl.data.hits import Hits

    if isinstance(x, Hits):
        return x.event_reduce(x.value.double(), "sum").numpy()
    return x.reshape(len(x), -1).sum(1, dtype=np.float64)


def _resolution(pred: Predictions, dataset, settings, out: Path | None) -> list[dict]:
    """Relative resolution vs true energy of the network and of the calibrated cell sum; the
    figure goes to ``out/plots`` (none when ``out`` is None)."""
    from hepdl.evaluation.resolution import calibrated_sum, plot_resolution, resolution_curve

    true = pred.labels.astype(float)
    curves = [resolution_curve(true, pred.scores, settings.bins, "network")]
    if settings.compare_sum:
        raw = sum(_event_sums(v) for v in dataset.inputs.values())
        curves.append(resolution_curve(true, calibrated_sum(raw, true), settings.bins,
                                       "calibrated cell sum"))
    if out is not None:
        plots.save_figure(plot_resolution(curves), out / PLOTS / "resolution.png")
    return [c.to_dict() for c in curves]


def with_image_norm(network, norm: str) -> list[str]:
    """Replace the norm of every per-image normalization in the frozen preprocessing (seeds/003:
    a network trained with the max norm, evaluated with L1); returns the inputs changed."""
    from hepdl.preprocess.scaling import ImageNorm

    if norm not in ("l1", "l2", "max"):
        raise DataError("image_norm", f"expected l1, l2 or max, got {norm!r}")
    changed = []
    for name, chain in network.preprocess.items():
        for module in chain.modules():
            if isinstance(module, ImageNorm):
                module.norm = norm
                changed.append(name)
    if not changed:
        raise DataError("--image-norm", "the run's preprocessing has no image_norm to change")
    return sorted(set(changed))


def _rows(path: Path) -> list[dict]:
    import csv

    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def run_findings(run: Run) -> list[str]:
    """The training's findings (exploding or vanishing gradients, dead or saturated units,
    overfitting) from the run's history.csv and health.csv."""
    from hepdl.training.diagnosis import training_findings

    history = _rows(run.path / HISTORY)
    early = run.config.train.early_stopping is not None and len(history) < run.config.train.epochs
    return training_findings(history, _rows(run.path / HEALTH), early)


def evaluate_run(run: Run | str | Path, data: DataConfig | None = None,
                 out: Path | None = None, image_norm: str | None = None) -> dict[str, Any]:
    """Metrics and plots of a run, written to ``out`` (default: the run directory).

    Parameters
    ----------
    run : Run or path
        A trained run (it needs ``model.pt``).
    data : DataConfig, optional
        Other data to evaluate the frozen network on (every event of it); default: the run's
        own test split.
    out : Path, optional
        Where metrics.json and plots/ go; default the run directory, or
        ``RUN/evaluations/<name>`` for other data.
    """
    run = run if isinstance(run, Run) else Run.load(run)
    config = run.config
    if data is None:
        dataset = load_split(config.data, config.task, config.seed, "test")
        where = "test split"
    else:
        dataset = load_dataset(data, config.task)
        where = f"data {getattr(data.source, 'path', data.source.kind)}"
    _check_compatible(run, dataset, where)

    network = run.network()
    if image_norm is not None:
        changed = with_image_norm(network, image_norm)
        where += f", image norm of {', '.join(changed)} changed to {image_norm}"
    pred = predict(network, dataset)
    metrics = compute_metrics(pred, config.evaluate.bins, config.evaluate.efficiencies)
    metrics["evaluated_on"] = where
    if out is not None and Path(out) != run.path and (run.path / METRICS).is_file():
        # the robustness checks of seeds/003: how far the result moved from the run's own
        own = json.loads((run.path / METRICS).read_text())
        metrics["shift"] = {"auc": {k: v - own["auc"][k] for k, v in metrics.get("auc", {}).items()
                                    if v is not None and own.get("auc", {}).get(k) is not None}}
    out = Path(out) if out is not None else run.path
    history = run.history.to_dict("records") if out == run.path else None
    health = None
    if out == run.path:
        metrics["findings"] = run_findings(run)
        health = _rows(run.path / HEALTH)
    drawn = config.evaluate.plots
    metrics["plots"] = write_plots(
        pred, metrics, out / PLOTS, history,
        config.evaluate.bins if config.evaluate.binned_plots else None, health) if drawn else []
    if (data is None and image_norm is None and config.evaluate.baselines is not None
            and pred.task == "classification"):
        from hepdl.evaluation.baselines import evaluate_baselines

        metrics["baselines"] = evaluate_baselines(config, pred, out / PLOTS if drawn else None)
        metrics["plots"] = sorted([*metrics["plots"], *["baselines_roc.png"] * drawn])
    if pred.task == "regression" and config.evaluate.resolution is not None:
        metrics["resolution"] = _resolution(pred, dataset, config.evaluate.resolution,
                                            out if drawn else None)
        metrics["plots"] = sorted([*metrics["plots"], *["resolution.png"] * drawn])
    atomic_write(out / METRICS, json.dumps(metrics, indent=2) + "\n")
    return metrics
