"""Per-class AUCs of a BDT on shower shapes of the generated calorimeter data, beside seeds/000.

    python examples/calo_bdt.py --events 20000 --workers 2

Generates (or reuses) an LCD-style file with `hepdl data make calo`'s generator, computes
shower-shape features and prints the one-vs-rest AUC of each class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

from hepdl.data.shower_shapes import shower_shapes
from hepdl.evaluation.baselines import bdt_baseline
from hepdl.generate.calo import PARTICLES, make_calo

SEEDS_000 = {"Ele": 0.9952, "Pi0": 0.9501, "ChPi": 0.9989, "Gamma": 0.9559}  # best MLP rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--file", type=Path, default=Path("data/calo_bdt.h5"))
    args = parser.parse_args()
    if not args.file.is_file():
        make_calo(args.file, args.events, seed=args.seed, workers=args.workers)
    with h5py.File(args.file) as f:
        ecal, hcal, pdg = f["ECAL"][()], f["HCAL"][()], np.abs(f["pdgID"][()])
        energy = f["energy"][()]
    names = list(PARTICLES)
    labels = np.searchsorted([PARTICLES[n] for n in names], pdg)
    edges = [10, 50, 100, 200, 350, 510]
    metrics = bdt_baseline(shower_shapes(ecal, hcal), labels, names, seed=args.seed,
                           observers={"energy": energy}, bins={"energy": edges})
    print(f"BDT on {len(metrics['feature_names'])} shower shapes, {metrics['n_train']} training "
          f"events, {metrics['n_events']} test events")
    print("| class | BDT AUC (hepdl calo) | seeds/000 MLP AUC |\n|---|---|---|")
    for name in names:
        print(f"| {name} | {metrics['auc'][name]:.4f} | {SEEDS_000[name]:.4f} |")
    binned = metrics["binned"]["energy"]
    print("\nAUC in energy bins (GeV)\n| class | " + " | ".join(
        f"{lo}-{hi}" for lo, hi in zip(edges, edges[1:], strict=False)) + " |")
    print("|---" * len(edges) + "|")
    for name in names:
        print(f"| {name} | " + " | ".join(f"{a:.4f}" for a in binned["auc"][name]) + " |")


if __name__ == "__main__":
    main()
