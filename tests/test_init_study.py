"""The initialization study against seeds/002's variance argument."""

import json
import math

import numpy as np
import pytest

from hepdl.config import config_from_dict
from hepdl.init_study import SCHEMES, run_init_study, variance_through_depth

from .conftest import small_config

RELU_VARIANCE = 0.5 - 1 / (2 * math.pi)  # Var(ReLU(z)) / Var(z) for z ~ N(0, s^2)


def n_live_pixels() -> int:
    """Standardized digits: variance 1 for every pixel that varies, 0 for the constant ones."""
    from sklearn.datasets import load_digits

    return int((load_digits().data.std(0) > 0).sum())


@pytest.mark.parametrize(("init", "weight_variance"), [
    ("normal", 1.0), ("he_normal", 2 / 64), ("glorot_normal", 2 / (64 + 64))])
def test_first_layer_variance_is_n_in_var_w_var_x(tmp_path, init, weight_variance):
    """Var(z) = n_in Var(w) Var(x) for the first layer's pre-activations, so its ReLU output
    has (1/2 - 1/(2 pi)) of it (seeds/002)."""
    config = config_from_dict(small_config(tmp_path, model={"width": 64, "depth": 3,
                                                            "init": init}))
    first = variance_through_depth(config)[0]
    expected = RELU_VARIANCE * n_live_pixels() * weight_variance
    assert first == pytest.approx(expected, rel=0.15)


def test_study_table_plot_and_the_explosion_of_the_naive_init(tmp_path):
    config = config_from_dict(small_config(tmp_path, model={"width": 64, "depth": 5},
                                           train={"epochs": 2}))
    result = run_init_study(config)
    rows = {r["init"]: r for r in result["rows"]}
    assert list(rows) == list(SCHEMES)
    naive, he = rows["normal"]["variance_by_layer"], rows["he_normal"]["variance_by_layer"]
    assert len(naive) == 5 and naive[-1] / naive[0] > 1e4  # grows ~ n_in / 2 per layer
    assert 0.1 < he[-1] / he[0] < 10  # He keeps ReLU layers' variance
    assert rows["he_normal"]["accuracy"] > rows["normal"]["accuracy"]
    out = tmp_path / "runs" / "t-init"
    assert json.loads((out / "init.json").read_text())["rows"][0]["init"] == "glorot_normal"
    assert "| normal |" in (out / "table.md").read_text()
    assert (out / "init_study.png").stat().st_size > 10_000
    assert np.isfinite(rows["glorot_uniform"]["train_loss"]).all()
