"""Learning by confusion: the Ising transition found without being told where it is
(van Nieuwenburg, Liu & Huber, Nature Physics 13, 435 (2017), arXiv:1610.02048).

Label every configuration ordered when T < b, for a trial boundary b, train a network on every
temperature, and measure its accuracy on held-out configurations. Where b falls inside one
phase the network has to tell apart temperatures that look alike, and its accuracy drops; where
b falls at the transition the labels follow the physics and the accuracy peaks. The peak over
the trial boundaries is T_c(L), a pseudo-critical temperature that moves as T_c + a/L (nu = 1),
so the finite-size fit of :mod:`hepdl.phases` extrapolates it. No label, selection or grid
point carries Onsager's T_c.

``hepdl study ising CONFIG --training confusion --sizes 10,20,40,60 --boundaries 2.0:2.55``
trains one network per size and trial boundary (``--folds K``: K networks, each testing one
fold of the configurations, so the accuracy is measured on all of them) and writes
``confusion.json``, ``table.md``, ``confusion.png`` and ``finite_size_scaling.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from hepdl.config import Config, SplitConfig, _error_line
from hepdl.errors import ConfigError, DataError
from hepdl.generate.ising import CRITICAL_TEMPERATURE
from hepdl.phases import (
    STUDY_TEMPERATURES,
    check_file_source,
    check_grid,
    describe_fit,
    file_temperatures,
    finite_size_fit,
    grid_difference,
    lattice_data,
    plot_finite_size,
    relabelled,
    train_on,
)
from hepdl.runs import atomic_write


def trial_boundaries(temperatures: Sequence[float], low: float, high: float) -> list[float]:
    """Midpoints between neighbouring grid temperatures, those in [``low``, ``high``]: a
    boundary moved within one gap changes no label, so these are the only distinct trials.
    The grid must be evenly spaced there: temperatures further apart are told apart more
    easily, so a wider gap would raise the accuracy whatever the phases."""
    grid = np.unique(np.round(np.asarray(temperatures, float), 4))
    middle = np.round((grid[:-1] + grid[1:]) / 2, 4)
    inside = (middle >= low) & (middle <= high)
    if inside.sum() < 3:
        raise ConfigError("--boundaries", f"[{low}, {high}] holds {inside.sum()} midpoints of the "
                                          f"temperature grid; the peak needs at least 3")
    gaps = np.diff(grid)[inside]
    # a wider gap is easier to split: a peak for that alone (the floor: 4-decimal rounding)
    if gaps.max() - gaps.min() > max(0.01 * gaps.min(), 2e-4):
        raise ConfigError("--boundaries", f"the temperature grid's spacing changes within "
                                          f"[{low}, {high}] ({gaps.min():g} to {gaps.max():g}); "
                                          "give a range of evenly spaced temperatures")
    return middle[inside].tolist()


def confusion_peak(boundaries: Sequence[float], accuracy: Sequence[float],
                   half_width: int = 1) -> float | None:
    """The trial boundary of highest accuracy, refined by the vertex of the parabola through
    it and its ``half_width`` neighbours on each side (least squares beyond one); None when
    the highest accuracy is at either end of the range (the peak may lie outside, or that end
    is an arm of the W: move or widen the range).

    Three points by default: on peaks of the shapes a sampled accuracy curve may take (a
    Gaussian one or two grid steps wide, a Lorentzian, a tent with sides sloping 1:1 or 1:2,
    the apex anywhere between grid points), their vertex is off by at most 0.35 of a grid step,
    toward the gentler side; five points' by up to 0.55 of one (the asymmetric shapes)."""
    b, acc = np.asarray(boundaries, float), np.asarray(accuracy, float)
    if not np.isfinite(acc).all():
        raise DataError("accuracy", f"not finite at the trial boundaries {b[~np.isfinite(acc)]}")
    best = int(np.argmax(acc))
    if best in (0, len(b) - 1):
        return None
    near = slice(max(best - half_width, 0), min(best + half_width + 1, len(b)))
    curvature, slope, _ = np.polyfit(b[near], acc[near], 2)
    if curvature >= 0:  # no maximum in the points around the best: take the best itself
        return float(b[best])
    # the vertex, kept within the neighbouring trials (a tie leans it toward the second best)
    return float(np.clip(-slope / (2 * curvature), b[best - 1], b[best + 1]))


def peak_resolved(accuracy: Sequence[float], n_test: int, sigmas: float = 3.0,
                  network_accuracy: Sequence[Sequence[float]] | None = None) -> bool:
    """Whether the best accuracy stands above those at both ends of the range by more than
    ``sigmas`` standard errors of a difference of two accuracies: a flat curve's highest point
    is noise. Three sigma, because the best of many trials is taken (at two, a flat curve of
    18 trials passes about 5% of the time).

    The error of one trial's accuracy is binomial on its ``n_test`` events, p (1 - p) / n with
    p the mean accuracy (at least one event wrong in either direction). With K networks per
    trial (``network_accuracy``, one list per trial: the folds of :func:`trial_accuracy`),
    it is at least the scatter of their accuracies, var(a_k) / K pooled over the trials, which
    holds the spread between retrained networks as well as the test events' own. The test
    events (and, with folds, each fold's seed) are the same at every boundary, which
    correlates the accuracies: the error of a difference taken as sqrt(2) that of one trial
    is conservative. With a single network per trial, the spread between retrained networks
    is not counted."""
    acc = np.asarray(accuracy, float)
    p = float(np.clip(acc.mean(), 1.0 / n_test, 1.0 - 1.0 / n_test))
    variance = p * (1 - p) / n_test
    if network_accuracy is not None and min(len(each) for each in network_accuracy) > 1:
        scatter = np.mean([np.var(each, ddof=1) / len(each) for each in network_accuracy])
        variance = max(variance, float(scatter))
    return bool(acc.max() - max(acc[0], acc[-1]) > sigmas * np.sqrt(2 * variance))


def _temperatures(data_file: Path) -> np.ndarray:
    """The file's temperatures (to 4 decimals), each held by the same number of
    configurations: a boundary with more configurations on one side could be placed by that
    alone."""
    temperatures, counts = file_temperatures(data_file)
    if counts.min() != counts.max():
        raise DataError(str(data_file), f"holds {counts.min()} to {counts.max()} configurations "
                                        f"per temperature ({counts.min()} at T = "
                                        f"{temperatures[np.argmin(counts)]:g}); learning by "
                                        "confusion needs the same number at every temperature")
    return temperatures


def held_out_accuracy(run: Path) -> tuple[float, int]:
    """The run's accuracy on its test split (``metrics.json``), against its own labels, and
    the number of test events."""
    metrics = json.loads((run / "metrics.json").read_text())
    return float(metrics["accuracy"]), int(metrics["n_events"])


def trial_accuracy(config: Config, data_file: Path, boundary: float, run: Path, name: str,
                   folds: int = 1, console=None) -> tuple[float, int, list[float]]:
    """Train on labels T < ``boundary`` into ``run`` and return the test accuracy, the number
    of test events and the accuracy of each network. With ``folds`` K > 1, K networks, in
    ``run-fold<k>of<K>``, each test one fold of the events (``split.folds``, one permutation
    for all) and start from their own seed (initial weights, batch order); the accuracy is
    over all of them: every configuration is tested once, by a network that never saw it, and
    the spread between the K networks measures the error (:func:`peak_resolved`)."""
    labelled = relabelled(data_file, boundary)
    if folds == 1:
        train_on(config, labelled, {}, run, name, console)
        value, n_test = held_out_accuracy(run)
        return value, n_test, [value]
    correct, n_test, each = 0, 0, []
    for fold in range(folds):
        split = config.data.split.model_copy(update={
            "folds": folds, "fold": fold,
            "seed": config.seed if config.data.split.seed is None else config.data.split.seed})
        trial = config.model_copy(update={
            "seed": config.seed + 1000 * fold,
            "data": config.data.model_copy(update={"split": split})})
        where = run.with_name(f"{run.name}-fold{fold}of{folds}")
        train_on(trial, labelled, {}, where, f"{name}-fold{fold}of{folds}", console)
        value, n = held_out_accuracy(where)
        correct += round(value * n)
        n_test += n
        each.append(value)
    return correct / n_test, n_test, each


def run_confusion_study(config: Config, *, sizes: Sequence[int], data_dir: Path, out: Path,
                        low: float = 1.8, high: float = 2.7, per_temperature: int = 1000,
                        workers: int = 1, folds: int = 1,
                        temperatures: Sequence[float] | None = None, console=None) -> dict:
    """For each lattice size and each trial boundary b in [``low``, ``high``]: train on every
    temperature labelled T < b and take the test accuracy (over ``folds`` networks, each
    testing one fold: :func:`trial_accuracy`); the peak over b is T_c(L); then the finite-size
    fit over the sizes whose peak is resolved (:func:`peak_resolved`). Returns (and writes to
    ``out/confusion.json``) every number. The config's selection of temperatures
    (examples/ising.yaml's extremes) is set aside: every temperature is trained on. A missing
    data file is made on ``temperatures`` (by default :data:`STUDY_TEMPERATURES`); when they
    are given, the files there must be on them too."""
    check_file_source(config)
    if config.task != "classification":
        raise ConfigError("train.loss", "learning by confusion measures a classifier's accuracy: "
                                        "use cross_entropy or bce")
    if folds < 1:
        raise ConfigError("--folds", f"expected 1 (one network per trial) or more, got {folds}")
    if folds > 1:  # the folds' split checked as a config's, before any data is made
        try:
            SplitConfig.model_validate(config.data.split.model_dump() | {"folds": folds})
        except ValidationError as exc:
            raise _error_line(exc, "--folds") from None
    out = Path(out)
    grid = np.unique(np.round(np.asarray(
        STUDY_TEMPERATURES if temperatures is None else temperatures, float), 4))
    check_grid(data_dir, sizes, temperatures)
    files = {}
    grids = {}  # every range checked before any data is made or trained
    for size in sizes:
        data_file = Path(data_dir) / f"ising_L{size}.h5"
        files[size] = _temperatures(data_file) if data_file.is_file() else grid
        grids[size] = trial_boundaries(files[size], low, high)
    # the temperatures outside the range set how far the phases are told apart (the arms of
    # the accuracy): sizes trained on different grids peak on unlike curves, not one fit
    # (a missing file is made on the grid given, which may not be the other files' grid)
    first = sizes[0]
    for size in sizes[1:]:
        mine, theirs = files[size], files[first]
        only = grid_difference(mine, theirs)
        if only is not None:
            raise ConfigError("--data-dir", (
                f"L = {size} and L = {first} are on different temperature grids ({len(mine)} "
                f"and {len(theirs)} temperatures; T = {only:g} in one only): give every "
                f"size data on one grid in {data_dir} (a missing file is made on "
                "--temperatures, by default the study grid)"))
    sizes_done = []
    for size in sizes:
        data_file = lattice_data(data_dir, size, per_temperature=per_temperature,
                                 workers=workers, temperatures=grid, console=console)
        boundaries = grids[size]
        accuracy, networks = [], []
        for b in boundaries:
            value, n_test, each = trial_accuracy(
                config, data_file, b, out / f"L{size}" / f"below{b:.4f}", f"L{size}-below{b:.4f}",
                folds, console)
            accuracy.append(value)
            networks.append(each)
            if console is not None:
                console.print(f"L = {size}, labels T < {b:.4f}: test accuracy {value:.2%} "
                              f"({n_test} events)")
        peak = confusion_peak(boundaries, accuracy)
        resolved = peak is not None and peak_resolved(accuracy, n_test,
                                                      network_accuracy=networks)
        sizes_done.append({"size": size, "boundaries": boundaries, "accuracy": accuracy,
                           "n_test": n_test, "folds": folds, "network_accuracy": networks,
                           "peak": peak, "resolved": resolved})
        if console is not None:
            console.print(f"L = {size}: " + (
                f"accuracy peaks at T = {peak:.4f}" if resolved else
                f"peak not resolved (within the errors), best at T = {peak:.4f}"
                if peak is not None else "accuracy highest at an end of the range"))
    found = [s for s in sizes_done if s["resolved"]]
    fit = finite_size_fit([s["size"] for s in found], [s["peak"] for s in found]) \
        if len(found) >= 2 else None
    result = {"method": "confusion (van Nieuwenburg, Liu & Huber 2017)", "range": [low, high],
              "sizes": sizes_done, "finite_size_fit": fit}
    write_confusion_study(result, out)
    return result


def write_confusion_study(result: dict, out: Path) -> None:
    from hepdl.evaluation.plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "confusion.json", json.dumps(result, indent=2) + "\n")
    lines = ["| L | trial boundaries | best test accuracy | T_c(L): peak of the accuracy |",
             "|---|---|---|---|"]
    for s in result["sizes"]:
        peak = f"{s['peak']:.4f}" if s["peak"] is not None else (
            "none: the accuracy is highest at an end of the range")
        if s["peak"] is not None and not s["resolved"]:
            peak += " (not resolved: the curve is flat within its errors; not fitted)"
        lines.append(f"| {s['size']} | {len(s['boundaries'])} from {s['boundaries'][0]:g} to "
                     f"{s['boundaries'][-1]:g} | {max(s['accuracy']):.2%} | {peak} |")
    fit = result["finite_size_fit"]
    if fit is not None:
        lines.append("\n" + describe_fit(fit))
    atomic_write(out / "table.md", "\n".join(lines) + "\n")
    save_figure(plot_confusion(result["sizes"]), out / "confusion.png")
    if fit is not None:
        found = [s for s in result["sizes"] if s["resolved"]]
        save_figure(plot_finite_size([s["size"] for s in found], [s["peak"] for s in found],
                                     fit, label="network, peak of the confusion accuracy"),
                    out / "finite_size_scaling.png")


def plot_confusion(sizes: list[dict]):
    """Test accuracy against the trial boundary, one curve per lattice size, peaks marked."""
    from hepdl.evaluation.plots import _figure, _style

    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for s in sizes:
            (line,) = ax.plot(s["boundaries"], s["accuracy"], marker=".",
                              label=f"L = {s['size']}")
            if s["resolved"]:
                ax.axvline(s["peak"], color=line.get_color(), linestyle=":", linewidth=1)
        ax.axvline(CRITICAL_TEMPERATURE, color="black", linestyle="--", label="Onsager $T_c$")
        ax.set_xlabel("trial boundary $b$: labels ordered for $T < b$")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize="small")
    return fig
