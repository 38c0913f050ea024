"""The 8 low-level and 10 high-level features of the SUSY benchmark, vectorized over events.

Baldi, Sadowski & Whiteson, "Searching for exotic particles in high-energy physics with deep
learning", Nature Commun. 5 (2014) 4308, arXiv:1402.4735, describe a dilepton event (two charged
leptons, e or mu, plus missing transverse momentum, no jets) by the leptons' (pT, eta, phi) and
the MET's (magnitude, phi), and by 10 high-level features taken from

- the ATLAS dilepton SUSY searches: the relative MET (ATLAS, Phys. Lett. B 718 (2013) 879,
  arXiv:1208.2884) and the axial MET (ATLAS ZZ -> l l nu nu, JHEP 03 (2013) 128, arXiv:1211.6096);
- the razor variables M_R, M_T^R and R (Rogan, arXiv:1006.2727; in the form published by CMS,
  Phys. Rev. D 85 (2012) 012004, arXiv:1107.1279), with the two leptons as the two megajets;
- the stransverse mass MT2 (Lester & Summers, Phys. Lett. B 463 (1999) 99, hep-ph/9906349),
  computed with the bisection of Lester & Nachman (JHEP 03 (2015) 100, arXiv:1411.4312) from the
  ``mt2`` package;
- the super-razor variables sqrt(s_R), M_Delta^R, Delta phi_R^beta and |cos theta_R+1| of
  Buckley, Lykken, Rogan & Spiropulu, Phys. Rev. D 89 (2014) 055020, arXiv:1310.4827, Sec. II.

Leptons are massless (E = |p|). Every feature is symmetric under the exchange of the two leptons,
so :func:`high_level` does not depend on their order; :func:`low_level` orders them by pT.
Equation numbers are not quoted, because the papers' texts could not be checked while this was
written; each docstring writes its formula out instead. The super-razor chain follows the frames
of the reference implementation by C. Rogan (a co-author of arXiv:1310.4827, in the ATLAS
dilepton analysis code), and its last two steps use closed forms derived in the code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from mt2 import mt2 as lester_nachman_mt2

LOW_LEVEL = (
    "lepton1_pt",
    "lepton1_eta",
    "lepton1_phi",
    "lepton2_pt",
    "lepton2_eta",
    "lepton2_phi",
    "met",
    "met_phi",
)
HIGH_LEVEL = (
    "met_rel",
    "axial_met",
    "m_r",
    "m_tr_2",
    "r",
    "mt2",
    "s_r",
    "m_delta_r",
    "dphi_r_b",
    "cos_theta_r1",
)


def _as_event_arrays(*arrays: npt.ArrayLike) -> list[np.ndarray]:
    """float64 1-D copies of the inputs; all must have one length (one entry per event)."""
    out = [np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in arrays]
    shapes = {a.shape for a in out}
    if len(shapes) != 1 or out[0].ndim != 1:
        raise ValueError(
            f"the features must be 1-D arrays of one length, got shapes {sorted(shapes)}"
        )
    return out


def delta_phi(phi_a: np.ndarray, phi_b: np.ndarray) -> np.ndarray:
    """phi_a - phi_b wrapped into [-pi, pi)."""
    return np.mod(phi_a - phi_b + np.pi, 2.0 * np.pi) - np.pi


def _three_momentum(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(px, py, pz) of shape (n, 3): p = pT (cos phi, sin phi, sinh eta)."""
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=-1)


def _boost(energy: np.ndarray, momentum: np.ndarray, beta: np.ndarray):
    """(E, p) seen from a frame that moves with velocity ``beta`` (n, 3) in the current frame.

    E' = gamma (E - beta.p), p' = p + [gamma^2/(gamma+1) beta.p - gamma E] beta, the general pure
    Lorentz boost ((gamma - 1)/beta^2 written as gamma^2/(gamma + 1), finite at beta = 0). It is
    ROOT's ``TLorentzVector::Boost(-beta)``.
    """
    gamma = 1.0 / np.sqrt(1.0 - np.sum(beta * beta, axis=-1))
    beta_dot_p = np.sum(beta * momentum, axis=-1)
    coefficient = gamma**2 / (gamma + 1.0) * beta_dot_p - gamma * energy
    return gamma * (energy - beta_dot_p), momentum + coefficient[:, None] * beta


def low_level(
    lepton1_pt: npt.ArrayLike,
    lepton1_eta: npt.ArrayLike,
    lepton1_phi: npt.ArrayLike,
    lepton2_pt: npt.ArrayLike,
    lepton2_eta: npt.ArrayLike,
    lepton2_phi: npt.ArrayLike,
    met: npt.ArrayLike,
    met_phi: npt.ArrayLike,
) -> dict[str, np.ndarray]:
    """The 8 low-level features of arXiv:1402.4735 as float64 arrays, lepton 1 the leading one.

    The leptons are swapped in the events where lepton 2 has the larger pT (ties keep the order).
    """
    l1_pt, l1_eta, l1_phi, l2_pt, l2_eta, l2_phi, met_, met_phi_ = _as_event_arrays(
        lepton1_pt, lepton1_eta, lepton1_phi, lepton2_pt, lepton2_eta, lepton2_phi, met, met_phi
    )
    swap = l2_pt > l1_pt
    lead = [np.where(swap, b, a) for a, b in ((l1_pt, l2_pt), (l1_eta, l2_eta), (l1_phi, l2_phi))]
    sub = [np.where(swap, a, b) for a, b in ((l1_pt, l2_pt), (l1_eta, l2_eta), (l1_phi, l2_phi))]
    return dict(zip(LOW_LEVEL, (*lead, *sub, met_, met_phi_), strict=True))


def relative_met(
    lepton1_phi: np.ndarray, lepton2_phi: np.ndarray, met: np.ndarray, met_phi: np.ndarray
) -> np.ndarray:
    """ATLAS's relative MET (arXiv:1208.2884): MET if dphi >= pi/2, else MET sin(dphi).

    dphi is the azimuthal angle between the MET and the nearest lepton; the events have no jets,
    so the nearest "lepton or jet" of ATLAS's definition is always a lepton.
    """
    dphi = np.minimum(
        np.abs(delta_phi(met_phi, lepton1_phi)), np.abs(delta_phi(met_phi, lepton2_phi))
    )
    return np.where(dphi >= np.pi / 2.0, met, met * np.sin(dphi))


def axial_met(
    lepton1_pt: np.ndarray,
    lepton1_phi: np.ndarray,
    lepton2_pt: np.ndarray,
    lepton2_phi: np.ndarray,
    met: np.ndarray,
    met_phi: np.ndarray,
) -> np.ndarray:
    """Axial MET: -MET_vec . pT^ll / |pT^ll| = -MET cos dphi(MET, pT^ll) (arXiv:1211.6096).

    ATLAS's sign: positive when the MET points against the dilepton system, as it does when the
    dilepton system recoils against the invisible particles.
    """
    ll_x = lepton1_pt * np.cos(lepton1_phi) + lepton2_pt * np.cos(lepton2_phi)
    ll_y = lepton1_pt * np.sin(lepton1_phi) + lepton2_pt * np.sin(lepton2_phi)
    return -met * np.cos(met_phi - np.arctan2(ll_y, ll_x))


def razor(
    lepton1_pt: np.ndarray,
    lepton1_eta: np.ndarray,
    lepton1_phi: np.ndarray,
    lepton2_pt: np.ndarray,
    lepton2_eta: np.ndarray,
    lepton2_phi: np.ndarray,
    met: np.ndarray,
    met_phi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The razor variables (M_R, M_T^R, R) with the two leptons as megajets (GeV, GeV, 1).

    M_R = sqrt((E1 + E2)^2 - (pz1 + pz2)^2) = sqrt(pT1^2 + pT2^2 + 2 pT1 pT2 cosh(eta1 - eta2))
    for massless leptons (the second form has no cancellation at large |eta|);
    M_T^R = sqrt((MET (pT1 + pT2) - MET_vec . (pT1_vec + pT2_vec)) / 2); R = M_T^R / M_R.
    Published form: CMS, Phys. Rev. D 85 (2012) 012004, arXiv:1107.1279. Rogan's preprint
    (arXiv:1006.2727) defines M_R in the longitudinal frame where the two megajets have equal and
    opposite pz instead; we take the published, longitudinally invariant one, which is also the
    visible energy in the first (longitudinal) frame of the super-razor (arXiv:1310.4827).
    """
    m_r = np.sqrt(
        lepton1_pt**2
        + lepton2_pt**2
        + 2.0 * lepton1_pt * lepton2_pt * np.cosh(lepton1_eta - lepton2_eta)
    )
    met_dot_leptons = met * (
        lepton1_pt * np.cos(met_phi - lepton1_phi) + lepton2_pt * np.cos(met_phi - lepton2_phi)
    )
    m_t_r = np.sqrt(np.maximum(met * (lepton1_pt + lepton2_pt) - met_dot_leptons, 0.0) / 2.0)
    return m_r, m_t_r, m_t_r / m_r


def stransverse_mass(
    lepton1_pt: np.ndarray,
    lepton1_phi: np.ndarray,
    lepton2_pt: np.ndarray,
    lepton2_phi: np.ndarray,
    met: np.ndarray,
    met_phi: np.ndarray,
) -> np.ndarray:
    """MT2 = min over q1 + q2 = MET_vec of max(mT(l1, q1), mT(l2, q2)) (Lester & Summers).

    Massless visible particles and massless invisible particles (test mass 0), as for the
    leptons and neutrinos or neutralinos of this benchmark; computed by the Lester-Nachman
    bisection (arXiv:1411.4312): ~1e-8 relative, or ~0.01 GeV absolute where MT2 nears 0.
    """
    p1_x, p1_y = lepton1_pt * np.cos(lepton1_phi), lepton1_pt * np.sin(lepton1_phi)
    p2_x, p2_y = lepton2_pt * np.cos(lepton2_phi), lepton2_pt * np.sin(lepton2_phi)
    met_x, met_y = met * np.cos(met_phi), met * np.sin(met_phi)
    zero = np.zeros_like(met)
    bisection = lester_nachman_mt2(zero, p1_x, p1_y, zero, p2_x, p2_y, met_x, met_y, zero, zero)
    # All masses 0: MT2 = 0 exactly when MET_vec = a p1 + b p2 with a, b >= 0 (q_i = a p1,
    # b p2 give mT = 0; and mT(p, q) = 0 only for q parallel to p). The bisection approaches
    # this zero only to ~0.01 GeV, so such events are set to 0 here (Cramer's rule for a, b).
    cross = p1_x * p2_y - p1_y * p2_x
    inside_cone = (
        (cross != 0.0)
        & ((met_x * p2_y - met_y * p2_x) * cross >= 0.0)
        & ((p1_x * met_y - p1_y * met_x) * cross >= 0.0)
    )
    return np.where(inside_cone, 0.0, bisection)


def super_razor(
    lepton1_pt: np.ndarray,
    lepton1_eta: np.ndarray,
    lepton1_phi: np.ndarray,
    lepton2_pt: np.ndarray,
    lepton2_eta: np.ndarray,
    lepton2_phi: np.ndarray,
    met: np.ndarray,
    met_phi: np.ndarray,
) -> dict[str, np.ndarray]:
    """sqrt(s_R), M_Delta^R, Delta phi_R^beta, |cos theta_R+1| (arXiv:1310.4827, Sec. II).

    1. Longitudinal boost beta_L = (pz1 + pz2)/(E1 + E2) z^ to the frame where the dilepton
       system has no pz; there its energy is E_ll = M_R and its momentum p_ll is transverse.
    2. The CM frame's transverse momentum J = p_ll + MET_vec. Giving the invisible system the
       visible system's mass, the CM energy is
       sqrt(s_R) = sqrt(2 (E_ll^2 - p_ll.J + E_ll sqrt(E_ll^2 + |J|^2 - 2 p_ll.J)))
       = the invariant mass of (E_ll, p_ll) + (sqrt(m_ll^2 + MET^2), MET_vec).
    3. Transverse boost beta_R = J / sqrt(|J|^2 + s_R) to the R frame (the approximate CM frame).
       Delta phi_R^beta = |azimuth between beta_R and the dilepton momentum in the R frame|.
    4. beta_R+1 = (p1 - p2)/(E1 + E2) in the R frame; lepton 1 is boosted by +beta_R+1 and
       lepton 2 by -beta_R+1 into the two R+1 frames (the approximate rest frames of the two
       parents), where both have one energy E_R+1. M_Delta^R = 2 E_R+1 = sqrt(s_R)/(2 gamma_R+1)
       (the leptons carry sqrt(s_R)/2 in the R frame), whose endpoint is M_Delta =
       (M_parent^2 - M_invisible^2)/M_parent. Third-party codes that write sqrt(s_R)/gamma_R+1
       are twice this; we keep 2 E_R+1, the value of the authors' reference code and the one
       with the M_Delta endpoint.
    5. |cos theta_R+1| = |p1' . beta_R+1| / (|p1'| |beta_R+1|), p1' lepton 1 in its R+1 frame.
       The signed cosine changes sign when the leptons are exchanged; Baldi et al.'s feature is
       its absolute value, which does not.

    Steps 4-5 are evaluated in closed form (derived in the code), which stays exact where the
    leptons are back to back in the R frame and gamma_R+1 diverges. Degenerate events: with
    J = 0 beta_R has no direction and Delta phi_R^beta is measured from the x axis (as ROOT's
    ``DeltaPhi`` does); with p1 = p2 in the R frame beta_R+1 = 0 and |cos theta_R+1| is NaN.
    Both have zero probability for measured leptons.
    """
    p1 = _three_momentum(lepton1_pt, lepton1_eta, lepton1_phi)
    p2 = _three_momentum(lepton2_pt, lepton2_eta, lepton2_phi)
    e1 = lepton1_pt * np.cosh(lepton1_eta)
    e2 = lepton2_pt * np.cosh(lepton2_eta)
    n = len(e1)

    # 1. lab -> longitudinal frame L
    beta_l = np.zeros((n, 3))
    beta_l[:, 2] = (p1[:, 2] + p2[:, 2]) / (e1 + e2)
    e1, p1 = _boost(e1, p1, beta_l)
    e2, p2 = _boost(e2, p2, beta_l)

    # 2. the CM energy estimate
    e_ll = e1 + e2
    p_ll = p1 + p2
    p_ll[:, 2] = 0.0  # zero up to rounding after the longitudinal boost
    j = p_ll.copy()
    j[:, 0] += met * np.cos(met_phi)
    j[:, 1] += met * np.sin(met_phi)
    p_ll_dot_j = np.sum(p_ll * j, axis=-1)
    j2 = np.sum(j * j, axis=-1)
    s_r = 2.0 * (e_ll**2 - p_ll_dot_j + e_ll * np.sqrt(e_ll**2 + j2 - 2.0 * p_ll_dot_j))

    # 3. L -> R frame
    beta_r = j / np.sqrt(j2 + s_r)[:, None]
    e1, p1 = _boost(e1, p1, beta_r)
    e2, p2 = _boost(e2, p2, beta_r)
    p_ll_r = p1 + p2
    dphi_r_b = np.abs(
        delta_phi(np.arctan2(p_ll_r[:, 1], p_ll_r[:, 0]), np.arctan2(beta_r[:, 1], beta_r[:, 0]))
    )

    # 4.-5. R -> R+1 frames in closed form. With beta_R+1 = (p1 - p2)/(E1 + E2) and E = |p|:
    # 1/gamma_R+1^2 = 2 (E1 E2 + p1.p2)/(E1 + E2)^2, E_R+1 = gamma_R+1 (E1 - beta_R+1.p1)
    # = (E1 + E2)/(2 gamma_R+1), so M_Delta^R = sqrt(2 (E1 E2 + p1.p2)); and
    # p1'.beta^ = gamma_R+1 (p1.beta^ - |beta_R+1| E1) gives cos theta_R+1 = (E1 - E2)/|p1 - p2|.
    # These stay finite where gamma_R+1 -> infinity (leptons back to back in the R frame), where
    # the explicit boost loses all precision; the tests check them against explicit boosts.
    m_delta_r = np.sqrt(np.maximum(2.0 * (e1 * e2 + np.sum(p1 * p2, axis=-1)), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_theta_r1 = np.abs(e1 - e2) / np.linalg.norm(p1 - p2, axis=-1)
    return {
        "s_r": np.sqrt(s_r),
        "m_delta_r": m_delta_r,
        "dphi_r_b": dphi_r_b,
        "cos_theta_r1": cos_theta_r1,
    }


def high_level(
    lepton1_pt: npt.ArrayLike,
    lepton1_eta: npt.ArrayLike,
    lepton1_phi: npt.ArrayLike,
    lepton2_pt: npt.ArrayLike,
    lepton2_eta: npt.ArrayLike,
    lepton2_phi: npt.ArrayLike,
    met: npt.ArrayLike,
    met_phi: npt.ArrayLike,
) -> dict[str, np.ndarray]:
    """The 10 high-level features of arXiv:1402.4735 as float64 arrays, keyed by HIGH_LEVEL.

    Inputs: 1-D arrays of one length (GeV, radians), massless leptons. Baldi et al.'s "M_TR_2"
    is read as M_T^R itself, in GeV, not its square (Rogan's razor variable, of which R is the
    ratio to M_R; a square, being monotonic, would carry the same information). All ten features
    are symmetric under the exchange of the two leptons.
    """
    l1_pt, l1_eta, l1_phi, l2_pt, l2_eta, l2_phi, met_, met_phi_ = _as_event_arrays(
        lepton1_pt, lepton1_eta, lepton1_phi, lepton2_pt, lepton2_eta, lepton2_phi, met, met_phi
    )
    leptons_and_met = (l1_pt, l1_eta, l1_phi, l2_pt, l2_eta, l2_phi, met_, met_phi_)
    transverse = (l1_pt, l1_phi, l2_pt, l2_phi, met_, met_phi_)
    m_r, m_t_r, r = razor(*leptons_and_met)
    features = {
        "met_rel": relative_met(l1_phi, l2_phi, met_, met_phi_),
        "axial_met": axial_met(*transverse),
        "m_r": m_r,
        "m_tr_2": m_t_r,
        "r": r,
        "mt2": stransverse_mass(*transverse),
        **super_razor(*leptons_and_met),
    }
    return {name: np.asarray(features[name], dtype=np.float64) for name in HIGH_LEVEL}
