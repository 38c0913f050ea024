"""Physics checks of the calorimeter simulation against the formulas it implements."""

import h5py
import numpy as np
import pytest

from hepdl.generate import gflash
from hepdl.generate.calo import (
    PI0_MASS,
    CaloGeometry,
    Simulation,
    _bremsstrahlung,
    make_calo,
    pi0_decay,
    simulate,
)

SIM = Simulation()
GEO = SIM.geometry


def electrons(energy: float, n: int, seed: int = 0, **geometry):
    sim = Simulation(geometry=CaloGeometry(**geometry)) if geometry else SIM
    return simulate(np.full(n, 11), np.full(n, energy), sim, np.random.default_rng(seed))


def shower_max_layer(ecal: np.ndarray) -> float:
    """Depth (X0) of the maximum of the mean longitudinal profile, refined by a parabola."""
    profile = ecal.sum((1, 2)).mean(0)
    k = int(np.clip(profile.argmax(), 1, len(profile) - 2))
    left, mid, right = profile[k - 1:k + 2]
    return k - 0.5 + 0.5 * (left - right) / (left - 2 * mid + right)  # layer k reads [k-1, k)


def test_shower_maximum_grows_as_ln_e_as_gflash_says():
    energies = np.array([10.0, 40.0, 160.0])
    # no upstream material: the shower starts at the front, as GFlash's T assumes
    depths = np.array([shower_max_layer(electrons(e, 400, tracker_x0=0.0)[0]) for e in energies])
    slope = np.polyfit(np.log(energies), depths, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.2)  # <T> = ln(E/Ec) - 0.812: one X0 per e-fold
    expected = np.exp(gflash.mean_log_depth_and_alpha(energies, gflash.TUNGSTEN)[0])
    np.testing.assert_allclose(depths, expected, atol=1.0)  # within GFlash's stated spread


def test_ninety_percent_within_one_moliere_radius():
    rng = np.random.default_rng(1)
    energy = np.full(200_000, 50.0)
    depth_max, alpha, beta = gflash.draw_longitudinal(energy[:1000], gflash.TUNGSTEN, rng)
    owner = rng.integers(0, 1000, len(energy))
    t = rng.gamma(alpha[owner], 1 / beta[owner])
    r = gflash.draw_radius(t / depth_max[owner], energy, 74.0, rng)
    assert np.mean(r < 1.0) == pytest.approx(0.9, abs=0.04)


def test_deposited_energy_is_linear_and_resolution_falls_as_one_over_sqrt_e():
    energies = np.array([10.0, 25.0, 50.0, 100.0, 200.0])
    sums = [sum(image.sum((1, 2, 3)) for image in electrons(e, 400, seed=i, tracker_x0=0.0)[:2])
            for i, e in enumerate(energies)]  # ECAL + HCAL
    response = np.array([s.mean() for s in sums]) / energies
    assert np.all(np.abs(response - 1) < 0.03), response  # linear: calibrated, little leakage
    resolution = np.array([s.std() for s in sums]) / np.array([s.mean() for s in sums])
    # sigma/E = a/sqrt(E) with a the readout's 17%/sqrt(E) (plus a little leakage)
    assert np.all((resolution * np.sqrt(energies) > 0.15)
                  & (resolution * np.sqrt(energies) < 0.22)), resolution * np.sqrt(energies)
    assert resolution[0] / resolution[-1] == pytest.approx(np.sqrt(20), rel=0.2)


def test_upstream_material_and_field_spread_soft_electrons_out_of_the_window():
    # brems photons land (R - r)^2 / (2 rho) from the electron: 135 mm at most for 10 GeV in
    # 4 T, beyond the 64 mm half-window; 7 mm at 200 GeV
    low = electrons(10.0, 400, seed=1)[0].sum((1, 2, 3)).mean() / 10.0
    high = electrons(200.0, 400, seed=2)[0].sum((1, 2, 3)).mean() / 200.0
    assert low < high - 0.03
    no_field = electrons(10.0, 400, seed=1, field_tesla=1e-6)[0].sum((1, 2, 3)).mean() / 10.0
    assert no_field > low + 0.03


def test_pi0_decay_kinematics():
    rng = np.random.default_rng(2)
    for energy in (10.0, 50.0, 250.0):
        e, angles, _ = pi0_decay(np.full(20000, energy), rng)
        np.testing.assert_allclose(e.sum(1), energy)
        opening = angles.sum(1)
        mass2 = 2 * e[:, 0] * e[:, 1] * (1 - np.cos(opening))
        np.testing.assert_allclose(np.sqrt(mass2), PI0_MASS, rtol=1e-6)  # invariant mass
        theta_min = 2 * np.arcsin(PI0_MASS / energy)
        assert opening.min() >= theta_min * (1 - 1e-9)
        assert opening.min() == pytest.approx(theta_min, rel=0.01)
        # theta = 2m / (E sqrt(1 - z^2)) with the energy asymmetry z uniform in [0, beta]:
        # the median (z = 1/2) is 2m / (E sqrt(3/4)), falling as 1/E
        assert np.median(opening) * energy == pytest.approx(2 * PI0_MASS / np.sqrt(0.75),
                                                            rel=0.02)


def test_pi0_photons_merge_at_high_energy():
    _, _, truth_low = simulate(np.full(50, 111), np.full(50, 10.0), SIM, np.random.default_rng(3))
    _, _, truth_high = simulate(np.full(50, 111), np.full(50, 300.0), SIM,
                                np.random.default_rng(3))
    separation = lambda t: GEO.calo_radius_m * 1e3 * t["pi0_opening_angle"]  # noqa: E731
    assert np.median(separation(truth_low)) > 3 * GEO.ecal_cell_mm  # resolved at 10 GeV
    assert np.median(separation(truth_high)) < GEO.ecal_cell_mm  # merged at 300 GeV


def test_charged_pions_are_minimum_ionizing_before_they_interact():
    ecal, hcal, truth = simulate(np.full(400, 211), np.full(400, 50.0), SIM,
                                 np.random.default_rng(4))
    late = truth["interaction_lambda"] > GEO.ecal_lambda  # crossed the whole ECAL as a MIP
    assert 0.3 < late.mean() < 0.5  # exp(-0.88) = 0.41
    per_layer = ecal[late].sum((1, 2))
    assert np.median(per_layer) == pytest.approx(GEO.ecal_mip_gev, rel=0.2)
    assert np.all(ecal[late].sum((1, 2, 3)) < 0.1 * 50)  # the energy goes to the HCAL
    assert hcal[late].sum((1, 2, 3)).mean() > 0.5 * 50 * 0.74


def test_bremsstrahlung_loses_the_thin_target_fraction():
    rng = np.random.default_rng(5)
    x0, y_min = 0.15, 1e-3
    event = np.arange(40000)
    _, _, photon_energy, _, left = _bremsstrahlung(event, np.full(40000, 100.0), rng, x0, y_min)
    # <E_left / E> = exp(-x0 * integral of y dN/dy) for a Poisson process of emissions
    integral = (4 / 3 - 2 / 3 + 1 / 3) - (4 / 3 * y_min - 2 / 3 * y_min**2 + y_min**3 / 3)
    assert np.mean(left / 100) == pytest.approx(np.exp(-x0 * integral), rel=0.01)
    assert photon_energy.sum() + left.sum() == pytest.approx(100 * 40000)


def test_images_are_sparse_and_zero_suppressed():
    ecal, hcal, _ = electrons(100.0, 100)
    threshold = GEO.threshold_mip * GEO.ecal_mip_gev
    assert ecal[ecal > 0].min() >= threshold
    assert 0.005 < (ecal > 0).mean() < 0.1


def test_file_is_the_lcd_layout_and_the_same_for_any_worker_count(tmp_path):
    one, occupancy = make_calo(tmp_path / "one.h5", 200, seed=7, workers=1, block_size=64)
    two, _ = make_calo(tmp_path / "two.h5", 200, seed=7, workers=2, block_size=64)
    with h5py.File(one) as a, h5py.File(two) as b:
        assert a["ECAL"].shape == (200, 25, 25, 25) and a["HCAL"].shape == (200, 5, 5, 60)
        assert a["target"].shape == (200, 1, 5) and a["ECAL"].compression == "gzip"
        for key in ("ECAL", "HCAL", "target", "pdgID", "truth/em_fraction"):
            np.testing.assert_array_equal(a[key][()], b[key][()])
        counts = np.unique(np.abs(a["pdgID"][()]), return_counts=True)
        assert counts[0].tolist() == [11, 22, 111, 211] and counts[1].tolist() == [50] * 4
        energy = a["target"][:, 0, 0]
        assert energy.min() >= 10 and energy.max() <= 510
        np.testing.assert_array_equal(np.abs(a["target"][:, 0, 4]), np.abs(a["pdgID"][()]))
        assert a.attrs["seed"] == 7 and a.attrs["geometry.ecal_cells"] == 25
        assert a.attrs["occupancy_ECAL"] == pytest.approx(occupancy["ECAL"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # no temp files


def test_shower_shapes_of_known_images():
    from hepdl.data.shower_shapes import shower_shapes

    ecal = np.zeros((2, 25, 25, 25))
    ecal[0, 12, 12, 5] = 10.0  # one cell
    ecal[1, 10, 12, 2] = 6.0  # two towers three cells apart: two photons
    ecal[1, 13, 12, 2] = 2.0
    hcal = np.zeros((2, 5, 5, 60))
    hcal[1, 2, 2, 0] = 2.0
    f = shower_shapes(ecal, hcal)
    np.testing.assert_allclose(f["ecal_energy"], [10, 8])
    np.testing.assert_allclose(f["hcal_fraction"], [0, 0.2])
    np.testing.assert_allclose(f["depth"], [5.5, 2.5])
    np.testing.assert_allclose(f["width_x"], [0, np.sqrt(0.75 * 0.25) * 3])  # two-point spread
    np.testing.assert_allclose(f["e_ratio"], [1.0, (6 - 2) / (6 + 2)])
    np.testing.assert_allclose(f["core_fraction"], [1.0, 6 / 8])
    np.testing.assert_allclose(f["front_fraction"], [0.0, 1.0])
    np.testing.assert_allclose(f["ecal_hits"], [1, 2])


def test_make_calo_command_and_a_bdt_sees_the_physics(tmp_path, cli):
    from hepdl.data.shower_shapes import shower_shapes
    from hepdl.evaluation.baselines import bdt_baseline

    out = tmp_path / "calo.h5"
    result = cli("data", "make", "calo", "--events", 2400, "--out", out, "--seed", 3,
                 "--workers", 2)
    assert result.exit_code == 0, result.output
    assert "mean occupancy ECAL" in result.stdout
    with h5py.File(out) as f:
        ecal, hcal, pdg = f["ECAL"][()], f["HCAL"][()], np.abs(f["pdgID"][()])
    labels = np.searchsorted([11, 22, 111, 211], pdg)
    auc = bdt_baseline(shower_shapes(ecal, hcal), labels, ["Ele", "Gamma", "Pi0", "ChPi"])["auc"]
    assert auc["ChPi"] > 0.99  # a MIP track and a hadronic shower in the HCAL
    assert auc["Ele"] > 0.95  # a charged particle in the front layer, brems spread by the field
    assert auc["Pi0"] < auc["Ele"] and auc["Gamma"] < auc["Ele"]  # the hard pair


def test_make_calo_refuses_a_bad_energy_range(tmp_path, cli):
    from .conftest import one_error_line

    line = one_error_line(cli("data", "make", "calo", "--events", 10, "--out", tmp_path / "x.h5",
                              "--energy-min", 50, "--energy-max", 20))
    assert "need 0 < min < max, got 50.0 and 20.0" in line
