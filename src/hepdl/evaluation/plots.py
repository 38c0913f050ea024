"""Figures a physicist puts on a slide, drawn with matplotlib in the mplhep (ROOT) style.

Each function takes numbers (predictions, metrics, history) and returns a matplotlib Figure, so a
notebook shows it inline and a run saves it; none touches pyplot's global state.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hepdl.evaluation.metrics import roc
from hepdl.evaluation.predictions import Predictions


def _style():
    import logging

    import matplotlib.style
    import mplhep

    # the ROOT style names fonts this machine may lack; matplotlib's fallback is fine
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return matplotlib.style.context(mplhep.style.ROOT)


def _figure(ncols: int = 1, nrows: int = 1, size=(7.5, 6.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _signal_classes(names: Sequence[str]) -> list[int]:
    return [1] if len(names) == 2 else list(range(len(names)))


def plot_roc(pred: Predictions, auc: dict[str, float | None] | None = None):
    """ROC curves the physics way: background rejection 1/eps_B (log) vs signal efficiency."""
    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for c in _signal_classes(pred.class_names):
            is_signal = pred.labels == c
            if is_signal.all() or not is_signal.any():
                continue
            eff_s, eff_b = roc(is_signal, pred.scores[:, c])
            keep = eff_b > 0
            label = pred.class_names[c]
            if auc and auc.get(label) is not None:
                label += f" (AUC {auc[label]:.4f})"
            ax.plot(eff_s[keep], 1.0 / eff_b[keep], label=label)
        ax.plot([0, 1], [1, 1], color="grey", linestyle=":", label="random")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Signal efficiency")
        ax.set_ylabel("Background rejection")
        ax.legend(title="signal vs rest" if len(pred.class_names) > 2 else None,
                  fontsize="x-small" if len(pred.class_names) > 4 else "small",
                  ncols=2 if len(pred.class_names) > 4 else 1, loc="lower left")
    return fig


def plot_baselines(is_signal: np.ndarray, scores: dict[str, np.ndarray], efficiency: float,
                   cut_points: tuple[np.ndarray, np.ndarray] | None = None):
    """The network's ROC beside its baselines': a curve per score, and the working points of a
    cut-based ID (signal and background efficiencies) as markers."""
    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for label, score in scores.items():
            eff_s, eff_b = roc(is_signal, score)
            keep = eff_b > 0
            ax.plot(eff_s[keep], 1.0 / eff_b[keep], label=label)
        if cut_points is not None:
            eff_s, eff_b = cut_points
            keep = eff_b > 0
            ax.plot(eff_s[keep], 1.0 / eff_b[keep], "o--", label="cut-based")
        ax.axvline(efficiency, color="grey", linestyle=":")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("Signal efficiency")
        ax.set_ylabel("Background rejection")
        ax.legend(loc="lower left")
    return fig


def plot_outputs(pred: Predictions):
    """The network output of each class, histogrammed separately for each true class."""
    classes = _signal_classes(pred.class_names)
    ncols = min(len(classes), 2 if len(classes) <= 4 else 4)
    nrows = -(-len(classes) // ncols)
    bins = np.linspace(0, 1, 41)
    with _style():
        fig, axes = _figure(ncols, nrows, size=(6.0, 4.8) if len(classes) > 1 else (7.5, 6.0))
        for ax, c in zip(axes.flat, classes, strict=False):
            for t, name in enumerate(pred.class_names):
                values = pred.scores[pred.labels == t, c]
                if len(values):
                    ax.hist(values, bins=bins, histtype="step", density=True, linewidth=1.8,
                            label=f"true {name}")
            ax.set_yscale("log")
            ax.set_xlabel(f"P({pred.class_names[c]})")
            ax.set_ylabel("Events (normalized)")
            ax.legend(fontsize="x-small", ncols=2 if len(pred.class_names) > 4 else 1)
        for ax in list(axes.flat)[len(classes):]:
            ax.set_visible(False)
    return fig


def plot_history(rows: list[dict]):
    """Loss, accuracy and learning rate per epoch."""
    epochs = [r["epoch"] for r in rows]
    has_acc = any("val_accuracy" in r for r in rows)
    with _style():
        fig, axes = _figure(2 + has_acc, 1, size=(6.5, 5.5))
        ax = axes[0, 0]
        ax.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
        if any("val_loss" in r for r in rows):
            ax.plot(epochs, [r.get("val_loss") for r in rows], marker="s", label="validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Loss")
        ax.legend()
        if has_acc:
            ax = axes[0, 1]
            ax.plot(epochs, [r.get("val_accuracy") for r in rows], marker="s")
            ax.set_xlabel("Epoch")
            ax.set_ylabel("Validation accuracy")
        ax = axes[0, -1]
        ax.plot(epochs, [r["lr"] for r in rows], marker="o")
        ax.set_yscale("log")
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Learning rate")
    return fig


def plot_health(rows: list[dict]):
    """Per layer and epoch: gradient norm, update-to-weight ratio, and the fraction of dead
    (ReLU) or saturated (tanh, sigmoid) units (hepdl.training.health)."""
    def series(column: str) -> dict[str, tuple[list[int], list[float]]]:
        out: dict[str, tuple[list[int], list[float]]] = {}
        for r in rows:
            if r.get(column) not in (None, ""):
                epochs, values = out.setdefault(r["layer"], ([], []))
                epochs.append(int(r["epoch"]))
                values.append(float(r[column]))
        return out

    panels = [("grad_norm", "Gradient norm", True), ("update_ratio", "Update / weight", True),
              ("dead_fraction", "Dead units (ReLU)", False),
              ("saturated_fraction", "Saturated units", False)]
    panels = [p for p in panels if series(p[0])]
    with _style():
        fig, axes = _figure(len(panels), 1, size=(6.5, 5.5))
        for ax, (column, label, log) in zip(axes[0], panels, strict=True):
            for layer, (epochs, values) in series(column).items():
                ax.plot(epochs, values, marker=".", label=layer)
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("Epoch")
            ax.set_ylabel(label)
            ax.legend(fontsize="xx-small")
    return fig


def plot_confusion(confusion: list[list[int]], class_names: list[str]):
    """Confusion matrix, each true class (row) normalized to 1."""
    counts = np.asarray(confusion, dtype=float)
    fraction = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    n = len(class_names)
    with _style():
        fig, axes = _figure(size=(max(6.0, 0.7 * n + 3), max(5.0, 0.7 * n + 2)))
        ax = axes[0, 0]
        image = ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{fraction[i, j]:.2f}", ha="center", va="center",
                        color="white" if fraction[i, j] > 0.5 else "black", fontsize="small")
        ax.set_xticks(range(n), class_names)
        ax.set_yticks(range(n), class_names)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.minorticks_off()
        fig.colorbar(image, ax=ax, label="Fraction of true class")
    return fig


def plot_binned(binned: dict, observer: str):
    """AUC per class (classification) or relative resolution (regression) in observer bins."""
    edges = np.asarray(binned["edges"])
    centers, half = 0.5 * (edges[1:] + edges[:-1]), 0.5 * np.diff(edges)
    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        if "auc" in binned:
            for name, values in binned["auc"].items():
                v = np.array([np.nan if x is None else x for x in values])
                ax.errorbar(centers, v, xerr=half, marker="o", linestyle="", label=name)
            ax.set_ylabel("AUC (one vs rest)")
            ax.legend()
        else:
            v = np.array([np.nan if x is None else x for x in binned["relative_resolution"]])
            ax.errorbar(centers, v, xerr=half, marker="o", linestyle="")
            ax.set_ylabel(r"$\sigma$(pred - true) / true")
        ax.set_xlabel(observer)
    return fig


def plot_regression(pred: Predictions):
    """Predicted vs true (2D histogram) and the relative residual distribution."""
    y, p = pred.labels.astype(float), pred.scores
    with _style():
        fig, axes = _figure(2, 1)
        ax = axes[0, 0]
        lo, hi = np.percentile(np.concatenate([y, p]), [0.5, 99.5])
        ax.hist2d(y, p, bins=50, range=[[lo, hi], [lo, hi]], cmin=1, cmap="viridis")
        ax.plot([lo, hi], [lo, hi], color="red", linestyle="--", label="pred = true")
        ax.set_xlabel("True")
        ax.set_ylabel("Predicted")
        ax.legend()
        ax = axes[0, 1]
        nonzero = y != 0
        ax.hist((p[nonzero] - y[nonzero]) / y[nonzero], bins=60, histtype="step", linewidth=1.8)
        ax.set_xlabel("(pred - true) / true")
        ax.set_ylabel("Events")
    return fig


def save_figure(fig, path: Path) -> None:
    """Write a figure as PNG through a temporary file."""
    from hepdl.runs import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
