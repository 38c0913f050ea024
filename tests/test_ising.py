"""The Ising sampler against the exact results of Onsager and Yang (seeds/004, REFERENCES.md)."""

import math

import h5py
import numpy as np
import pytest

from hepdl.generate.ising import (
    CRITICAL_TEMPERATURE,
    energy_per_spin,
    magnetization_per_spin,
    make_ising,
    onsager_energy,
    onsager_magnetization,
    sample,
    swendsen_wang_sweep,
)


def test_exact_formulas_at_known_points():
    assert abs(CRITICAL_TEMPERATURE - 2.26919) < 1e-5
    # u(T_c) = -sqrt(2) exactly; u -> -2 as T -> 0; M -> 1 as T -> 0, 0 above T_c
    assert onsager_energy(CRITICAL_TEMPERATURE) == pytest.approx(-math.sqrt(2), abs=1e-6)
    assert onsager_energy(0.2) == pytest.approx(-2.0, abs=1e-6)
    assert onsager_magnetization(0.5) == pytest.approx(1.0, abs=1e-6)
    assert onsager_magnetization(2.5) == 0.0
    assert onsager_magnetization(2.0) == pytest.approx(0.911319, abs=1e-5)


def test_energy_and_magnetization_of_hand_made_lattices():
    up = np.ones((1, 4, 4), dtype=np.int8)
    assert energy_per_spin(up)[0] == -2.0
    assert magnetization_per_spin(up)[0] == 1.0
    checker = np.indices((4, 4)).sum(axis=0) % 2 * 2 - 1  # antiferromagnet: every bond broken
    assert energy_per_spin(checker[None].astype(np.int8))[0] == 2.0
    assert magnetization_per_spin(checker[None].astype(np.int8))[0] == 0.0


def test_a_sweep_flips_whole_clusters_only():
    """At T -> 0 every bond between equal spins is active: a uniform lattice flips as one
    cluster, so every chain stays uniform (up or down)."""
    rng = np.random.default_rng(0)
    spins = np.ones((64, 8, 8), dtype=np.int8)
    after = swendsen_wang_sweep(spins, np.full(64, 1e-3), rng)
    assert set(np.unique(after.sum(axis=(1, 2)))) <= {-64, 64}
    assert 0 < (after.sum(axis=(1, 2)) > 0).sum() < 64  # both signs occur


@pytest.mark.parametrize("temperature", [1.5, 2.0])
def test_mean_abs_magnetization_matches_yang(temperature):
    spins = sample(temperature, 40, 400, np.random.default_rng(1))
    mean = np.abs(magnetization_per_spin(spins)).mean()
    assert mean == pytest.approx(onsager_magnetization(temperature), rel=0.02)


@pytest.mark.parametrize("temperature", [1.0, 3.5])
def test_energy_per_spin_matches_onsager(temperature):
    spins = sample(temperature, 40, 400, np.random.default_rng(2))
    assert energy_per_spin(spins).mean() == pytest.approx(onsager_energy(temperature), rel=0.01)


def test_no_order_far_above_tc():
    spins = sample(4.0, 40, 200, np.random.default_rng(3))
    assert np.abs(magnetization_per_spin(spins)).mean() < 0.05


def test_file_layout_labels_and_seed_reproducibility(tmp_path):
    kwargs = dict(size=8, temperatures=[1.0, 3.0], per_temperature=20, seed=5, chains=4,
                  equilibration=20, decorrelation=2)
    one = make_ising(tmp_path / "a.h5", **kwargs, workers=1)
    two = make_ising(tmp_path / "b.h5", **kwargs, workers=2)
    with h5py.File(one) as a, h5py.File(two) as b:
        assert a["spins"].shape == (40, 8, 8) and a["spins"].dtype == np.int8
        np.testing.assert_array_equal(a["spins"][:], b["spins"][:])
        assert set(np.unique(a["spins"][:])) <= {-1, 1}
        np.testing.assert_array_equal(a["label"][:], [1] * 20 + [0] * 20)
        np.testing.assert_allclose(a["energy"][:], energy_per_spin(a["spins"][:]))
        assert a.attrs["lattice_size"] == 8
