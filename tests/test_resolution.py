import numpy as np
import pytest

from hepdl.evaluation.resolution import (
    calibrated_sum,
    plot_resolution,
    resolution_curve,
    resolution_formula,
)


def test_fit_recovers_the_terms_of_a_known_resolution():
    rng = np.random.default_rng(0)
    true = rng.uniform(10, 510, 200_000)
    a, b, c = 0.17, 0.01, 0.3
    measured = true * (1 + rng.normal(0, resolution_formula(true, a, b, c)))
    curve = resolution_curve(true, measured, [10, 20, 40, 80, 150, 300, 510], "test")
    assert curve.a == pytest.approx(a, rel=0.05)
    assert curve.b == pytest.approx(b, abs=0.003)
    assert curve.c == pytest.approx(c, abs=0.15)
    assert sum(curve.counts) == 200_000
    np.testing.assert_allclose(curve.bias, 0, atol=0.002)
    assert plot_resolution([curve]).axes


def test_calibrated_sum_undoes_a_linear_response():
    rng = np.random.default_rng(1)
    true = rng.uniform(10, 500, 1000)
    raw = 0.8 * true - 2 + rng.normal(0, 1, 1000)
    np.testing.assert_allclose(calibrated_sum(raw, true), true, atol=5)


def test_too_few_events_give_points_but_no_fit():
    curve = resolution_curve(np.array([10.0] * 30), np.array([11.0] * 30), [5, 20], "few")
    assert curve.counts == [30] and curve.a is None
