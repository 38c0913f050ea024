"""Scans on Optuna: samplers, workers sharing one study, budgets, failures, the table."""

import os

import numpy as np
import optuna
import pytest

from hepdl.config import config_from_dict
from hepdl.errors import ConfigError
from hepdl.scans import run_scan, scan_rows
from hepdl.scans.runner import open_study
from hepdl.scans.space import grid
from hepdl.scans.storage import open_storage, redact

from .conftest import one_error_line, write_config


def scan_config(tmp_path, npz_file, scan, **train):
    return {
        "name": "scan", "seed": 2, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "npz", "path": str(npz_file), "inputs": {"x": "features"},
                            "label": "label", "class_names": ["bkg", "sig"]}},
        "preprocess": {"x": ["standardize"]},
        "model": {"width": 8, "depth": 1},
        "train": {"epochs": 2, "batch_size": 64, **train},
        "scan": scan}


GRID = {"sampler": "grid", "trials": 10, "objective": "auc.sig",
        "columns": {"model.width": "Width", "preprocess.x": "Norm"},
        "space": {"model.width": {"type": "categorical", "choices": [4, 16]},
                  "preprocess.x": {"type": "categorical",
                                   "choices": [["standardize"], ["minmax"]]}}}


POSTGRES = os.environ.get("HEPDL_TEST_POSTGRES")
STORAGES = ["journal", pytest.param("postgres", marks=pytest.mark.skipif(
    not POSTGRES, reason="no PostgreSQL server (.ci/run starts one: source .ci/postgres)"))]


@pytest.mark.parametrize("storage", STORAGES)
def test_grid_scan_on_two_workers_hands_out_each_point_once(tmp_path, npz_file, cli, storage):
    scan = {**GRID, "storage": POSTGRES if storage == "postgres" else None}
    if storage == "postgres":  # a study of its own on the shared server
        scan["storage"] = POSTGRES
    raw = scan_config(tmp_path, npz_file, scan)
    raw["name"] = f"scan-{storage}-{tmp_path.name}"[:60]
    path = write_config(tmp_path / "scan.yaml", raw)
    result = cli("scan", path, "--workers", 2)
    assert result.exit_code == 0, result.output
    if POSTGRES:
        password = POSTGRES.split(":")[2].split("@")[0]
        assert password not in result.output  # credentials never in logs or reports
    config = config_from_dict(raw)
    trials = open_study(config).get_trials()
    points = sorted((t.params["model.width"], t.params["preprocess.x"]) for t in trials)
    assert points == sorted((w, n) for w in ("4", "16")
                            for n in ('["standardize"]', '["minmax"]'))  # once each, no more
    assert all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # each trial is a full run directory
        assert (tmp_path / "runs" / raw["name"] / f"trial_{t.number:04d}" / "report.html").is_file()
    rows = scan_rows(open_study(config), config.scan.columns)
    assert rows[0]["objective"] == max(t.value for t in trials)
    assert rows[0]["model"].startswith("Width=") and "sig_AUC" in rows[0]
    table = cli("scan", "table", path, "--sort", "trial", "--out", tmp_path / "t.md")
    assert table.exit_code == 0 and "Width=" in table.stdout
    assert (tmp_path / "t.md").read_text().startswith("| trial | model | sig_AUC |")
    report = cli("scan", "report", path)
    assert report.exit_code == 0, report.output
    out = tmp_path / "runs" / raw["name"] / "report"
    if POSTGRES:
        for file in out.iterdir():
            assert password.encode() not in file.read_bytes(), file
    for name in ("objective_vs_params.png", "parallel_coordinates.png", "importance.png",
                 "best_roc.png", "table.md", "table.csv", "table.html"):
        assert (out / name).stat().st_size > 0, name


def test_a_restarted_scan_continues_to_its_budget(tmp_path, npz_file):
    space = {"train.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    first = config_from_dict(scan_config(tmp_path, npz_file, {"sampler": "random", "trials": 2,
                                                              "space": space}))
    run_scan(first)
    kept = [(t.number, t.value) for t in open_study(first).get_trials()]
    again = config_from_dict(scan_config(tmp_path, npz_file, {"sampler": "tpe", "trials": 3,
                                                              "space": space}))
    study = run_scan(again)
    trials = study.get_trials()
    assert len(trials) == 3 and [(t.number, t.value) for t in trials[:2]] == kept
    run_scan(again)  # the budget is reached: nothing more
    assert len(open_study(again).get_trials()) == 3


def test_a_diverged_trial_is_failed_with_its_reason(tmp_path, npz_file):
    space = {"train.lr": {"type": "categorical", "choices": [1e7]}}
    config = config_from_dict(scan_config(tmp_path, npz_file, {
        "sampler": "random", "trials": 1, "space": space}, optimizer="sgd"))
    (trial,) = run_scan(config).get_trials()
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "loss became" in trial.user_attrs["failure"]
    (row,) = scan_rows(run_scan(config))
    assert row["status"] == "fail" and row["objective"] is None


def test_the_table_of_completed_and_failed_trials_prints(tmp_path, npz_file, cli):
    space = {"train.lr": {"type": "categorical", "choices": [1e-2, 1e7]}}
    config = scan_config(tmp_path, npz_file, {"sampler": "grid", "trials": 2, "space": space},
                         optimizer="sgd")
    path = write_config(tmp_path / "mixed.yaml", config)
    result = cli("scan", path)
    assert result.exit_code == 0, result.output
    result = cli("scan", "table", path)
    assert result.exit_code == 0, result.output
    assert "complete" in result.stdout and "fail" in result.stdout
    assert "objective" in result.stdout and "trial" in result.stdout
    assert "loss became" in result.stdout  # the failed trial's reason
    for suffix in (".html", ".md", ".csv"):  # a failed trial's empty cells among numbers
        written = cli("scan", "table", path, "--out", tmp_path / f"mixed{suffix}")
        assert written.exit_code == 0, written.output
    assert "<table" in (tmp_path / "mixed.html").read_text()


def test_a_trial_over_its_time_limit_fails_and_the_scan_goes_on(tmp_path, npz_file):
    space = {"model.width": {"type": "categorical", "choices": [4, 8]}}
    config = config_from_dict(scan_config(tmp_path, npz_file, {"sampler": "grid", "trials": 2,
                                                               "space": space},
                                          time_limit=1e-6))
    trials = run_scan(config).get_trials()
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all("time limit" in t.user_attrs["failure"] and not t.user_attrs.get("lost")
               for t in trials)  # the trial's own budget: failed, not queued again


def test_the_bayesian_samplers_start_with_the_configured_random_trials(tmp_path, npz_file):
    from hepdl.scans.runner import _sampler

    for name in ("tpe", "gp", "cmaes"):
        config = config_from_dict(scan_config(tmp_path, npz_file, {
            "sampler": name, "startup_trials": 3, "space": GRID["space"]}))
        assert _sampler(config, 1)._n_startup_trials == 3, name


def test_a_database_that_cannot_be_reached_is_one_line_without_the_password(tmp_path, npz_file,
                                                                            cli):
    path = write_config(tmp_path / "s.yaml", scan_config(tmp_path, npz_file, GRID))
    line = one_error_line(cli("scan", "table", path, "--storage",
                              "postgresql+psycopg://hep:s3cret@127.0.0.1:1/scans"))
    assert "scan.storage: cannot open postgresql+psycopg://hep:***@127.0.0.1:1/scans" in line
    assert "s3cret" not in line


def test_storage_urls_and_grid_needs():
    assert redact("postgresql://hep:s3cret@db.example:5432/scans") == \
        "postgresql://hep:***@db.example:5432/scans"
    with pytest.raises(ConfigError, match=r"unknown storage 'redis://u:\*\*\*@h'"):
        open_storage("redis://u:pw@h")
    from hepdl.config import ParameterSpec

    with pytest.raises(ConfigError, match="a grid scan needs a step"):
        grid({"train.lr": ParameterSpec(type="float", low=0.1, high=1.0)})
    points = grid({"train.lr": ParameterSpec(type="float", low=0.1, high=0.3, step=0.1),
                   "model.depth": ParameterSpec(type="int", low=1, high=5, step=2)})
    np.testing.assert_allclose(points["train.lr"], [0.1, 0.2, 0.3])
    assert points["model.depth"] == [1, 3, 5]


def test_bad_scan_config_is_one_line(tmp_path, npz_file, cli):
    bad = scan_config(tmp_path, npz_file, {"space": {"model.width": {"type": "int", "low": 8,
                                                                     "high": 4}}})
    line = one_error_line(cli("scan", write_config(tmp_path / "bad.yaml", bad)))
    assert "scan.space.model.width: an int parameter needs low < high" in line
    typo = scan_config(tmp_path, npz_file, {"space": {"model.widht": {
        "type": "categorical", "choices": [4]}}, "trials": 1})
    line = one_error_line(cli("scan", write_config(tmp_path / "typo.yaml", typo)))
    assert "model.widht: Extra inputs are not permitted" in line


def test_the_median_pruner_stops_hopeless_trials(tmp_path, npz_file):
    import json

    space = {"train.lr": {"type": "categorical", "choices": [0.3, 1e-7]}}
    config = config_from_dict(scan_config(tmp_path, npz_file, {
        "sampler": "random", "trials": 6, "pruner": "median", "space": space},
        optimizer="sgd", epochs=4))
    trials = run_scan(config).get_trials()
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(t.params["train.lr"] == "1e-07" for t in pruned)
    meta = json.loads((tmp_path / "runs" / "scan" / f"trial_{pruned[0].number:04d}" /
                       "meta.json").read_text())
    assert meta["status"] == "pruned" and "pruned at epoch" in meta["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_a_killed_worker_loses_its_trial_and_the_scan_finishes(tmp_path, npz_file, signal_name):
    """SIGKILL: the next worker finds the trial silent; SIGTERM (a batch job's end): the worker
    queues the values again itself and stops with exit code 3."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    space = {"model.width": {"type": "categorical", "choices": [8, 16, 32]}}
    raw = scan_config(tmp_path, npz_file, {"sampler": "grid", "space": space,
                                           "grace_seconds": 1.0}, epochs=400, batch_size=8)
    path = write_config(tmp_path / "scan.yaml", raw)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    worker = subprocess.Popen([sys.executable, "-m", "hepdl", "scan", "worker", str(path)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "runs" / "scan" / "trial_0000" / "history.csv"
    deadline = time.monotonic() + 120
    while not (history.is_file() and len(history.read_text().splitlines()) > 1):
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    worker.send_signal(getattr(signal, signal_name))
    code = worker.wait(60)
    if signal_name == "SIGTERM":
        assert code == 3  # stopped cleanly, as an interrupted training
    else:
        time.sleep(1.5)  # longer than grace_seconds: the trial is silent
    config = config_from_dict({**raw, "train": {**raw["train"], "epochs": 2}})
    trials = run_scan(config).get_trials()
    lost = [t for t in trials if t.user_attrs.get("lost")]
    assert len(lost) == 1 and lost[0].state.name == "FAIL"
    reason = "worker lost" if signal_name == "SIGKILL" else "interrupted, values queued again"
    assert reason in lost[0].user_attrs["failure"]
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["model.width"] for t in done) == ["16", "32", "8"]  # each once
    requeued = [t for t in done if t.user_attrs.get("requeued_from") == lost[0].number]
    assert requeued and requeued[0].params == lost[0].params


def test_best_roc_scores_each_trial_on_its_own_test_split(tmp_path, npz_file, monkeypatch):
    import hepdl.data
    from hepdl.api import train
    from hepdl.scans.report import best_roc

    runs = [train(config_from_dict(scan_config(tmp_path, npz_file, GRID)
                                   | {"name": f"fold{k}", "data": {
                                       "source": {"kind": "npz", "path": str(npz_file),
                                                  "inputs": {"x": "features"}, "label": "label",
                                                  "class_names": ["bkg", "sig"]},
                                       "split": {"folds": 2, "fold": k}}}),
                  console=None) for k in (0, 1)]
    study = optuna.create_study(direction="maximize")
    for k, run in enumerate(runs):
        study.add_trial(optuna.trial.create_trial(
            value=0.9 - k / 10, params={}, distributions={}, user_attrs={"run": str(run.path)}))
    asked = []
    load_split = hepdl.data.load_split
    monkeypatch.setattr(hepdl.data, "load_split", lambda data, *args: asked.append(
        data.split.fold) or load_split(data, *args))
    assert best_roc(runs[0].config, study) is not None
    assert asked == [0, 1]  # a scan over the fold: each network on the events it did not see


def test_a_scan_over_folds_is_read_by_setting(tmp_path, npz_file, cli):
    from hepdl.scans.result import Scan

    scan = {"sampler": "grid", "trials": 4, "objective": "auc.sig",
            "columns": {"preprocess.x": "Norm"},
            "space": {"preprocess.x": {"type": "categorical",
                                       "choices": [["standardize"], ["minmax"]]},
                      "data.split.fold": {"type": "categorical", "choices": [0, 1]}}}
    raw = scan_config(tmp_path, npz_file, scan)
    raw["data"]["split"] = {"folds": 2}
    path = write_config(tmp_path / "scan.yaml", raw)
    assert cli("scan", path).exit_code == 0
    result = Scan.load(config_from_dict(raw))
    trials = result.rows()
    settings = result.setting_rows()
    assert len(trials) == 4 and [s["runs"] for s in settings] == [2, 2]
    for setting in settings:
        own = [t["objective"] for t in trials if t["Norm"] == setting["Norm"]]
        assert setting["objective"] == pytest.approx(np.mean(own))
        assert setting["objective_sd"] == pytest.approx(np.std(own, ddof=1))
    assert settings[0]["objective"] >= settings[1]["objective"]
    assert settings[1]["vs_best"] == pytest.approx(settings[1]["objective"]
                                                   - settings[0]["objective"])
    by_fold = {(t["Norm"], t["data.split.fold"]): t["objective"] for t in trials}
    d = [by_fold[settings[1]["Norm"], k] - by_fold[settings[0]["Norm"], k] for k in (0, 1)]
    ratio = (1 / 2) / (1 - 1 / 2 - 0.15)  # n_test / n_train of 2 folds, 15 % validation
    assert settings[1]["vs_best_err"] == pytest.approx(np.sqrt((1 / 2 + ratio) * np.var(
        d, ddof=1)))
    assert result.setting_rows(sort="objective") == settings
    assert result.setting_rows(sort="vs_best") == settings  # the best, then the nearest to it
    (line,) = result.winners()  # grid sampler, no pruner: no caveat
    assert line.startswith(f"Norm: {settings[0]['Norm']} won with auc.sig ")
    sampled = Scan(config_from_dict({**raw, "scan": {**scan, "sampler": "tpe"}}), None)
    assert sampled.caveats()[0].startswith("note: sampler tpe and pruner none need not train "
                                           "every setting on every replicate")
    assert "2 paired runs of the same fold" in line
    table = cli("scan", "table", path, "--out", tmp_path / "by_setting.html")
    assert table.exit_code == 0 and "study by setting" in table.stdout
    header = next(line for line in table.stdout.splitlines() if "model" in line)
    columns = [c.strip() for c in header.strip("┃│ ").split("┃")]
    assert columns[:5] == ["runs", "model", "sig_AUC", "objective", "vs_best"]
    assert len(columns) == len(set(columns))
    assert " ± " in (tmp_path / "by_setting.html").read_text()
    every = cli("scan", "table", path, "--by-trial")
    assert every.exit_code == 0 and "study (best first)" in every.stdout
    assert cli("scan", "report", path).exit_code == 0
    by_setting = (tmp_path / "runs" / "scan" / "report" / "table_by_setting.md").read_text()
    assert by_setting.startswith("| model | runs | sig_AUC | objective | vs_best |")
    assert " ± " in by_setting


def test_rows_sort_by_a_column_with_empty_values_last():
    from hepdl.scans.table import sort_rows

    rows = [{"objective": None}, {"objective": 0.3}, {"objective": 0.1}]
    assert [r["objective"] for r in sort_rows(rows, "objective", True)] == [0.3, 0.1, None]
    assert [r["objective"] for r in sort_rows(rows, "objective", False)] == [0.1, 0.3, None]


def test_sorting_by_the_difference_to_the_best_puts_the_best_first():
    from hepdl.scans.table import sort_rows

    ranked = [{"model": "a", "vs_best": None}, {"model": "c", "vs_best": -0.03},
              {"model": "b", "vs_best": -0.01}, {"model": "d", "vs_best": None}]  # d: no pair
    assert [r["model"] for r in sort_rows(ranked, "vs_best", maximize=True)] == ["a", "b", "c",
                                                                                "d"]
    losses = [{"model": "a", "vs_best": None}, {"model": "c", "vs_best": 0.3},
              {"model": "b", "vs_best": 0.1}]  # minimized: the others' losses lie above
    assert [r["model"] for r in sort_rows(losses, "vs_best", maximize=False)] == ["a", "b", "c"]
