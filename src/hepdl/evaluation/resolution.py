"""Energy resolution: sigma(E)/E in bins of energy, and the calorimeter formula fitted to it.

sigma/E = a/sqrt(E) (+) b (+) c/E, added in quadrature: the stochastic (sampling, shower
fluctuations), constant (leakage, non-uniformity, e/h) and noise terms (Fabjan & Gianotti,
Rev. Mod. Phys. 75 (2003) 1243).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ResolutionCurve:
    """Relative resolution per energy bin, with the fitted a, b, c (GeV^1/2, 1, GeV)."""

    label: str
    energy: list[float]
    resolution: list[float]
    error: list[float]
    bias: list[float]
    counts: list[int]
    a: float | None = None
    b: float | None = None
    c: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def model(self, energy: np.ndarray) -> np.ndarray:
        return resolution_formula(np.asarray(energy), self.a or 0.0, self.b or 0.0, self.c or 0.0)


def resolution_formula(energy: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """sqrt((a / sqrt(E))^2 + b^2 + (c / E)^2)."""
    return np.sqrt(a**2 / energy + b**2 + c**2 / energy**2)


def resolution_curve(true: np.ndarray, predicted: np.ndarray, edges, label: str,
                     min_events: int = 20) -> ResolutionCurve:
    """sigma((pred - true) / true) and the mean bias in bins of the true energy, then a fit.

    The spread is the standard deviation of the relative residual; its error sigma/sqrt(2(n-1))
    (Gaussian). The fit is a least-squares fit (scipy's curve_fit) with a, b, c >= 0.
    """
    from scipy.optimize import curve_fit

    true = np.asarray(true, dtype=float)
    relative = (np.asarray(predicted, dtype=float) - true) / true
    index = np.digitize(true, edges) - 1
    rows = []
    for b in range(len(edges) - 1):
        part = relative[index == b]
        if len(part) >= min_events:
            sigma = float(np.std(part, ddof=1))
            rows.append((float(np.mean(true[index == b])), sigma, sigma / np.sqrt(2 * (len(part)
                         - 1)), float(np.mean(part)), len(part)))
    energy, sigma, error, bias, counts = (list(x) for x in zip(*rows, strict=True)) if rows \
        else ([], [], [], [], [])
    curve = ResolutionCurve(label, energy, sigma, error, bias, [int(c) for c in counts])
    if len(rows) >= 3:
        try:
            (a, b, c), _ = curve_fit(resolution_formula, np.array(energy), np.array(sigma),
                                     p0=(0.5, 0.01, 0.1), sigma=np.array(error),
                                     bounds=(0, np.inf), maxfev=10000)
            curve.a, curve.b, curve.c = float(a), float(b), float(c)
        except RuntimeError:  # no convergence: keep the points, report no fit
            pass
    return curve


def calibrated_sum(raw_sum: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The summed cell energy calibrated to the true energy by a straight-line fit: the
    baseline a network regression has to beat."""
    slope, intercept = np.polyfit(raw_sum, true, 1)
    return slope * raw_sum + intercept


def plot_resolution(curves: list[ResolutionCurve]):
    """sigma/E vs E for each curve, points with errors and the fitted formula."""
    from hepdl.evaluation.plots import _figure, _style

    with _style():
        fig, axes = _figure()
        ax = axes[0, 0]
        for curve in curves:
            if not curve.energy:
                continue
            line = ax.errorbar(curve.energy, curve.resolution, yerr=curve.error, marker="o",
                               linestyle="", label=curve.label)
            if curve.a is not None:
                grid = np.linspace(min(curve.energy), max(curve.energy), 200)
                ax.plot(grid, curve.model(grid), color=line[0].get_color(),
                        label=f"{curve.a:.2f}/\u221aE \u2295 {curve.b:.3f} \u2295 {curve.c:.2f}/E")
        ax.set_xlabel("True energy [GeV]")
        ax.set_ylabel(r"$\sigma(E)/E$")
        if any(curve.energy for curve in curves):
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "too few events per energy bin", transform=ax.transAxes,
                    ha="center")
    return fig
