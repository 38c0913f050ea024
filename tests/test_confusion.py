"""Learning by confusion: trial boundaries, the peak of the accuracy, the study end to end."""


import numpy as np
import pytest

from hepdl.confusion import confusion_peak, peak_resolved, trial_boundaries
from hepdl.errors import ConfigError

from .conftest import one_error_line, write_config


def test_trial_boundaries_are_the_grid_midpoints_in_range():
    grid = [1.0, 2.0, 2.1, 2.2, 2.3, 2.4, 3.0, 2.1]  # unsorted, repeated: a file's temperatures
    assert trial_boundaries(grid, 2.0, 2.4) == [2.05, 2.15, 2.25, 2.35]
    with pytest.raises(ConfigError, match="holds 2 midpoints"):
        trial_boundaries(grid, 2.0, 2.2)
    # the gaps 1.0-2.0 and 2.4-3.0 are wider than 0.1: splitting them is easier
    with pytest.raises(ConfigError, match=r"spacing changes within \[1.5, 2.7\] \(0.1 to 1\)"):
        trial_boundaries(grid, 1.5, 2.7)


def test_confusion_peak_is_the_vertex_of_the_parabola_through_the_best():
    b = np.arange(2.0, 2.55, 0.05)
    # an exact parabola peaking between grid points: its vertex, to rounding
    assert confusion_peak(b, 0.97 - 3.0 * (b - 2.2913) ** 2) == pytest.approx(2.2913)
    assert confusion_peak(b, 0.97 - 3.0 * (b - 2.2913) ** 2, half_width=1) == pytest.approx(
        2.2913)
    # a W: high at the ends of the whole grid is not the range scanned here; a best trial at
    # either end of the range is no peak
    assert confusion_peak(b, -b) is None and confusion_peak(b, b) is None
    # noise that bends the points around the best upward: the best boundary itself
    bent = np.array([0.93, 0.90, 0.94, 0.91, 0.935, 0.85, 0.85])
    assert confusion_peak(b[:7], bent) == b[2]


def test_a_peak_within_the_binomial_errors_is_not_resolved():
    # 3,200 test events at 95%: a difference of two accuracies has an error of 0.54%
    assert peak_resolved([0.930, 0.950, 0.937], n_test=3200)  # 1.3% above the higher end
    assert not peak_resolved([0.935, 0.950, 0.942], n_test=3200)  # 0.8%: below 2 sigma
    assert peak_resolved([0.935, 0.950, 0.942], n_test=3200, sigmas=1.0)
    assert not peak_resolved([0.930, 0.950, 0.937], n_test=320)  # ten times fewer events


def test_confusion_study_trains_every_temperature_at_each_trial_boundary(tmp_path):
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study
    from hepdl.data import load_dataset
    from hepdl.generate.ising import make_ising
    from hepdl.runs import Run

    grid = [0.5, *np.round(np.arange(1.5, 3.3, 0.25), 2), 4.5]
    make_ising(tmp_path / "ising_L6.h5", size=6, temperatures=grid, per_temperature=100,
               chains=20, equilibration=30, decorrelation=3)
    config = config_from_dict({
        "name": "ising", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": "unused.h5", "inputs": {"spins": "spins"},
                            "label": "label", "class_names": ["disordered", "ordered"],
                            "observers": {"temperature": "temperature"},
                            "select": {"temperature": [[None, 1.75], [2.75, None]]}},
                 "split": {"train": 0.6, "val": 0.1, "test": 0.3}},
        "model": {"width": 16, "depth": 1},
        "train": {"epochs": 5, "batch_size": 32, "threads": 1}, "evaluate": {"plots": False}})
    result = run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "study",
                                 low=1.6, high=3.2)
    (size,) = result["sizes"]
    assert size["boundaries"] == pytest.approx([1.625, 1.875, 2.125, 2.375, 2.625, 2.875, 3.125])
    assert size["peak"] == confusion_peak(size["boundaries"], size["accuracy"])
    assert size["n_test"] == 300
    assert size["resolved"] == peak_resolved(size["accuracy"], 300)
    for b, accuracy in zip(size["boundaries"], size["accuracy"], strict=True):
        run = Run.load(tmp_path / "study" / "L6" / f"below{b:.4f}")
        assert run.metrics["accuracy"] == accuracy
        # every temperature (the config's selection set aside), labelled T < b
        assert run.metrics["n_events"] == pytest.approx(0.3 * len(grid) * 100, abs=1)
        events = load_dataset(run.config.data)
        np.testing.assert_array_equal(events.labels, events.observers["temperature"] < b)
    assert (tmp_path / "study" / "confusion.png").stat().st_size > 10_000
    assert "| 6 | 7 from 1.625 to 3.125 |" in (tmp_path / "study" / "table.md").read_text()
    # a rerun takes the trained runs as they are
    again = run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "study",
                                low=1.6, high=3.2)
    assert again["sizes"] == result["sizes"]


def test_cli_names_a_bad_boundary_range(tmp_path, cli):
    path = write_config(tmp_path / "ising.yaml", {
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    result = cli("study", "ising", path, "--training", "confusion", "--boundaries", "2.0-2.5")
    assert result.exit_code == 2
    assert "--boundaries" in one_error_line(result) and "2.0-2.5" in one_error_line(result)
