"""The calorimeter examples run end to end on a small generated file."""

import json

import pytest
import yaml

from hepdl.generate.calo import make_calo

from .conftest import ROOT


@pytest.fixture(scope="module")
def calo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calo") / "calo.h5"
    make_calo(path, 320, seed=11, block_size=64)
    return path


def run_example(cli, tmp_path, name, calo_file, *overrides):
    config = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    result = cli("train", ROOT / "examples" / f"{name}.yaml", "--set",
                 f"data.source.files={calo_file}", "--set", f"runs_dir={tmp_path}",
                 "--set", "train.epochs=2", "--set", "train.threads=1",
                 *[arg for o in overrides for arg in ("--set", o)])
    assert result.exit_code == 0, result.output
    run = tmp_path / config["name"]
    return json.loads((run / "metrics.json").read_text()), run


def test_calo_4class(cli, tmp_path, calo_file):
    metrics, run = run_example(cli, tmp_path, "calo_4class", calo_file, "model.width=32")
    assert list(metrics["auc"]) == ["Ele", "Gamma", "Pi0", "ChPi"]
    assert len(metrics["binned"]["energy"]["auc"]["Pi0"]) == 5
    assert (run / "plots" / "binned_energy.png").is_file()


def test_calo_3dcnn(cli, tmp_path, calo_file):
    metrics, _ = run_example(cli, tmp_path, "calo_3dcnn", calo_file, "model.channels=[2]",
                             "model.dense_width=8")
    assert metrics["auc"]["ChPi"] is not None and metrics["n_events"] == 48


def test_calo_energy_regression_with_resolution_fit(cli, tmp_path, calo_file):
    metrics, run = run_example(cli, tmp_path, "calo_energy", calo_file, "model.width=32",
                               "evaluate.resolution.bins=[10, 150, 300, 510]")
    assert metrics["task"] == "regression"
    labels = [curve["label"] for curve in metrics["resolution"]]
    assert labels == ["network", "calibrated cell sum"]
    assert "resolution.png" in metrics["plots"] and (run / "plots" / "resolution.png").is_file()
    assert "Energy resolution" in (run / "report.html").read_text()


def test_predict_on_an_lcd_file_writes_scores_and_observers(cli, tmp_path, calo_file):
    import h5py
    import numpy as np

    _, run = run_example(cli, tmp_path, "calo_4class", calo_file, "model.width=16")
    out = tmp_path / "scores.h5"
    result = cli("predict", run, "--input", calo_file, "--output", out)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f, h5py.File(calo_file) as truth:
        assert sorted(f) == ["energy", "label", "score_ChPi", "score_Ele", "score_Gamma",
                             "score_Pi0"]
        np.testing.assert_allclose(f["energy"][()], truth["target"][:, 0, 0], rtol=1e-6)
        assert len(f["label"]) == 320


def test_digits_cnn_takes_8x8_images(cli, tmp_path):
    result = cli("train", ROOT / "examples" / "digits_cnn.yaml", "--set", f"runs_dir={tmp_path}",
                 "--set", "train.epochs=2", "--set", "train.threads=1")
    assert result.exit_code == 0, result.output
    run = tmp_path / "digits-cnn"
    spec = json.loads((run / "meta.json").read_text())
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.5  # 2 epochs, 10 classes
    assert spec["status"] == "completed"


def test_ising_example_trains_away_from_the_transition(cli, tmp_path):
    import h5py
    import numpy as np

    from hepdl.generate.ising import make_ising

    data = make_ising(tmp_path / "ising.h5", size=8, temperatures=[1.5, 2.25, 3.0],
                      per_temperature=50, chains=10, equilibration=20, decorrelation=2)
    result = cli("train", ROOT / "examples" / "ising.yaml", "--set", f"data.source.path={data}",
                 "--set", f"runs_dir={tmp_path}", "--set", "train.epochs=2",
                 "--set", "model.width=16", "--set", "train.threads=1")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "ising" / "metrics.json").read_text())
    # T = 2.25 is selected out: 100 of the 150 configurations remain, 10% of them the test split
    assert metrics["n_events"] == 10
    with h5py.File(data) as f:
        assert np.isin(f["temperature"][:], [1.5, 2.25, 3.0]).all()
