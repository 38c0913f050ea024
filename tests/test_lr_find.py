"""The learning-rate range test and train.lr: auto."""

import json

import numpy as np
import pytest

from hepdl.config import config_from_dict
from hepdl.errors import ConfigError
from hepdl.runs import Run
from hepdl.training import fit
from hepdl.training.lr_find import range_test, write_range_test

from .conftest import small_config


def linear_regression(tmp_path, batch_size=100, streamed=False):
    """y = x + noise on one standardized feature, a linear model (depth 0), MSE, plain SGD;
    ``streamed``: from HDF5 chunks of 256 events, never read whole."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000).astype(np.float32)
    y = x + 0.5 * rng.normal(size=4000).astype(np.float32)
    if streamed:
        import h5py

        path = tmp_path / "line.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=x, chunks=(256,))
            f["y"] = y
    else:
        path = tmp_path / "line.npz"
        np.savez(path, x=x, y=y)
    return config_from_dict({
        "name": "line", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5" if streamed else "npz", "path": str(path),
                            "inputs": {"x": "x"}, "label": "y"}, "in_memory": not streamed},
        "preprocess": {"x": ["standardize"]}, "model": {"depth": 0},
        "train": {"loss": "mse", "optimizer": {"name": "sgd"}, "batch_size": batch_size,
                  "threads": 1}})


@pytest.mark.parametrize("streamed", [False, True])
def test_sgd_on_a_quadratic_explodes_just_above_two_over_the_curvature(tmp_path, streamed):
    """The loss mean((w x + b - y)^2) of standardized x has Hessian 2 * identity in (w, b):
    gradient descent diverges for lr > 2 / 2 = 1, where each step multiplies the distance from
    the minimum by |1 - 2 lr| > 1. A slow sweep (x1.0023 a step) sees it within ~10%, from
    data in memory or streamed."""
    config = linear_regression(tmp_path, streamed=streamed)
    result = range_test(config, start=0.1, end=10.0, steps=2000)
    assert 1.0 < result.explodes_at < 1.3
    assert result.suggestion == pytest.approx(result.explodes_at / 10)
    ratios = np.diff(np.log(result.lrs))
    np.testing.assert_allclose(ratios, ratios[0])  # an exponential sweep
    assert result.losses[-1] > 4 * min(result.losses)


def test_digits_range_test_writes_its_plot_and_table(tmp_path):
    result = range_test(config_from_dict(small_config(tmp_path)), steps=200)
    assert result.explodes_at is not None and 1e-3 < result.explodes_at < 1.0
    write_range_test(result, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "lr_find.json").read_text())
    assert saved["suggestion"] == result.suggestion
    assert (tmp_path / "out" / "lr_find.png").stat().st_size > 10_000
    assert len((tmp_path / "out" / "lr_find.csv").read_text().splitlines()) == result.steps + 1
    with pytest.raises(ConfigError, match="start < end"):
        range_test(config_from_dict(small_config(tmp_path)), start=1.0, end=0.1)


@pytest.mark.parametrize("shuffle", [True, False])  # unshuffled: the sweep shuffles its own
def test_lr_auto_trains_at_the_suggestion_and_a_resume_keeps_it(tmp_path, monkeypatch, shuffle):
    from hepdl.training import lr_find

    config = config_from_dict(small_config(tmp_path, train={"lr": "auto", "epochs": 2},
                                           model={"dropout": 0.2},  # draws from the random state
                                           data={"source": {"kind": "digits"},
                                                 "shuffle": shuffle}))

    def read_again(*args, **kwargs):
        raise AssertionError("lr: auto read the data a second time")

    with monkeypatch.context() as patch:  # the sweep takes training's loader and fitted network
        if shuffle:
            patch.setattr(lr_find, "load_split", read_again)
        run = fit(config)
    meta = json.loads((run / "meta.json").read_text())
    expected = range_test(config).suggestion
    assert meta["lr_auto"]["lr"] == pytest.approx(expected)
    history = (run / "history.csv").read_text().splitlines()
    assert float(history[1].split(",")[history[0].split(",").index("lr")]) == pytest.approx(
        expected)
    assert (run / "plots" / "lr_find.png").is_file()
    if shuffle:  # the sweep trains a copy, on a random stream of its own: the run is the one
        at_that_rate = fit(config.model_copy(update={"train": config.train.model_copy(  # at
            update={"lr": meta["lr_auto"]["lr"]})}))  # that rate
        for name in ("train_loss", "val_loss"):
            assert (Run.load(run).history[name].tolist()
                    == Run.load(at_that_rate).history[name].tolist())
    with pytest.raises(ConfigError, match="positive"):
        config_from_dict(small_config(tmp_path, train={"lr": -1.0}))


def test_cli_prints_the_suggestion(tmp_path, cli):
    from .conftest import write_config

    path = write_config(tmp_path / "c.yaml", small_config(tmp_path))
    result = cli("lr-find", path, "--steps", "100", "--out", tmp_path / "lrf")
    assert result.exit_code == 0, result.output
    assert "suggested lr" in result.output and (tmp_path / "lrf" / "lr_find.png").is_file()
