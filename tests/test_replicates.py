"""Settings repeated over folds and seeds: grouping, means, paired differences and their errors."""

import math

import numpy as np
import pytest
from scipy import stats

from hepdl.config import SplitConfig
from hepdl.replicates import (
    Design,
    Setting,
    design,
    group_settings,
    paired_difference,
    setting_rows,
    winner_lines,
    with_spread,
)

FOLDS = Design(("fold",), ("fold",), 0.5, "fold")


def trial_rows(scores):
    """Rows as a study writes them: {norm: [score of fold 0, fold 1, ...]} (None: failed)."""
    rows, number = [], 0
    for norm, per_fold in scores.items():
        for fold, score in enumerate(per_fold):
            rows.append({"trial": number, "model": f"Norm={norm} fold={fold}", "Norm": norm,
                         "fold": fold, "Ele_AUC": None if score is None else score + 0.01,
                         "score": score, "epochs": 3, "status":
                         "completed" if score is not None else "failed",
                         "finding": "" if score is not None else "NaN loss"})
            number += 1
    return rows


SCORES = {"150": [0.80, 0.82, 0.81], "nonlinear": [0.85, 0.86, 0.88], "max": [0.83, None, 0.84]}


def grouped(scores, replicates=FOLDS):
    return group_settings(trial_rows(scores), ["Norm", "fold"], replicates, "score")


def test_trials_of_one_setting_are_read_together():
    settings = grouped(SCORES)
    assert [s.labels for s in settings] == [{"Norm": "150"}, {"Norm": "nonlinear"},
                                            {"Norm": "max"}]
    assert settings[1].scores == {("0",): [0.85], ("1",): [0.86], ("2",): [0.88]}
    assert set(settings[2].scores) == {("0",), ("2",)}  # the failed fold has no score
    assert settings[1].name == "Norm=nonlinear"
    assert len(settings[2].rows) == 3




def test_settings_that_read_alike_stay_apart_by_their_configured_values():
    # two chains a table describes alike: never averaged into one setting
    rows = trial_rows({"'log'": [0.9, 0.8]}) + trial_rows({"'log'": [0.5, 0.6]})
    raw = [{"Norm": [{"log": {"offset": 1}}], "fold": r["fold"]} for r in rows[:2]] + \
        [{"Norm": [{"log": {"offset": 20}}], "fold": r["fold"]} for r in rows[2:]]
    settings = group_settings(rows, ["Norm", "fold"], FOLDS, "score", raw)
    assert [s.mean() for s in settings] == pytest.approx([0.85, 0.55])
    assert [s.name for s in settings] == ["Norm='log' #1", "Norm='log' #2"]
    (line,) = winner_lines(settings, {"Norm": 2}, "auc", FOLDS)
    assert line.startswith("Norm: 'log' #1 won with auc 0.8500")
    assert line.endswith("over 'log' #2 (0.5500)")


def test_rows_by_setting_hold_mean_spread_and_paired_difference_to_the_best():
    rows = setting_rows(grouped(SCORES), "score", FOLDS, score_name="mean_auc")
    # scored on every fold first, by their mean; 'max' failed fold 1: after them
    assert [r["Norm"] for r in rows] == ["nonlinear", "150", "max"]
    best, worst, partial = rows
    assert best["runs"] == 3 and best["status"] == "3 completed"
    assert best["mean_auc"] == pytest.approx(np.mean([0.85, 0.86, 0.88]))
    assert best["mean_auc_sd"] == pytest.approx(np.std([0.85, 0.86, 0.88], ddof=1))
    assert best["Ele_AUC"] == pytest.approx(np.mean([0.86, 0.87, 0.89]))
    assert best["vs_best"] is None and "score" not in best
    d = np.array([0.80, 0.82, 0.81]) - np.array([0.85, 0.86, 0.88])
    assert worst["vs_best"] == pytest.approx(d.mean())
    error = math.sqrt((1 / 3 + 0.5) * d.var(ddof=1))
    assert worst["vs_best_err"] == pytest.approx(error)
    p = 2 * stats.t.sf(abs(d.mean()) / error, 2)  # Student's t, J - 1 = 2 degrees of freedom
    assert worst["vs_best_sigma"] == pytest.approx(stats.norm.isf(p / 2))
    assert partial["runs"] == 2 and partial["status"] == "2 completed, 1 failed"
    assert partial["finding"] == "trial 7: NaN loss"
    assert partial["mean_auc"] == pytest.approx(0.835)
    # paired on the folds both have, 0 and 2: differences -0.02 and -0.04
    assert partial["vs_best"] == pytest.approx(-0.03)
    assert partial["vs_best_err"] == pytest.approx(math.sqrt((1 / 2 + 0.5) * np.var(
        [-0.02, -0.04], ddof=1)))
    minimized = setting_rows(grouped(SCORES), "score", FOLDS, maximize=False)
    assert [r["Norm"] for r in minimized] == ["150", "nonlinear", "max"]
    assert minimized[1]["vs_best"] == pytest.approx(-d.mean())
    assert setting_rows([], "score") == []


def test_a_setting_that_failed_a_fold_never_ranks_first_on_the_others():
    # a wins fold 1 by far, b failed there: on the folds both have, b is better, but only a
    # was scored on every fold
    settings = grouped({"a": [0.80, 0.99, 0.80], "b": [0.81, None, 0.81]})
    rows = setting_rows(settings, "score", FOLDS)
    assert [r["Norm"] for r in rows] == ["a", "b"]
    assert rows[1]["runs"] == 2 and rows[1]["vs_best"] == pytest.approx(0.01)
    assert winner_lines(settings, {"Norm": 2}, "auc", FOLDS) == [
        "Norm: only a scored on every fold (0.8633)",
        "Norm: b left out: not scored on every fold"]


def test_settings_on_different_folds_are_ordered_by_their_pairs():
    # no setting has every fold: a and b share fold 0 only, where b is better
    settings = grouped({"a": [0.80, 0.99, None], "b": [0.81, None, 0.5]})
    (line,) = winner_lines(settings, {"Norm": 2}, "auc", FOLDS)
    assert line == ("Norm: b won with auc 0.6550 (mean of 2 runs, sd 0.2192), +0.0100 (1 paired "
                    "run of the same fold) over a (0.8950)")
    apart = grouped({"a": [0.9, None], "b": [None, 0.8]})
    assert setting_rows(apart, "score", FOLDS)[1]["vs_best"] is None
    assert winner_lines(apart, {"Norm": 2}, "auc", FOLDS) == [
        "Norm: a won with auc 0.9000 (one run), (no common fold) over b (0.8000)"]


def test_a_paired_difference_cancels_what_the_replicates_share():
    # fold 1 is hard for both settings: unpaired, the spread of the folds (0.1) would hide a
    # difference of 0.01 that every fold shows
    a = Setting({"Norm": "a"}, {}, scores={(0,): [0.91], (1,): [0.81], (2,): [0.96]})
    b = Setting({"Norm": "b"}, {}, scores={(0,): [0.90], (1,): [0.80], (2,): [0.95],
                                           (3,): [0.5]})
    diff = paired_difference(a, b, FOLDS)
    assert diff.pairs == 3  # b's fold 3 has no partner
    assert diff.mean == pytest.approx(0.01)
    assert diff.error == pytest.approx(0.0, abs=1e-12)
    assert diff.t is None and diff.sigma is None
    assert diff.text(FOLDS) == "+0.0100 ± 0 (no spread over 3 paired runs of the same fold)"
    one = paired_difference(Setting({}, {}, scores={(0,): [0.9]}),
                            Setting({}, {}, scores={(0,): [0.8]}))
    assert one.error is None and one.t is None and one.mean == pytest.approx(0.1)
    assert one.text(FOLDS) == "+0.1000 (1 paired run of the same fold)"


def test_seeds_on_the_same_events_count_as_one_resample():
    # folds x seeds under a fixed split seed: the two seeds of a fold test the same events
    split = SplitConfig(folds=3, val=0.0, seed=7)
    fixed = design(split, ["data.split.fold", "seed"])
    assert fixed.moving == ("data.split.fold",) and fixed.test_over_train == pytest.approx(0.5)
    d = {(f, s): 0.01 * (f + 1) + 0.001 * s for f in range(3) for s in range(2)}
    a = Setting({}, {}, scores={(str(f), str(s)): [0.8 + v] for (f, s), v in d.items()})
    b = Setting({}, {}, scores={(str(f), str(s)): [0.8] for f, s in d})
    per_fold = [np.mean([d[f, s] for s in range(2)]) for f in range(3)]
    diff = paired_difference(a, b, fixed)
    assert diff.pairs == 3
    assert diff.error == pytest.approx(math.sqrt((1 / 3 + 0.5) * np.var(per_fold, ddof=1)))
    assert fixed.pairs(3) == "3 paired runs of the same fold (seeds averaged in each)"
    # without a split seed each seed draws its own folds: repeated k-fold, 6 resamples
    repeated = design(SplitConfig(folds=3, val=0.0), ["data.split.fold", "seed"])
    assert paired_difference(a, b, repeated).pairs == 6
    assert repeated.pairs(6) == "6 paired runs of the same fold and seed"
    # a grid of split seeds fixes each run's split: the seeds beside them do not move it
    both = design(SplitConfig(), ["seed", "data.split.seed"])
    assert both.moving == ("data.split.seed",) and both.averaged == "seed"


@pytest.mark.parametrize(("split", "varied", "expected"), [
    ({"folds": 5, "val": 0.2}, ["data.split.fold"], 0.2 / 0.6),  # 1/5 tests, 3/5 train
    ({"folds": 3, "val": 0.0}, ["data.split.fold", "seed"], 0.5),
    ({"train": 0.7, "val": 0.15, "test": 0.15}, ["seed"], 0.15 / 0.7),  # seed draws the split
    ({"train": 0.7, "val": 0.15, "test": 0.15, "seed": 3}, ["seed"], 0.0),  # the same events
    ({"train": 0.6, "val": 0.2, "test": 0.2}, ["data.split.seed"], 0.2 / 0.6),
    ({"files": {"train": "a.h5", "test": "b.h5"}}, ["seed"], 0.0),
])
def test_the_nadeau_bengio_ratio_is_n_test_over_n_train_when_the_events_move(
        split, varied, expected):
    assert design(SplitConfig(**split), varied).test_over_train == pytest.approx(expected)

def test_winner_lines_compare_the_best_settings_of_each_value():
    settings = grouped(SCORES)
    line, left_out = winner_lines(settings, {"Norm": 3}, "mean_auc", FOLDS)
    d = np.array([0.85, 0.86, 0.88]) - np.array([0.80, 0.82, 0.81])
    error = math.sqrt((1 / 3 + 0.5) * np.var(d, ddof=1))
    t = d.mean() / error
    sigma = stats.norm.isf(stats.t.sf(t, 2))
    assert line == (f"Norm: nonlinear won with mean_auc 0.8633 (mean of 3 runs, sd 0.0153), "
                    f"+{d.mean():.4f} ± {error:.4f} ({sigma:.1f} sigma: t = {t:.1f}, 2 dof; 3 "
                    f"paired runs of the same fold) over 150 (0.8100)")
    assert left_out == "Norm: max left out: not scored on every fold"
    # without replicates: the best trial of each value, as before
    single = group_settings(trial_rows({"a": [0.9], "b": [0.8], "c": [None]}), ["Norm"],
                            Design(), "score")
    assert winner_lines(single, {"Norm": 3}, "mean_auc") == [
        "Norm: a won with best mean_auc 0.9000, +0.1000 over b (0.8000)",
        "Norm: every trial with c collapsed or failed"]
    minimized = winner_lines(single, {"Norm": 3}, "loss", maximize=False)
    assert minimized[0] == "Norm: b won with best loss 0.8000, -0.1000 over a (0.9000)"
    # a study stopped after its first trial: the other values are still to come
    assert winner_lines(single[:1], {"Norm": 3}, "mean_auc") == [
        "Norm: only a trained (0.9000)"]
    # a trial still running (a scan read while it goes) is no failure
    single[2].rows[0]["status"] = "running"
    assert len(winner_lines(single, {"Norm": 3}, "mean_auc")) == 1


def test_rows_by_setting_read_as_text_in_every_cell():
    rows = setting_rows(grouped({"a": [0.9, 0.8], "b": [0.7, 0.5]}), "score", FOLDS,
                        score_name="mean_auc")
    shown = with_spread(rows)
    assert shown[0]["mean_auc"] == "0.8500 ± 0.0707" and shown[0]["vs_best"] == ""
    error = math.sqrt((1 / 2 + 0.5) * np.var([-0.2, -0.3], ddof=1))
    sigma = stats.norm.isf(stats.t.sf(0.25 / error, 1))
    assert shown[1]["vs_best"] == f"-0.2500 ± {error:.4f} ({sigma:.1f} sigma)"
    assert shown[1]["epochs"] == "3.0"
    single = with_spread(setting_rows(grouped({"a": [0.9], "b": [0.7]}), "score", FOLDS))
    assert single[1]["score"] == "0.7000" and single[1]["vs_best"] == "-0.2000"
    for table in (shown, single):
        assert all(isinstance(v, str) for row in table for v in row.values())
        assert not any(k.endswith(("_sd", "_err", "_sigma")) for k in table[0])
