"""An LCD-style calorimeter fast simulation: e-, gamma, pi0 and pi+- into ECAL and HCAL images.

The LCD (CLIC) dataset of seeds/000 holds, per particle, an ECAL window of 25x25x25 cells and an
HCAL window of 5x5x60 cells centred on the particle's entry point. This module makes such events
from parametrized physics, vectorized over events:

* upstream: a tracker of ``tracker_x0`` radiation lengths in a solenoid field. Electrons radiate
  bremsstrahlung photons (Bethe-Heitler spectrum) that fly straight while the electron bends, so
  they land displaced in phi by (R - r)^2 / (2 rho); photons convert with probability
  1 - exp(-7/9 x) into an e+e- pair that the field splits;
* electromagnetic showers: GFlash longitudinal and radial profiles with correlated fluctuations
  (:mod:`hepdl.generate.gflash`), deposited as energy spots; an unconverted photon starts after a
  depth drawn from its 9/7 X0 mean free path, an electron at the front;
* neutral pions: two photons from an isotropic decay in the rest frame, so the opening angle
  shrinks as 2 m_pi0 / E and the showers merge in the ECAL above a few tens of GeV;
* charged pions: a minimum-ionizing track (Landau-distributed loss) until an interaction depth
  drawn from Exp(lambda_int), then a hadronic shower whose electromagnetic fraction fluctuates
  event by event (Groom's <f_em> = 1 - (E/E0)^(k-1)), non-compensating (h/e < 1), longer and wider
  than an electromagnetic one, leaking into the HCAL;
* readout: sampling fluctuations a/sqrt(E) per cell, electronic noise, zero suppression.

What separates the classes is this physics; nothing is tuned to a table of results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from hepdl.generate.gflash import TUNGSTEN, Material, draw_longitudinal, draw_radius

PI0_MASS = 0.1349768  # GeV, PDG
PION_MASS = 0.13957039  # GeV, PDG
ELECTRON_MASS = 0.000511  # GeV
PARTICLES = {"Ele": 11, "Gamma": 22, "Pi0": 111, "ChPi": 211}
MASSES = {11: ELECTRON_MASS, 22: 0.0, 111: PI0_MASS, 211: PION_MASS}


@dataclass(frozen=True)
class CaloGeometry:
    """The detector: a Si-W ECAL and a steel-scintillator HCAL behind a tracker in a solenoid.

    Numbers follow the CLIC detector model (CLICdet, arXiv:1812.07337; the LCD dataset of
    seeds/000) where it gives them; the rest are stated material facts (PDG):

    * ECAL: 25 silicon layers with 5.1 mm pads, the first in front of the tungsten (it sees the
      charged particles that enter, as in CALICE-style Si-W stacks), then one behind each of 24
      plates of about 1 X0 of tungsten (X0 = 3.5 mm, 6.76 g/cm^2). The effective Moliere radius
      of the stack is tungsten's 9.3 mm diluted by the silicon, readout and gaps (layer pitch
      about 1.6 x the tungsten): about 15 mm. 24 X0 of tungsten is 84 mm, 0.85 nuclear
      interaction lengths (lambda_W = 99 mm).
    * HCAL: 60 layers of 20 mm steel (0.12 lambda_int, 1.14 X0 each) with 30 mm scintillator tiles.
    * A minimum-ionizing particle loses 1.145 MeV cm^2/g: 7.7 MeV in 3.5 mm of tungsten, 22.8 MeV
      in 20 mm of steel (energies here are calibrated: an electron's cells sum to its energy).
    * Readout: sampling terms 17%/sqrt(E) (ECAL, CLICdet) and 40%/sqrt(E) (HCAL, for the hadronic
      part); noise 0.1 MIP per cell, zero suppression at 0.5 MIP.
    * Tracker 0.15 X0 (CLICdet's barrel is 0.1-0.2 X0), field 4 T, ECAL at 1.5 m.
    """

    ecal_cells: int = 25
    ecal_layers: int = 25
    ecal_cell_mm: float = 5.1
    ecal_layer_x0: float = 1.0
    ecal_moliere_mm: float = 15.0
    ecal_lambda: float = 0.85
    ecal_mip_gev: float = 0.0077
    ecal_stochastic: float = 0.17
    hcal_cells: int = 5
    hcal_layers: int = 60
    hcal_cell_mm: float = 30.0
    hcal_layer_lambda: float = 0.12
    hcal_layer_x0: float = 1.14
    hcal_moliere_mm: float = 20.0
    hcal_mip_gev: float = 0.0228
    hcal_stochastic: float = 0.40
    noise_mip: float = 0.1
    threshold_mip: float = 0.5
    tracker_x0: float = 0.15
    tracker_radius_m: float = 1.2
    calo_radius_m: float = 1.5
    field_tesla: float = 4.0
    material: Material = field(default=TUNGSTEN)

    @property
    def ecal_shape(self) -> tuple[int, int, int]:
        return (self.ecal_cells, self.ecal_cells, self.ecal_layers)

    @property
    def hcal_shape(self) -> tuple[int, int, int]:
        return (self.hcal_cells, self.hcal_cells, self.hcal_layers)

    @property
    def ecal_plates(self) -> int:
        """Absorber plates: one in front of every sensitive layer but the first."""
        return self.ecal_layers - 1

    @property
    def ecal_depth_x0(self) -> float:
        return self.ecal_plates * self.ecal_layer_x0

    def ecal_layer_at(self, depth_x0: np.ndarray) -> np.ndarray:
        """The sensitive layer reading a deposit at a depth (X0) inside the ECAL's tungsten."""
        return np.floor(depth_x0 / self.ecal_layer_x0) + 1

    def lambda_to_x0(self, depth_lambda: np.ndarray) -> np.ndarray:
        """A depth in interaction lengths from the ECAL front, as radiation lengths."""
        in_ecal = depth_lambda / self.ecal_lambda * self.ecal_depth_x0
        behind = self.ecal_depth_x0 + ((depth_lambda - self.ecal_lambda)
                                       / self.hcal_layer_lambda * self.hcal_layer_x0)
        return np.where(depth_lambda < self.ecal_lambda, in_ecal, behind)


@dataclass(frozen=True)
class HadronicModel:
    """Charged-pion showers; hadron showers have no standard parametrization like GFlash.

    * <f_em> = 1 - (E/E0)^(k-1), E0 = 1 GeV, k = 0.82 (Groom, NIM A 572 (2007) 633), with an
      event-by-event spread ``em_fraction_sigma`` (a Beta distribution);
    * the hadronic part is seen with h/e = ``h_over_e`` (non-compensation; e/h of about 1.3-1.4
      for steel-scintillator) with a spread from nuclear binding losses;
    * longitudinal: a gamma profile in lambda_int from the interaction point, maximum at
      0.2 ln(E/GeV) + 0.1 lambda (Fabjan & Gianotti, Rev. Mod. Phys. 75 (2003) 1243 quote
      0.2 ln E + 0.7 from the calorimeter front);
    * lateral: a core of ``core_mm`` and a halo of ``halo_mm`` (the 2 r R^2/(r^2+R^2)^2 form);
    * the electromagnetic part as ``em_subshowers`` GFlash showers (from pi0 decays) displaced
      by ``em_spread_mm`` from the axis.
    """

    e0_gev: float = 1.0
    k: float = 0.82
    em_fraction_sigma: float = 0.12
    h_over_e: float = 0.74
    h_over_e_sigma: float = 0.06
    alpha: float = 3.0
    core_mm: float = 20.0
    halo_mm: float = 80.0
    core_fraction: float = 0.6
    em_subshowers: int = 2
    em_spread_mm: float = 20.0


@dataclass(frozen=True)
class Simulation:
    """Settings of a generation run (stored in the output file's attributes)."""

    geometry: CaloGeometry = field(default_factory=CaloGeometry)
    hadronic: HadronicModel = field(default_factory=HadronicModel)
    energy_min: float = 10.0
    energy_max: float = 510.0
    spot_energy_gev: float = 0.1
    """Energy of a spot in a 100 GeV event; it scales as sqrt(E_event / 100 GeV)."""
    classes: tuple[str, ...] = ("Ele", "Gamma", "Pi0", "ChPi")


# --------------------------------------------------------------------------- kinematics


def bend_radius_m(momentum: np.ndarray, field_tesla: float) -> np.ndarray:
    """Radius of curvature rho = p / (0.3 B) in metres (p in GeV, B in tesla)."""
    return np.asarray(momentum) / (0.2998 * field_tesla)


def pi0_decay(energy: np.ndarray, rng: np.random.Generator):
    """Two photons of a pi0 decaying isotropically in its rest frame, boosted along the axis.

    Returns
    -------
    energies : ndarray (n, 2)
    angles : ndarray (n, 2)
        Polar angles of the photons to the pi0 direction (radians); they lie in one plane on
        opposite sides, so the opening angle is their sum (at least 2 arcsin(m/E)).
    azimuth : ndarray (n,)
        Azimuth of the decay plane.
    """
    energy = np.asarray(energy, dtype=np.float64)
    gamma = energy / PI0_MASS
    beta = np.sqrt(1.0 - 1.0 / gamma**2)
    cos_star = rng.uniform(-1.0, 1.0, len(energy))
    sin_star = np.sqrt(1.0 - cos_star**2)
    half = PI0_MASS / 2.0
    energies, angles = [], []
    for sign in (1.0, -1.0):  # the two photons are back to back in the rest frame
        e_lab = gamma * half * (1.0 + sign * beta * cos_star)
        p_par = gamma * half * (sign * cos_star + beta)
        energies.append(e_lab)
        angles.append(np.arctan2(half * sin_star, p_par))
    return np.stack(energies, 1), np.stack(angles, 1), rng.uniform(0, 2 * np.pi, len(energy))


def _bremsstrahlung(event, energy, rng, x0, y_min=1e-3):
    """Photons radiated in a thin layer of ``x0`` radiation lengths (Bethe-Heitler, complete
    screening): dN/dy = x0 (4/3 - 4/3 y + y^2) / y for the energy fraction y in [y_min, 1].

    Returns the photons' (event, fraction of the electron energy at emission, emission radius
    fraction r/R_tracker) and the electron energies after all emissions.
    """
    mean_n = x0 * (4 / 3 * np.log(1 / y_min) - 4 / 3 * (1 - y_min) + (1 - y_min**2) / 2)
    n = rng.poisson(mean_n, len(event))
    owner = np.repeat(np.arange(len(event)), n)
    # draw y from 1/y (log-uniform), accept with (4/3 - 4/3 y + y^2) / (4/3) >= 2/3
    y = np.empty(0)
    need = len(owner)
    while len(y) < need:
        trial = y_min ** rng.random(2 * (need - len(y)) + 16)
        keep = rng.random(len(trial)) < (1 - trial + 0.75 * trial**2)
        y = np.concatenate([y, trial[keep]])
    y = np.minimum(y[:need], 0.999)  # the electron keeps a little energy to be an electron
    radius = rng.random(need)
    # emissions in order of radius: each takes its fraction of the energy left
    order = np.lexsort((radius, owner))
    owner, y, radius = owner[order], y[order], radius[order]
    log_keep = np.log1p(-y)
    cumulative = np.cumsum(log_keep)
    starts = np.searchsorted(owner, np.arange(len(event)))
    offset = np.concatenate([[0.0], cumulative])[starts]
    before = np.exp(cumulative - log_keep - offset[owner])  # energy fraction left before emission
    photon_energy = energy[owner] * before * y
    total = np.zeros(len(event))
    np.add.at(total, owner, photon_energy)
    return event[owner], owner, photon_energy, radius, energy - total


# --------------------------------------------------------------------------- the simulation


class _Showers:
    """Electromagnetic showers collected from every particle of a block (flat arrays), and the
    entry points of the charged particles (electrons, conversion legs) among them."""

    def __init__(self):
        self.parts: list[tuple] = []
        self.charged: list[tuple] = []

    def add(self, event, energy, x, y, start_x0, charged: bool = False):
        self.parts.append((event, energy, x, y, start_x0))
        if charged:
            self.charged.append((event, x, y))

    def charged_arrays(self):
        if not self.charged:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        return (np.concatenate([c[0] for c in self.charged]).astype(np.int64),
                np.concatenate([c[1] for c in self.charged]),
                np.concatenate([c[2] for c in self.charged]))

    def arrays(self):
        if not self.parts:
            return [np.empty(0)] * 5
        return [np.concatenate([np.asarray(p[i], dtype=np.float64) for p in self.parts])
                for i in range(5)]


def _photons_enter(showers: _Showers, event, energy, x, y, geo: CaloGeometry, rng):
    """Photons crossing the tracker: a fraction converts (e+e- split by the field), the rest
    start showering after a depth drawn from their 9/7 X0 mean free path."""
    keep = energy > 1e-3
    event, energy, x, y = event[keep], energy[keep], x[keep], y[keep]
    converts = rng.random(len(event)) < 1 - np.exp(-7 / 9 * geo.tracker_x0)
    free = ~converts
    showers.add(event[free], energy[free], x[free], y[free],
                rng.exponential(9 / 7, int(free.sum())))
    ev, en, xc, yc = event[converts], energy[converts], x[converts], y[converts]
    radius = rng.random(len(ev)) * geo.tracker_radius_m
    share = rng.random(len(ev))
    lever = (geo.calo_radius_m - radius) ** 2 / 2.0
    for sign, part in ((1.0, share), (-1.0, 1.0 - share)):
        e_part = en * part
        shift = sign * lever / bend_radius_m(np.maximum(e_part, 1e-3), geo.field_tesla) * 1e3
        showers.add(ev, e_part, xc + shift, yc, np.zeros(len(ev)), charged=True)


def _spots(energy: np.ndarray, event_energy: np.ndarray, sim: Simulation) -> np.ndarray:
    """Spots per shower: one per spot energy, the same for every shower of an event.

    A spot is an integration point of the profile; the energy resolution comes from the
    readout's sampling term. Within an event every shower has the same spot energy: a cap on
    spots per shower would give a pi0 (two showers) twice the spots of a photon of the same
    energy, and so more hit cells in its tails, a difference no detector would see. Across
    events the spot energy grows as sqrt(E_event): a 500 GeV event needs fewer points per GeV
    for the same relative precision of its cells (GFlash's own count grows as E^0.96).
    """
    spot = sim.spot_energy_gev * np.sqrt(np.maximum(event_energy, 1.0) / 100.0)
    return np.maximum(np.ceil(energy / spot), 1).astype(np.int64)


def _em_spots(showers: _Showers, event_energy: np.ndarray, sim: Simulation, rng):
    """GFlash spots of every electromagnetic shower: (event, depth in X0, x, y, energy)."""
    geo = sim.geometry
    event, energy, x, y, start = showers.arrays()
    ok = energy > 0.05  # GFlash needs ln(E/Ec) > 0.812; a softer shower deposits at its start
    depth_max, alpha, beta = draw_longitudinal(np.maximum(energy, 0.05), geo.material, rng)
    n = _spots(energy, event_energy[event.astype(np.int64)], sim)
    owner = np.repeat(np.arange(len(event)), n)
    # single precision for the per-spot arrays: millions of spots, memory-bound arithmetic
    f32 = np.float32
    t = rng.standard_gamma(alpha.astype(f32)[owner], dtype=f32) * (1.0 / beta).astype(f32)[owner]
    t = np.where(ok[owner], t, f32(0))
    tau = t / depth_max.astype(f32)[owner]
    log_e = np.log(np.maximum(energy, 0.05)).astype(f32)
    r = draw_radius(tau, None, geo.material.z, rng, log_e=log_e[owner])
    depth = start.astype(f32)[owner] + t
    moliere = np.where(depth < geo.ecal_depth_x0, f32(geo.ecal_moliere_mm),
                       f32(geo.hcal_moliere_mm))
    phi = rng.random(len(owner), dtype=f32) * f32(2 * np.pi)
    r = r * moliere
    return (event[owner], depth, x.astype(f32)[owner] + r * np.cos(phi),
            y.astype(f32)[owner] + r * np.sin(phi), (energy / n)[owner])


def _hadron_spots(event, energy, start_lambda, x, y, event_energy, sim: Simulation, rng):
    """Spots of the hadronic part: (event, depth in lambda, x, y, energy)."""
    had = sim.hadronic
    ok = energy > 0.01
    n = np.where(ok, _spots(energy, event_energy[event], sim), 0)
    owner = np.repeat(np.arange(len(event)), n)
    t_max = np.maximum(0.2 * np.log(np.maximum(energy, 1.0)) + 0.1, 0.2)
    t = rng.gamma(had.alpha, (t_max / (had.alpha - 1.0))[owner])
    radius = np.where(rng.random(len(owner)) < had.core_fraction, had.core_mm, had.halo_mm)
    u = rng.uniform(0.0, 0.999, len(owner))
    r = radius * np.sqrt(u / (1 - u))
    phi = rng.uniform(0, 2 * np.pi, len(owner))
    return (event[owner], start_lambda[owner] + t, x[owner] + r * np.cos(phi),
            y[owner] + r * np.sin(phi), (energy / np.maximum(n, 1))[owner])


class _Image:
    """The deposits of a block into one (n_events, nx, ny, n_layers) image.

    Deposits are collected as (cell index, energy) and summed by one ``np.bincount`` at read
    out; shower deposits take the sampling fluctuation, track deposits (single particles,
    already Landau-distributed) do not.
    """

    def __init__(self, n_events: int, shape: tuple[int, int, int], cell_mm: float):
        self.shape = (n_events, *shape)
        self.cell_mm = cell_mm
        self.showers: list[tuple[np.ndarray, np.ndarray]] = []
        self.tracks: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, event, lateral_x, lateral_y, layer, energy, track: bool = False) -> None:
        _, nx, ny, nl = self.shape
        # far-out spots (a soft shower's tail radius grows without bound deep in the stack)
        # are outside the window anyway: clip before the integer cast
        far = 1e6
        ix = np.floor(np.clip(lateral_x / self.cell_mm, -far, far) + nx / 2).astype(np.int64)
        iy = np.floor(np.clip(lateral_y / self.cell_mm, -far, far) + ny / 2).astype(np.int64)
        layer = np.floor(np.clip(layer, -far, far)).astype(np.int64)
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (layer >= 0) & (layer < nl)
        flat = ((np.asarray(event)[inside].astype(np.int64) * nx + ix[inside]) * ny
                + iy[inside]) * nl + layer[inside]
        (self.tracks if track else self.showers).append((flat, np.asarray(energy)[inside]))

    def read_out(self, stochastic: float, mip: float, geo: CaloGeometry, rng) -> np.ndarray:
        """Sampling fluctuations, tracks, noise and zero suppression, on hit cells only (a
        noise-only cell passes the 5-sigma threshold with probability 3e-7: those few are drawn
        as a Poisson number of cells with values from the Gaussian tail)."""
        from scipy import stats

        size = int(np.prod(self.shape))
        index, energy = (np.concatenate(a) if a else np.empty(0) for a in zip(*self.showers,
                                                                               strict=True))
        flat = np.bincount(index.astype(np.int64), weights=energy, minlength=size)
        hit = np.flatnonzero(flat)
        # sampling: a gamma distribution of mean E and variance a^2 E (a Gaussian would go
        # negative for the many small deposits and bias the sum up once negatives are cut)
        flat[hit] = rng.gamma(flat[hit] / stochastic**2, stochastic**2)
        if self.tracks:
            track_index = np.concatenate([t[0] for t in self.tracks])
            new_cells = np.unique(track_index[flat[track_index] == 0])
            np.add.at(flat, track_index, np.concatenate([t[1] for t in self.tracks]))
            hit = np.concatenate([hit, new_cells])
        values = flat[hit] + rng.standard_normal(len(hit)) * geo.noise_mip * mip
        flat[hit] = np.where(values >= geo.threshold_mip * mip, values, 0.0)
        z = geo.threshold_mip / geo.noise_mip
        n_noise = rng.poisson(size * stats.norm.sf(z))
        if n_noise:
            where = rng.integers(0, size, n_noise)
            empty = flat[where] == 0
            flat[where[empty]] = stats.truncnorm.rvs(z, np.inf, size=int(empty.sum()),
                                                     random_state=rng) * geo.noise_mip * mip
        return flat.astype(np.float32).reshape(self.shape)


def simulate(pdg: np.ndarray, energy: np.ndarray, sim: Simulation, rng: np.random.Generator):
    """Simulate one block of events, vectorized over events.

    Parameters
    ----------
    pdg : ndarray of int
        Particle of each event: 11 (e-), 22 (gamma), 111 (pi0), 211 or -211 (pi+-).
    energy : ndarray
        Particle energies in GeV.

    Returns
    -------
    ecal : ndarray (n, 25, 25, 25) float32
    hcal : ndarray (n, 5, 5, 60) float32
    truth : dict of ndarray
        Per-event generator truth: ``interaction_lambda`` (pions), ``em_fraction`` (pions),
        ``pi0_opening_angle``, ``entry_x``/``entry_y`` (the incidence jitter, mm).
    """
    geo, n = sim.geometry, len(pdg)
    apdg = np.abs(pdg)
    events = np.arange(n)
    jitter_x = rng.uniform(-0.5, 0.5, n) * geo.ecal_cell_mm
    jitter_y = rng.uniform(-0.5, 0.5, n) * geo.ecal_cell_mm
    showers = _Showers()
    truth = {name: np.full(n, np.nan) for name in
             ("interaction_lambda", "em_fraction", "pi0_opening_angle")}

    # electrons: bremsstrahlung in the tracker; the photons keep the direction of emission
    ele = events[apdg == 11]
    if len(ele):
        ev, owner, e_gamma, r_frac, e_left = _bremsstrahlung(ele, energy[ele], rng, geo.tracker_x0)
        rho = bend_radius_m(energy[ele][owner], geo.field_tesla)
        lever = (geo.calo_radius_m - r_frac * geo.tracker_radius_m) ** 2 / 2.0
        _photons_enter(showers, ev, e_gamma, jitter_x[ev] - lever / rho * 1e3, jitter_y[ev],
                       geo, rng)
        showers.add(ele, e_left, jitter_x[ele], jitter_y[ele], np.zeros(len(ele)), charged=True)

    # photons
    gam = events[apdg == 22]
    _photons_enter(showers, gam, energy[gam], jitter_x[gam], jitter_y[gam], geo, rng)

    # neutral pions: two photons from the decay, displaced by R tan(theta) in the decay plane
    pi0 = events[apdg == 111]
    if len(pi0):
        e_pair, angles, azimuth = pi0_decay(energy[pi0], rng)
        truth["pi0_opening_angle"][pi0] = angles.sum(1)
        for k, sign in ((0, 1.0), (1, -1.0)):
            offset = sign * geo.calo_radius_m * 1e3 * np.tan(angles[:, k])
            _photons_enter(showers, pi0, e_pair[:, k], jitter_x[pi0] + offset * np.cos(azimuth),
                           jitter_y[pi0] + offset * np.sin(azimuth), geo, rng)

    # charged pions: a MIP track to the interaction point, then a hadronic shower
    pion = events[apdg == 211]
    ecal = _Image(n, geo.ecal_shape, geo.ecal_cell_mm)
    hcal = _Image(n, geo.hcal_shape, geo.hcal_cell_mm)
    if len(pion):
        had = sim.hadronic
        e_pi = energy[pion]
        depth = rng.exponential(1.0, len(pion))
        truth["interaction_lambda"][pion] = depth
        mean_fem = 1.0 - (np.maximum(e_pi, had.e0_gev) / had.e0_gev) ** (had.k - 1.0)
        kappa = np.maximum(mean_fem * (1 - mean_fem) / had.em_fraction_sigma**2 - 1.0, 1.0)
        f_em = rng.beta(np.maximum(mean_fem * kappa, 1e-3), np.maximum((1 - mean_fem) * kappa,
                                                                      1e-3))
        truth["em_fraction"][pion] = f_em
        start_x0 = geo.lambda_to_x0(depth)
        shares = rng.dirichlet(np.ones(had.em_subshowers), len(pion))
        for k in range(had.em_subshowers):
            dx, dy = rng.normal(0, had.em_spread_mm, (2, len(pion)))
            showers.add(pion, e_pi * f_em * shares[:, k], jitter_x[pion] + dx,
                        jitter_y[pion] + dy, start_x0)
        response = np.clip(rng.normal(had.h_over_e, had.h_over_e_sigma, len(pion)), 0.3, 1.0)
        ev, depth_l, hx, hy, he = _hadron_spots(pion, e_pi * (1 - f_em) * response, depth,
                                                jitter_x[pion], jitter_y[pion], energy, sim, rng)
        in_ecal = depth_l < geo.ecal_lambda
        ecal.add(ev[in_ecal], hx[in_ecal], hy[in_ecal],
                 geo.ecal_layer_at(geo.lambda_to_x0(depth_l[in_ecal])), he[in_ecal])
        hcal.add(ev[~in_ecal], hx[~in_ecal], hy[~in_ecal],
                 (depth_l[~in_ecal] - geo.ecal_lambda) / geo.hcal_layer_lambda, he[~in_ecal])
        _mip_track(ecal, hcal, pion, depth, jitter_x[pion], jitter_y[pion], geo, rng)

    ev, depth, sx, sy, se = _em_spots(showers, energy, sim, rng)
    in_ecal = depth < geo.ecal_depth_x0
    ecal.add(ev[in_ecal], sx[in_ecal], sy[in_ecal], geo.ecal_layer_at(depth[in_ecal]),
             se[in_ecal])
    hcal.add(ev[~in_ecal], sx[~in_ecal], sy[~in_ecal],
             (depth[~in_ecal] - geo.ecal_depth_x0) / geo.hcal_layer_x0, se[~in_ecal])
    # charged particles entering the ECAL ionize its front layer
    charged_event, charged_x, charged_y = showers.charged_arrays()
    ecal.add(charged_event, charged_x, charged_y, np.zeros(len(charged_event)),
             _landau(geo.ecal_mip_gev, len(charged_event), rng), track=True)

    truth["entry_x"], truth["entry_y"] = jitter_x, jitter_y
    return (ecal.read_out(geo.ecal_stochastic, geo.ecal_mip_gev, geo, rng),
            hcal.read_out(geo.hcal_stochastic, geo.hcal_mip_gev, geo, rng), truth)


def _landau(mip: float, size: int, rng) -> np.ndarray:
    """Energy losses of minimum-ionizing particles in a layer: a Moyal (Landau-like)
    distribution with most probable value ``mip`` and width 0.1 of it."""
    from scipy import stats

    return np.maximum(stats.moyal.rvs(loc=mip, scale=0.1 * mip, size=size, random_state=rng), 0)


def _mip_track(ecal: _Image, hcal: _Image, pion, depth, x, y, geo: CaloGeometry, rng) -> None:
    """Minimum-ionizing losses (Landau: a Moyal distribution, width 0.1 of the most probable
    value) in every layer the pion crosses before it interacts."""

    # the front layer, then one layer behind each plate crossed before the interaction
    plates = np.floor(np.minimum(depth, geo.ecal_lambda) / geo.ecal_lambda * geo.ecal_plates)
    n_ecal = np.minimum(plates + 1, geo.ecal_layers)
    n_hcal = np.clip(np.floor((depth - geo.ecal_lambda) / geo.hcal_layer_lambda), 0,
                     geo.hcal_layers)
    for image, count, mip in ((ecal, n_ecal, geo.ecal_mip_gev), (hcal, n_hcal, geo.hcal_mip_gev)):
        count = count.astype(np.int64)
        owner = np.repeat(np.arange(len(pion)), count)
        layer = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
        image.add(pion[owner], x[owner], y[owner], layer, _landau(mip, len(owner), rng),
                  track=True)


def particle_momentum(pdg: np.ndarray, energy: np.ndarray) -> np.ndarray:
    mass = np.vectorize(MASSES.get)(np.abs(pdg)).astype(np.float64)
    return np.sqrt(np.maximum(energy**2 - mass**2, 0.0))


def settings(sim: Simulation) -> dict:
    """The simulation settings as flat attributes (for the output file)."""
    flat = {}
    for section, values in (("geometry", asdict(sim.geometry)), ("hadronic", asdict(sim.hadronic))):
        for key, value in values.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            flat[f"{section}.{key}"] = value
    flat.update(energy_min=sim.energy_min, energy_max=sim.energy_max,
                spot_energy_gev=sim.spot_energy_gev,
                classes=list(sim.classes))
    return flat


# --------------------------------------------------------------------------- files


def _block(sim: Simulation, pdg: np.ndarray, energy: np.ndarray, seed: int, block: int):
    from hepdl.generate.writer import block_rng

    ecal, hcal, truth = simulate(pdg, energy, sim, block_rng(seed, block))
    momentum = particle_momentum(pdg, energy)
    zeros = np.zeros(len(pdg))
    target = np.stack([energy, zeros, zeros, momentum, pdg.astype(np.float64)], 1)[:, None, :]
    out = {"ECAL": ecal, "HCAL": hcal, "target": target.astype(np.float32),
           "pdgID": pdg.astype(np.int32), "energy": energy.astype(np.float32)}
    out.update({f"truth/{k}": v.astype(np.float32) for k, v in truth.items()})
    out.update({f"_hits_{k}": np.count_nonzero(v) for k, v in (("ECAL", ecal), ("HCAL", hcal))})
    return out


def make_calo(out, events: int, *, seed: int = 1, workers: int = 1, sim: Simulation | None = None,
              block_size: int = 256, progress=None):
    """Generate ``events`` balanced events of ``sim.classes`` into ``out`` (LCD V2 layout).

    Datasets: ``ECAL`` (N, 25, 25, 25) and ``HCAL`` (N, 5, 5, 60) in GeV; ``target`` (N, 1, 5)
    with columns (energy, px, py, pz, pdgID), the particle along z; ``pdgID``; ``energy``; and
    ``truth/*`` (interaction depth and electromagnetic fraction of pions, pi0 opening angle,
    entry point). Attributes: every setting, the seed, and the mean ECAL and HCAL occupancy.

    The same seed gives the same file for any number of workers.
    """
    from hepdl.generate.writer import block_ranges, run_blocks, write_blocks

    sim = sim or Simulation()
    geo = sim.geometry
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 1]))
    codes = np.array([PARTICLES[name] for name in sim.classes])
    pdg = codes[rng.permutation(np.arange(events) % len(codes))]  # balanced classes
    pdg = np.where((pdg == 211) & (rng.random(events) < 0.5), -211, pdg)  # pi+ and pi-
    energy = rng.uniform(sim.energy_min, sim.energy_max, events)
    chunk_events = min(128, events)
    block_size = max(chunk_events, block_size // chunk_events * chunk_events)
    ranges = block_ranges(events, block_size)
    jobs = [(sim, pdg[lo:hi], energy[lo:hi], seed, b) for b, (lo, hi) in enumerate(ranges)]
    hits = {"ECAL": 0, "HCAL": 0}

    def counted(blocks):
        for block in blocks:
            for key in hits:
                hits[key] += int(block.extras[f"_hits_{key}"])
            yield block

    cells = {"ECAL": int(np.prod(geo.ecal_shape)), "HCAL": int(np.prod(geo.hcal_shape))}
    attrs = {**settings(sim), "generator": "hepdl.generate.calo", "seed": seed,
             "layout": "v2", "target_columns": ["energy", "px", "py", "pz", "pdgID"]}
    path = write_blocks(out, events, counted(run_blocks(_block, jobs, workers, chunk_events)),
                        attrs, chunk_events=chunk_events, progress=progress)
    occupancy = {key: hits[key] / (events * cells[key]) for key in hits}
    import h5py

    with h5py.File(path, "r+") as handle:
        for key, value in occupancy.items():
            handle.attrs[f"occupancy_{key}"] = value
    return path, occupancy
