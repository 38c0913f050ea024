"""Electron candidates from Pythia 8: detector response, images, preselection, the file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hepdl.generate.electrons import (
    CENTRE,
    ElectronSample,
    _image,
    _windows,
    make_electrons,
    shower_shapes,
)
from hepdl.generate.towers import Detector, bremsstrahlung, phi_at, simulate

from .conftest import ROOT


def test_windows_centre_the_seed_crystal_wrap_phi_and_pad_eta():
    grid = np.arange(10 * 8, dtype=float).reshape(10, 8) + 1
    win = _windows(grid, np.array([0]), np.array([7]), 2)[0]
    assert win[2, 2] == grid[0, 7]
    assert np.all(win[:2] == 0)  # beyond the calorimeter in eta
    assert win[2, 3] == grid[0, 0] and win[2, 1] == grid[0, 6]  # phi wraps


def test_images_put_the_candidate_at_index_22_as_seeds_003():
    grid = np.zeros((345, 360))
    grid[100, 50] = 1.0
    grid[101, 50] = 2.0  # one crystal up in eta: index 23
    image = _image(grid, np.array([100]), np.array([50]))[0]
    assert image.shape == (47, 47)
    assert image[22, 22] == 1.0 and image[23, 22] == 2.0 and image.sum() == 3.0


def test_shower_shapes_of_known_patterns():
    one = np.zeros((1, 47, 47))
    one[0, CENTRE, CENTRE] = 10.0
    shapes = shower_shapes(one, 0.0174)
    assert shapes["e1_over_e5x5"][0] == 1 and shapes["sigma_ieta_ieta"][0] == 0
    # equal energy in the centre and the crystal above it: energy-weighted mean 0.5 crystal,
    # equal log weights, width 0.5 crystal in eta and 0 in phi
    two = np.zeros((1, 47, 47))
    two[0, CENTRE, CENTRE] = two[0, CENTRE + 1, CENTRE] = 5.0
    shapes = shower_shapes(two, 0.0174)
    assert shapes["sigma_ieta_ieta"][0] == pytest.approx(0.5 * 0.0174)
    assert shapes["sigma_iphi_iphi"][0] == pytest.approx(0.0)
    assert shapes["e3x3_over_e5x5"][0] == 1 and shapes["e1_over_e5x5"][0] == 0.5


def test_tracks_bend_as_helices_in_the_field():
    # phi(R) = phi0 - q asin(0.3 B R / 2 pT); positive charges turn clockwise in B along +z
    pt = np.array([10.0, 10.0, 0.5])
    phi = phi_at(np.zeros(3), np.array([1.0, -1.0, 1.0]), pt, 1.29, 3.8)
    expected = np.arcsin(0.3 * 3.8 * 1.29 / 20)
    assert phi[0] == pytest.approx(-expected) and phi[1] == pytest.approx(expected)
    assert np.isnan(phi[2])  # 0.5 GeV curls up before 1.29 m (needs 0.735 GeV)


def test_bremsstrahlung_keeps_exp_minus_t_of_the_energy_on_average():
    # Bethe-Heitler: z = exp(-g), g ~ Gamma(t / ln 2), so <z> = 2^(-t/ln2) = exp(-t)
    det = Detector()
    rng = np.random.default_rng(1)
    n = 200_000
    eta = np.full(n, 1.5)  # t = 1.8 X0 there
    _, kept, _, _ = bremsstrahlung(det, np.full(n, 30.0), eta, np.zeros(n), np.ones(n), rng)
    assert kept.mean() == pytest.approx(np.exp(-1.8), rel=0.01)


def test_photon_showers_spread_as_the_gflash_profile_integrated_over_crystals():
    det = Detector()
    rng = np.random.default_rng(2)
    n = 400
    eta = np.full(n, det.eta_center(172))
    phi = np.full(n, det.phi_center(10))
    deposits = simulate(det, np.full(n, 22), np.zeros(n), np.full(n, 50.0), eta, phi,
                        np.full(n, 50.0), rng)
    ecal = deposits.ecal.reshape(det.eta_cells, det.phi_cells)
    window = ecal[172 - 2:172 + 3, 10 - 2:10 + 3]
    measured = [ecal[172, 10] / ecal.sum(), window[1:4, 1:4].sum() / ecal.sum()]
    # the profile's containment in squares of half-width a (in m at the ECAL radius),
    # integrated numerically
    core, tail, share = det.em_profile_m
    a_cell = det.ecal_radius_m * det.cell / 2
    x = np.linspace(-3 * a_cell, 3 * a_cell, 1201)
    xx, yy = np.meshgrid(x, x)
    r2 = xx**2 + yy**2
    density = sum(w * R**2 / (np.pi * (r2 + R**2) ** 2) for w, R in ((share, core),
                                                                     (1 - share, tail)))
    step = (x[1] - x[0]) ** 2
    expected = [density[(abs(xx) < a) & (abs(yy) < a)].sum() * step for a in (a_cell,
                                                                             3 * a_cell)]
    assert measured == pytest.approx(expected, abs=0.01)
    assert 0.75 < expected[0] < 0.85 and 0.9 < expected[1] < 0.96  # CMS: ~80 %, ~93 %


@pytest.fixture(scope="module")
def electron_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("eid") / "eid.h5"
    path, effs = make_electrons(out, 64, seed=5, workers=2, sample=ElectronSample(block_size=16))
    return path, effs


def test_make_electrons_writes_real_and_fake_candidates(electron_file):
    path, effs = electron_file
    with h5py.File(path) as f:
        assert f["towers"].shape == (64, 3, 47, 47) and f["sum"].shape == (64, 47, 47)
        label = f["label"][:]
        assert sorted(np.unique(label)) == [0, 1] and label.sum() == 32
        origin = f["truth_origin"][:]
        names = json.loads(f.attrs["origins"])
        assert np.all(origin[label == 1] == names["Z"])
        assert np.all(np.abs(f["truth_pdgid"][:][label == 1]) == 11)
        assert np.all(origin[label == 0] != names["Z"])
        towers = f["towers"][:]
        # the candidate's crystal is the maximum of its 3 x 3 ECAL neighbourhood
        centre = towers[:, 0, CENTRE - 1:CENTRE + 2, CENTRE - 1:CENTRE + 2]
        assert np.all(towers[:, 0, CENTRE, CENTRE] == centre.reshape(64, -1).max(1))
        assert np.allclose(f["sum"][:], towers[:, 0] + towers[:, 1])
        assert np.all(f["pt"][:] > 10)
        assert f.attrs["seed"] == 5 and "23:onIfAny = 11" in list(f.attrs["pythia_zee"])
    assert 0.5 < effs["real: + matched track"] <= 1
    assert 0 < effs["fake candidates per biased QCD event: + matched track"] < 0.2
    assert effs["real: + matched track"] <= effs["real: + H/E"] <= effs["real: cluster ET > 10 GeV"]


def test_the_same_seed_gives_the_same_file_for_any_number_of_workers(electron_file, tmp_path):
    path, _ = electron_file
    again, _ = make_electrons(tmp_path / "one.h5", 64, seed=5, workers=1,
                              sample=ElectronSample(block_size=16))
    with h5py.File(path) as a, h5py.File(again) as b:
        assert np.array_equal(a["towers"][:], b["towers"][:])
        assert np.array_equal(a["pt"][:], b["pt"][:])


def test_electron_id_example_reports_the_network_beside_its_baselines(cli, tmp_path,
                                                                       electron_file):
    path, _ = electron_file
    example = ROOT / "examples" / "electron_id.yaml"
    result = cli("train", example, "--set", f"data.source.path={path}", "--set",
                 f"runs_dir={tmp_path}", "--set", "train.epochs=1", "--set", "train.threads=1",
                 "--set", "model.channels=[4]", "--set", "model.dense_width=8", "--set",
                 "evaluate.baselines.bootstrap=10")
    assert result.exit_code == 0, result.output
    run = tmp_path / "electron-id"
    metrics = json.loads((run / "metrics.json").read_text())
    baselines = metrics["baselines"]
    assert baselines["signal"] == "electron"
    for name in ("network", "bdt", "cuts"):
        assert "rejection_at_0.9" in baselines[name]
    assert set(baselines["cuts"]["cuts"]) == {"h_over_e", "sigma_ieta_ieta", "e3x3_over_e5x5",
                                              "e_over_p", "iso_ecal", "iso_hcal", "iso_track"}
    assert baselines["network"]["auc"] == pytest.approx(metrics["auc"]["electron"])
    assert "error" in baselines["comparisons"]["network - bdt"]["auc"]
    assert (run / "plots" / "baselines_roc.png").is_file()
    assert (run / "plots" / "binned_pt.png").is_file()
    in_bins = [n for n in metrics["plots"] if n.startswith(("roc_pt_", "outputs_pt_"))]
    assert in_bins and set(in_bins) <= {f"{kind}_pt_{b}.png" for kind in ("roc", "outputs")
                                        for b in ("10-30", "30-1000")}  # seeds/003's pT bins
    assert all((run / "plots" / n).is_file() for n in in_bins)
    assert "Baselines on engineered features" in (run / "report.html").read_text()

    # seeds/003's robustness checks: fixed weights on another file, and another image norm
    result = cli("evaluate", run, "--input", path)
    assert result.exit_code == 0, result.output
    other = json.loads((run / "evaluations" / path.stem / "metrics.json").read_text())
    assert "electron" in other["shift"]["auc"] and "shift from the run's own" in result.output
    result = cli("evaluate", run, "--image-norm", "l1")
    assert result.exit_code == 0, result.output
    l1 = json.loads((run / "evaluations" / "test_image_norm_l1" / "metrics.json").read_text())
    assert "image norm of towers changed to l1" in l1["evaluated_on"]
    assert l1["shift"]["auc"]["electron"] == pytest.approx(
        l1["auc"]["electron"] - metrics["auc"]["electron"])
    result = cli("evaluate", run, "--image-norm", "l3")
    assert result.exit_code == 2 and "expected l1, l2 or max" in result.output


def test_half_of_the_candidates_are_real_for_any_number():
    from hepdl.generate.electrons import class_blocks

    # a large file keeps the blocks and chunks it always had: 256 real, 256 fake, in turn
    assert class_blocks(4096, 256) == ([("zee", 256), ("qcd", 256)] * 8, 64)
    # fewer events than two blocks: still half of each (before, 192 gave 192 real, 0 fake)
    assert class_blocks(192, 256) == ([("zee", 96), ("qcd", 96)], 32)
    assert class_blocks(64, 16)[0] == [("zee", 16), ("qcd", 16)] * 2
    for events in (1, 2, 7, 300, 513, 1001, 10001, 50001, 100000):
        blocks, chunk = class_blocks(events, 256)
        real = sum(n for process, n in blocks if process == "zee")
        assert sum(n for _, n in blocks) == events
        assert abs(real - events / 2) <= chunk / 2  # half, to half a chunk
        assert all(n % chunk == 0 for _, n in blocks[:-1])  # what the HDF5 writer needs
        assert events < 256 or chunk == 64  # large files keep whole 64-event chunks
