"""Plots of a scan: the objective against each parameter, parallel coordinates, parameter
importance (Optuna's matplotlib visualizations), and the best trials' ROC curves overlaid."""

from __future__ import annotations

from pathlib import Path

from hepdl.config import Config


def _save(axes, path: Path) -> None:
    import io

    import numpy as np

    from hepdl.runs import atomic_write

    figure = np.ravel([axes])[0].figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())
    import matplotlib.pyplot as plt

    plt.close(figure)


def best_roc(config: Config, study, n_best: int = 3):
    """ROC curves (background rejection vs signal efficiency) of the ``n_best`` trials, one
    panel per signal class, one line style per trial."""
    from optuna.trial import TrialState

    from hepdl.data import load_split
    from hepdl.evaluation.metrics import roc
    from hepdl.evaluation.plots import _figure, _style
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    done.sort(key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
    best = done[:n_best]
    if not best:
        return None
    runs = [Run.load(t.user_attrs["run"]) for t in best]
    tests = {}  # each run on its own test split: a scan over seed or split.fold moves it

    def test_split(run):
        key = (run.config.data.model_dump_json(), run.config.seed)
        if key not in tests:
            tests[key] = load_split(run.config.data, run.config.task, run.config.seed, "test")
        return tests[key]

    names = runs[0].spec["class_names"]
    signals = [1] if len(names) == 2 else list(range(len(names)))
    styles = ["-", "--", ":", "-."]
    with _style():
        fig, axes = _figure(min(len(signals), 2), -(-len(signals) // 2), size=(6.5, 5.5))
        for trial, run, style in zip(best, runs, styles, strict=False):
            test = test_split(run)
            scores = predict(run.network(), test).scores
            for ax, c in zip(axes.flat, signals, strict=False):
                eff_s, eff_b = roc(test.labels == c, scores[:, c])
                keep = eff_b > 0
                ax.plot(eff_s[keep], 1 / eff_b[keep], linestyle=style,
                        label=f"trial {trial.number} ({trial.value:.4f})")
        for ax, c in zip(axes.flat, signals, strict=False):
            ax.set_yscale("log")
            ax.set_xlabel(f"{names[c]} efficiency")
            ax.set_ylabel("Background rejection")
            ax.legend(fontsize="x-small")
        for ax in list(axes.flat)[len(signals):]:
            ax.set_visible(False)
    return fig


def write_scan_report(config: Config, study, out: Path) -> list[Path]:
    """objective_vs_params.png, parallel_coordinates.png, importance.png, best_roc.png."""
    import warnings

    from optuna.visualization import matplotlib as ov

    from hepdl.evaluation.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    written = []
    completed = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        plots = {"objective_vs_params.png": ov.plot_slice,
                 "parallel_coordinates.png": ov.plot_parallel_coordinate}
        if len(completed) >= 2 and len(config.scan.space) >= 2:
            plots["importance.png"] = ov.plot_param_importances
        for name, plot in plots.items():
            if completed:
                _save(plot(study), out / name)
                written.append(out / name)
    figure = best_roc(config, study)
    if figure is not None:
        save_figure(figure, out / "best_roc.png")
        written.append(out / "best_roc.png")
    return written
