"""The SUSY sample: spectrum, reconstruction on hand-made events, a small Pythia file."""

import json

import h5py
import numpy as np
import pytest

from hepdl.errors import ConfigError
from hepdl.generate.pythia import FinalState
from hepdl.generate.susy import Detector, Spectrum, SusySample, make_susy, reconstruct, slha


def event(pdg, pt, eta, phi):
    pdg, pt, eta, phi = (np.asarray(v, dtype=float) for v in (pdg, pt, eta, phi))
    return FinalState(pdg=pdg.astype(np.int64), charge=np.zeros(len(pdg)), pt=pt, eta=eta, phi=phi,
                      energy=pt * np.cosh(eta), index=np.arange(len(pdg)))


PERFECT = Detector(electron_stochastic=0.0, electron_constant=0.0, muon_constant=0.0,
                   muon_linear=0.0, met_resolution=0.0)


def test_spectrum_has_every_block_pythia_needs():
    text = slha(Spectrum())
    for block in ("MASS", "NMIX", "UMIX", "VMIX", "STOPMIX", "SBOTMIX", "STAUMIX", "HMIX",
                  "ALPHA", "GAUGE", "MSOFT", "MINPAR"):
        assert f"BLOCK {block}" in text
    assert "   1000024   2.000000e+02" in text and "   1000022   1.000000e+02" in text
    assert "   1.000000e+00   2   1000022   24" in text  # chargino -> LSP W, BR 1
    with pytest.raises(ConfigError, match="m_chargino - m_W"):
        slha(Spectrum(chargino_mass=150.0, neutralino_mass=100.0))


def test_two_isolated_leptons_and_a_neutrino_give_the_neutrino_as_met():
    rng = np.random.default_rng(0)
    # e (60 GeV), mu (30 GeV), a pion far from both, and the neutrino that balances them
    pt, phi = np.array([60.0, 30.0, 10.0]), np.array([0.0, 2.5, -2.0])
    nu_x, nu_y = -(pt * np.cos(phi)).sum(), -(pt * np.sin(phi)).sum()
    particles = event([11, -13, 211, 12], [*pt, np.hypot(nu_x, nu_y)], [0.1, -0.5, 2.0, 0.3],
                      [*phi, np.arctan2(nu_y, nu_x)])
    lep_pt, eta, lep_phi, met, met_phi = reconstruct(particles, PERFECT, rng)
    np.testing.assert_allclose(lep_pt, [60, 30])
    np.testing.assert_allclose(eta, [0.1, -0.5])
    np.testing.assert_allclose(lep_phi, [0.0, 2.5])
    # every visible particle measured perfectly: MET is the neutrino's pT
    assert met == pytest.approx(np.hypot(nu_x, nu_y)) and met > 20
    assert met_phi == pytest.approx(np.arctan2(nu_y, nu_x))


def test_selection_needs_two_isolated_leptons_above_threshold():
    rng = np.random.default_rng(0)
    one = event([11, 12], [60, 40], [0, 0], [0, 1])
    assert reconstruct(one, PERFECT, rng) is None
    soft = event([11, 13], [60, 12], [0, 0], [0, 2])  # 12 < 15 GeV
    assert reconstruct(soft, PERFECT, rng) is None
    # a 20 GeV pion inside the muon's cone: 20 > 15% of 40, not isolated
    dirty = event([11, 13, 211], [60, 40, 20], [0, 1.0, 1.1], [0, 2, 2.05])
    assert reconstruct(dirty, PERFECT, rng) is None
    beyond = event([11, 13], [60, 40], [0, 2.7], [0, 2])  # |eta| > 2.5
    assert reconstruct(beyond, PERFECT, rng) is None


def test_a_small_file_from_pythia(tmp_path):
    path, efficiencies = make_susy(tmp_path / "susy.h5", 40, seed=3,
                                   sample=SusySample(block_size=20))
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["label"][:], [1] * 20 + [0] * 20)
        assert f["lepton1_pt"].shape == (40,)
        assert (f["lepton1_pt"][:] >= f["lepton2_pt"][:]).all()
        assert (f["lepton2_pt"][:] > 15).all() and (np.abs(f["lepton1_eta"][:]) < 2.5).all()
        # the LSPs carry momentum away: signal MET is larger on average
        signal, background = f["met"][:20].mean(), f["met"][20:].mean()
        assert signal > background
        assert "1000024" in f.attrs["slha"]
        assert json.loads(f.attrs["efficiencies"]) == efficiencies
    assert 0.2 < efficiencies["chargino: selected / generated"] < 1.0
