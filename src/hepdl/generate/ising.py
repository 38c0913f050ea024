"""Configurations of the 2D Ising model (seeds/004; Mehta et al. arXiv:1803.08823, NB12).

Square lattice L x L, periodic, J = k_B = 1, H = -sum_<ij> s_i s_j. Sampled by Swendsen-Wang
cluster updates (Swendsen & Wang, PRL 58 (1987) 86): bonds between equal neighbours are
activated with probability 1 - exp(-2/T), every connected cluster flips with probability 1/2.
Near T_c a cluster sweep decorrelates the lattice in a few sweeps where single-spin Metropolis
needs ~L^2.17, and at low T it never freezes into the stripe states a quench leaves Metropolis in.

The sweep is vectorized over many independent chains at once: all chains form one graph whose
connected components scipy's ``connected_components`` labels in C, so no Python loop runs over
spins or clusters. Each temperature runs ``chains`` chains from random starts; after
``equilibration`` sweeps each chain gives a sample every ``decorrelation`` sweeps. At T_c the
integrated autocorrelation time of a sweep is 3.4-3.5 (|M|) and 3.9-4.2 (E) for L = 40, 60
(measured, docs/benchmarks.md), shorter away from T_c; the defaults, 200 sweeps of
equilibration (50 tau) and 20 between samples (5 tau), make the samples independent.

Exact results the tests compare with (Onsager 1944; Yang 1952):
T_c = 2 / ln(1 + sqrt 2); M(T) = (1 - sinh(2/T)^-4)^(1/8) below T_c;
u(T) = -coth(2/T) [1 + (2/pi) (2 tanh^2(2/T) - 1) K(k)], k = 2 sinh(2/T) / cosh^2(2/T).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hepdl.errors import ConfigError
from hepdl.generate.writer import block_rng, run_blocks, write_blocks

CRITICAL_TEMPERATURE = 2.0 / math.log(1.0 + math.sqrt(2.0))
MEHTA_TEMPERATURES = tuple(np.round(np.arange(0.25, 4.0001, 0.25), 2))
"""T = 0.25 ... 4.0 in steps of 0.25, 10^4 configurations each (Mehta et al.)."""


def onsager_magnetization(temperature) -> np.ndarray:
    """Spontaneous magnetization per spin of the infinite lattice (Yang 1952); 0 above T_c."""
    t = np.asarray(temperature, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.clip(1.0 - np.sinh(2.0 / t) ** -4.0, 0.0, None) ** 0.125
    return np.where(t < CRITICAL_TEMPERATURE, m, 0.0)


def onsager_energy(temperature) -> np.ndarray:
    """Internal energy per spin of the infinite lattice (Onsager 1944), J = 1."""
    from scipy.special import ellipk

    beta2 = 2.0 / np.asarray(temperature, dtype=np.float64)
    k = 2.0 * np.sinh(beta2) / np.cosh(beta2) ** 2
    # K diverges (logarithmically) at T_c, where its factor 2 tanh^2 - 1 vanishes linearly: the
    # product tends to 0, and m = k^2 kept just below 1 gives that limit in floating point
    m = np.minimum(k * k, 1.0 - 1e-15)
    return -(1.0 / np.tanh(beta2)) * (
        1.0 + (2.0 / np.pi) * (2.0 * np.tanh(beta2) ** 2 - 1.0) * ellipk(m))


def energy_per_spin(spins: np.ndarray) -> np.ndarray:
    """-(1/N) sum over nearest-neighbour pairs of s_i s_j, each pair once (periodic)."""
    s = spins.astype(np.int32)
    bonds = s * np.roll(s, -1, axis=-1) + s * np.roll(s, -1, axis=-2)
    return -bonds.sum(axis=(-2, -1)) / (s.shape[-1] * s.shape[-2])


def magnetization_per_spin(spins: np.ndarray) -> np.ndarray:
    return spins.astype(np.int32).sum(axis=(-2, -1)) / (spins.shape[-1] * spins.shape[-2])


def swendsen_wang_sweep(spins: np.ndarray, temperature: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
    """One Swendsen-Wang update of every chain; ``spins`` (chains, L, L) of +-1 (int8),
    ``temperature`` one per chain. Returns the new configurations."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    chains, rows, cols = spins.shape
    p_bond = (1.0 - np.exp(-2.0 / np.asarray(temperature, dtype=np.float64)))[:, None, None]
    site = np.arange(spins.size).reshape(spins.shape)
    ends_a, ends_b = [], []
    for axis in (1, 2):  # bonds to the neighbour below and to the right
        neighbour = np.roll(spins, -1, axis=axis)
        active = (spins == neighbour) & (rng.random(spins.shape) < p_bond)
        ends_a.append(site[active])
        ends_b.append(np.roll(site, -1, axis=axis)[active])
    a, b = np.concatenate(ends_a), np.concatenate(ends_b)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(spins.size, spins.size))
    n_clusters, cluster = connected_components(graph, directed=False)
    flip = np.where(rng.random(n_clusters) < 0.5, -1, 1).astype(np.int8)
    return spins * flip[cluster].reshape(spins.shape)


def sample(temperature: float, size: int, n_samples: int, rng: np.random.Generator, *,
           chains: int = 100, equilibration: int = 200, decorrelation: int = 20) -> np.ndarray:
    """``n_samples`` configurations (n, L, L) int8 at one temperature, from ``chains`` chains
    started at random, each sampled every ``decorrelation`` sweeps after ``equilibration``."""
    chains = max(1, min(chains, n_samples))
    per_chain = -(-n_samples // chains)
    spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(chains, size, size))
    temperatures = np.full(chains, temperature)
    for _ in range(equilibration):
        spins = swendsen_wang_sweep(spins, temperatures, rng)
    taken = []
    for _ in range(per_chain):
        for _ in range(decorrelation):
            spins = swendsen_wang_sweep(spins, temperatures, rng)
        taken.append(spins)
    # interleave chains so that any prefix holds every chain
    return np.stack(taken, axis=0).reshape(-1, size, size)[:n_samples]


def _block(temperature: float, index: int, size: int, n_samples: int, seed: int,
           chains: int, equilibration: int, decorrelation: int) -> dict[str, np.ndarray]:
    spins = sample(temperature, size, n_samples, block_rng(seed, index), chains=chains,
                   equilibration=equilibration, decorrelation=decorrelation)
    n = len(spins)
    return {"spins": spins,
            "temperature": np.full(n, temperature, dtype=np.float32),
            "label": np.full(n, int(temperature < CRITICAL_TEMPERATURE), dtype=np.int8),
            "magnetization": magnetization_per_spin(spins).astype(np.float32),
            "energy": energy_per_spin(spins).astype(np.float32)}


def _chunk_events(n: int) -> int:
    """The largest divisor of n up to 256: HDF5 chunks hold whole blocks' events."""
    return max(d for d in range(1, min(n, 256) + 1) if n % d == 0)


def make_ising(out: str | Path, *, size: int = 40, temperatures=MEHTA_TEMPERATURES,
               per_temperature: int = 10_000, seed: int = 1, workers: int = 1,
               chains: int = 100, equilibration: int = 200, decorrelation: int = 20,
               progress: Callable[[int], None] | None = None) -> Path:
    """Write Ising configurations at each temperature to one HDF5 file.

    Datasets: ``spins`` (N, L, L) int8 +-1; ``temperature``; ``label`` 1 ordered (T < T_c),
    0 disordered; ``magnetization`` and ``energy`` per spin. Each temperature is one block with
    its own random stream, so the file is the same for a seed whatever ``workers`` is.
    """
    temperatures = [float(t) for t in temperatures]
    if size < 2:
        raise ConfigError("--size", f"the lattice needs L >= 2, got {size}")
    if not temperatures or min(temperatures) <= 0:
        raise ConfigError("--temperatures", f"need positive temperatures, got {temperatures}")
    if per_temperature < 1:
        raise ConfigError("--per-temperature", f"need at least 1, got {per_temperature}")
    jobs = [(t, i, size, per_temperature, seed, chains, equilibration, decorrelation)
            for i, t in enumerate(temperatures)]
    chunk = _chunk_events(per_temperature)
    attrs = {"generator": "hepdl.generate.ising (Swendsen-Wang)", "lattice_size": size,
             "coupling_J": 1.0, "boundary": "periodic", "seed": seed, "chains": chains,
             "equilibration_sweeps": equilibration, "decorrelation_sweeps": decorrelation,
             "critical_temperature": CRITICAL_TEMPERATURE,
             "temperatures": np.asarray(temperatures)}
    return write_blocks(out, per_temperature * len(temperatures),
                        run_blocks(_block, jobs, workers, chunk_events=chunk),
                        attrs, chunk_events=chunk, progress=progress)
