"""The Ising phase transition found by a classifier (seeds/004; Mehta et al. arXiv:1803.08823,
Carrasquilla & Melko arXiv:1605.01735).

A network trained only on clearly ordered (T <= 1.75) and clearly disordered (T >= 2.75)
configurations is asked about every temperature between. Two numbers come out:

- the accuracy on the *critical set* T in {2.0, 2.25, 2.5}, the label being T < T_c
  (Mehta et al.: 95.9% for their best DNN);
- T_c(L), where the mean ordered-probability crosses 1/2 (linear interpolation between the
  neighbouring grid temperatures). The shift of a pseudo-critical temperature with lattice size
  goes as T_c(L) = T_c + a L^(-1/nu), nu = 1 for the 2D Ising model, so a straight-line fit in 1/L
  over several sizes extrapolates to the infinite lattice (Onsager: 2.26919).

``hepdl study ising CONFIG --sizes 10,20,40,60`` makes the data for each size (if not there),
trains the config on it, and writes ``phases.json``, ``table.md``, ``ordered_probability.png``
and ``finite_size_scaling.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hepdl.config import Config
from hepdl.errors import ConfigError, DataError, HepdlError
from hepdl.generate.ising import CRITICAL_TEMPERATURE
from hepdl.runs import atomic_write

CRITICAL_SET = (2.0, 2.25, 2.5)
TRAINING_RANGES = [(None, 1.75), (2.75, None)]
STUDY_TEMPERATURES = tuple(sorted(
    {round(t, 2) for t in np.arange(0.25, 1.751, 0.25)}
    | {round(t, 2) for t in np.arange(1.8, 2.701, 0.05)}
    | {round(t, 2) for t in np.arange(2.75, 4.001, 0.25)}))
"""Mehta et al.'s grid (0.25 ... 4.0 by 0.25) and 0.05 steps from 1.8 to 2.7 for the crossing."""


@dataclass
class PhaseCurve:
    """A network's view of one lattice size: mean P(ordered) per temperature and what follows."""

    size: int
    temperatures: list[float]
    ordered_probability: list[float]
    critical_accuracy: float
    crossing: float | None
    run: str


def ordered_probability(scores: np.ndarray, temperature: np.ndarray):
    """Grid temperatures and the mean ordered-probability of the configurations at each."""
    grid, where = np.unique(np.round(temperature, 4), return_inverse=True)
    mean = np.bincount(where, weights=scores) / np.bincount(where)
    return grid, mean


def crossing(temperatures: Sequence[float], probability: Sequence[float]) -> float | None:
    """Where P(ordered) falls through 1/2 for the last time (a noisy curve may dip and come
    back), interpolated linearly between grid temperatures; None if it never crosses."""
    t, p = np.asarray(temperatures, float), np.asarray(probability, float)
    steps = np.flatnonzero((p[:-1] >= 0.5) & (p[1:] < 0.5))
    if not len(steps):
        return None
    i = steps[-1]
    return float(t[i] + (p[i] - 0.5) * (t[i + 1] - t[i]) / (p[i] - p[i + 1]))


def critical_accuracy(scores: np.ndarray, temperature: np.ndarray) -> float:
    """Accuracy on T in {2.0, 2.25, 2.5}, ordered meaning T < T_c and P(ordered) > 1/2."""
    near = np.isin(np.round(temperature, 4), CRITICAL_SET)
    if not near.any():
        raise DataError("temperature", f"no configurations at the critical temperatures "
                                       f"{CRITICAL_SET}; make the data with them in the grid")
    truth = temperature[near] < CRITICAL_TEMPERATURE
    return float(np.mean((scores[near] > 0.5) == truth))


def finite_size_fit(sizes: Sequence[int], crossings: Sequence[float]) -> dict[str, float]:
    """Least squares T_c(L) = T_c + a / L (nu = 1); the extrapolated T_c and its distance from
    Onsager's, with the standard error of the intercept when there are more than two sizes
    (None for two: JSON has no NaN)."""
    x, y = 1.0 / np.asarray(sizes, float), np.asarray(crossings, float)
    if len(x) < 2:
        raise ConfigError("--sizes", "finite-size scaling needs at least two lattice sizes")
    (slope, intercept), cov = np.polyfit(x, y, 1, cov=True) if len(x) > 2 else (
        np.polyfit(x, y, 1), np.full((2, 2), np.nan))
    return {"tc_infinite": float(intercept), "slope": float(slope),
            "tc_infinite_error": float(np.sqrt(cov[1, 1])) if len(x) > 2 else None,
            "onsager": CRITICAL_TEMPERATURE,
            "relative_deviation": float(intercept / CRITICAL_TEMPERATURE - 1.0)}


def describe_fit(fit: dict[str, float]) -> str:
    """One line of :func:`finite_size_fit`'s result, for a study's table."""
    error = fit["tc_infinite_error"]
    spread = f" ± {error:.4f}" if error is not None else " (two sizes: a line through both)"
    return (f"T_c(L) = T_c + a/L: T_c = {fit['tc_infinite']:.4f}{spread} "
            f"(Onsager {fit['onsager']:.5f}, {fit['relative_deviation']:+.2%}); "
            f"a = {fit['slope']:.3f}")


def phase_curve(run_path: Path, data_file: Path, size: int) -> PhaseCurve:
    """Score every configuration of ``data_file`` with a trained run (no temperature selection)."""
    from hepdl.data import load_dataset
    from hepdl.evaluation.predictions import predict
    from hepdl.runs import Run

    run = Run.load(run_path)
    source = run.config.data.source
    data = run.config.data.model_copy(update={"source": source.model_copy(update={
        "path": str(data_file), "select": {},
        "observers": {**source.observers, "temperature": "temperature"}})})
    dataset = load_dataset(data)
    names = run.spec["class_names"]
    if "ordered" not in names:
        raise ConfigError("data.source.class_names", f"needs a class 'ordered', got {names}")
    scores = predict(run.network(), dataset).scores[:, names.index("ordered")]
    temperature = dataset.observers["temperature"]
    grid, mean = ordered_probability(scores, temperature)
    return PhaseCurve(size, grid.tolist(), mean.tolist(), critical_accuracy(scores, temperature),
                      crossing(grid, mean), str(run_path))


def relabelled(data_file: Path, boundary: float) -> Path:
    """``data_file``'s configurations labelled ordered for T < ``boundary`` instead of Onsager's
    T_c: a small HDF5 file beside it whose ``spins`` and ``temperature`` are external links to
    the original and whose ``label`` is its own (made once, written atomically)."""
    import h5py

    path = data_file.with_name(f"{data_file.stem}_below{boundary!r}.h5")
    made_from = data_file.stat().st_mtime_ns  # a file remade since: relabel again
    if path.is_file():
        with h5py.File(path, "r") as f:
            if f.attrs.get("boundary") == boundary and f.attrs.get("made_from") == made_from:
                return path
    with h5py.File(data_file, "r") as original:
        temperature = original["temperature"][:]
        keys = [key for key in original if key != "label"]
    # a name of this process's own: studies sharing a data directory may relabel alike at once
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with h5py.File(partial, "w") as f:
        for key in keys:  # spins, temperature and anything else the config may read
            f[key] = h5py.ExternalLink(str(data_file.resolve()), key)
        f["label"] = (temperature < boundary).astype(np.int8)
        f.attrs["boundary"] = boundary
        f.attrs["made_from"] = made_from
    partial.replace(path)
    return path


def check_file_source(config: Config) -> None:
    """The Ising studies read HDF5 files of their own making into the config's inputs."""
    if not hasattr(config.data.source, "path"):
        raise ConfigError("data.source", "the Ising study needs a file source (kind: hdf5)")


def file_temperatures(data_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """The temperatures of an Ising file, each once, to 4 decimals, and the number of
    configurations at each.

    Raises
    ------
    DataError
        The file is not readable HDF5, or has no ``temperature`` dataset.
    """
    import h5py

    from hepdl.data.readers import open_hdf5

    with open_hdf5(data_file) as f:
        node = f.get("temperature")
        if not isinstance(node, h5py.Dataset):
            raise DataError(str(data_file), "has no 'temperature' dataset")
        return np.unique(np.round(node[:], 4), return_counts=True)


def grid_difference(grid: np.ndarray, other: np.ndarray) -> float | None:
    """A temperature in one of two grids (to 4 decimals) and not the other; None when they
    are the same grid."""
    if len(grid) == len(other) and np.allclose(grid, other):
        return None
    return sorted(set(grid.tolist()) ^ set(other.tolist()))[0]


def check_grid(data_dir: Path, sizes: Sequence[int],
               temperatures: Sequence[float] | None) -> None:
    """Refuse a data file in ``data_dir`` on another grid than ``temperatures``, when they are
    given: the study would run on the file's grid, not the one asked for."""
    if temperatures is None:
        return
    grid = np.unique(np.round(np.asarray(temperatures, float), 4))
    for size in sizes:
        data_file = Path(data_dir) / f"ising_L{size}.h5"
        if not data_file.is_file():
            continue
        held, _ = file_temperatures(data_file)
        only = grid_difference(held, grid)
        if only is not None:
            raise ConfigError("--temperatures", (
                f"{data_file} is on another grid ({len(held)} temperatures) than the "
                f"{len(grid)} given (T = {only:g} in one only): move it away to make it on "
                "the grid given, or leave out --temperatures"))


def lattice_data(data_dir: Path, size: int, *, per_temperature: int = 1000, workers: int = 1,
                 temperatures: Sequence[float] = STUDY_TEMPERATURES, console=None) -> Path:
    """``data_dir/ising_L<size>.h5``, made on ``temperatures`` (by default the study grid,
    :data:`STUDY_TEMPERATURES`) if it is not there."""
    from hepdl.generate.ising import make_ising

    data_file = Path(data_dir) / f"ising_L{size}.h5"
    if not data_file.is_file():
        if console is not None:
            console.print(f"making {data_file} ({len(temperatures)} temperatures, "
                          f"{per_temperature} configurations each)")
        # to 4 decimals, as the studies compare grids: one --temperatures, one file
        grid = np.unique(np.round(np.asarray(temperatures, float), 4))
        make_ising(data_file, size=size, temperatures=grid.tolist(),
                   per_temperature=per_temperature, workers=workers)
    return data_file


def train_on(config: Config, data_file: Path, select: dict, run: Path, name: str,
             console=None) -> None:
    """Train ``config`` on ``data_file`` (events chosen by ``select``) into ``run``; a rerun
    takes the finished run as it is, resumes a killed one, and stops if ``run`` holds a
    different config (another protocol or network)."""
    from hepdl.study import Trial, train_or_resume

    check_file_source(config)
    source = config.data.source.model_copy(update={"path": str(data_file), "select": select})
    trial = config.model_copy(update={
        "name": f"{config.name}-{name}", "data": config.data.model_copy(update={"source": source})})
    done = Trial(0, {}, run)
    train_or_resume(done, trial, console)
    if done.status != "completed":
        raise HepdlError(f"training {name} failed: {done.finding}")


def run_phase_study(config: Config, *, sizes: Sequence[int], data_dir: Path, out: Path,
                    per_temperature: int = 1000, workers: int = 1, training: str = "extremes",
                    boundary: float | None = None,
                    temperatures: Sequence[float] | None = None, console=None) -> dict:
    """For each lattice size: make the data if missing (on ``temperatures``, by default
    :data:`STUDY_TEMPERATURES`; when given, the files there must be on them too), train, score
    every temperature; then the finite-size fit. Returns (and writes to ``out/phases.json``)
    every number.

    ``training``: "extremes" trains on the config's selection (by default T <= 1.75 and
    T >= 2.75, Mehta et al.); "all" on every temperature of the grid, labelled by T < T_c
    (Carrasquilla & Melko's protocol, where the labels already know Onsager's T_c), or by
    T < ``boundary`` (to measure how far the crossing follows the labels rather than the
    physics). The critical-set accuracy is always against Onsager's T_c."""
    if training not in ("extremes", "all"):
        raise ConfigError("--training", f"expected 'extremes' or 'all', got {training!r} "
                                        "(confusion: hepdl.confusion.run_confusion_study)")
    if boundary is not None and training != "all":
        raise ConfigError("--boundary", "relabels the training configurations at T < boundary: "
                                        "it needs --training all")
    check_file_source(config)
    out = Path(out)
    grid = STUDY_TEMPERATURES if temperatures is None else temperatures
    check_grid(data_dir, sizes, temperatures)
    select = {} if training == "all" else (
        config.data.source.select or {"temperature": TRAINING_RANGES})
    if training == "extremes" and not config.data.source.select:
        low, high = TRAINING_RANGES[0][1], TRAINING_RANGES[1][0]
        for size in sizes:  # on the grid of each file, there or to be made
            data_file = Path(data_dir) / f"ising_L{size}.h5"
            held = file_temperatures(data_file)[0] if data_file.is_file() else grid
            if min(held) > low or max(held) < high:
                raise ConfigError("--data-dir" if data_file.is_file() else "--temperatures", (
                    f"trained on T <= {low} and T >= {high}, but the grid "
                    f"{'of ' + str(data_file) + ' ' if data_file.is_file() else ''}runs from "
                    f"{min(held):g} to {max(held):g}"))
    curves = []
    for size in sizes:
        data_file = lattice_data(data_dir, size, per_temperature=per_temperature,
                                 workers=workers, temperatures=grid, console=console)
        trained_on = data_file if boundary is None else relabelled(data_file, boundary)
        train_on(config, trained_on, select, out / f"L{size}", f"L{size}", console)
        curves.append(phase_curve(out / f"L{size}", data_file, size))
        if console is not None:
            last = curves[-1]
            console.print(f"L = {size}: critical-set accuracy {last.critical_accuracy:.1%}, "
                          f"P(ordered) = 1/2 at T = {last.crossing}")
    crossed = [c for c in curves if c.crossing is not None]
    fit = finite_size_fit([c.size for c in crossed], [c.crossing for c in crossed]) \
        if len(crossed) >= 2 else None
    result = {"training": training, "label_boundary": boundary or CRITICAL_TEMPERATURE,
              "curves": [asdict(c) for c in curves], "finite_size_fit": fit,
              "published_critical_accuracy": 0.959}
    write_phase_study(result, out)
    return result


def write_phase_study(result: dict, out: Path) -> None:
    from hepdl.evaluation.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "phases.json", json.dumps(result, indent=2) + "\n")
    lines = ["| L | critical-set accuracy | T where P(ordered) = 1/2 |", "|---|---|---|"]
    for c in result["curves"]:
        tc = f"{c['crossing']:.4f}" if c["crossing"] is not None else "none"
        lines.append(f"| {c['size']} | {c['critical_accuracy']:.2%} | {tc} |")
    boundary = result.get("label_boundary", CRITICAL_TEMPERATURE)
    if boundary != CRITICAL_TEMPERATURE:
        lines.append(f"\nTrained on every temperature labelled T < {boundary:g}, not T < T_c.")
    fit = result["finite_size_fit"]
    if fit is not None:
        lines.append("\n" + describe_fit(fit))
    atomic_write(out / "table.md", "\n".join(lines) + "\n")
    save_figure(plot_ordered_probability(result["curves"]), out / "ordered_probability.png")
    if fit is not None:
        crossed = [c for c in result["curves"] if c["crossing"] is not None]
        save_figure(plot_finite_size([c["size"] for c in crossed],
                                     [c["crossing"] for c in crossed], fit),
                    out / "finite_size_scaling.png")


def plot_ordered_probability(curves: list[dict]):
    """Mean network output P(ordered) against temperature, one curve per lattice size."""
    from hepdl.evaluation.plots import _figure, _style

    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for c in curves:
            ax.plot(c["temperatures"], c["ordered_probability"], marker=".",
                    label=f"L = {c['size']}")
        ax.axhline(0.5, color="grey", linestyle=":")
        ax.axvline(CRITICAL_TEMPERATURE, color="black", linestyle="--", label="Onsager $T_c$")
        for edge in (1.75, 2.75):
            ax.axvline(edge, color="grey", linewidth=0.8)
        ax.set_xlabel("temperature $T$ ($J/k_B$)")
        ax.set_ylabel("mean $P$(ordered)")
        ax.legend(fontsize="small")
    return fig


def plot_finite_size(sizes: Sequence[int], values: Sequence[float], fit: dict,
                     label: str = "network, $P$(ordered) = 1/2"):
    """T_c(L) against 1/L with the straight-line fit extrapolated to 1/L = 0."""
    from hepdl.evaluation.plots import _figure, _style

    x = 1.0 / np.asarray(sizes, float)
    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        ax.plot(x, values, "o", label=label)
        line = np.linspace(0, x.max() * 1.05, 50)
        ax.plot(line, fit["tc_infinite"] + fit["slope"] * line, "-",
                label=f"fit: $T_c$ = {fit['tc_infinite']:.3f} + {fit['slope']:.2f}/L")
        ax.plot([0], [CRITICAL_TEMPERATURE], "*", markersize=14, color="black",
                label=f"Onsager {CRITICAL_TEMPERATURE:.4f}")
        ax.set_xlabel("1 / L")
        ax.set_ylabel("$T_c(L)$")
        ax.legend(fontsize="small")
    return fig
