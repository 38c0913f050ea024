"""A boosted-decision-tree baseline on engineered features, to read a network's numbers against.

scikit-learn's HistGradientBoostingClassifier, scored with the same per-class one-vs-rest AUC as
the networks (:mod:`hepdl.evaluate.metrics`).
"""

from __future__ import annotations

import numpy as np

from hepdl.evaluate.metrics import compute_metrics
from hepdl.evaluate.predict import Predictions


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
