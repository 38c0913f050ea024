"""The command line end to end, and its contract for bad input: one line, exit code 2."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from hepdl.runs import read_meta

from .conftest import ROOT, blobs, one_error_line, small_config, write_config

RUN_FILES = {"config.yaml", "meta.json", "model.pt", "last.pt", "history.csv", "metrics.json",
             "plots", "report.html"}


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The README's main job: examples/digits.yaml, trained once for this module."""
    from typer.testing import CliRunner

    from hepdl.cli import app

    tmp = tmp_path_factory.mktemp("digits")
    result = CliRunner().invoke(app, ["train", str(ROOT / "examples/digits.yaml"),
                                      "--set", f"runs_dir={tmp / 'runs'}"])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "digits"


def test_digits_example_reaches_97_percent_with_a_complete_run(digits_run):
    assert {p.name for p in digits_run.iterdir()} >= RUN_FILES
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.97
    assert metrics["n_events"] == 269  # 15% of 1,797 images
    assert set(metrics["auc"]) == {str(i) for i in range(10)}
    meta = read_meta(digits_run)
    assert meta["status"] == "completed" and meta["finished"]
    assert {p.name for p in (digits_run / "plots").iterdir()} == {
        "roc.png", "outputs.png", "confusion.png", "loss_curves.png", "health.png"}
    html = (digits_run / "report.html").read_text()
    assert "completed" in html and 'src="plots/roc.png"' in html
    assert f"{metrics['accuracy']:.4f}" in html


def test_report_is_rebuilt(digits_run, cli):
    (digits_run / "report.html").unlink()
    result = cli("report", digits_run)
    assert result.exit_code == 0 and (digits_run / "report.html").is_file()


def digits_file(path, noise=0.0, seed=0):
    from sklearn.datasets import load_digits

    from hepdl.config import config_from_dict
    from hepdl.data import load_splits

    config = config_from_dict(yaml.safe_load((ROOT / "examples/digits.yaml").read_text()))
    test = load_splits(config.data, "classification", config.seed)["test"]
    pixels = test.inputs["pixels"] + np.random.default_rng(seed).normal(0, noise, (len(test), 64))
    np.savez(path, pixels=pixels.astype(np.float32), label=test.labels)
    assert load_digits().data.shape == (1797, 64)
    return path


def test_evaluate_on_other_data_uses_the_frozen_model(digits_run, tmp_path, cli):
    same = digits_file(tmp_path / "same.npz")
    noisy = digits_file(tmp_path / "noisy.npz", noise=4.0)
    for name, path in (("same", same), ("noisy", noisy)):
        data = {"source": {"kind": "npz", "path": str(path), "inputs": {"pixels": "pixels"},
                           "label": "label", "class_names": [str(i) for i in range(10)]}}
        result = cli("evaluate", digits_run, "--data", write_config(tmp_path / f"{name}.yaml",
                                                                     {"data": data}))
        assert result.exit_code == 0, result.output
    own = json.loads((digits_run / "metrics.json").read_text())["accuracy"]
    same = json.loads((digits_run / "evaluations/same/metrics.json").read_text())["accuracy"]
    noisy = json.loads((digits_run / "evaluations/noisy/metrics.json").read_text())["accuracy"]
    assert same == pytest.approx(own)  # same events, same frozen preprocessing: same answer
    assert noisy < own - 0.05
    assert (digits_run / "evaluations/noisy/report.html").is_file()


@pytest.mark.parametrize("suffix", [".h5", ".parquet", ".csv", ".npz", ".root"])
def test_predict_writes_scores_in_every_format(digits_run, tmp_path, cli, suffix):
    source = digits_file(tmp_path / "in.npz")
    out = tmp_path / f"scores{suffix}"
    result = cli("predict", digits_run, "--input", source, "--output", out)
    assert result.exit_code == 0, result.output
    if suffix == ".h5":
        import h5py

        with h5py.File(out) as f:
            scores = np.stack([f[f"score_{i}"][()] for i in range(10)], 1)
            labels = f["label"][()]
    elif suffix == ".root":
        import uproot

        with uproot.open(out) as f:
            arrays = f["predictions"].arrays(library="np")
        scores = np.stack([arrays[f"score_{i}"] for i in range(10)], 1)
        labels = arrays["label"]
    elif suffix == ".npz":
        with np.load(out) as f:
            scores = np.stack([f[f"score_{i}"] for i in range(10)], 1)
            labels = f["label"]
    else:
        frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        scores = frame[[f"score_{i}" for i in range(10)]].to_numpy()
        labels = frame["label"].to_numpy()
    np.testing.assert_allclose(scores.sum(1), 1, rtol=1e-5)
    accuracy = json.loads((digits_run / "metrics.json").read_text())["accuracy"]
    assert np.mean(scores.argmax(1) == labels) == pytest.approx(accuracy)


def test_predict_without_labels_and_bad_suffix(digits_run, tmp_path, cli):
    np.savez(tmp_path / "nolabel.npz", pixels=np.zeros((3, 64), np.float32))
    result = cli("predict", digits_run, "--input", tmp_path / "nolabel.npz", "--output",
                 tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(tmp_path / "s.csv").columns) == [f"score_{i}" for i in range(10)]
    line = one_error_line(cli("predict", digits_run, "--input", tmp_path / "nolabel.npz",
                              "--output", tmp_path / "s.xlsx"))
    assert "unknown output format '.xlsx'" in line


def test_data_inspect_prints_a_table(h5_file, cli):
    result = cli("data", "inspect", h5_file)
    assert result.exit_code == 0
    assert "Event/energy" in result.stdout and "400 x 4" in result.stdout
    assert "float32" in result.stdout


def test_help_is_fast_because_torch_is_not_imported():
    code = "import sys, hepdl.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    out = subprocess.run([sys.executable, "-m", "hepdl", "--help"], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert "train" in out.stdout and "evaluate" in out.stdout


# --------------------------------------------------------------------------- bad input


def npz_config(tmp_path, **arrays):
    np.savez(tmp_path / "d.npz", **arrays)
    return small_config(tmp_path, data={"source": {
        "kind": "npz", "path": str(tmp_path / "d.npz"), "inputs": {"x": "features"},
        "label": "label"}}, preprocess={})


def train_line(cli, tmp_path, config) -> str:
    return one_error_line(cli("train", write_config(tmp_path / "c.yaml", config)))


def test_bad_input_missing_file(tmp_path, cli):
    config = small_config(tmp_path, data={"source": {"kind": "npz", "path": "nope.npz",
                                                     "inputs": {"x": "a"}, "label": "y"}})
    assert train_line(cli, tmp_path, config).endswith("nope.npz: no such file")
    assert one_error_line(cli("train", tmp_path / "missing.yaml")).endswith("no such config file")
    assert "no such file" in one_error_line(cli("data", "inspect", tmp_path / "x.h5"))


def test_bad_input_missing_key(tmp_path, cli):
    f, y, _ = blobs(50)
    config = npz_config(tmp_path, features=f, label=y)
    config["data"]["source"]["inputs"] = {"x": "featurs"}
    assert "no array 'featurs'; the file has 'features'" in train_line(cli, tmp_path, config)


def test_bad_input_nan_in_features(tmp_path, cli):
    f, y, _ = blobs(50)
    f[3, 1] = np.nan
    line = train_line(cli, tmp_path, npz_config(tmp_path, features=f, label=y))
    assert "NaN or Inf in inputs: x: 1 values in 1 events (first event 3, feature 1)" in line


def test_bad_input_labels(tmp_path, cli):
    f, y, _ = blobs(50)
    line = train_line(cli, tmp_path, npz_config(tmp_path, features=f, label=y - 1))
    assert "labels out of range" in line
    line = train_line(cli, tmp_path, npz_config(tmp_path, features=f, label=np.ones(50, int)))
    assert "single class" in line


def test_bad_input_shape_mismatch_between_files(tmp_path, cli):
    np.savez(tmp_path / "a.npz", features=np.zeros((20, 4)), label=np.arange(20) % 2)
    np.savez(tmp_path / "b.npz", features=np.zeros((20, 5)), label=np.arange(20) % 2)
    config = small_config(tmp_path, data={"source": {
        "kind": "npz", "path": str(tmp_path / "[ab].npz"), "inputs": {"x": "features"},
        "label": "label"}})
    assert "event shape differs between files" in train_line(cli, tmp_path, config)


def test_bad_input_empty_dataset(tmp_path, cli):
    line = train_line(cli, tmp_path, npz_config(tmp_path, features=np.zeros((0, 4)),
                                                label=np.zeros(0, int)))
    assert "the dataset is empty (0 events)" in line


def test_bad_input_unknown_config_key(tmp_path, cli):
    config = small_config(tmp_path, train={"epochz": 3})
    line = train_line(cli, tmp_path, config)
    assert "train.epochz: Extra inputs are not permitted" in line
    result = cli("train", ROOT / "examples/digits.yaml", "--set", "model.widht=3")
    assert "model.widht: Extra inputs are not permitted" in one_error_line(result)


def test_bad_input_nan_loss_marks_the_run_failed(tmp_path, cli):
    config = small_config(tmp_path, train={"lr": 1e6, "optimizer": "sgd"})
    line = train_line(cli, tmp_path, config)
    assert "loss became" in line and "try a lower train.lr" in line
    meta = read_meta(tmp_path / "runs" / "t")
    assert meta["status"] == "failed" and "loss became" in meta["reason"]
    assert "failed" in (tmp_path / "runs" / "t" / "report.html").read_text()


def test_debug_shows_the_traceback(tmp_path, cli):
    result = cli("--debug", "train", tmp_path / "missing.yaml")
    assert result.exit_code != 0 and result.exception is not None
