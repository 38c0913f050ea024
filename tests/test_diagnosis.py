"""Health monitoring and findings, each on a network built to show it (issue 9)."""

import csv
import re

import numpy as np

from hepdl import api
from hepdl.config import config_from_dict
from hepdl.training.diagnosis import overfitting

from .conftest import small_config


def train(tmp_path, **sections):
    run = api.train(config_from_dict(small_config(tmp_path, **sections)))
    return run, run.metrics["findings"]


def health(run) -> list[dict]:
    return list(csv.DictReader((run.path / "health.csv").open()))


def test_a_healthy_run_has_no_finding_and_a_health_row_per_layer_and_epoch(tmp_path):
    run, findings = train(tmp_path, model={"width": 32, "depth": 2}, train={"epochs": 4})
    assert findings == []
    rows = health(run)
    layers = {r["layer"] for r in rows}
    assert {"body.hidden.0", "body.hidden.1", "body.output"} <= layers  # Linear, ReLU, output
    assert len(rows) == 4 * len(layers)
    linear = [r for r in rows if r["kind"] == "Linear"]
    assert all(1e-5 < float(r["update_ratio"]) < 1.0 and float(r["grad_norm"]) > 0
               for r in linear)


def test_deep_sigmoid_network_shows_vanishing_gradients(tmp_path):
    _, findings = train(tmp_path, model={"width": 32, "depth": 10, "activation": "sigmoid",
                                         "init": "glorot_normal"}, train={"epochs": 2})
    assert any(f.startswith("vanishing gradients") for f in findings), findings


def test_naive_normal_init_shows_activations_growing_through_depth(tmp_path):
    _, findings = train(tmp_path, model={"width": 64, "depth": 5, "init": "normal"},
                        train={"epochs": 1})
    assert any(f.startswith("activations grow through depth") for f in findings), findings


def test_oversized_learning_rate_shows_exploding_gradients(tmp_path):
    # linear regression, SGD: stable for lr < 1 (the curvature is 2); at 1.05 every step
    # multiplies the distance from the minimum by up to 1.1 (less where the batch's own
    # curvature is lower), so the gradient norm passes 100x its first epoch within 4 epochs
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000).astype(np.float32)
    np.savez(tmp_path / "line.npz", x=x, y=x + 0.5 * rng.normal(size=4000).astype(np.float32))
    config = small_config(tmp_path, model={"depth": 0},
                          train={"epochs": 4, "loss": "mse", "optimizer": {"name": "sgd"},
                                 "lr": 1.05, "batch_size": 100})
    config["data"] = {"source": {"kind": "npz", "path": str(tmp_path / "line.npz"),
                                 "inputs": {"x": "x"}, "label": "y"}}
    config["preprocess"] = {"x": ["standardize"]}
    run = api.train(config_from_dict(config))
    finding = run.metrics["findings"][0]
    assert re.match(r"exploding gradients from epoch [234] \(body.output gradient norm x", finding)
    assert run.meta["status"] == "completed"  # found before the loss overflowed


def test_huge_input_scale_with_relu_kills_units(tmp_path):
    _, findings = train(tmp_path, preprocess={"pixels": [{"divide": {"by": 0.001}}]},
                        model={"width": 64, "depth": 2, "init": "he_normal"},
                        train={"epochs": 3, "lr": 1e-2})
    assert any("dead" in f and "input scale" in f for f in findings), findings


def test_huge_input_scale_into_tanh_saturates_it(tmp_path):
    _, findings = train(tmp_path, preprocess={"pixels": [{"divide": {"by": 0.001}}]},
                        model={"width": 64, "depth": 2, "activation": "tanh",
                               "init": "glorot_normal"}, train={"epochs": 1})
    assert any("saturated" in f for f in findings), findings


def test_tiny_dataset_overfits_and_the_finding_names_the_best_epoch(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "tiny.npz", x=rng.normal(size=(60, 20)).astype(np.float32),
             y=rng.integers(0, 2, 60))
    config = small_config(tmp_path, model={"width": 256, "depth": 2},
                          train={"epochs": 40, "batch_size": 8, "lr": 3e-3})
    config["data"] = {"source": {"kind": "npz", "path": str(tmp_path / "tiny.npz"),
                                 "inputs": {"x": "x"}, "label": "y"},
                      "split": {"train": 0.5, "val": 0.25, "test": 0.25}}
    config["preprocess"] = {"x": ["standardize"]}
    run = api.train(config_from_dict(config))
    finding = next(f for f in run.metrics["findings"] if f.startswith("overfitting"))
    best = int(run.history["val_loss"].idxmin()) + 1
    assert f"the best was epoch {best}" in finding


def test_overfitting_rule_on_hand_made_curves():
    rising = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_loss": v}
              for e, v in enumerate([1.0, 0.8, 0.7, 0.75, 0.8, 0.9])]
    assert overfitting(rising, early_stopped=True) == (
        "overfitting from epoch 4: validation loss rising while training loss falls; "
        "early stopping kept epoch 3")
    flat = [{**r, "val_loss": 1.0 / r["epoch"]} for r in rising]
    assert overfitting(flat, early_stopped=False) is None


def test_findings_reach_the_scan_table():
    import optuna

    from hepdl.scans.table import scan_rows

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 1.0}, user_attrs={
        "findings": ["overfitting from epoch 5: validation loss rising while training loss "
                     "falls; the best was epoch 4"]})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    (row,) = scan_rows(study)
    assert row["finding"].startswith("overfitting from epoch 5")
