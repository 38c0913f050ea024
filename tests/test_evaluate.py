import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hepdl.evaluation import Predictions, compute_metrics
from hepdl.evaluation.evaluate import write_plots
from hepdl.evaluation.metrics import background_rejection


def three_class(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.5
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return Predictions(scores, labels, {"energy": rng.uniform(10, 510, n)}, ["e", "pi0", "gamma"])


def test_per_class_auc_is_one_vs_rest_from_scikit_learn():
    pred = three_class()
    metrics = compute_metrics(pred)
    for c, name in enumerate(pred.class_names):
        assert metrics["auc"][name] == pytest.approx(roc_auc_score(pred.labels == c,
                                                                   pred.scores[:, c]))
    assert metrics["mean_auc"] == pytest.approx(np.mean(list(metrics["auc"].values())))
    assert metrics["accuracy"] == pytest.approx(np.mean(pred.scores.argmax(1) == pred.labels))
    assert np.sum(metrics["confusion"]) == 3000 and metrics["warnings"] == []


def test_background_rejection_on_a_known_sample():
    # 4 signal scores, 10 background: 50% signal efficiency keeps the two best signal events
    # (score >= 0.85), which 1 of 10 background events passes -> rejection 10; 100% keeps all
    # signal (score >= 0.2), which 7 of 10 background events pass -> rejection 10/7.
    labels = np.array([1] * 4 + [0] * 10)
    score = np.array([0.9, 0.85, 0.7, 0.2] + [0.95, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.1, 0.05,
                                              0.01])
    assert background_rejection(labels, score, 0.5) == pytest.approx(10.0)
    assert background_rejection(labels, score, 1.0) == pytest.approx(10 / 7)
    perfect = np.array([1.0] * 4 + [0.0] * 10)
    assert background_rejection(labels, perfect, 0.5) is None  # no background passes


def test_binary_reads_class_1_as_signal():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    p = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, 500), 0, 1)
    metrics = compute_metrics(Predictions(np.stack([1 - p, p], 1), labels, {}, ["bkg", "sig"]))
    assert list(metrics["auc"]) == ["sig"]
    assert metrics["auc"]["sig"] == pytest.approx(roc_auc_score(labels, p))


def test_binned_metrics_count_and_auc_per_bin():
    pred = three_class()
    edges = [10, 100, 300, 510]
    binned = compute_metrics(pred, {"energy": edges})["binned"]["energy"]
    counts = np.histogram(pred.observers["energy"], edges)[0]
    assert binned["count"] == counts.tolist()
    low = pred.observers["energy"] < 100
    assert binned["auc"]["pi0"][0] == pytest.approx(
        roc_auc_score(pred.labels[low] == 1, pred.scores[low, 1]))
    assert "error" in compute_metrics(pred, {"pt": [0, 1]})["binned"]["pt"]


def test_a_collapsed_network_is_flagged_not_reported_as_auc_half():
    pred = three_class()
    pred.scores[:] = [0.2, 0.3, 0.5]
    metrics = compute_metrics(pred)
    assert metrics["auc"]["e"] == pytest.approx(0.5)
    assert "collapsed network" in metrics["warnings"][0]


def test_regression_metrics_and_plots(tmp_path):
    rng = np.random.default_rng(2)
    energy = rng.uniform(10, 500, 4000)
    predicted = energy * (1 + rng.normal(0, 0.1, 4000))
    pred = Predictions(predicted, energy, {"energy": energy}, [], "regression")
    metrics = compute_metrics(pred, {"energy": [10, 250, 500]})
    assert metrics["relative_resolution"] == pytest.approx(0.1, rel=0.05)
    assert metrics["mse"] == pytest.approx(np.mean((predicted - energy) ** 2))
    names = write_plots(pred, metrics, tmp_path)
    assert names == ["binned_energy.png", "regression.png"]


def test_plots_are_png_files(tmp_path):
    pred = three_class(600)
    metrics = compute_metrics(pred, {"energy": [10, 200, 510]})
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5,
                "lr": 1e-3} for e in range(1, 4)]
    names = write_plots(pred, metrics, tmp_path, history)
    assert names == ["binned_energy.png", "confusion.png", "loss_curves.png", "outputs.png",
                     "roc.png"]
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_background_rejection_at_an_exact_roc_corner():
    # at 50% signal efficiency the cut keeps the two best signal events and no background
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    score = np.array([8, 7, 6, 5, 4, 3, 2, 1])
    assert background_rejection(labels, score, 0.5) is None
    assert background_rejection(labels, score, 1.0) == pytest.approx(2.0)  # cut at 3: 2 of 4
