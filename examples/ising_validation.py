"""The Ising sampler against the exact results (docs/benchmarks.md): mean |M| and energy per
spin at L = 40 beside Yang's M(T) and Onsager's u(T), and the integrated autocorrelation time of
a Swendsen-Wang sweep at T_c for L = 40 and 60.

    python examples/ising_validation.py
"""

import time

import numpy as np

from hepdl.generate.ising import (
    CRITICAL_TEMPERATURE,
    energy_per_spin,
    magnetization_per_spin,
    onsager_energy,
    onsager_magnetization,
    sample,
    swendsen_wang_sweep,
)


def tau_int(series: np.ndarray) -> float:
    """Integrated autocorrelation time over chains (steps, chains), with Sokal's
    self-consistent window (stop at t >= 6 tau)."""
    x = series - series.mean(0)
    variance = (x * x).mean()
    tau = 0.5
    for t in range(1, len(x) // 3):
        tau += (x[:-t] * x[t:]).mean() / variance
        if t >= 6 * tau:
            break
    return tau


def main() -> None:
    rng = np.random.default_rng(0)
    for size in (40, 60):
        spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(64, size, size))
        temperature = np.full(64, CRITICAL_TEMPERATURE)
        start = time.perf_counter()
        for _ in range(200):
            spins = swendsen_wang_sweep(spins, temperature, rng)
        m, e = [], []
        for _ in range(400):
            spins = swendsen_wang_sweep(spins, temperature, rng)
            m.append(np.abs(magnetization_per_spin(spins)))
            e.append(energy_per_spin(spins))
        per_sweep = (time.perf_counter() - start) / 600 / (spins.size / 1e5)
        print(f"L = {size}: tau_int(|M|) {tau_int(np.array(m)):.1f}, tau_int(E) "
              f"{tau_int(np.array(e)):.1f}, {per_sweep:.3f} s per sweep per 10^5 spins")
    for t in (1.0, 1.5, 2.0, 3.5):
        spins = sample(t, 40, 1000, np.random.default_rng(7))
        print(f"T = {t}: mean |M| {np.abs(magnetization_per_spin(spins)).mean():.4f} "
              f"(Yang {onsager_magnetization(t):.4f}), u {energy_per_spin(spins).mean():.4f} "
              f"(Onsager {onsager_energy(t):.4f})")


if __name__ == "__main__":
    main()
