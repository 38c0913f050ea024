"""A CMS-like calorimeter at tower level: what each final-state particle leaves in the ECAL and
HCAL, in a grid of 0.0174 x 0.0174 in (eta, phi), the crystal size of seeds/003's images.

Geometry (CMS, JINST 3 S08004): a 3.8 T solenoid; the tracker out to 1.1 m; the ECAL (PbWO4,
25.8 X0 = 1.1 interaction lengths, Moliere radius 2.19 cm) at 1.29 m, 360 crystals in phi and
0.0174 in eta; the HCAL at 1.79 m in towers of 5 x 5 crystals (0.087 x 0.087). Everything is
treated as barrel: a transverse distance d at the calorimeter is d / R in eta and in phi.

Responses per particle:

* e+-, photons: an electromagnetic shower in the ECAL, resolution 2.8 %/sqrt(E) + 0.3 % (CMS
  test beam); lateral profile of two components, f(r) = 2 r R^2 / (r^2 + R^2)^2 each (the
  GFlash form, Grindhammer et al., NIM A290 (1990) 469), core 0.45 cm (85 %) and tail 2.5 cm,
  which puts about 80 % of a centred shower in its crystal, 93 % in 3 x 3, 97 % in 5 x 5.
  Electrons lose energy to bremsstrahlung in the tracker material t(eta) (radiation lengths,
  read approximately off the CMS material budget): the fraction kept is z = exp(-g), g drawn
  from Gamma(t / ln 2) (the Bethe-Heitler distribution, Bethe & Heitler 1934), the radiated
  energy goes on as one photon emitted at a radius drawn uniformly in the tracker, tangent to
  the track there, so electron images spread in phi as real ones do.
* hadrons: a nuclear interaction in the ECAL with probability 1 - exp(-1.1); then a fraction
  Beta(2, 2.5) of the visible energy in the ECAL, the rest in the HCAL; otherwise a MIP
  (charged) in the ECAL and the shower in the HCAL. Visible energy 0.85 E (non-compensation),
  resolution 100 %/sqrt(E) + 5 %; wide lateral profiles (cores of 3 and 5 cm).
* muons: MIPs (0.3 GeV ECAL, 2 GeV HCAL); neutrinos: nothing.
* charged particles follow helices in the field: phi at radius R is
  phi0 - q asin(0.3 B R / 2 pT); below pT = 0.3 B R / 2 they never reach the calorimeter.
  Tracks measure pT to 1.5 %; an electron's track measures the mean curvature of the inner
  40 % of its path, so an electron that radiates early has its momentum underestimated.

Noise: 40 MeV per crystal and 200 MeV per HCAL tower (Gaussian), zero-suppressed below 3 sigma.
Not modelled: pile-up, photon conversions, the endcap geometry, the z spread of the vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ELECTRON, PHOTON, MUON = 11, 22, 13
NEUTRINOS = (12, 14, 16)


@dataclass(frozen=True)
class Detector:
    """Geometry and response constants (CMS numbers; see the module docstring)."""

    eta_cells: int = 345  # |eta| < 3.0
    phi_cells: int = 360
    cell: float = 0.0174  # eta size; phi size 2 pi / 360 = 0.01745
    hcal_group: int = 5  # an HCAL tower is 5 x 5 crystals
    field_tesla: float = 3.8
    tracker_radius_m: float = 1.1
    ecal_radius_m: float = 1.29
    hcal_radius_m: float = 1.79
    ecal_stochastic: float = 0.028
    ecal_constant: float = 0.003
    ecal_noise_gev: float = 0.04
    hcal_noise_gev: float = 0.2
    noise_threshold_sigma: float = 3.0
    hadron_response: float = 0.85
    hadron_stochastic: float = 1.0
    hadron_constant: float = 0.05
    ecal_lambda: float = 1.1  # ECAL depth in nuclear interaction lengths
    mip_ecal_gev: float = 0.3
    mip_hcal_gev: float = 2.0
    em_profile_m: tuple[float, float, float] = (0.0045, 0.025, 0.85)  # core, tail, core share
    hadron_ecal_profile_m: tuple[float, float, float] = (0.03, 0.12, 0.6)
    hadron_hcal_profile_m: tuple[float, float, float] = (0.05, 0.15, 0.6)
    track_resolution: float = 0.015  # sigma(pT) / pT of tracks (CMS, 10-100 GeV)
    track_fit_fraction: float = 0.4  # inner part of the tracker that sets the momentum
    em_spots: int = 100
    hadron_spots: int = 40
    material_eta: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    material_x0: tuple[float, ...] = (0.4, 0.5, 0.9, 1.8, 1.3, 1.0, 1.0)

    @property
    def phi_cell(self) -> float:
        return 2 * np.pi / self.phi_cells

    @property
    def eta_max(self) -> float:
        return self.eta_cells * self.cell / 2

    def eta_index(self, eta: np.ndarray) -> np.ndarray:
        return np.floor((eta + self.eta_max) / self.cell).astype(np.int64)

    def phi_index(self, phi: np.ndarray) -> np.ndarray:
        return np.floor(np.mod(phi, 2 * np.pi) / self.phi_cell).astype(np.int64) % self.phi_cells

    def eta_center(self, index: np.ndarray) -> np.ndarray:
        return (np.asarray(index) + 0.5) * self.cell - self.eta_max

    def phi_center(self, index: np.ndarray) -> np.ndarray:
        phi = (np.asarray(index) + 0.5) * self.phi_cell
        return np.where(phi > np.pi, phi - 2 * np.pi, phi)


def curvature(pt: np.ndarray, field_tesla: float) -> np.ndarray:
    """0.3 B / (2 pT) in 1/m: a track of pT (GeV) reaches radius r if r times this is below 1."""
    return 0.3 * field_tesla / (2 * np.maximum(pt, 1e-9))


def phi_at(phi0: np.ndarray, charge: np.ndarray, pt: np.ndarray, radius: float,
           field_tesla: float) -> np.ndarray:
    """Azimuth where a track from the beam line crosses ``radius``; NaN if it curls up before."""
    s = curvature(pt, field_tesla) * radius
    with np.errstate(invalid="ignore"):
        return np.where(s < 1, phi0 - charge * np.arcsin(np.minimum(s, 1)), np.nan)


def _radial(size: int, profile: tuple[float, float, float], rng) -> np.ndarray:
    """Distances (m) from the shower axis drawn from the two-component GFlash profile."""
    core, tail, share = profile
    scale = np.where(rng.random(size) < share, core, tail)
    u = rng.uniform(0, 0.995, size)  # F(r) = r^2 / (r^2 + R^2) inverted; the far tail cut
    return scale * np.sqrt(u / (1 - u))


class Deposits:
    """Energy collected on the crystal grid: ``add`` showers, then ``read_out``."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.ecal = np.zeros(detector.eta_cells * detector.phi_cells)
        self.hcal = np.zeros_like(self.ecal)
        self.track_pt: np.ndarray | None = None  # pT a track fit measures, per particle

    def add(self, grid: np.ndarray, eta, phi, energy, profile, radius: float, spots: int,
            rng) -> None:
        """Spread each shower (axis eta, phi; ``energy`` GeV) over ``spots`` points drawn from
        its lateral ``profile`` at the calorimeter ``radius``; 0 spots: all in one crystal."""
        det = self.detector
        keep = energy > 0
        eta, phi, energy = eta[keep], phi[keep], energy[keep]
        if spots:
            n = len(eta)
            r = _radial(n * spots, profile, rng) / radius
            angle = rng.uniform(0, 2 * np.pi, n * spots)
            eta = np.repeat(eta, spots) + r * np.cos(angle)
            phi = np.repeat(phi, spots) + r * np.sin(angle)
            energy = np.repeat(energy / spots, spots)
        i_eta = det.eta_index(eta)
        inside = (i_eta >= 0) & (i_eta < det.eta_cells)
        cell = i_eta[inside] * det.phi_cells + det.phi_index(phi[inside])
        grid += np.bincount(cell, weights=energy[inside], minlength=grid.size)

    def read_out(self, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ECAL crystals (eta, phi) and HCAL towers (eta / 5, phi / 5) with noise, zero-suppressed;
        and the HCAL spread evenly back over its crystals, for images."""
        det = self.detector
        ecal = self.ecal.reshape(det.eta_cells, det.phi_cells)
        ecal = ecal + rng.normal(0, det.ecal_noise_gev, ecal.shape)
        ecal[ecal < det.noise_threshold_sigma * det.ecal_noise_gev] = 0
        g = det.hcal_group
        towers = self.hcal.reshape(det.eta_cells // g, g, det.phi_cells // g, g).sum((1, 3))
        towers = towers + rng.normal(0, det.hcal_noise_gev, towers.shape)
        towers[towers < det.noise_threshold_sigma * det.hcal_noise_gev] = 0
        hcal_cells = np.repeat(np.repeat(towers / g**2, g, 0), g, 1)
        return ecal.astype(np.float32), towers.astype(np.float32), hcal_cells.astype(np.float32)


def _smear(energy: np.ndarray, stochastic: float, constant: float, rng) -> np.ndarray:
    sigma = np.hypot(stochastic / np.sqrt(np.maximum(energy, 1e-6)), constant)
    return energy * np.maximum(1 + sigma * rng.standard_normal(len(energy)), 0)


def material(detector: Detector, eta: np.ndarray) -> np.ndarray:
    """Tracker material in front of the ECAL (radiation lengths) at ``eta``."""
    return np.interp(np.abs(eta), detector.material_eta, detector.material_x0)


def bremsstrahlung(detector: Detector, pt, eta, phi0, charge, rng):
    """Electrons through the tracker: the azimuth of the electron and of its radiated photon
    at the ECAL, the fraction of the energy the electron keeps (module docstring), and the
    radius where it radiated."""
    det = detector
    t = material(det, eta)
    kept = np.exp(-rng.gamma(t / np.log(2)))  # Bethe-Heitler
    r_emit = rng.uniform(0, det.tracker_radius_m, len(pt))
    k = 0.3 * det.field_tesla / 2
    s_emit = np.minimum(k * r_emit / np.maximum(pt, 1e-9), 1)
    phi_pos = phi0 - charge * np.arcsin(s_emit)  # where the photon is emitted
    phi_dir = phi0 - 2 * charge * np.arcsin(s_emit)  # its direction, the track's tangent there
    # the photon flies straight from r_emit until it crosses the ECAL radius R
    dot = r_emit * np.cos(phi_pos - phi_dir)
    path = -dot + np.sqrt(dot**2 - r_emit**2 + det.ecal_radius_m**2)
    x = r_emit * np.cos(phi_pos) + path * np.cos(phi_dir)
    y = r_emit * np.sin(phi_pos) + path * np.sin(phi_dir)
    phi_photon = np.arctan2(y, x)
    # the electron, with pT z * pT after r_emit, bends more on the rest of the way
    pt_after = np.maximum(kept * pt, 1e-9)
    s_in, s_out = k * r_emit / pt_after, k * det.ecal_radius_m / pt_after
    with np.errstate(invalid="ignore"):
        phi_electron = np.where(s_out < 1, phi_pos - charge * (
            np.arcsin(np.minimum(s_out, 1)) - np.arcsin(np.minimum(s_in, 1))), np.nan)
    return phi_electron, kept, phi_photon, r_emit


def simulate(detector: Detector, pdg, charge, pt, eta, phi, energy, rng) -> Deposits:
    """The ECAL and HCAL deposits of one event's final-state particles."""
    det = detector
    deposits = Deposits(det)
    apdg = np.abs(pdg)
    phi_calo = np.where(charge != 0, phi_at(phi, charge, pt, det.ecal_radius_m, det.field_tesla),
                        phi)
    reaches = ~np.isnan(phi_calo) & (np.abs(eta) < det.eta_max + 0.5)

    electron = reaches & (apdg == ELECTRON)
    photon = reaches & (apdg == PHOTON)
    muon = reaches & (apdg == MUON)
    hadron = reaches & ~(electron | photon | muon | np.isin(apdg, NEUTRINOS))

    # electrons radiate in the tracker; a curling electron still leaves its photon
    e = np.flatnonzero(apdg == ELECTRON)
    phi_e, kept, phi_gamma, r_emit = bremsstrahlung(det, pt[e], eta[e], phi[e], charge[e], rng)
    # the momentum at the vertex, as a fit of the inner part of the track (the pixels and
    # inner strips, 40 % of the radius) measures it: the mean curvature there, that of pT
    # before the emission and of kept * pT after it (an early radiator's E/p exceeds 1)
    before = np.minimum(r_emit / (det.track_fit_fraction * det.tracker_radius_m), 1)
    track_pt = pt.copy()
    track_pt[e] = pt[e] / (before + (1 - before) / np.maximum(kept, 1e-6))
    track_pt *= 1 + det.track_resolution * rng.standard_normal(len(pt))
    deposits.track_pt = track_pt
    em_eta = np.concatenate([eta[e], eta[e], eta[photon]])
    em_phi = np.concatenate([phi_e, phi_gamma, phi[photon]])
    em_energy = np.concatenate([energy[e] * kept, energy[e] * (1 - kept), energy[photon]])
    ok = ~np.isnan(em_phi)
    em_energy = _smear(em_energy[ok], det.ecal_stochastic, det.ecal_constant, rng)
    deposits.add(deposits.ecal, em_eta[ok], em_phi[ok], em_energy, det.em_profile_m,
                 det.ecal_radius_m, det.em_spots, rng)

    h = np.flatnonzero(hadron)
    visible = _smear(energy[h] * det.hadron_response, det.hadron_stochastic,
                     det.hadron_constant, rng)
    in_ecal = rng.random(len(h)) < 1 - np.exp(-det.ecal_lambda)
    ecal_share = np.where(in_ecal, rng.beta(2.0, 2.5, len(h)), 0.0)
    mip = np.where(~in_ecal & (charge[h] != 0), np.minimum(det.mip_ecal_gev, visible), 0.0)
    deposits.add(deposits.ecal, eta[h], phi_calo[h], visible * ecal_share,
                 det.hadron_ecal_profile_m, det.ecal_radius_m, det.hadron_spots, rng)
    deposits.add(deposits.ecal, eta[h], phi_calo[h], mip, det.em_profile_m, det.ecal_radius_m,
                 0, rng)
    # charged hadrons bend a little further on the way to the HCAL
    phi_hcal = np.where(charge[h] != 0,
                        phi_at(phi[h], charge[h], pt[h], det.hcal_radius_m, det.field_tesla),
                        phi[h])
    phi_hcal = np.where(np.isnan(phi_hcal), phi_calo[h], phi_hcal)
    deposits.add(deposits.hcal, eta[h], phi_hcal, visible * (1 - ecal_share) - mip,
                 det.hadron_hcal_profile_m, det.hcal_radius_m, det.hadron_spots, rng)

    m = np.flatnonzero(muon)
    deposits.add(deposits.ecal, eta[m], phi_calo[m], np.full(len(m), det.mip_ecal_gev), (0, 0, 1),
                 det.ecal_radius_m, 0, rng)
    deposits.add(deposits.hcal, eta[m], phi_calo[m], np.full(len(m), det.mip_hcal_gev), (0, 0, 1),
                 det.hcal_radius_m, 0, rng)
    return deposits
