"""The phase-transition study: crossing, critical-set accuracy, finite-size fit, end to end."""

import json

import numpy as np
import pytest

from hepdl.config import config_from_dict
from hepdl.errors import ConfigError
from hepdl.generate.ising import CRITICAL_TEMPERATURE
from hepdl.phases import (
    critical_accuracy,
    crossing,
    describe_fit,
    finite_size_fit,
    ordered_probability,
)

from .conftest import one_error_line, write_config


def test_ordered_probability_is_the_mean_per_temperature():
    grid, mean = ordered_probability(np.array([1.0, 0.8, 0.2, 0.0]), np.array([1, 1, 3, 3.0]))
    np.testing.assert_allclose(grid, [1, 3])
    np.testing.assert_allclose(mean, [0.9, 0.1])


def test_crossing_interpolates_the_last_fall_through_one_half():
    t = [1.0, 2.0, 3.0, 4.0]
    assert crossing(t, [1.0, 0.75, 0.25, 0.0]) == pytest.approx(2.5)
    assert crossing(t, [1.0, 0.9, 0.6, 0.4]) == pytest.approx(3.5)
    # a noisy dip below 1/2 that comes back: the last fall counts
    assert crossing(t, [1.0, 0.45, 0.7, 0.3]) == pytest.approx(3.5)
    assert crossing(t, [1.0, 0.9, 0.8, 0.7]) is None


def test_critical_accuracy_labels_by_onsager_tc():
    temperature = np.array([2.0, 2.25, 2.5, 2.5, 1.0])
    scores = np.array([0.9, 0.4, 0.1, 0.7, 0.0])  # right, wrong (2.25 < Tc), right, wrong; T=1 out
    assert critical_accuracy(scores, temperature) == pytest.approx(0.5)


def test_finite_size_fit_recovers_a_known_shift():
    sizes = [10, 20, 40, 60]
    fit = finite_size_fit(sizes, [CRITICAL_TEMPERATURE + 0.7 / size for size in sizes])
    assert fit["tc_infinite"] == pytest.approx(CRITICAL_TEMPERATURE, abs=1e-9)
    assert fit["slope"] == pytest.approx(0.7)
    assert abs(fit["relative_deviation"]) < 1e-9
    assert fit["tc_infinite_error"] == pytest.approx(0.0, abs=1e-9)
    two = finite_size_fit([20, 40], [2.31, 2.29])
    assert two["tc_infinite"] == pytest.approx(2.27) and two["tc_infinite_error"] is None
    assert "T_c = 2.2700 (two sizes: a line through both)" in describe_fit(two)
    with pytest.raises(ConfigError, match="two lattice sizes"):
        finite_size_fit([40], [2.3])


def test_study_end_to_end_on_small_lattices(tmp_path):
    from hepdl.generate.ising import make_ising
    from hepdl.phases import STUDY_TEMPERATURES, run_phase_study

    grid = [t for t in STUDY_TEMPERATURES if t in (1.0, 1.5, 2.0, 2.25, 2.5, 3.0, 3.5)]
    for size in (6, 12):
        make_ising(tmp_path / f"ising_L{size}.h5", size=size, temperatures=grid,
                   per_temperature=100, chains=20, equilibration=30, decorrelation=3)
    config = config_from_dict({
        "name": "ising", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": "unused.h5", "inputs": {"spins": "spins"},
                            "label": "label", "class_names": ["disordered", "ordered"]},
                 "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
        "model": {"width": 32, "depth": 1},
        "train": {"epochs": 15, "batch_size": 16, "threads": 1}})
    result = run_phase_study(config, sizes=[6, 12], data_dir=tmp_path, out=tmp_path / "study")
    curves = {c["size"]: c for c in result["curves"]}
    # trained on T <= 1.75 and >= 2.75 only (the default selection), scored on every T
    assert curves[12]["temperatures"] == grid
    low, high = curves[12]["ordered_probability"][0], curves[12]["ordered_probability"][-1]
    assert low > 0.9 and high < 0.1
    assert 0.5 < curves[12]["critical_accuracy"] <= 1.0
    assert 1.5 < curves[12]["crossing"] < 3.0
    written = json.loads((tmp_path / "study" / "phases.json").read_text())
    assert written["finite_size_fit"]["onsager"] == pytest.approx(CRITICAL_TEMPERATURE)
    assert (tmp_path / "study" / "finite_size_scaling.png").stat().st_size > 10_000
    # a rerun reuses the trained runs and gives the same numbers
    again = run_phase_study(config, sizes=[6, 12], data_dir=tmp_path, out=tmp_path / "study")
    assert again["curves"] == result["curves"]


def test_relabelled_training_follows_its_boundary(tmp_path):
    from hepdl.data import load_dataset
    from hepdl.generate.ising import make_ising
    from hepdl.phases import relabelled, run_phase_study

    grid = [0.5, 1.0, 1.5, 2.0, 2.25, 2.5, 3.0, 3.5]
    make_ising(tmp_path / "ising_L8.h5", size=8, temperatures=grid, per_temperature=100,
               chains=20, equilibration=30, decorrelation=3)
    linked = relabelled(tmp_path / "ising_L8.h5", 1.75)
    config = config_from_dict({
        "name": "ising", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": str(linked), "inputs": {"spins": "spins"},
                            "label": "label", "class_names": ["disordered", "ordered"],
                            "observers": {"temperature": "temperature"}},
                 "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
        "model": {"width": 32, "depth": 1},
        "train": {"epochs": 15, "batch_size": 16, "threads": 1}})
    events = load_dataset(config.data)  # the spins through the link, the labels its own
    assert events.inputs["spins"].shape == (800, 8, 8)
    np.testing.assert_array_equal(events.labels, events.observers["temperature"] < 1.75)
    with pytest.raises(ConfigError, match="--training all"):
        run_phase_study(config, sizes=[8], data_dir=tmp_path, out=tmp_path / "x", boundary=1.75)
    result = run_phase_study(config, sizes=[8], data_dir=tmp_path, out=tmp_path / "study",
                             training="all", boundary=1.75)
    assert result["label_boundary"] == 1.75
    assert 1.5 < result["curves"][0]["crossing"] < 2.0  # told 1.75, it finds about 1.75
    assert "T < 1.75" in (tmp_path / "study" / "table.md").read_text()


def test_cli_names_a_bad_size_list(tmp_path, cli):
    path = write_config(tmp_path / "ising.yaml", {
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    result = cli("study", "ising", path, "--sizes", "10,twenty")
    assert result.exit_code == 2
    assert "--sizes" in one_error_line(result) and "twenty" in one_error_line(result)
