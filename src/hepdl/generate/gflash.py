"""GFlash: the parametrized electromagnetic shower of Grindhammer & Peters (hep-ex/0001020).

As coded in Geant4 ``source/parameterisations/gflash``; every formula is quoted in the
project's REFERENCES.md. Depth ``t`` is in radiation lengths X0, radius ``r`` in Moliere radii,
energies in GeV. All functions are vectorized over showers (arrays of energies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ES_MEV = 21.2052  # the scale energy Es = m_e sqrt(4 pi / alpha), in MeV (GFlash uses 21 MeV)


@dataclass(frozen=True)
class Material:
    """What GFlash needs of a calorimeter material.

    Parameters
    ----------
    name : str
    z, a : float
        Atomic number and mass (g/mol); for a mixture, the effective values.
    x0_g_cm2 : float
        Radiation length in g/cm^2.
    sampling : bool
        Use GFlash's fluctuation parameters for sampling calorimeters.
    """

    name: str
    z: float
    a: float
    x0_g_cm2: float
    sampling: bool = True

    @property
    def critical_energy(self) -> float:
        """Ec = 2.66 (X0 Z/A)^1.1 MeV, returned in GeV (GFlash)."""
        return 2.66e-3 * (self.x0_g_cm2 * self.z / self.a) ** 1.1


TUNGSTEN = Material("W", z=74.0, a=183.84, x0_g_cm2=6.76)  # PDG: X0 = 6.76 g/cm^2
IRON = Material("Fe", z=26.0, a=55.845, x0_g_cm2=13.84)  # PDG: X0 = 13.84 g/cm^2


def mean_log_depth_and_alpha(energy: np.ndarray, material: Material):
    """<ln T> and <ln alpha> of homogeneous media (GFlash), y = E / Ec."""
    log_y = np.log(np.asarray(energy, dtype=np.float64) / material.critical_energy)
    mean_ln_t = np.log(log_y - 0.812)
    mean_ln_alpha = np.log(0.81 + (0.458 + 2.26 / material.z) * log_y)
    return mean_ln_t, mean_ln_alpha, log_y


def fluctuation_parameters(log_y: np.ndarray, sampling: bool):
    """sigma(ln T), sigma(ln alpha) and their correlation rho (GFlash, per medium type)."""
    if sampling:
        return (1.0 / (-2.5 + 1.25 * log_y), 1.0 / (-0.82 + 0.79 * log_y), 0.784 - 0.023 * log_y)
    return (1.0 / (-1.4 + 1.26 * log_y), 1.0 / (-0.58 + 0.86 * log_y), 0.705 - 0.023 * log_y)


def draw_longitudinal(energy: np.ndarray, material: Material, rng: np.random.Generator):
    """Per-shower (T, alpha, beta) of the gamma-function profile with correlated fluctuations.

    (1/E) dE/dt = (beta t)^(alpha-1) beta exp(-beta t) / Gamma(alpha), T = (alpha - 1) / beta.
    ln T = <ln T> + s_T (sqrt((1+rho)/2) z1 + sqrt((1-rho)/2) z2),
    ln a = <ln a> + s_a (sqrt((1+rho)/2) z1 - sqrt((1-rho)/2) z2).
    """
    mean_ln_t, mean_ln_alpha, log_y = mean_log_depth_and_alpha(energy, material)
    # The spreads diverge where -2.5 + 1.25 ln y -> 0 (E ~ 60 MeV): GFlash is fitted to showers
    # above ~1 GeV, so softer ones (brems photons, conversion legs) take the 1 GeV spreads.
    floor = np.log(1.0 / material.critical_energy)
    sigma_t, sigma_alpha, rho = fluctuation_parameters(np.maximum(log_y, floor),
                                                       material.sampling)
    z1, z2 = rng.standard_normal((2, len(log_y)))
    plus, minus = np.sqrt((1 + rho) / 2), np.sqrt((1 - rho) / 2)
    depth_max = np.exp(mean_ln_t + sigma_t * (plus * z1 + minus * z2))
    alpha = np.exp(mean_ln_alpha + sigma_alpha * (plus * z1 - minus * z2))
    alpha = np.maximum(alpha, 1.05)  # a profile needs alpha > 1 to have a maximum
    beta = (alpha - 1.0) / depth_max
    return depth_max, alpha, beta


def radial_parameters(tau: np.ndarray, energy: np.ndarray, z: float, log_e=None):
    """Core radius Rc, tail radius Rt (Moliere radii) and core probability p at tau = t / T.

    ``log_e`` may be given (ln E per spot, taken from its shower) to save the logarithms.
    """
    log_e = np.log(energy) if log_e is None else log_e
    rc = (0.0251 + 0.00319 * log_e) + (0.1162 - 0.000381 * z) * tau
    k1, k2, k3, k4 = 0.659 - 0.00309 * z, 0.645, -2.59, 0.3585 + 0.0412 * log_e
    rt = k1 * (np.exp(k3 * (tau - k2)) + np.exp(k4 * (tau - k2)))
    p1, p2, p3 = 2.632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * log_e
    arg = (p2 - tau) / p3
    p = np.clip(p1 * np.exp(arg - np.exp(arg)), 0.0, 1.0)
    return rc, rt, p


def draw_radius(tau: np.ndarray, energy: np.ndarray, z: float, rng: np.random.Generator,
                log_e=None):
    """Radii (Moliere radii) of spots from f(r) = p f_core + (1-p) f_tail,
    f_R(r) = 2 r R^2 / (r^2 + R^2)^2, drawn as r = R sqrt(u / (1 - u))."""
    rc, rt, p = radial_parameters(tau, energy, z, log_e)
    radius = np.where(rng.random(len(tau), dtype=np.float32) < p, rc, rt)
    # u -> 1 is r -> infinity; beyond 0.999 is far outside any window
    u = 0.999 * rng.random(len(tau), dtype=np.float32)
    return radius * np.sqrt(u / (1.0 - u))
