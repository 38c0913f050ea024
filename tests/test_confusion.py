"""Learning by confusion: trial boundaries, the peak of the accuracy, the study end to end."""

import re
from pathlib import Path

import numpy as np
import pytest

from hepdl.confusion import confusion_peak, peak_resolved, trial_boundaries
from hepdl.errors import ConfigError, DataError

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
    assert confusion_peak(b, 0.97 - 3.0 * (b - 2.2913) ** 2, half_width=2) == pytest.approx(
        2.2913)
    # tents with the apex anywhere in a grid step: within 0.35 of a step (the docstring's
    # bound), off toward the gentler side when the sides slope unequally
    step = 0.05
    for rise, fall, gentler in ((1, 1, 0), (1, 2, -1), (2, 1, +1)):
        for apex in 2.2 + step * np.linspace(0, 1, 21):
            tent = np.where(b < apex, rise * (b - apex), -fall * (b - apex))
            off = (confusion_peak(b, tent) - apex) / step
            assert abs(off) <= 0.35, (rise, fall, apex)
            assert gentler == 0 or off * gentler >= -1e-9, (rise, fall, apex)
    # a best trial at either end of the range is no peak
    assert confusion_peak(b, -b) is None and confusion_peak(b, b) is None
    # noise that bends the five points around the best upward: the best boundary itself
    bent = np.array([0.93, 0.90, 0.94, 0.91, 0.935, 0.85, 0.85])
    assert confusion_peak(b[:7], bent, half_width=2) == b[2]
    with pytest.raises(DataError, match="not finite"):
        confusion_peak(b[:3], [0.9, np.nan, 0.9])


def test_the_networks_scatter_counts_when_larger_than_the_binomial_error():
    # 43,000 events: binomial 0.2% on a difference; a 1% bump would be 5 of those
    curve = [0.90, 0.91, 0.90]
    assert peak_resolved(curve, n_test=43_000)
    # three networks per trial scattering by 1.5%: 0.87% on a mean, 1.2% on a difference
    scattered = [[a - 0.015, a, a + 0.015] for a in curve]
    assert not peak_resolved(curve, n_test=43_000, network_accuracy=scattered)
    # just either side of 3 sigma: var(a_k, ddof=1) / K, and sqrt(2) for a difference
    # (resolved while s**2 / 3 < (0.01 / 3)**2 / 2, s < 0.00408)
    for s, resolved in ((0.0039, True), (0.0042, False)):
        folds = [[a - s, a, a + s] for a in curve]
        assert peak_resolved(curve, n_test=43_000, network_accuracy=folds) is resolved, s
    # networks that agree: the binomial error stays the floor
    agreeing = [[a, a, a] for a in curve]
    assert peak_resolved(curve, n_test=43_000, network_accuracy=agreeing)
    assert not peak_resolved(curve, n_test=4_300, network_accuracy=agreeing)


def test_a_peak_within_the_binomial_errors_is_not_resolved():
    # 3,200 test events at 93%: a difference of two accuracies has an error of 0.63%
    assert peak_resolved([0.920, 0.950, 0.925], n_test=3200)  # 2.5% above the higher end
    assert not peak_resolved([0.935, 0.950, 0.940], n_test=3200)  # 1.0%: below 3 sigma
    assert peak_resolved([0.935, 0.950, 0.940], n_test=3200, sigmas=1.0)
    assert not peak_resolved([0.920, 0.950, 0.925], n_test=320)  # ten times fewer events
    # all but right: the error is never taken as zero
    assert not peak_resolved([0.999, 1.0, 0.9995], n_test=1000)


def two_phases(path, below: float, size: int = 6, per_temperature: int = 150):
    """Configurations of two phases that change at T = ``below`` and nowhere else: ordered
    (each spin up with probability 0.9) below, random spins above; within a phase every
    temperature looks the same. The file layout of ``hepdl data make ising``."""
    import h5py

    rng = np.random.default_rng(0)
    temperature = np.repeat(np.round(np.arange(1.95, 2.66, 0.1), 2), per_temperature)
    ordered = temperature < below
    up = rng.random((len(temperature), size, size)) < np.where(ordered, 0.9, 0.5)[:, None, None]
    with h5py.File(path, "w") as f:
        f["spins"] = np.where(up, 1, -1).astype(np.int8)
        f["temperature"] = temperature
        f["label"] = ordered.astype(np.int8)


def test_confusion_finds_a_boundary_no_label_tells_it(tmp_path):
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study
    from hepdl.data import load_dataset
    from hepdl.runs import Run

    two_phases(tmp_path / "ising_L6.h5", below=2.2)
    config = config_from_dict({
        "name": "ising", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": "unused.h5", "inputs": {"spins": "spins"},
                            "label": "label", "class_names": ["disordered", "ordered"],
                            "observers": {"temperature": "temperature"},
                            "select": {"temperature": [[None, 1.75], [2.75, None]]}},
                 "split": {"train": 0.6, "val": 0.1, "test": 0.3}},
        "model": {"width": 16, "depth": 1},
        "train": {"epochs": 10, "batch_size": 32, "lr": 1e-2, "threads": 1},
        "evaluate": {"plots": False}})
    # trials from 2.0 to 2.6: the range's middle (2.3) is not the boundary
    result = run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "study",
                                 low=1.9, high=2.7)
    (size,) = result["sizes"]
    assert size["boundaries"] == pytest.approx(np.arange(2.0, 2.61, 0.1))
    # labels inside a phase cannot all be learned (7/8 or 3/4 at best); at 2.2 all can
    assert size["accuracy"][2] > 0.95 > max(size["accuracy"][:2] + size["accuracy"][3:])
    assert size["peak"] == pytest.approx(2.2, abs=0.02) and size["resolved"]
    assert size["n_test"] == 0.3 * 8 * 150
    for b, accuracy in zip(size["boundaries"], size["accuracy"], strict=True):
        run = Run.load(tmp_path / "study" / "L6" / f"below{b:.4f}")
        assert run.metrics["accuracy"] == accuracy
        # every temperature (the config's selection set aside), labelled T < b
        events = load_dataset(run.config.data)
        assert len(events) == 8 * 150
        np.testing.assert_array_equal(events.labels, events.observers["temperature"] < b)
    assert (tmp_path / "study" / "confusion.png").stat().st_size > 10_000
    table = (tmp_path / "study" / "table.md").read_text()
    assert "| 6 | 7 from 2 to 2.6 |" in table and f"| {size['peak']:.4f} |" in table
    # a rerun takes the trained runs as they are
    again = run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "study",
                                low=1.9, high=2.7)
    assert again["sizes"] == result["sizes"]


def test_the_table_fits_resolved_peaks_only(tmp_path):
    from hepdl.confusion import write_confusion_study
    from hepdl.phases import finite_size_fit

    def size(L, peak, resolved):
        return {"size": L, "boundaries": [2.2, 2.25, 2.3], "accuracy": [0.9, 0.95, 0.9],
                "n_test": 3200, "peak": peak, "resolved": resolved}

    sizes = [size(10, 2.4, False), size(20, 2.31, True), size(40, 2.29, True),
             size(60, None, False)]
    fit = finite_size_fit([20, 40], [2.31, 2.29])
    write_confusion_study({"sizes": sizes, "finite_size_fit": fit}, tmp_path)
    table = (tmp_path / "table.md").read_text()
    assert "| 10 | 3 from 2.2 to 2.3 | 95.00% | 2.4000 (not resolved" in table
    assert "| 60 | 3 from 2.2 to 2.3 | 95.00% | none: the accuracy is highest at an end" in table
    assert "T_c = 2.2700" in table  # 2.29 - (2.31 - 2.29) / (1/20 - 1/40) / 40
    assert (tmp_path / "finite_size_scaling.png").is_file()


def test_each_ising_method_has_its_own_default_directory(tmp_path, cli, monkeypatch):
    import hepdl.confusion
    import hepdl.phases

    used = []

    def fake(config, *, out, **options):
        used.append(out)
        out.mkdir(parents=True)
        (out / "table.md").write_text("table\n")

    monkeypatch.setattr(hepdl.confusion, "run_confusion_study", fake)
    monkeypatch.setattr(hepdl.phases, "run_phase_study", fake)
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "ising.yaml", {
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    for training in ("extremes", "confusion"):
        assert cli("study", "ising", path, "--training", training).exit_code == 0
    assert used == [Path("runs/ising-phases"), Path("runs/ising-confusion")]


def test_cli_names_a_bad_boundary_range(tmp_path, cli):
    path = write_config(tmp_path / "ising.yaml", {
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    result = cli("study", "ising", path, "--training", "confusion", "--boundaries", "2.0-2.5")
    assert result.exit_code == 2
    assert "--boundaries" in one_error_line(result) and "2.0-2.5" in one_error_line(result)
    # refused before anything is made or trained
    for options, named in ((["--boundaries", "2.0:2.5"], "--boundaries: is for --training "
                                                         "confusion"),
                           (["--training", "confused"], "--training: expected extremes, all"),
                           (["--sizes", "10,20,10"], "--sizes: expected different"),
                           (["--sizes", "10,1"], "--sizes: expected different")):
        result = cli("study", "ising", path, *options)
        assert result.exit_code == 2 and named in one_error_line(result), options
    assert not (tmp_path / "data").exists()


def test_confusion_needs_a_classifier_and_takes_fine_grids(tmp_path):
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study

    regression = config_from_dict({
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}},
        "train": {"loss": "mse"}})
    with pytest.raises(ConfigError, match="train.loss: learning by confusion measures"):
        run_confusion_study(regression, sizes=[6], data_dir=tmp_path, out=tmp_path / "s")
    # a grid of 0.0033 steps, rounded to 4 decimals, is even
    fine = trial_boundaries(np.linspace(2.2, 2.3, 31), 2.2, 2.3)
    assert len(fine) == 30 and fine[0] == pytest.approx(2.2017, abs=2e-4)


def test_sizes_on_different_temperature_grids_are_refused_before_anything_is_made(tmp_path):
    import h5py

    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study

    two_phases(tmp_path / "ising_L6.h5", below=2.2)  # 0.1 steps; L = 8 would be made on 0.05
    config = config_from_dict({
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    with pytest.raises(ConfigError, match=r"L = 8 and L = 6 are on different temperature grids "
                                          r"\(32 and 8 temperatures; T = 0.25 in one only\)"):
        run_confusion_study(config, sizes=[6, 8], data_dir=tmp_path, out=tmp_path / "s",
                            low=2.0, high=2.4)
    assert not (tmp_path / "ising_L8.h5").exists() and not (tmp_path / "s").exists()
    # the same trials, but L = 8 never saw T = 2.65: its arms differ
    two_phases(tmp_path / "ising_L8.h5", below=2.2)
    with h5py.File(tmp_path / "ising_L8.h5", "r+") as f:
        keep = f["temperature"][:] < 2.6
        data = {name: f[name][:][keep] for name in f}
    with h5py.File(tmp_path / "ising_L8.h5", "w") as f:
        for name, values in data.items():
            f[name] = values
    with pytest.raises(ConfigError, match=r"\(7 and 8 temperatures; T = 2.65 in one only\)"):
        run_confusion_study(config, sizes=[6, 8], data_dir=tmp_path, out=tmp_path / "s",
                            low=2.0, high=2.4)


def test_a_file_with_more_configurations_at_some_temperatures_is_refused(tmp_path):
    import h5py

    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study

    two_phases(tmp_path / "ising_L6.h5", below=2.2)
    with h5py.File(tmp_path / "ising_L6.h5", "r+") as f:
        temperature = f["temperature"][:]
        temperature[:10] = 2.05  # 10 of T = 1.95's 150 moved to 2.05
        f["temperature"][:] = temperature
    config = config_from_dict({
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    with pytest.raises(DataError, match=r"holds 140 to 160 configurations per temperature "
                                        r"\(140 at T = 1.95\)"):
        run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "s",
                            low=2.0, high=2.4)


def test_k_folds_test_every_configuration_once(tmp_path, monkeypatch):
    import hepdl.confusion
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study
    from hepdl.data import split_indices
    from hepdl.runs import Run

    judged = []  # what the study gives the peak rule
    rule = hepdl.confusion.peak_resolved
    monkeypatch.setattr(hepdl.confusion, "peak_resolved", lambda *args, **kwargs: judged.append(
        kwargs["network_accuracy"]) or rule(*args, **kwargs))
    two_phases(tmp_path / "ising_L6.h5", below=2.2, per_temperature=61)  # 488: 163, 162, 163
    config = config_from_dict({
        "name": "ising", "seed": 1, "runs_dir": str(tmp_path / "runs"),
        "data": {"source": {"kind": "hdf5", "path": "unused.h5", "inputs": {"spins": "spins"},
                            "label": "label", "class_names": ["disordered", "ordered"],
                            "observers": {"temperature": "temperature"}},
                 "split": {"train": 0.8, "val": 0.1, "test": 0.1}},
        "model": {"width": 16, "depth": 1},
        "train": {"epochs": 10, "batch_size": 32, "lr": 1e-2, "threads": 1},
        "evaluate": {"plots": False}})
    result = run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "study",
                                 low=2.1, high=2.3, folds=3)
    (size,) = result["sizes"]
    assert size["boundaries"] == pytest.approx([2.1, 2.2, 2.3])
    assert size["n_test"] == 8 * 61 and size["folds"] == 3  # every configuration, once
    assert judged == [size["network_accuracy"]]
    for b, accuracy, each in zip(size["boundaries"], size["accuracy"],
                                 size["network_accuracy"], strict=True):
        runs = [Run.load(tmp_path / "study" / "L6" / f"below{b:.4f}-fold{k}of3")
                for k in range(3)]
        # one permutation cut in three; each network from its own seed
        assert [run.config.data.split.fold for run in runs] == [0, 1, 2]
        assert {run.config.data.split.seed for run in runs} == {1}
        assert len({run.config.seed for run in runs}) == 3
        tested = [split_indices(8 * 61, run.config.data.split, run.config.seed)["test"]
                  for run in runs]
        assert len(np.unique(np.concatenate(tested))) == 8 * 61
        assert [run.metrics["n_events"] for run in runs] == [len(t) for t in tested]
        assert each == [run.metrics["accuracy"] for run in runs]
        # the events' accuracy: each network's weighted by the events it tested
        assert accuracy == pytest.approx(np.average(each, weights=[len(t) for t in tested]))
    assert size["peak"] == pytest.approx(2.2, abs=0.02) and size["resolved"]


def test_folds_are_checked_before_anything_is_made(tmp_path):
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study

    config = config_from_dict({
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"},
                                  "split": {"train": 0.4, "val": 0.5, "test": 0.1}}})
    with pytest.raises(ConfigError, match=r"^--folds: split.val \(0.5\) leaves no training "
                                          r"events beside 1 of 2 folds for the test$"):
        run_confusion_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "s", folds=2)
    assert not (tmp_path / "ising_L6.h5").exists()


def test_missing_files_are_made_on_the_given_grid(tmp_path, monkeypatch):
    import hepdl.confusion
    from hepdl.config import config_from_dict
    from hepdl.confusion import run_confusion_study
    from hepdl.phases import lattice_data, run_phase_study

    made = lattice_data(tmp_path, 4, per_temperature=10, temperatures=[2.0, 2.25, 2.5])
    assert np.unique(_file_temperatures(made)).tolist() == [2.0, 2.25, 2.5]
    # L = 6 is there; the missing L = 8 is made on the grid given (without it, on the study
    # grid, and refused: test_sizes_on_different_temperature_grids_...)
    two_phases(tmp_path / "ising_L6.h5", below=2.2)

    def stop(data_dir, size, *, temperatures, **kwargs):
        if size == 6:
            return tmp_path / "ising_L6.h5"
        raise RuntimeError(f"making L = {size} on {np.round(temperatures, 2).tolist()}")

    monkeypatch.setattr(hepdl.confusion, "lattice_data", stop)
    monkeypatch.setattr(hepdl.confusion, "trial_accuracy", lambda *a, **k: (0.5, 100, [0.5]))
    config = config_from_dict({
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    grid = np.round(np.arange(1.95, 2.66, 0.1), 2)
    with pytest.raises(RuntimeError, match=re.escape(f"making L = 8 on {grid.tolist()}")):
        run_confusion_study(config, sizes=[6, 8], data_dir=tmp_path, out=tmp_path / "s",
                            low=2.0, high=2.4, temperatures=grid)
    # a file already there on another grid than the one given is refused, in both studies
    for study, options in ((run_confusion_study, {"low": 2.0, "high": 2.4}),
                           (run_phase_study, {"training": "all"})):
        with pytest.raises(ConfigError, match=r"--temperatures: .*ising_L6.h5 is on another "
                                              r"grid \(8 temperatures\) than the 9 given "
                                              r"\(T = 2.75 in one only\)"):
            study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "s",
                  temperatures=[*grid, 2.75], **options)
    # the extremes (T <= 1.75, T >= 2.75) need a grid that reaches them, checked first
    with pytest.raises(ConfigError, match=r"--temperatures: trained on T <= 1.75 and T >= 2.75, "
                                          r"but the grid runs from 2 to 2.5"):
        run_phase_study(config, sizes=[12], data_dir=tmp_path, out=tmp_path / "s",
                        temperatures=[2.0, 2.5])
    assert not (tmp_path / "ising_L12.h5").exists() and not (tmp_path / "s").exists()
    # and on the grid of a file already there (two_phases: 1.95 to 2.65)
    with pytest.raises(ConfigError, match=r"--data-dir: trained on T <= 1.75 and T >= 2.75, "
                                          r"but the grid of .*ising_L6.h5 runs from 1.95 to "
                                          r"2.65"):
        run_phase_study(config, sizes=[6], data_dir=tmp_path, out=tmp_path / "s")
    # a file there that is not an Ising file: one line, not a traceback
    (tmp_path / "ising_L9.h5").write_text("not HDF5")
    with pytest.raises(DataError, match=r"ising_L9.h5"):
        run_phase_study(config, sizes=[9], data_dir=tmp_path, out=tmp_path / "s")


def _file_temperatures(path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["temperature"][:]


def test_cli_takes_a_fine_grid_inside_a_coarse_one_and_folds(tmp_path, cli, monkeypatch):
    import hepdl.confusion
    import hepdl.phases

    used = []

    def fake(config, *, out, **options):
        used.append(options)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text("table\n")

    monkeypatch.setattr(hepdl.confusion, "run_confusion_study", fake)
    monkeypatch.setattr(hepdl.phases, "run_phase_study", fake)
    path = write_config(tmp_path / "ising.yaml", {
        "name": "ising", "data": {"source": {"kind": "hdf5", "path": "x.h5",
                                             "inputs": {"spins": "spins"}, "label": "label"}}})
    out = ["--out", str(tmp_path / "s")]
    result = cli("study", "ising", path, *out, "--training", "confusion", "--folds", "3",
                 "--temperatures", "1.8:1.9:0.05,2.1:2.14:0.02,2.12,3")
    assert result.exit_code == 0, result.output
    assert used[-1]["folds"] == 3
    assert used[-1]["temperatures"] == [1.8, 1.85, 1.9, 2.1, 2.12, 2.14, 3.0]
    assert cli("study", "ising", path, *out).exit_code == 0
    assert used[-1]["temperatures"] is None  # the files' grid; a missing file on the study's
    assert cli("study", "ising", path, *out, "--temperatures", "2:2.001:0.0001").exit_code == 0
    assert len(used[-1]["temperatures"]) == 11  # steps of 1e-4 are told apart
    for options, named in ((["--folds", "3"], "--folds: is for --training confusion"),
                           (["--temperatures", "2.1:2.0:0.1"], "--temperatures: expected start"),
                           (["--temperatures", "0:1:0.5"], "--temperatures: expected "
                                                          "temperatures above 0, got 0"),
                           (["--temperatures", "1:inf:1"], "--temperatures: expected start"),
                           (["--temperatures", "2,nan"], "--temperatures: expected start"),
                           (["--temperatures", "1:2"], "--temperatures: expected start"),
                           (["--temperatures", "1:3:1e-12"], "--temperatures: 1:3:1e-12 makes "
                                                             "2000000000001 temperatures"),
                           (["--temperatures", "1:1e308:1e-300"], "--temperatures: "
                                                                  "1:1e308:1e-300 makes inf"),
                           (["--temperatures", "2.1,2.10001"], "--temperatures: 2.1 and 2.10001 "
                                                               "are the same to 4 decimals")):
        result = cli("study", "ising", path, *out, *options)
        assert result.exit_code == 2 and named in one_error_line(result), options
