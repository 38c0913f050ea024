"""Cut-based identification and paired bootstrap comparisons (hepdl.evaluation.cuts)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from hepdl.evaluation.cuts import (
    CutBasedID,
    auc,
    bootstrap_difference,
    cut_roc,
    fit_working_points,
    rejection_at,
)

SHIFTS = (1.5, 2.5)  # signal mean of two unit Gaussians; background at 0


def gaussians(n: int, seed: int, shifts=SHIFTS):
    """``n`` signal and ``n`` background events, independent unit Gaussian features."""
    rng = np.random.default_rng(seed)
    is_signal = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    x = rng.normal(size=(2 * n, len(shifts))) + np.outer(is_signal, shifts)
    return {f"x{i}": x[:, i] for i in range(len(shifts))}, is_signal


def best_two_cuts(efficiency: float, shifts=SHIFTS) -> float:
    """Lowest background efficiency of ``x0 > c0 and x1 > c1`` at this signal efficiency, for
    independent features: scan the split efficiency = e0 * e1 finely."""
    w = np.linspace(0.0, 1.0, 100_001)
    c0 = shifts[0] + norm.isf(efficiency ** w)
    c1 = shifts[1] + norm.isf(efficiency ** (1 - w))
    return float((norm.sf(c0) * norm.sf(c1)).min())


def test_two_gaussian_features_reach_the_analytic_optimum():
    features, is_signal = gaussians(20_000, seed=1)
    fitted = CutBasedID({"x0": "above", "x1": "above"}).fit(features, is_signal, 0.9)
    assert fitted.signal_efficiency_ >= 0.9
    c0, c1 = fitted.cuts_["x0"], fitted.cuts_["x1"]
    # the fitted cuts on the true distributions
    true_sig = norm.sf(c0 - SHIFTS[0]) * norm.sf(c1 - SHIFTS[1])
    true_bkg = norm.sf(c0) * norm.sf(c1)
    assert true_sig == pytest.approx(0.9, abs=0.006)  # 3 sigma of the fit sample's signal
    # at the signal efficiency the cuts really have, no pair of cuts does better; the equal
    # split of the inefficiency is 0.011 worse, a cut on x1 alone 0.016
    assert 0 <= true_bkg - best_two_cuts(true_sig) < 0.002
    optimum = best_two_cuts(0.9)
    assert fitted.background_efficiency_ == pytest.approx(optimum, abs=0.006)

    test_features, test_signal = gaussians(20_000, seed=2)
    passed = fitted.passes(test_features)
    assert passed[test_signal].mean() == pytest.approx(0.9, abs=0.02)
    assert passed[~test_signal].mean() == pytest.approx(optimum, abs=0.01)


def test_cuts_follow_the_direction_of_the_feature():
    rng = np.random.default_rng(3)
    is_signal = np.r_[np.ones(5000, bool), np.zeros(5000, bool)]
    features = {"iso": rng.normal(size=10_000) - 1.5 * is_signal}  # signal is low
    below = CutBasedID({"iso": "below"}).fit(features, is_signal, 0.9)
    above = CutBasedID({"iso": "above"}).fit(features, is_signal, 0.9)
    # iso < -1.5 + 1.28 keeps 41% of the background, iso > -1.5 - 1.28 keeps 99.7%
    assert below.background_efficiency_ == pytest.approx(norm.cdf(-1.5 + norm.ppf(0.9)),
                                                         abs=0.03)
    assert above.background_efficiency_ > 0.95
    assert below.cuts_["iso"] == pytest.approx(-1.5 + norm.ppf(0.9), abs=0.1)
    for fitted in (below, above):
        assert fitted.signal_efficiency_ >= 0.9


def test_a_useless_feature_keeps_its_signal():
    rng = np.random.default_rng(4)
    is_signal = np.r_[np.ones(5000, bool), np.zeros(5000, bool)]
    features = {"good": rng.normal(size=10_000) + 2 * is_signal,
                "useless": rng.normal(size=10_000)}
    fitted = CutBasedID({"good": "above", "useless": "above"}).fit(features, is_signal, 0.8)
    assert fitted.signal_efficiency_ >= 0.8
    useless_alone = features["useless"][is_signal] > fitted.cuts_["useless"]
    assert useless_alone.mean() >= 0.98
    good_alone = features["good"][is_signal] > fitted.cuts_["good"]
    assert good_alone.mean() < 0.82


def test_nan_fails_the_cut_and_efficiencies_count_it():
    rng = np.random.default_rng(5)
    is_signal = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    x = rng.normal(size=4000) + 2 * is_signal
    x[:200] = np.nan  # 10% of the signal
    fitted = CutBasedID({"x": "above"}).fit({"x": x}, is_signal, 0.85)
    passed = fitted.passes({"x": x})
    assert not passed[:200].any()
    assert fitted.signal_efficiency_ >= 0.85
    assert fitted.signal_efficiency_ == passed[is_signal].mean()
    with pytest.raises(ValueError, match="out of reach"):
        CutBasedID({"x": "above"}).fit({"x": x}, is_signal, 0.95)


def test_working_points_and_errors():
    features, is_signal = gaussians(3000, seed=6)
    fitted = fit_working_points(features, is_signal, [0.5, 0.8, 0.95],
                                {"x0": "above", "x1": "above"})
    sig = [f.signal_efficiency_ for f in fitted]
    bkg = [f.background_efficiency_ for f in fitted]
    assert all(s >= t for s, t in zip(sig, [0.5, 0.8, 0.95], strict=True))
    assert bkg == sorted(bkg) and bkg[0] < bkg[-1]
    with pytest.raises(ValueError, match="feature 'x0': direction must be 'below' or 'above', "
                                         "not 'up'"):
        CutBasedID({"x0": "up"})
    with pytest.raises(ValueError, match="efficiency must be in"):
        CutBasedID({"x0": "above"}).fit(features, is_signal, 1.5)
    with pytest.raises(ValueError, match="feature 'x2' is missing"):
        CutBasedID({"x2": "above"}).fit(features, is_signal, 0.9)
    with pytest.raises(RuntimeError, match="not fitted"):
        CutBasedID({"x0": "above"}).passes(features)


def test_cut_roc_area_by_hand_and_dominated_points():
    sig, bkg, area = cut_roc(np.array([0.8, 0.5]), np.array([0.3, 0.1]))
    np.testing.assert_allclose(sig, [0, 0.5, 0.8, 1])
    np.testing.assert_allclose(bkg, [0, 0.1, 0.3, 1])
    # under 1 - bkg: 0.5 * 0.95 + 0.3 * 0.8 + 0.2 * 0.35; under sig vs bkg the same 0.785
    assert area == pytest.approx(0.785)
    # (0.6, 0.4) is beaten by (0.8, 0.3), (0, 0.2) by (0, 0); the curve is unchanged
    sig2, bkg2, area2 = cut_roc(np.array([0.5, 0.6, 0.8, 0.0]), np.array([0.1, 0.4, 0.3, 0.2]))
    np.testing.assert_allclose(sig2, sig)
    np.testing.assert_allclose(bkg2, bkg)
    assert area2 == pytest.approx(0.785)
    # a point at full signal efficiency replaces (1, 1)
    sig3, bkg3, area3 = cut_roc(np.array([1.0]), np.array([0.5]))
    np.testing.assert_allclose(sig3, [0, 1])
    np.testing.assert_allclose(bkg3, [0, 0.5])
    assert area3 == pytest.approx(0.75)


def test_cut_roc_area_is_the_roc_auc():
    # the working points of a four-level score trace its whole ROC: the areas agree
    rng = np.random.default_rng(7)
    is_signal = rng.random(4000) < 0.4
    score = np.clip(np.round(rng.normal(size=4000) + is_signal), -1, 2)
    sig = [float((score >= t)[is_signal].mean()) for t in (0, 1, 2)]
    bkg = [float((score >= t)[~is_signal].mean()) for t in (0, 1, 2)]
    assert cut_roc(np.array(sig), np.array(bkg))[2] == pytest.approx(
        roc_auc_score(is_signal, score), abs=1e-12)


def test_rejection_at_exact_values():
    is_signal = np.r_[np.ones(10, bool), np.zeros(8, bool)]
    # signal 0..9: the 0.5 quantile is 4.5, so scores >= 4.5 pass; background 5 passes
    score = np.r_[np.arange(10.0), [0, 1, 2, 3, 4, 5, 0, 0]]
    assert rejection_at(0.5)(is_signal, score) == pytest.approx(8.0)
    # the 0.2 quantile of the signal is 1.8: background 2, 3, 4, 5 pass
    assert rejection_at(0.8)(is_signal, score) == pytest.approx(2.0)
    passed = np.r_[np.ones(10, bool), [True, False, False, True, False, False, False, False]]
    assert rejection_at(0.5)(is_signal, passed) == pytest.approx(4.0)
    assert rejection_at(0.5)(is_signal, np.r_[np.ones(10, bool), np.zeros(8, bool)]) == math.inf


def scores(n: int, seed: int):
    rng = np.random.default_rng(seed)
    is_signal = rng.random(n) < 0.5
    good = rng.normal(size=n) + 1.5 * is_signal
    weak = rng.normal(size=n) + 0.8 * is_signal
    return is_signal, good, weak


def test_bootstrap_identical_scores():
    is_signal, good, _ = scores(1000, seed=8)
    result = bootstrap_difference(is_signal, good, good.copy(), statistic=auc, n_boot=20)
    assert result["a"] == result["b"] == pytest.approx(roc_auc_score(is_signal, good))
    assert result["difference"] == 0 and result["error"] == 0 and result["significance"] == 0


def test_bootstrap_finds_a_better_score_and_errors_scale_with_the_sample():
    is_signal, good, weak = scores(2000, seed=9)
    result = bootstrap_difference(is_signal, good, weak, statistic=auc, n_boot=50)
    assert result["difference"] == pytest.approx(result["a"] - result["b"])
    assert result["difference"] > 0.1 and result["significance"] > 3
    assert result["n_boot"] == 50

    small = bootstrap_difference(*scores(1000, seed=10), statistic=auc, n_boot=100, seed=1)
    large = bootstrap_difference(*scores(4000, seed=11), statistic=auc, n_boot=100, seed=2)
    assert 0.35 < large["error"] / small["error"] < 0.7


def test_bootstrap_against_a_cut_working_point():
    is_signal, good, weak = scores(2000, seed=12)
    passed = weak > np.quantile(weak[is_signal], 0.3)  # about 70% signal efficiency
    stat = rejection_at(0.7)
    result = bootstrap_difference(is_signal, good, passed, statistic=stat, n_boot=50)
    assert result["b"] == pytest.approx(1 / passed[~is_signal].mean())
    assert result["significance"] > 3 and np.isfinite(result["error"])
    # no background passes: the rejection is inf, the error leaves those resamples out
    tight = is_signal.copy()
    result = bootstrap_difference(is_signal, good, tight, statistic=stat, n_boot=20)
    assert result["b"] == math.inf and result["difference"] == -math.inf
    assert result["n_boot"] == 0 and math.isnan(result["error"])
