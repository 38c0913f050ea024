"""The SUSY features of arXiv:1402.4735 against hand calculations and independent computations.

Hand-checked events use leptons at eta = 0 (E = pT, pz = 0) so that every frame in the chain is
reached by transverse boosts only, and the numbers can be followed on paper.
"""

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from hepdl.generate.susy_features import HIGH_LEVEL, LOW_LEVEL, high_level, low_level


def features(lepton1, lepton2, met, met_phi):
    """The 10 high-level features of one event; leptons as (pT, eta, phi)."""
    out = high_level(*([x] for x in (*lepton1, *lepton2, met, met_phi)))
    return {name: float(value[0]) for name, value in out.items()}


def transverse_event(p1, p2, met_xy, eta1=0.0, eta2=0.0):
    """Features of an event given the leptons' (px, py) and the MET vector (mx, my)."""
    return features(
        (math.hypot(*p1), eta1, math.atan2(p1[1], p1[0])),
        (math.hypot(*p2), eta2, math.atan2(p2[1], p2[0])),
        math.hypot(*met_xy),
        math.atan2(met_xy[1], met_xy[0]),
    )


def random_events(n, seed):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(15, 200, n),
        rng.uniform(-2.5, 2.5, n),
        rng.uniform(-np.pi, np.pi, n),
        rng.uniform(15, 200, n),
        rng.uniform(-2.5, 2.5, n),
        rng.uniform(-np.pi, np.pi, n),
        rng.uniform(0, 250, n),
        rng.uniform(-np.pi, np.pi, n),
    )


# --- MET_rel and axial MET -------------------------------------------------------------------


def test_met_rel_below_and_above_half_pi():
    # leptons along phi = 0 and phi = pi/2.
    # MET = 60 at phi = pi/6: nearest lepton is lepton 1, dphi = pi/6 < pi/2
    #   -> MET_rel = 60 sin(pi/6) = 30
    near = features((40, 0, 0), (30, 0, math.pi / 2), 60, math.pi / 6)
    assert near["met_rel"] == pytest.approx(30.0, rel=1e-12)
    # MET = 60 at phi = -3pi/4: dphi = 3pi/4 to lepton 1, 5pi/4 -> 3pi/4 to lepton 2;
    #   the nearest is 3pi/4 >= pi/2 -> MET_rel = MET = 60
    far = features((40, 0, 0), (30, 0, math.pi / 2), 60, -3 * math.pi / 4)
    assert far["met_rel"] == pytest.approx(60.0, rel=1e-12)
    # MET = 60 at phi = 2pi/3: 2pi/3 from lepton 1 but pi/6 from lepton 2 (the nearest)
    #   -> 60 sin(pi/6) = 30: the angle must be taken to the nearest lepton, not to lepton 1
    second = features((40, 0, 0), (30, 0, math.pi / 2), 60, 2 * math.pi / 3)
    assert second["met_rel"] == pytest.approx(30.0, rel=1e-12)


def test_axial_met_sign():
    # leptons (40, 30) and (40, -30): pT^ll = (80, 0) along +x.
    # axial MET = -MET_vec . pT^ll/|pT^ll| = -MET_x:
    #   MET 30 along -x -> +30 (MET against the dilepton system: positive, ATLAS sign)
    #   MET 30 along +x -> -30;  MET 30 along +y -> 0
    p1, p2 = (40, 30), (40, -30)
    assert transverse_event(p1, p2, (-30, 0))["axial_met"] == pytest.approx(30.0, rel=1e-12)
    assert transverse_event(p1, p2, (30, 0))["axial_met"] == pytest.approx(-30.0, rel=1e-12)
    assert transverse_event(p1, p2, (0, 30))["axial_met"] == pytest.approx(0.0, abs=1e-12)


# --- razor: M_R, M_T^R, R --------------------------------------------------------------------


def test_razor_back_to_back_at_eta_zero():
    # lepton 1: pT 50 along +x, lepton 2: pT 30 along -x, eta = 0 (pz = 0, E = pT).
    # M_R = sqrt((E1 + E2)^2 - (pz1 + pz2)^2) = E1 + E2 = 80
    # MET = 20 along +y: MET_vec . (p1 + p2) = (0, 20).(20, 0) = 0
    #   M_T^R = sqrt((MET (pT1 + pT2) - 0)/2) = sqrt(20 * 80 / 2) = sqrt(800) = 28.2843
    #   R = M_T^R / M_R = sqrt(800)/80 = 0.353553
    f = transverse_event((50, 0), (-30, 0), (0, 20))
    assert f["m_r"] == pytest.approx(80.0, rel=1e-12)
    assert f["m_tr_2"] == pytest.approx(math.sqrt(800.0), rel=1e-12)
    assert f["r"] == pytest.approx(math.sqrt(800.0) / 80.0, rel=1e-12)


def test_razor_with_longitudinal_momenta():
    # pT 50 at eta = +1 and pT 50 at eta = -1, back to back in phi: pz cancels,
    #   M_R = E1 + E2 = 2 * 50 cosh(1) = 154.308
    f = features((50, 1.0, 0.0), (50, -1.0, math.pi), 0.0, 0.0)
    assert f["m_r"] == pytest.approx(100 * math.cosh(1.0), rel=1e-12)
    # same leptons, both at eta = +1: pz = 2 * 50 sinh(1), E = 2 * 50 cosh(1),
    #   M_R = 100 sqrt(cosh^2 - sinh^2) = 100 (the longitudinal boost removes the common eta)
    g = features((50, 1.0, 0.0), (50, 1.0, math.pi), 0.0, 0.0)
    assert g["m_r"] == pytest.approx(100.0, rel=1e-12)


def test_r_is_m_tr_over_m_r():
    # lepton 1 (30, 0), lepton 2 (0, 40), MET (-30, -40) (|MET| = 50), eta = 0:
    # M_R = 30 + 40 = 70; MET (pT1 + pT2) = 50 * 70 = 3500; MET_vec . (p1 + p2) = -900 - 1600
    #   M_T^R = sqrt((3500 + 2500)/2) = sqrt(3000) = 54.772; R = sqrt(3000)/70 = 0.78246
    f = transverse_event((30, 0), (0, 40), (-30, -40))
    assert f["m_r"] == pytest.approx(70.0, rel=1e-12)
    assert f["m_tr_2"] == pytest.approx(math.sqrt(3000.0), rel=1e-12)
    assert f["r"] == pytest.approx(math.sqrt(3000.0) / 70.0, rel=1e-12)
    assert f["r"] == pytest.approx(f["m_tr_2"] / f["m_r"], rel=1e-14)


# --- MT2 -------------------------------------------------------------------------------------


def test_mt2_known_values():
    # MET = 0: split q1 = q2 = 0, mT(l, 0) = 0 -> MT2 = 0
    assert transverse_event((50, 0), (0, 50), (0, 0))["mt2"] == pytest.approx(0.0, abs=1e-6)
    # MET = 0.5 p1 + 0.3 p2 = (25, 15): each q_i parallel to its lepton has mT = 0 -> MT2 = 0
    assert transverse_event((50, 0), (0, 50), (25, 15))["mt2"] == pytest.approx(0.0, abs=1e-6)
    # the same with MET = 3 p1 + p2 = (90, 130) for p1 = (40, 30), p2 = (-30, 40): exactly 0
    # (the bisection alone stops at 0.0077 GeV here)
    assert transverse_event((40, 30), (-30, 40), (90, 130))["mt2"] == pytest.approx(0.0, abs=1e-9)
    # p1 = (50, 0), p2 = (0, 50), MET = (-50, -50). max(mT1^2, mT2^2) is convex in the split and
    # the event is symmetric under x <-> y, so the minimum lies on q1 = (x, y), q2 = (y, x),
    # x + y = -50. There mT1^2 = mT2^2 = 2 * 50 (sqrt(x^2 + y^2) - x); d/dx = 0 at x = 0, so
    # q1 = (0, -50), q2 = (-50, 0): mT^2 = 2 * 50 * 50 -> MT2 = 50 sqrt(2) = 70.7107
    f = transverse_event((50, 0), (0, 50), (-50, -50))
    assert f["mt2"] == pytest.approx(50 * math.sqrt(2.0), rel=1e-9)


def brute_force_mt2(p1, p2, met_xy):
    """min over q1 of max(mT1^2, mT2^2) (convex) by Nelder-Mead from several starts, massless."""
    p1, p2, met_xy = (np.asarray(v, dtype=float) for v in (p1, p2, met_xy))

    def mt_squared(p, q):
        return 2.0 * (np.linalg.norm(p) * np.linalg.norm(q) - p @ q)

    def worst(q1):
        return max(mt_squared(p1, q1), mt_squared(p2, met_xy - q1))

    starts = [met_xy / 2, np.zeros(2), met_xy, p1, -p2, met_xy + p2]
    best = min(
        minimize(worst, s, method="Nelder-Mead",
                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).fun
        for s in starts
    )
    return math.sqrt(best)


@pytest.mark.parametrize(
    "p1, p2, met_xy",
    [((30, 0), (0, 40), (-30, -40)), ((57.3, 17.7), (-18.9, 30.3), (-25.9, -76.0))],
)
def test_mt2_against_brute_force(p1, p2, met_xy):
    expected = brute_force_mt2(p1, p2, met_xy)
    assert expected > 10.0  # a case with a non-trivial answer
    assert transverse_event(p1, p2, met_xy)["mt2"] == pytest.approx(expected, rel=1e-3)


# --- super-razor -----------------------------------------------------------------------------


def test_super_razor_hand_event():
    # lepton 1 (30, 0, 0), lepton 2 (0, 40, 0), MET (-30, -40), eta = 0.
    # 1. pz1 + pz2 = 0: beta_L = 0, the L frame is the lab. E_ll = 70, p_ll = (30, 40),
    #    m_ll^2 = 2 * 30 * 40 = 2400.
    # 2. J = p_ll + MET = 0. The invisible system gets mass m_ll: E_inv = sqrt(2400 + 2500) = 70.
    #    sqrt(s_R) = (70 + 70) at zero total momentum = 140.
    #    (formula: 2 (E^2 - p.J + E sqrt(E^2 + J^2 - 2 p.J)) = 2 (4900 + 70 * 70) = 140^2)
    # 3. beta_R = J / ... = 0: the R frame is the lab.
    # 4. beta_R+1 = (p1 - p2)/(E1 + E2) = (30, -40)/70, |beta| = 5/7, gamma = 7/sqrt(24).
    #    E1' = gamma (E1 - beta.p1) = (7/sqrt 24)(30 - 900/70) = 120/sqrt(24)
    #    M_Delta^R = 2 E1' = 240/sqrt(24) = 10 sqrt(24) = 48.990 (= sqrt(s_R)/(2 gamma))
    # 5. p1' along beta^: gamma (p1.beta^ - |beta| E1) = (7/sqrt 24)(18 - 150/7) = -sqrt(24)
    #    cos theta_R+1 = -sqrt(24) / (120/sqrt 24) = -24/120 = -0.2 -> |cos| = 0.2
    f = transverse_event((30, 0), (0, 40), (-30, -40))
    assert f["s_r"] == pytest.approx(140.0, rel=1e-12)
    assert f["m_delta_r"] == pytest.approx(10 * math.sqrt(24.0), rel=1e-12)
    assert f["m_delta_r"] == pytest.approx(140.0 / (2 * 7 / math.sqrt(24.0)), rel=1e-12)
    assert f["cos_theta_r1"] == pytest.approx(0.2, rel=1e-12)


def test_dphi_r_beta_hand_events():
    # leptons (40, 30) and (40, -30) at eta = 0: E_ll = 100, p_ll = (80, 0),
    #   m_ll^2 = 100^2 - 80^2 = 3600.
    # MET = 0: the invisible system (mass 60) is at rest, E = 60. Total (160, 80, 0):
    #   sqrt(s_R) = sqrt(160^2 - 80^2) = sqrt(19200) = 138.564, beta_R = 80/160 = 0.5 along +x.
    #   In the R frame the visible momentum is minus the invisible one; the invisible system
    #   at rest in the lab moves along -beta_R, so the dilepton system moves along +beta_R:
    #   Delta phi_R^beta = 0.
    p1, p2 = (40, 30), (40, -30)
    at_rest = transverse_event(p1, p2, (0, 0))
    assert at_rest["s_r"] == pytest.approx(math.sqrt(19200.0), rel=1e-12)
    assert at_rest["dphi_r_b"] == pytest.approx(0.0, abs=1e-9)
    # MET = 175 along +x: E_inv = sqrt(3600 + 175^2) = 185 (velocity 0.946) and total
    #   (285, 255, 0): sqrt(s_R) = sqrt(285^2 - 255^2) = sqrt(16200) = 127.279,
    #   beta_R = 255/285 = 0.895 along +x. The dilepton system (velocity 0.8 < 0.895) falls
    #   behind: it moves along -beta_R in the R frame -> Delta phi_R^beta = pi.
    fast = transverse_event(p1, p2, (175, 0))
    assert fast["s_r"] == pytest.approx(math.sqrt(16200.0), rel=1e-12)
    assert fast["dphi_r_b"] == pytest.approx(math.pi, abs=1e-9)


def boost_matrix(beta):
    """4x4 Lorentz matrix taking (E, px, py, pz) into the frame that moves with velocity beta."""
    beta = np.asarray(beta, dtype=float)
    b2 = beta @ beta
    gamma = 1.0 / math.sqrt(1.0 - b2)
    matrix = np.eye(4)
    matrix[0, 0] = gamma
    matrix[0, 1:] = matrix[1:, 0] = -gamma * beta
    if b2 > 0:
        matrix[1:, 1:] += (gamma - 1.0) * np.outer(beta, beta) / b2
    return matrix


def mass(four_vector):
    return math.sqrt(four_vector[0] ** 2 - four_vector[1:] @ four_vector[1:])


def azimuth(vector):
    return math.atan2(vector[1], vector[0])


def super_razor_by_explicit_boosts(pt1, eta1, phi1, pt2, eta2, phi2, met, met_phi):
    """arXiv:1310.4827 Sec. II frame by frame with 4x4 boost matrices (no module code)."""
    l1 = pt1 * np.array([math.cosh(eta1), math.cos(phi1), math.sin(phi1), math.sinh(eta1)])
    l2 = pt2 * np.array([math.cosh(eta2), math.cos(phi2), math.sin(phi2), math.sinh(eta2)])
    # lab -> L: remove the dilepton system's longitudinal momentum
    to_l = boost_matrix([0.0, 0.0, (l1[3] + l2[3]) / (l1[0] + l2[0])])
    l1, l2 = to_l @ l1, to_l @ l2
    visible = l1 + l2
    assert abs(visible[3]) < 1e-9 * visible[0]
    # the invisible system: transverse momentum MET, the visible system's mass, pz = 0 in L
    m_visible = mass(visible)
    met_x, met_y = met * math.cos(met_phi), met * math.sin(met_phi)
    invisible = np.array([math.hypot(m_visible, met), met_x, met_y, 0.0])
    total = visible + invisible
    s_r = mass(total)
    # L -> R: the rest frame of the total
    beta_r = total[1:] / total[0]
    to_r = boost_matrix(beta_r)
    l1, l2, total = to_r @ l1, to_r @ l2, to_r @ total
    assert np.allclose(total[1:], 0.0, atol=1e-9 * s_r)
    dphi = abs(math.remainder(azimuth(l1[1:] + l2[1:]) - azimuth(beta_r), 2 * math.pi))
    # R -> R+1 frames: lepton 1 by +beta_R+1, lepton 2 by -beta_R+1
    beta_r1 = (l1[1:] - l2[1:]) / (l1[0] + l2[0])
    l1, l2 = boost_matrix(beta_r1) @ l1, boost_matrix(-beta_r1) @ l2
    assert l1[0] == pytest.approx(l2[0], rel=1e-9)  # one energy in both R+1 frames
    cos = abs(l1[1:] @ beta_r1) / (np.linalg.norm(l1[1:]) * np.linalg.norm(beta_r1))
    return {"s_r": s_r, "m_delta_r": l1[0] + l2[0], "dphi_r_b": dphi, "cos_theta_r1": cos}


def test_super_razor_against_explicit_boosts():
    events = np.column_stack(random_events(8, seed=11))
    for event in events:
        expected = super_razor_by_explicit_boosts(*event)
        got = features(event[0:3], event[3:6], event[6], event[7])
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


# --- vectorization and symmetries ------------------------------------------------------------


def test_vectorized_equals_event_by_event():
    events = random_events(40, seed=3)
    together = high_level(*events)
    for i in range(40):
        alone = high_level(*([x[i]] for x in events))
        for name in HIGH_LEVEL:
            np.testing.assert_allclose(together[name][i], alone[name][0], rtol=1e-13, atol=0,
                                       err_msg=name)


def test_lepton_exchange_leaves_all_ten_unchanged():
    # All ten are symmetric in the two leptons: MET_rel (nearest lepton), axial MET and the
    # razor variables (sums), MT2 (equal test masses), sqrt(s_R), Delta phi_R^beta (the dilepton
    # sum), M_Delta^R (both leptons have one energy in their R+1 frames) and |cos theta_R+1|
    # (the signed cosine flips sign under the exchange). MT2's bisection is exact to ~1e-8
    # relative, and its arguments change order, hence its looser tolerance.
    events = random_events(60, seed=5)
    swapped = (*events[3:6], *events[0:3], *events[6:])
    a, b = high_level(*events), high_level(*swapped)
    for name in HIGH_LEVEL:
        rtol = 1e-7 if name == "mt2" else 1e-9
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=1e-9, err_msg=name)


def test_longitudinal_boost_leaves_all_ten_unchanged():
    # a boost along the beam shifts both rapidities (= eta for massless leptons) by one amount;
    # every feature is built from transverse quantities or after the beta_L boost
    events = random_events(60, seed=9)
    shifted = list(events)
    shifted[1] = events[1] + 0.7
    shifted[4] = events[4] + 0.7
    a, b = high_level(*events), high_level(*shifted)
    for name in HIGH_LEVEL:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-9, err_msg=name)


# --- interface -------------------------------------------------------------------------------


def test_low_level_puts_the_leading_lepton_first():
    out = low_level([20.0, 50.0], [0.1, -1.0], [0.2, 1.5], [40.0, 30.0], [2.0, 0.5],
                    [-1.0, -2.0], [10.0, 11.0], [0.3, 0.4])
    assert tuple(out) == LOW_LEVEL
    np.testing.assert_array_equal(out["lepton1_pt"], [40.0, 50.0])
    np.testing.assert_array_equal(out["lepton1_eta"], [2.0, -1.0])
    np.testing.assert_array_equal(out["lepton1_phi"], [-1.0, 1.5])
    np.testing.assert_array_equal(out["lepton2_pt"], [20.0, 30.0])
    np.testing.assert_array_equal(out["lepton2_eta"], [0.1, 0.5])
    np.testing.assert_array_equal(out["lepton2_phi"], [0.2, -2.0])
    np.testing.assert_array_equal(out["met"], [10.0, 11.0])
    assert all(v.dtype == np.float64 for v in out.values())


def test_high_level_returns_every_feature_as_float64():
    out = high_level(*(np.asarray(x, dtype=np.float32) for x in random_events(5, seed=1)))
    assert tuple(out) == HIGH_LEVEL
    assert all(v.dtype == np.float64 and v.shape == (5,) for v in out.values())
    assert all(np.isfinite(v).all() for v in out.values())


def test_arrays_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="1-D arrays of one length"):
        high_level([50.0], [0.0], [0.0], [40.0, 1.0], [0.0], [1.0], [10.0], [0.0])
