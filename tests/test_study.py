"""The normalization study end to end on generated calorimeter data."""

import json

import pytest

from hepdl.config import config_from_dict
from hepdl.generate.calo import make_calo
from hepdl.study import describe_norm, run_study, trials


@pytest.fixture(scope="module")
def calo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "calo.h5"
    make_calo(path, 400, seed=4, block_size=128)
    return path


def study_config(tmp_path, calo_file, grid, **train):
    return config_from_dict({
        "name": "norms", "seed": 1, "runs_dir": str(tmp_path),
        "data": {"source": {"kind": "lcd", "layout": "v2", "files": str(calo_file)}},
        "model": {"width": 16, "depth": 1},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1, **train},
        "study": {"grid": grid, "columns": {"preprocess.ecal": "ECALNorm",
                                            "preprocess.hcal": "HCALNorm"}}})


def test_grid_expands_to_every_combination(tmp_path, calo_file):
    config = study_config(tmp_path, calo_file, {
        "preprocess.ecal": [[{"divide": {"by": 150.0}}], ["nonlinear_log_tanh"]],
        "model.width": [8, 16, 32]})
    combos = trials(config)
    assert len(combos) == 6
    assert {c.model.width for _, c in combos} == {8, 16, 32}
    assert combos[0][1].preprocess["ecal"] == [{"divide": {"by": 150.0}}]
    assert all(c.study is None for _, c in combos)
    assert describe_norm([{"divide": {"by": 480.4}}]) == "480.4"
    assert describe_norm(["nonlinear_log_tanh"]) == "'nonlinear'"
    assert describe_norm([{"log": {"offset": 20}}, "standardize"]) == (
        "'log'(offset=20)+'standardize'")  # two chains of a grid never read alike


def test_study_writes_the_seeds_000_table(tmp_path, calo_file, cli):
    from .conftest import write_config

    raw = study_config(tmp_path, calo_file, {
        "preprocess.ecal": [[{"divide": {"by": 150.0}}], ["nonlinear_log_tanh"]],
        "preprocess.hcal": [["nonlinear_log_tanh"]]}).model_dump(mode="json")
    result = cli("study", "normalization", write_config(tmp_path / "study.yaml", raw))
    assert result.exit_code == 0, result.output
    out = tmp_path / "norms"
    summary = json.loads((out / "study.json").read_text())
    rows = summary["rows"]
    assert [r["model"] for r in rows if r["status"] == "completed"]
    assert set(rows[0]) >= {"model", "Ele_AUC", "Pi0_AUC", "ChPi_AUC", "Gamma_AUC", "ECALNorm",
                            "HCALNorm", "epochs", "seconds", "status"}
    scores = [r["Ele_AUC"] for r in rows if r["status"] == "completed"]
    assert len(scores) == 2
    assert rows[0]["model"].startswith("ECALNorm=")
    assert summary["summary"][0].startswith("ECALNorm: ")
    table = (out / "table.md").read_text()
    assert "| trial | model | Ele_AUC |" in table and (out / "auc_by_trial.png").is_file()
    assert (out / "table.csv").read_text().startswith("trial,model,Ele_AUC")
    assert (out / "trial_000" / "report.html").is_file()
    # run again: finished trials are taken as they are, not retrained
    stamp = (out / "trial_001" / "model.pt").stat().st_mtime_ns
    assert cli("study", "normalization", tmp_path / "study.yaml").exit_code == 0
    assert (out / "trial_001" / "model.pt").stat().st_mtime_ns == stamp


def test_a_collapsed_trial_is_flagged_with_its_cause(tmp_path, calo_file):
    # cells x 100 into a ReLU MLP trained by SGD at lr 1: the first steps kill the units and
    # the output stops depending on the input (seeds/000's first row, every AUC 0.5000)
    scaled = [[{"divide": {"by": 0.01}}]]
    config = study_config(tmp_path, calo_file, {"preprocess.ecal": scaled,
                                                "preprocess.hcal": scaled}, lr=1.0, optimizer="sgd")
    (trial,) = run_study(config)
    assert trial.status == "collapsed", trial.metrics
    assert trial.finding.startswith("output constant over the test events")
    assert "inputs reach |x| = " in trial.finding
    assert "dead" in trial.finding


def test_a_changed_grid_does_not_reuse_old_trials(tmp_path, calo_file):
    from hepdl.errors import HepdlError

    run_study(study_config(tmp_path, calo_file, {"model.width": [8]}, epochs=1))
    with pytest.raises(HepdlError, match="trial_000 was trained with a different config "
                                         r"\(model.width: 8 -> 64\)"):
        run_study(study_config(tmp_path, calo_file, {"model.width": [64]}, epochs=1))


def test_config_differences_name_each_changed_field():
    from hepdl.study import config_differences

    saved = {"data": {"source": {"path": ["a.h5"]}}, "train": {"lr": 0.1, "epochs": 3}}
    now = {"data": {"source": {"path": ["a.h5", "b.h5"]}}, "train": {"lr": 0.1, "epochs": 4}}
    assert config_differences(saved, now) == ("data.source.path: ['a.h5'] -> ['a.h5', 'b.h5']; "
                                              "train.epochs: 3 -> 4")
    many = {"x": dict.fromkeys("abcde", 1)}
    assert config_differences(many, {"x": dict.fromkeys("abcde", 2)}, limit=2).endswith(
        "x.b: 1 -> 2; and 3 more")
    # a glob that matches a 501st file: the lists are cut, the message stays one short line
    files = [f"/data/run2/file_{i:04d}.h5" for i in range(501)]
    line = config_differences({"path": files[:500]}, {"path": files})
    assert line == "path: 500 -> 501 entries, +1 (['/data/run2/file_0500.h5'])"
    long_name = {"path": ["x" * 500]}
    line = config_differences(long_name, {"path": ["y" * 500]})
    assert line.startswith("path: ['xxx") and "(504 characters) -> ['yyy" in line
    assert len(line) < 300
    assert config_differences({"a": 1}, {"a": 1, "b": 2}) == "b: (not set) -> 2"


def test_a_study_never_removes_a_directory_that_holds_no_run(tmp_path, calo_file):

    kept = tmp_path / "norms" / "trial_000" / "other" / "model.pt"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"weights of another study")
    (trial,) = run_study(study_config(tmp_path, calo_file, {"model.width": [8]}, epochs=1))
    assert trial.status == "failed" and "holds files but no run" in trial.finding
    assert kept.read_bytes() == b"weights of another study"
    # a run killed before its first checkpoint, with another study's runs inside it
    (kept.parent / "meta.json").write_text("{}")
    (kept.parent / "config.yaml").write_text("name: other\n")
    (kept.parent.parent / "meta.json").write_text("{}")
    (trial,) = run_study(study_config(tmp_path, calo_file, {"model.width": [8]}, epochs=1))
    assert trial.status == "failed" and kept.is_file()


def test_an_interrupted_study_stops_and_resumes_its_trial(tmp_path, calo_file, cli):
    from hepdl.runs import read_meta
    from hepdl.training import Interrupted

    from .conftest import write_config

    # the time limit stops training after every step: each run of the study moves one step
    config = study_config(tmp_path, calo_file, {"model.width": [8]}, epochs=1, batch_size=128,
                          time_limit=1e-9)
    path = write_config(tmp_path / "s.yaml", config.model_dump(mode="json"))
    assert cli("study", "normalization", path).exit_code == 3  # stopped cleanly, resumable
    run = tmp_path / "norms" / "trial_000"
    assert read_meta(run)["status"] == "interrupted"
    assert (tmp_path / "norms" / "table.csv").is_file()
    for _ in range(10):
        try:
            (trial,) = run_study(config)
            break
        except Interrupted:
            continue
    assert trial.status == "completed" and read_meta(run)["status"] == "completed"
    assert len((run / "history.csv").read_text().splitlines()) == 2  # one epoch, not restarted


def test_a_study_over_folds_reads_each_setting_as_mean_and_paired_difference(tmp_path,
                                                                            calo_file, cli):
    import numpy as np
    import pandas as pd

    from hepdl.data import load_dataset, load_split

    from .conftest import one_error_line, write_config

    raw = study_config(tmp_path, calo_file, {
        "preprocess.ecal": [[{"divide": {"by": 150.0}}], ["nonlinear_log_tanh"]]},
        epochs=1).model_dump(mode="json")
    path = write_config(tmp_path / "study.yaml", raw)
    result = cli("study", "normalization", path, "--folds", "2")
    assert result.exit_code == 0, result.output
    assert "study by setting: mean ± sd" in result.stdout
    out = tmp_path / "norms"
    trials = pd.read_csv(out / "table.csv")
    settings = pd.read_csv(out / "table_by_setting.csv")
    assert len(trials) == 4 and len(settings) == 2
    assert set(settings["runs"]) == {2}
    for _, setting in settings.iterrows():
        own = trials[trials["ECALNorm"] == setting["ECALNorm"]]
        assert sorted(own["data.split.fold"]) == [0, 1]
        assert setting["Ele_AUC"] == pytest.approx(own["Ele_AUC"].mean())
        assert setting["Ele_AUC_sd"] == pytest.approx(own["Ele_AUC"].std(ddof=1))
    # the two folds of a setting test every event once
    from hepdl.runs import Run

    configs = [Run.load(out / f"trial_{n:03d}").config for n in (0, 1)]
    tested = np.concatenate([load_split(c.data, c.task, c.seed, "test").inputs["ecal"].sum(
        (1, 2, 3)) for c in configs])
    every = load_dataset(configs[0].data).inputs["ecal"].sum((1, 2, 3))
    assert len(every) == 400 and np.array_equal(np.sort(tested), np.sort(every))
    summary = json.loads((out / "study.json").read_text())
    assert summary["summary"][0].startswith("ECALNorm: ")
    assert "paired runs of the same fold" in summary["summary"][0]
    assert len(summary["settings"]) == 2 and (out / "auc_by_setting.png").is_file()
    table = (out / "table.md").read_text()
    assert table.index("| model | runs | Ele_AUC |") < table.index("Every trial") < table.index(
        "| trial | model |")
    # a grid that varies the folds already
    raw["study"]["grid"]["data.split.fold"] = [0, 1]
    raw["data"]["split"]["folds"] = 2
    line = one_error_line(cli("study", "normalization", write_config(tmp_path / "b.yaml", raw),
                              "--folds", "2"))
    assert "--folds" in line and "varies data.split.fold already" in line


def test_replicates_repeat_every_setting_of_the_grid(tmp_path, calo_file):
    from hepdl.errors import ConfigError
    from hepdl.study import with_replicates

    base = study_config(tmp_path, calo_file, {"model.width": [8, 16]})
    both = with_replicates(base, folds=3, seeds=2)
    assert both.study.grid == {"model.width": [8, 16], "data.split.fold": [0, 1, 2],
                               "seed": [1, 2]}
    assert both.data.split.folds == 3 and len(trials(both)) == 12
    raw = base.model_dump(mode="json")
    raw["data"]["split"] = {"folds": 5, "fold": 4}
    five = config_from_dict(raw)
    assert with_replicates(five, folds=5).data.split.fold == 0  # the grid sets each trial's
    with pytest.raises(ConfigError, match="data.split.folds = 5 folds; give --folds 5"):
        with_replicates(five, folds=3)
    raw = base.model_dump(mode="json")
    raw["study"] = {"feature_sets": {"a": ["x"]}}
    with pytest.raises(ConfigError, match="no study grid"):
        with_replicates(config_from_dict(raw), folds=3)
