"""The SUSY benchmark of seeds/004 (Baldi, Sadowski & Whiteson arXiv:1402.4735) from Pythia 8.

Signal: chargino pairs, q qbar -> chi1+ chi1-, each chi1+- -> W+- chi1^0 and W -> l nu (l = e,
mu). Background: q qbar -> W+ W- -> l nu l nu. The spectrum is a simplified model written as a
complete SLHA file (Pythia needs every block, REFERENCES.md): a wino-like chargino of
``chargino_mass``, a bino-like LSP of ``neutralino_mass``, everything else at 2-5 TeV; the
masses of the paper are not given in REFERENCES.md, so 200 and 100 GeV are our choice.

A simple detector: electrons and muons with |eta| < 2.5 (electrons: sigma_E/E = 10%/sqrt(E) +
0.7%; muons: sigma_pT/pT = 1.5% + 0.01% pT/GeV), isolated (other visible pT within Delta R
< 0.3 below 15% of the lepton's); missing transverse momentum as minus the vector sum of the
smeared leptons and every other visible particle with |eta| < 4.9, the hadronic part smeared by
0.5 sqrt(sum E_T / GeV) GeV in x and y (a typical calorimeter MET resolution). An event is kept
with exactly two isolated leptons, pT > 25 and 15 GeV. Its 8 low-level and 10 high-level
features (:mod:`hepdl.generate.susy_features`) are stored as columns.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hepdl.errors import ConfigError, HepdlError
from hepdl.generate.pythia import COMMON, PROCESSES, FinalState, Generator

INVISIBLE = (12, 14, 16, 1000022)


@dataclass(frozen=True)
class Spectrum:
    """The simplified-model masses (GeV)."""

    chargino_mass: float = 200.0
    neutralino_mass: float = 100.0
    heavy_mass: float = 5000.0  # squarks, sleptons, gluino
    higgsino_mass: float = 2000.0  # mu: the heavy chargino and neutralinos, and the heavy Higgses


@dataclass(frozen=True)
class Detector:
    electron_stochastic: float = 0.10  # sigma_E / E = a / sqrt(E/GeV) + b
    electron_constant: float = 0.007
    muon_constant: float = 0.015  # sigma_pT / pT = c + d pT/GeV
    muon_linear: float = 1e-4
    lepton_eta: float = 2.5
    isolation_cone: float = 0.3
    isolation_fraction: float = 0.15
    calorimeter_eta: float = 4.9
    met_resolution: float = 0.5  # sigma = k sqrt(sum E_T / GeV) GeV
    leading_pt: float = 25.0
    subleading_pt: float = 15.0


def slha(spectrum: Spectrum) -> str:
    """A complete SLHA spectrum (Skands et al., hep-ph/0311123) for the simplified model."""
    m1, m2 = spectrum.neutralino_mass, spectrum.chargino_mass
    heavy, mu = spectrum.heavy_mass, spectrum.higgsino_mass
    if not 0 < m1 < m2 - 80.4:
        raise ConfigError("--chargino-mass/--neutralino-mass", f"the chargino ({m2} GeV) must "
                          f"decay to W + LSP ({m1} GeV): need 0 < m_LSP < m_chargino - m_W")
    squarks = [1000001, 2000001, 1000002, 2000002, 1000003, 2000003, 1000004, 2000004,
               1000005, 2000005, 1000006, 2000006]
    sleptons = [1000011, 2000011, 1000012, 1000013, 2000013, 1000014, 1000015, 2000015, 1000016]
    lines = ["BLOCK MODSEL", "    1   0   # general MSSM",
             "BLOCK SMINPUTS", "    1   1.279340e+02", "    2   1.166370e-05",
             "    3   1.180000e-01", "    4   9.118760e+01", "    5   4.180000e+00",
             "    6   1.727000e+02", "    7   1.777000e+00",
             "BLOCK MINPAR", "    3   1.000000e+01   # tan beta",
             "BLOCK MASS", "   24   8.040000e+01", "   25   1.250000e+02",
             f"   35   {mu:.6e}", f"   36   {mu:.6e}", f"   37   {mu + 1.5:.6e}"]
    lines += [f"   {pdg}   {heavy:.6e}" for pdg in squarks + sleptons + [1000021]]
    lines += [f"   1000022   {m1:.6e}   # bino-like LSP",
              f"   1000023   {m2:.6e}   # wino-like",
              f"   1000025   {-mu:.6e}   # higgsino-like",
              f"   1000035   {mu:.6e}   # higgsino-like",
              f"   1000024   {m2:.6e}   # wino-like chargino",
              f"   1000037   {mu:.6e}   # higgsino-like chargino"]
    r = 1 / np.sqrt(2)
    nmix = {(1, 1): 1.0, (2, 2): 1.0, (3, 3): r, (3, 4): -r, (4, 3): r, (4, 4): r}
    lines += ["BLOCK NMIX   # rows: mass states; columns: B, W3, Hd, Hu"]
    lines += [f"  {i}  {j}   {nmix.get((i, j), 0.0):.6e}" for i in range(1, 5) for j in range(1, 5)]
    for block in ("UMIX", "VMIX", "STOPMIX", "SBOTMIX", "STAUMIX"):
        lines += [f"BLOCK {block}"] + [f"  {i}  {j}   {float(i == j):.6e}"
                                       for i in (1, 2) for j in (1, 2)]
    lines += ["BLOCK ALPHA", "   -1.000000e-01",
              "BLOCK HMIX Q= 1.000000e+03", f"    1   {mu:.6e}", "    2   1.000000e+01",
              "    3   2.460000e+02", f"    4   {mu * mu:.6e}",
              "BLOCK GAUGE Q= 1.000000e+03", "    1   3.600000e-01", "    2   6.400000e-01",
              "    3   1.060000e+00",
              "BLOCK MSOFT Q= 1.000000e+03", f"    1   {m1:.6e}", f"    2   {m2:.6e}",
              f"    3   {heavy:.6e}", f"   21   {mu * mu:.6e}", f"   22   {-mu * mu:.6e}"]
    lines += [f"   {k}   {heavy:.6e}" for k in (31, 32, 33, 34, 35, 36, 41, 42, 43, 44, 45, 46,
                                                 47, 48, 49)]
    for block in ("AU", "AD", "AE"):
        lines += [f"BLOCK {block} Q= 1.000000e+03"] + [f"  {i}  {i}   0.000000e+00"
                                                       for i in (1, 2, 3)]
    lines += ["DECAY   1000024   1.000000e-02   # chargino -> W+ LSP",
              "   1.000000e+00   2   1000022   24",
              "DECAY   1000022   0.000000e+00   # the LSP is stable"]
    return "\n".join(lines) + "\n"


def _smear_leptons(particles: FinalState, lepton: np.ndarray, detector: Detector,
                   rng: np.random.Generator) -> np.ndarray:
    """Measured pT of the leptons selected by ``lepton`` (resolutions of the module doc)."""
    pt, energy = particles.pt[lepton], particles.energy[lepton]
    is_electron = np.abs(particles.pdg[lepton]) == 11
    relative = np.where(
        is_electron,
        detector.electron_stochastic / np.sqrt(energy) + detector.electron_constant,
        detector.muon_constant + detector.muon_linear * pt)
    return pt * np.clip(1.0 + relative * rng.standard_normal(len(pt)), 0.01, None)


def reconstruct(particles: FinalState, detector: Detector, rng: np.random.Generator):
    """The two leptons (pT, eta, phi, leading first) and the MET (magnitude, phi) of one event,
    or None when it does not hold exactly two isolated leptons above threshold."""
    absid = np.abs(particles.pdg)
    visible = ~np.isin(absid, INVISIBLE) & (np.abs(particles.eta) < detector.calorimeter_eta)
    lepton = visible & np.isin(absid, (11, 13)) & (np.abs(particles.eta) < detector.lepton_eta)
    lepton &= particles.pt > 5.0
    if lepton.sum() < 2:
        return None
    index = np.flatnonzero(lepton)
    # isolation: visible pT around each lepton, itself excluded
    deta = particles.eta[visible][None, :] - particles.eta[index][:, None]
    dphi = np.angle(np.exp(1j * (particles.phi[visible][None, :] - particles.phi[index][:, None])))
    near = (deta ** 2 + dphi ** 2) < detector.isolation_cone ** 2
    cone = (near * particles.pt[visible][None, :]).sum(axis=1) - particles.pt[index]
    pt = _smear_leptons(particles, lepton, detector, rng)
    good = (cone < detector.isolation_fraction * particles.pt[index])
    keep = np.flatnonzero(good & (pt > detector.subleading_pt))
    if len(keep) != 2:
        return None
    order = keep[np.argsort(-pt[keep])]
    if pt[order[0]] < detector.leading_pt:
        return None
    chosen = index[order]
    # MET: minus the visible transverse momentum, leptons as measured
    other = visible.copy()
    other[index] = False  # every lepton candidate counts as measured, kept or not
    hadronic = np.array([(particles.pt[other] * np.cos(particles.phi[other])).sum(),
                         (particles.pt[other] * np.sin(particles.phi[other])).sum()])
    sigma = detector.met_resolution * np.sqrt(particles.pt[other].sum())
    hadronic += sigma * rng.standard_normal(2)
    lep = np.array([(pt * np.cos(particles.phi[index])).sum(),
                    (pt * np.sin(particles.phi[index])).sum()])
    mex, mey = -(hadronic + lep)
    return (pt[order], particles.eta[chosen], particles.phi[chosen],
            float(np.hypot(mex, mey)), float(np.arctan2(mey, mex)))


@dataclass(frozen=True)
class SusySample:
    spectrum: Spectrum = Spectrum()
    detector: Detector = Detector()
    block_size: int = 512


def make_block(sample: SusySample, process: str, n: int, seed: int, block: int):
    """``n`` selected events of one process ("chargino" or "ww") from one Pythia run."""
    from hepdl.generate.susy_features import HIGH_LEVEL, LOW_LEVEL, high_level
    from hepdl.generate.writer import block_rng

    rng = block_rng(seed, block)
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if process == "chargino":
            path = Path(tmp) / "spectrum.slha"
            path.write_text(slha(sample.spectrum))
            extra = [f"SLHA:file = {path}", "SLHA:verbose = 0"]
        generator = Generator(process, int(rng.integers(0, 2**31)), extra)
    rows, generated = [], 0
    for particles in generator.events():
        generated += 1
        if generated > 200 * max(n, 50) and not rows:
            raise HepdlError(f"no {process} event passed the selection in {generated} events")
        found = reconstruct(particles, sample.detector, rng)
        if found is None:
            continue
        pt, eta, phi, met, met_phi = found
        rows.append((pt[0], eta[0], phi[0], pt[1], eta[1], phi[1], met, met_phi))
        if len(rows) >= n:
            break
    low = np.array(rows, dtype=np.float64)
    out = {name: low[:, i] for i, name in enumerate(LOW_LEVEL)}
    high = high_level(*(out[name] for name in LOW_LEVEL))
    out.update({name: high[name] for name in HIGH_LEVEL})
    out = {k: v.astype(np.float32) for k, v in out.items()}
    out["label"] = np.full(n, int(process == "chargino"), dtype=np.int8)
    out["_generated"] = generated
    out["_process"] = process
    return out


def make_susy(out: str | Path, events: int, *, seed: int = 1, workers: int = 1,
              sample: SusySample | None = None, progress=None) -> tuple[Path, dict[str, float]]:
    """Write ``events`` selected events, blocks of signal and background in turn (about half
    each). Columns: the 8 low-level and 10 high-level features, ``label`` (1 chargino pairs,
    0 WW). Attributes: the Pythia settings, the SLHA spectrum, the detector and each process's
    selection efficiency. Returns the path and the efficiencies."""
    from hepdl.generate.writer import block_ranges, run_blocks, write_blocks

    sample = sample or SusySample()
    slha(sample.spectrum)  # a bad spectrum stops here, before any worker starts
    jobs = [(sample, ("chargino", "ww")[b % 2], hi - lo, seed, b)
            for b, (lo, hi) in enumerate(block_ranges(events, sample.block_size))]
    totals = {"chargino": [0, 0], "ww": [0, 0]}

    def counted(blocks):
        for block in blocks:
            total = totals[block.extras["_process"]]
            total[0] += block.n_events
            total[1] += block.extras["_generated"]
            yield block

    attrs = {"generator": "hepdl.generate.susy (Pythia 8 via pythia8mc)", "seed": seed,
             "pythia_common": COMMON, "pythia_chargino": PROCESSES["chargino"],
             "pythia_ww": PROCESSES["ww"], "slha": slha(sample.spectrum),
             "spectrum": json.dumps(asdict(sample.spectrum)),
             "detector": json.dumps(asdict(sample.detector)),
             "class_names": ["WW", "chargino pairs"]}
    chunk = min(math.gcd(64, sample.block_size), events)  # only the last block is partial
    path = write_blocks(out, events, counted(run_blocks(make_block, jobs, workers, chunk)),
                        attrs, chunk_events=chunk, progress=progress)
    efficiencies = {f"{p}: selected / generated": (sel / gen if gen else 0.0)
                    for p, (sel, gen) in totals.items()}
    import h5py

    with h5py.File(path, "r+") as handle:
        handle.attrs["efficiencies"] = json.dumps(efficiencies)
    return path, efficiencies
