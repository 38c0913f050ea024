"""Test metrics the way physicists read them: per-class AUC, background rejection, binned.

AUCs and ROC curves come from scikit-learn; one class against the rest for more than two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hepdl.evaluation.predictions import Predictions


def roc(labels_signal: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signal efficiency (TPR) and background efficiency (FPR) over all thresholds (sklearn)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels_signal, score)
    return tpr, fpr


def background_rejection(labels_signal: np.ndarray, score: np.ndarray,
                         efficiency: float) -> float | None:
    """1 / (background efficiency) at the given signal efficiency; None where no background
    event passes (the rejection is beyond what the test sample can measure)."""
    tpr, fpr = roc(labels_signal, score)
    # the loosest cut reaching the efficiency: the smallest background efficiency with
    # tpr >= efficiency (interpolating a step ROC at a vertical segment takes the larger fpr)
    i = min(int(np.searchsorted(tpr, efficiency, side="left")), len(tpr) - 1)
    eff_b = float(fpr[i])
    return None if eff_b <= 0 else 1.0 / eff_b


def _auc(is_signal: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if is_signal.all() or not is_signal.any():
        return None  # AUC is undefined with one class present
    return float(roc_auc_score(is_signal, score))


def _normalized(scores: np.ndarray) -> np.ndarray:
    """Rows that sum to 1 in float64 (float32 softmax rounding; per-class sigmoids of bce)."""
    scores = np.clip(scores, 1e-12, 1)
    return scores / scores.sum(1, keepdims=True)


def collapse_warning(scores: np.ndarray) -> str | None:
    """A network whose output does not depend on its input has not learned: say so."""
    spread = float(np.std(scores, axis=0).max()) if len(scores) > 1 else 0.0
    if spread < 1e-6:
        return (f"output constant over the test events (spread {spread:.1e}): a collapsed network, "
                "its AUC of 0.5 is not a result")
    return None


def classification_metrics(pred: Predictions, efficiencies=(0.5, 0.9)) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, log_loss

    names, y, s = pred.class_names, pred.labels, pred.scores
    n_classes = len(names)
    # binary problems are read as class 1 (signal) against class 0 (background)
    signal_classes = [1] if n_classes == 2 else list(range(n_classes))
    auc, rejection = {}, {}
    for c in signal_classes:
        is_signal = y == c
        auc[names[c]] = _auc(is_signal, s[:, c])
        if auc[names[c]] is not None:
            rejection[names[c]] = {f"{e:g}": background_rejection(is_signal, s[:, c], e)
                                   for e in efficiencies}
    defined = [v for v in auc.values() if v is not None]
    counts = confusion_matrix(y, s.argmax(1), labels=list(range(n_classes)))
    metrics = {
        "task": "classification",
        "n_events": int(len(y)),
        "class_names": names,
        "accuracy": float((s.argmax(1) == y).mean()),
        "loss": float(log_loss(y, _normalized(s), labels=list(range(n_classes)))),
        "auc": auc,
        "mean_auc": float(np.mean(defined)) if defined else None,
        "background_rejection": rejection,
        "confusion": counts.tolist(),
        "events_per_class": np.bincount(y, minlength=n_classes).tolist(),
    }
    return metrics


def regression_metrics(pred: Predictions) -> dict[str, Any]:
    y, p = pred.labels.astype(np.float64), pred.scores
    residual = p - y
    metrics = {"task": "regression", "n_events": int(len(y)), "mse": float(np.mean(residual**2)),
               "mae": float(np.mean(np.abs(residual))), "bias": float(np.mean(residual))}
    nonzero = y != 0
    if nonzero.any():
        relative = residual[nonzero] / y[nonzero]
        metrics["relative_bias"] = float(np.mean(relative))
        metrics["relative_resolution"] = float(np.std(relative))
    return metrics


def binned_metrics(pred: Predictions, bins: dict[str, list[float]]) -> dict[str, Any]:
    """Performance in bins of each observer (energy, pT): counts, accuracy or resolution, AUC."""
    out = {}
    for observer, edges in bins.items():
        if observer not in pred.observers:
            out[observer] = {"error": f"no observer {observer!r}; have {sorted(pred.observers)}"}
            continue
        value = pred.observers[observer]
        index = np.digitize(value, edges) - 1
        table: dict[str, Any] = {"edges": list(edges), "count": []}
        for b in range(len(edges) - 1):
            part = Predictions(pred.scores[index == b], pred.labels[index == b], {},
                               pred.class_names, pred.task)
            table["count"].append(len(part))
            if pred.task == "regression":
                m = regression_metrics(part) if len(part) else {}
                for key in ("relative_resolution", "relative_bias", "mae"):
                    table.setdefault(key, []).append(m.get(key))
                continue
            table.setdefault("accuracy", []).append(
                float((part.scores.argmax(1) == part.labels).mean()) if len(part) else None)
            signal_classes = [1] if len(pred.class_names) == 2 else range(len(pred.class_names))
            for c in signal_classes:
                auc = _auc(part.labels == c, part.scores[:, c]) if len(part) else None
                table.setdefault("auc", {}).setdefault(pred.class_names[c], []).append(auc)
        out[observer] = table
    return out


def compute_metrics(pred: Predictions, bins: dict[str, list[float]] | None = None,
                    efficiencies=(0.5, 0.9)) -> dict[str, Any]:
    """Every metric of a prediction set, as JSON-ready data."""
    if pred.task == "regression":
        metrics = regression_metrics(pred)
    else:
        metrics = classification_metrics(pred, efficiencies)
    metrics["warnings"] = [w for w in [collapse_warning(pred.scores)] if w]
    if bins:
        metrics["binned"] = binned_metrics(pred, bins)
    return metrics
