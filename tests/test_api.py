"""The notebook API: what ``import hepdl`` offers, and that the CLI gives the same results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

import hepdl
from hepdl.errors import ConfigError, DataError, HepdlError
from tests.conftest import small_config, write_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    return hepdl.train(hepdl.load_config(small_config(tmp, evaluate={"plots": True}),
                                         train__lr=1e-2), console=None)


def test_public_names_are_the_api_and_survive_importing_every_subpackage():
    import importlib
    import pkgutil

    # no module may share a name with a public function: importing it would replace it
    modules = {m.name for m in pkgutil.iter_modules(hepdl.__path__)}
    assert not modules & set(hepdl.__all__), modules & set(hepdl.__all__)
    for module in pkgutil.walk_packages(hepdl.__path__, "hepdl."):
        if not module.name.startswith(("hepdl.__main__", "hepdl.generate.pythia")):
            importlib.import_module(module.name)
    for name in hepdl.__all__:
        assert getattr(hepdl, name) is not None, name
    for name in ["train", "resume", "evaluate", "predict", "report", "scan", "export_onnx"]:
        assert getattr(hepdl, name).__module__ == "hepdl.api", name
    assert set(dir(hepdl)) == set(hepdl.__all__)


def test_load_config_takes_python_values_by_path_and_set_texts(tmp_path):
    path = write_config(tmp_path / "c.yaml", small_config(tmp_path))
    config = hepdl.load_config(path, ["train.lr=3e-4"], model__width=17, name="other",
                               train__optimizer={"name": "sgd", "options": {"momentum": 0.5}})
    assert (config.train.lr, config.model.width, config.name) == (3e-4, 17, "other")
    assert config.train.optimizer.options == {"momentum": 0.5}
    assert hepdl.load_config(small_config(tmp_path)).model.width == 32  # a dict works too
    again = hepdl.load_config(config, "train.epochs=7", runs_dir=tmp_path / "elsewhere")
    assert (again.train.epochs, again.runs_dir, again.model.width) == (7, str(tmp_path /
                                                                            "elsewhere"), 17)
    with pytest.raises(ConfigError, match="model.widht"):
        hepdl.load_config(path, model__widht=17)
    with pytest.raises(ConfigError, match="train.epochs"):
        hepdl.load_config(path, train__epochs=0)


def test_run_holds_metrics_history_and_reloads(run):
    assert isinstance(run.history, pd.DataFrame) and list(run.history["epoch"]) == [1, 2, 3]
    assert run.metrics["accuracy"] > 0.8
    again = hepdl.Run.load(run.path)
    assert again.metrics == run.metrics
    assert "completed" in repr(again)


def test_predict_on_arrays_matches_the_test_split_scores(run):
    from hepdl.data import load_splits

    test = load_splits(run.config.data, run.config.task, run.config.seed)["test"]
    pixels = test.inputs["pixels"]
    scores = run.predict(pixels)  # one input: a plain array is enough
    assert scores.shape == (len(test), 10)
    np.testing.assert_allclose(scores, run.predictions().scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(run.predict({"pixels": pixels[:7]}), scores[:7], rtol=1e-5)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    digits = load_digits()  # raw pixels from scikit-learn: the preprocessing is inside
    raw = run.predict(digits.data[:200])
    assert (raw.argmax(axis=1) == digits.target[:200]).mean() > 0.8


def test_predict_names_a_missing_input_and_a_wrong_shape(run):
    with pytest.raises(DataError, match=r"no array for the input\(s\) \['pixels'\]"):
        run.predict({"ecal": np.zeros((2, 64))})
    with pytest.raises(DataError, match=r"events of shape \(63,\), expected \(64,\)"):
        run.predict(np.zeros((2, 63)))
    with pytest.raises(DataError, match="NaN or infinite"):
        run.predict(np.full((2, 64), np.nan))
    assert run.predict(np.zeros((0, 64))).shape == (0, 10)
    assert hepdl.Run.load(run) is run  # a Run goes wherever a run directory does


def test_plots_are_figures_of_the_test_split(run):
    roc = run.plot_roc()
    assert isinstance(roc, Figure)
    lines = [line.get_label() for line in roc.axes[0].get_lines()]
    assert any(f"AUC {run.metrics['auc']['0']:.4f}" in label for label in lines)
    outputs = run.plot_outputs()
    assert isinstance(outputs, Figure) and len([a for a in outputs.axes if a.get_visible()]) == 10
    assert isinstance(run.plot_history(), Figure)


def test_evaluate_method_matches_the_cli(run, cli):
    from sklearn.metrics import roc_auc_score

    metrics = run.evaluate()
    test = run.predictions()  # scored again here, AUC from scikit-learn directly
    for c, name in enumerate(test.class_names):
        assert metrics["auc"][name] == pytest.approx(roc_auc_score(test.labels == c,
                                                                   test.scores[:, c]))
    result = cli("evaluate", run.path)
    assert result.exit_code == 0 and f"{metrics['accuracy']:.4f}" in result.stdout


def test_scan_returns_a_table_and_its_best_run(tmp_path, cli):
    config = small_config(tmp_path, name="s", train={"epochs": 1}, scan={
        "sampler": "grid", "trials": 2,
        "space": {"model.width": {"type": "categorical", "choices": [8, 24]}}})
    scan = hepdl.scan(hepdl.load_config(config), console=None)
    table = scan.table()
    assert isinstance(table, pd.DataFrame) and sorted(table["model.width"]) == [8, 24]
    assert table["objective"].is_monotonic_decreasing
    assert {f"{d}_AUC" for d in range(10)} <= set(table.columns)
    best = scan.best_run()
    assert best.metrics["auc"]["0"] == pytest.approx(table.iloc[0]["0_AUC"])
    assert len(scan) == 2 and "2 trials" in repr(scan)
    # the CLI's table is the same study
    result = cli("scan", "table", write_config(tmp_path / "s.yaml", config))
    assert result.exit_code == 0 and f"{table.iloc[0]['0_AUC']:.4f}" in result.stdout
    written = scan.report(tmp_path / "report")
    assert {p.name for p in written} >= {"table.md", "table.csv", "table.html"}


def test_scan_of_a_config_without_a_scan_section_is_one_error(tmp_path):
    with pytest.raises(HepdlError, match="no scan section"):
        hepdl.Scan.load(hepdl.load_config(small_config(tmp_path)))
    empty = hepdl.Scan.load(hepdl.load_config(small_config(tmp_path), scan={
        "space": {"model.width": {"type": "categorical", "choices": [8]}}}))
    assert len(empty) == 0 and empty.table().empty
    with pytest.raises(HepdlError, match="no completed trial"):
        empty.best_run()


def test_a_regression_has_no_roc_curve(tmp_path):
    import h5py

    path = tmp_path / "r.h5"
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        x = rng.normal(size=(300, 3)).astype(np.float32)
        f["x"], f["y"] = x, (x.sum(axis=1) + 0.1 * rng.normal(size=300)).astype(np.float32)
    regression = hepdl.train(hepdl.load_config({
        "name": "r", "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": str(path), "inputs": {"x": "x"},
                            "label": "y"}},
        "model": {"width": 8, "depth": 1}, "train": {"loss": "mse", "epochs": 2}}),
        console=None)
    with pytest.raises(HepdlError, match="is a regression"):
        regression.plot_roc()
    assert isinstance(regression.plot_history(), Figure)


def test_a_run_without_plot_files_has_the_same_metrics(run, tmp_path):
    quick = hepdl.train(hepdl.load_config(small_config(tmp_path), train__lr=1e-2,
                                          evaluate__plots=False), console=None)
    assert quick.metrics["auc"] == pytest.approx(run.metrics["auc"])
    assert quick.metrics["plots"] == [] and not list((quick.path / "plots").glob("*.png"))
    assert sorted(p.name for p in (run.path / "plots").glob("*.png")) == run.metrics["plots"]
    assert (quick.path / "report.html").is_file()
    assert isinstance(quick.plot_roc(), Figure)  # a notebook still draws them


def test_progress_bars_draw_in_a_terminal_and_in_a_notebook_only_with_widgets(monkeypatch):
    import importlib.util

    from rich.console import Console

    from hepdl.training.loop import _live_display

    assert _live_display(Console(force_terminal=True, force_jupyter=False))
    assert not _live_display(None)
    notebook = Console(force_jupyter=True)
    has_widgets = importlib.util.find_spec("ipywidgets") is not None
    assert _live_display(notebook) == has_widgets
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not _live_display(notebook)  # no ipywidgets: epoch lines only, no broken bar
