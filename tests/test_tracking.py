"""TensorBoard and MLflow logging: off by default, and when on, the run's numbers exactly."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from hepdl import api
from hepdl.config import config_from_dict
from hepdl.errors import ConfigError
from hepdl.runs import read_meta

from .conftest import small_config


def test_nothing_is_tracked_by_default(tmp_path):
    run = api.train(config_from_dict(small_config(tmp_path, train={"epochs": 1})))
    assert not (run.path / "tensorboard").exists()
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    assert "mlflow_run_id" not in read_meta(run.path)


def test_tensorboard_holds_every_epoch_and_the_test_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = api.train(config_from_dict(small_config(tmp_path, tracking={"tensorboard": True})))
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    for column in ("train_loss", "val_loss", "val_accuracy", "lr"):
        logged = events.Scalars(column)
        assert [e.step for e in logged] == list(run.history["epoch"])
        np.testing.assert_allclose([e.value for e in logged], run.history[column], rtol=1e-6)
    assert events.Scalars("test_accuracy")[0].value == pytest.approx(run.metrics["accuracy"])
    assert "config/text_summary" in events.Tags()["tensors"]


def test_mlflow_run_has_params_metrics_per_epoch_and_the_report(tmp_path):
    pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from mlflow.tracking import MlflowClient

    run = api.train(config_from_dict(small_config(tmp_path, tracking={"mlflow": True})))
    run_id = read_meta(run.path)["mlflow_run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db')}")
    logged = client.get_run(run_id)
    assert logged.info.status == "FINISHED" and logged.info.run_name == run.path.name
    assert logged.data.params["train.lr"] == "0.003"
    assert logged.data.params["model.width"] == "32"
    history = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == list(run.history["epoch"])
    np.testing.assert_allclose([m.value for m in history], run.history["val_loss"], rtol=1e-6)
    assert logged.data.metrics["test_accuracy"] == pytest.approx(run.metrics["accuracy"])
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "config.yaml", "metrics.json"} <= names
    experiment = client.get_experiment(logged.info.experiment_id)
    assert experiment.name == "t" and "mlruns" in experiment.artifact_location


def test_a_tracker_that_is_not_installed_is_one_clear_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match="tracking.mlflow: needs mlflow.*pip install"):
        api.train(config_from_dict(small_config(tmp_path, tracking={"mlflow": True})))


def test_an_mlflow_that_fails_costs_the_mlflow_view_only(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")

    def gone(*args, **kwargs):
        raise ConnectionError("tracking server at http://mlflow:5000 went away")

    monkeypatch.setattr(mlflow, "log_metrics", gone)  # after the run started: mid-training
    started = mlflow.start_run
    calls = []

    def once(*args, **kwargs):  # the server is gone for good: evaluation cannot reconnect
        calls.append(1)
        return started(*args, **kwargs) if len(calls) == 1 else gone()

    monkeypatch.setattr(mlflow, "start_run", once)
    with pytest.warns(RuntimeWarning) as caught:
        run = api.train(config_from_dict(small_config(tmp_path, tracking={"mlflow": True})))
    said = [str(w.message) for w in caught]
    assert any(m.startswith("MLflow logging stopped (tracking server") for m in said)  # training
    assert any(m.startswith("MLflow logging skipped (tracking server") for m in said)  # evaluation
    assert run.meta["status"] == "completed" and len(run.history) == 3 and len(calls) == 2
    assert mlflow.active_run() is None  # nothing left open for the next run in this process
    monkeypatch.setattr(mlflow, "start_run", started)
    # a server that cannot be reached at the start: one line before training (asked once)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(ConfigError, match=r"tracking.mlflow: cannot log to http://"):
        api.train(config_from_dict(small_config(tmp_path / "b", tracking={
            "mlflow": True, "mlflow_uri": "http://127.0.0.1:9"})))
