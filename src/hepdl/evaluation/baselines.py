"""Baselines in the run's own report: a BDT and a cut-based identification on engineered
features of the same events, trained on the run's training split and scored on its test split
beside the network, with the statistical error of each difference (paired bootstrap).

This is how seeds/003's CNN is read: it must beat what the standard variables (isolation, H/E,
shower widths, energy ratios) already give. :func:`bdt_baseline` is the stand-alone BDT on
arrays, with its own random split (the calorimeter example beside seeds/000).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hepdl.config import Config, FileSource
from hepdl.errors import ConfigError
from hepdl.evaluation.metrics import compute_metrics
from hepdl.evaluation.predictions import Predictions


def _features(dataset, names: list[str]) -> dict[str, np.ndarray]:
    return {name: dataset.observers[f"baseline.{name}"] for name in names}


def _stack(features: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack(list(features.values()), 1)


def evaluate_baselines(config: Config, pred: Predictions,
                       plots_dir: Path | None) -> dict[str, Any]:
    """Train the baselines of ``config.evaluate.baselines`` and compare them with ``pred`` (the
    network on the test split); writes ``baselines_roc.png`` to ``plots_dir`` (none when None);
    returns the metrics."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from hepdl.data.dataset import load_splits
    from hepdl.evaluation import cuts
    from hepdl.evaluation.plots import plot_baselines, save_figure

    settings = config.evaluate.baselines
    source = config.data.source
    if not isinstance(source, FileSource):
        raise ConfigError("evaluate.baselines", f"needs a file source (npz, hdf5, table, root), "
                                                f"not {source.kind!r}")
    observers = {**source.observers, **{f"baseline.{k}": v for k, v in settings.features.items()}}
    data = config.data.model_copy(update={
        "source": source.model_copy(update={"observers": observers}), "in_memory": True})
    splits = load_splits(data, config.task, config.seed)
    train, test = splits["train"], splits["test"]
    if len(test) != len(pred) or not np.array_equal(test.labels, pred.labels):
        raise ConfigError("evaluate.baselines", "the test split read for the baselines differs "
                                                "from the network's")
    names = pred.class_names
    signal = names.index(settings.signal_class) if settings.signal_class else len(names) - 1
    y_train, y_test = train.labels == signal, test.labels == signal
    f_train, f_test = _features(train, list(settings.features)), _features(test,
                                                                           list(settings.features))
    network = pred.scores[:, signal]
    eff = settings.efficiency
    result: dict[str, Any] = {"signal": names[signal], "efficiency": eff,
                              "features": dict(settings.features),
                              "test_events": {"signal": int(y_test.sum()),
                                              "background": int((~y_test).sum())}}
    scored = {"network": network}
    cut_points = None

    if settings.bdt:
        bdt = HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, max_leaf_nodes=31,
                                             early_stopping=True, validation_fraction=0.2,
                                             random_state=config.seed)
        bdt.fit(_stack(f_train), y_train)
        scored["bdt"] = bdt.predict_proba(_stack(f_test))[:, 1]
    if settings.cuts:
        points = sorted({*settings.cut_efficiencies, eff})
        missing = sorted(set(settings.cuts) - set(settings.features))
        if missing:
            raise ConfigError("evaluate.baselines.cuts", f"{missing[0]!r} is not one of the "
                                                         f"features {sorted(settings.features)}")
        chosen = {k: f_train[k] for k in settings.cuts}
        fitted = cuts.fit_working_points(chosen, y_train, points, dict(settings.cuts),
                                         seed=config.seed)
        tested = {k: f_test[k] for k in settings.cuts}
        passes = [f.passes(tested) for f in fitted]
        sig = [float(p[y_test].mean()) for p in passes]
        bkg = [float(p[~y_test].mean()) for p in passes]
        _, _, cut_auc = cuts.cut_roc(np.array(sig), np.array(bkg))
        scored["cuts"] = passes[points.index(eff)]
        cut_points = (np.array(sig), np.array(bkg))
        result["cuts"] = {"auc": cut_auc, "cuts": fitted[points.index(eff)].cuts_,
                          "working_points": [{"target": t, "signal_efficiency": s,
                                              "background_efficiency": b}
                                             for t, s, b in zip(points, sig, bkg, strict=True)]}

    rejection = cuts.rejection_at(eff)
    for name, score in scored.items():
        entry = result.setdefault(name, {})
        entry[f"rejection_at_{eff}"] = rejection(y_test, score)
        if name == "cuts":  # its AUC comes from its working points (above)
            entry["signal_efficiency"] = float(score[y_test].mean())
        else:
            entry["auc"] = cuts.auc(y_test, score)

    def compare(name: str, statistics: dict) -> dict:
        return {stat: cuts.bootstrap_difference(y_test, network, scored[name], statistic=fn,
                                                n_boot=settings.bootstrap, seed=config.seed)
                for stat, fn in statistics.items()}

    comparisons = {}
    if "bdt" in scored:
        comparisons["network - bdt"] = compare("bdt", {"auc": cuts.auc,
                                                       f"rejection_at_{eff}": rejection})
    if "cuts" in scored:
        # the cuts reach their target on the training split only: the network is read at the
        # efficiency the cuts have on the test split; their AUC has no bootstrap
        reached = result["cuts"]["signal_efficiency"]
        comparisons["network - cuts"] = {
            **compare("cuts", {f"rejection_at_{reached:.4f}": cuts.rejection_at(reached)}),
            "auc": {"difference": result["network"]["auc"] - result["cuts"]["auc"]}}
    result["comparisons"] = comparisons
    curves = {label: scored[name] for name, label in (("network", "network"), ("bdt", "BDT"))
              if name in scored}
    if plots_dir is not None:
        save_figure(plot_baselines(y_test, curves, eff, cut_points),
                    plots_dir / "baselines_roc.png")
    return result


def bdt_baseline(features: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str], *,
                 observers: dict[str, np.ndarray] | None = None,
                 bins: dict[str, list[float]] | None = None, test_fraction: float = 0.3,
                 seed: int = 1) -> dict:
    """Train a BDT on a random split and return its test metrics (per-class AUC, accuracy, and
    AUC in ``bins`` of the ``observers``). Also returned: ``feature_names`` and ``n_train``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    names = sorted(features)
    x = np.stack([features[k] for k in names], 1)
    observers = observers or {}
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed,
                                   stratify=labels)
    x_train, x_test, y_train, y_test = x[train], x[test], labels[train], labels[test]
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=seed,
                                           early_stopping=True, validation_fraction=0.15)
    model.fit(x_train, y_train)
    metrics = compute_metrics(Predictions(model.predict_proba(x_test), y_test,
                                          {k: v[test] for k, v in observers.items()},
                                          list(class_names)), bins)
    metrics.update(feature_names=names, n_train=int(len(y_train)))
    return metrics
