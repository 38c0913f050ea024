"""Electron candidates from Pythia 8 events: 47 x 47 tower images of real and fake electrons.

Real electrons come from Z -> ee, fakes from QCD multijets. Both pass the same reconstruction
and loose preselection, as in an experiment, so that what is left to tell them apart is what an
identification must use:

1. an ECAL cluster: a crystal above 1 GeV, the maximum of its 3 x 3 neighbourhood, with the
   transverse energy of its 5 x 5 crystals ET > 10 GeV and |eta| < 2.4;
2. a loose H/E < 0.15: the HCAL energy within dR < 0.15 of the seed over the 5 x 5 energy;
3. a matched track: a charged particle with pT > 1 GeV and |eta| < 2.5 (found with 95 %
   efficiency) whose helix crosses the ECAL within |d eta| < 0.02 and |d phi| < 0.1 of the seed
   (the closest one, if several).

A candidate of a Z event is real when its track is an electron from the Z (others are dropped);
every candidate of a QCD event is a fake, whatever is behind its track: a charged hadron, an
electron from a heavy-flavour decay, a Dalitz electron (``origin`` in the file).

Images follow seeds/003: towers of 0.0174 around the candidate, index 22 + d/0.0174 (so rows
and columns 0-46 hold d = -22 ... +24 crystals). The candidate is its seed crystal, so every d is
a whole number of crystals and no row or column is counted twice by the truncation of ``int``.
Channels: ECAL crystals, HCAL (towers spread evenly over their 5 x 5 crystals), their sum;
and, beyond seeds/003, the tracks' pT where they cross the ECAL, which gives a network what E/p
and track isolation give a cut-based ID.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hepdl.errors import HepdlError
from hepdl.generate.pythia import ORIGINS, PROCESSES, Generator
from hepdl.generate.towers import Detector, phi_at, simulate

IMAGE = 47
CENTRE = 22  # seeds/003: index 22 + d / 0.0174, so the image spans d = -22 ... +24 crystals


@dataclass(frozen=True)
class Preselection:
    """The loose electron preselection (module docstring)."""

    seed_gev: float = 1.0
    et_min: float = 10.0
    eta_max: float = 2.4
    h_over_e_max: float = 0.15
    h_over_e_cone: float = 0.15
    track_pt_min: float = 1.0
    track_eta_max: float = 2.5
    track_efficiency: float = 0.95
    match_deta: float = 0.02
    match_dphi: float = 0.1
    isolation_cone: float = 0.3


@dataclass(frozen=True)
class ElectronSample:
    """What to generate: the detector, the preselection, the events per generator block."""

    detector: Detector = field(default_factory=Detector)
    preselection: Preselection = field(default_factory=Preselection)
    block_size: int = 256  # candidates of one class made by one Pythia instance


def _windows(grid: np.ndarray, i_eta: np.ndarray, i_phi: np.ndarray, before: int,
             after: int | None = None) -> np.ndarray:
    """(n, before + after + 1, ...) windows of ``grid`` (eta, phi), the cell at index
    ``before`` (default symmetric: ``after = before``); phi wraps around, eta beyond the
    calorimeter is zero."""
    after = before if after is None else after
    padded = np.pad(grid, ((before, after), (0, 0)))
    rows = i_eta[:, None] + np.arange(before + after + 1)[None, :]  # in padded coordinates
    cols = np.mod(i_phi[:, None] + np.arange(-before, after + 1)[None, :], grid.shape[1])
    return padded[rows[:, :, None], cols[:, None, :]]


def _image(grid: np.ndarray, i_eta: np.ndarray, i_phi: np.ndarray) -> np.ndarray:
    """47 x 47 images with the candidate's crystal at (22, 22), as seeds/003 builds them."""
    return _windows(grid, i_eta, i_phi, CENTRE, IMAGE - 1 - CENTRE)


def _delta_phi(a, b):
    return np.mod(a - b + np.pi, 2 * np.pi) - np.pi


def shower_shapes(ecal: np.ndarray, cell: float) -> dict[str, np.ndarray]:
    """Energy ratios and widths from (n, 47, 47) ECAL windows centred on the seed crystal.

    sigma_ieta_ieta and sigma_iphi_iphi are CMS's widths over the 5 x 5 crystals: about the
    energy-weighted mean, with log weights w = max(0, 4.7 + ln(E_i / E_5x5)) (CMS-EGM-17-001,
    EcalClusterTools::localCovariances), in units of eta (crystals x 0.0174).
    """
    c = CENTRE
    e1 = ecal[:, c, c]
    e3 = ecal[:, c - 1:c + 2, c - 1:c + 2].sum((1, 2))
    five = ecal[:, c - 2:c + 3, c - 2:c + 3]
    e5 = five.sum((1, 2))
    safe = np.where(e5 > 0, e5, 1.0)
    with np.errstate(divide="ignore"):
        w = np.maximum(0.0, 4.7 + np.log(np.maximum(five, 1e-12) / safe[:, None, None]))
    w = np.where(five > 0, w, 0.0)
    total = np.maximum(w.sum((1, 2)), 1e-12)
    offsets = np.arange(-2, 3, dtype=np.float64)
    widths = {}
    for name, axis in (("sigma_ieta_ieta", 1), ("sigma_iphi_iphi", 2)):
        along = w.sum(axis=3 - axis)  # weights summed over the other axis
        energy = five.sum(axis=3 - axis)
        mean = (energy * offsets).sum(1) / safe
        var = (along * (offsets[None, :] - mean[:, None]) ** 2).sum(1) / total
        widths[name] = np.sqrt(var) * cell
    return {"e5x5": e5, "e1_over_e5x5": e1 / safe, "e3x3_over_e5x5": e3 / safe, **widths}


def _cone_sum(grid: np.ndarray, i_eta, i_phi, half: int, centre_eta, centre_phi,
              eta_of, phi_of, r_max: float, r_min: float = 0.0,
              eta_strip: float = 0.0) -> np.ndarray:
    """Sum of ET in r_min <= dR < r_max around each centre, from windows of ``grid``, without
    the strip |d eta| < ``eta_strip`` (where an electron's bremsstrahlung lands)."""
    win = _windows(grid, i_eta, i_phi, half)
    offsets = np.arange(-half, half + 1)
    eta = eta_of(np.clip(i_eta[:, None] + offsets[None, :], 0, None))
    phi = phi_of(np.mod(i_phi[:, None] + offsets[None, :], grid.shape[1]))
    d_eta = eta - centre_eta[:, None]
    d_phi = _delta_phi(phi, centre_phi[:, None])
    dr = np.sqrt(d_eta[:, :, None] ** 2 + d_phi[:, None, :] ** 2)
    et = win / np.cosh(eta)[:, :, None]
    strip = np.abs(d_eta)[:, :, None] < eta_strip
    return np.where((dr >= r_min) & (dr < r_max) & ~strip, et, 0).sum((1, 2))


@dataclass
class _Counts:
    """Preselection bookkeeping of one block."""

    events: int = 0
    truth_electrons: int = 0  # Z electrons with pT > 10 GeV, |eta| < 2.4
    clusters: int = 0
    h_over_e: int = 0
    track: int = 0
    origins: dict[str, int] = field(default_factory=dict)


def candidates(detector: Detector, presel: Preselection, particles, rng, counts: _Counts,
               record, z_event: bool) -> dict[str, np.ndarray] | None:
    """Reconstruct, preselect and describe the electron candidates of one event."""
    from scipy.ndimage import maximum_filter

    from hepdl.generate.pythia import origin

    det = detector
    p = particles
    deposits = simulate(det, p.pdg, p.charge, p.pt, p.eta, p.phi, p.energy, rng)
    ecal, towers, hcal_cells = deposits.read_out(rng)
    measured = deposits.track_pt  # the tracks' pT, as the tracker measures it
    counts.events += 1
    truth = np.zeros(0, dtype=bool)
    if z_event:
        truth = (np.abs(p.pdg) == 11) & (p.pt > presel.et_min) & (np.abs(p.eta) < presel.eta_max)
        truth_index = np.flatnonzero(truth)
        is_z = np.array([origin(record, int(p.index[i])) == ORIGINS["Z"] for i in truth_index],
                        dtype=bool)
        counts.truth_electrons += int(is_z.sum())

    # 1. clusters: local maxima of the crystals, 5 x 5 ET above threshold
    peak = (ecal >= presel.seed_gev) & (
        ecal == maximum_filter(ecal, size=3, mode=("constant", "wrap")))
    i_eta, i_phi = np.nonzero(peak)
    eta_c, phi_c = det.eta_center(i_eta), det.phi_center(i_phi)
    inside = np.abs(eta_c) < presel.eta_max
    i_eta, i_phi, eta_c, phi_c = i_eta[inside], i_phi[inside], eta_c[inside], phi_c[inside]
    win_ecal = _image(ecal, i_eta, i_phi)
    shapes = shower_shapes(win_ecal, det.cell)
    et = shapes["e5x5"] / np.cosh(eta_c)
    keep = et > presel.et_min

    def z_matched(selected):
        # Z electrons (counted above) whose ECAL position is within dR < 0.05 of a cluster
        if not z_event or not selected.any():
            return 0
        electrons = truth_index[is_z]
        phi_e = phi_at(p.phi[electrons], p.charge[electrons], p.pt[electrons],
                       det.ecal_radius_m, det.field_tesla)
        dr = np.hypot(p.eta[electrons][:, None] - eta_c[selected][None, :],
                      _delta_phi(phi_e[:, None], phi_c[selected][None, :]))
        return int((np.nan_to_num(dr, nan=9) < 0.05).any(1).sum())

    counts.clusters += z_matched(keep) if z_event else int(keep.sum())

    # 2. H/E
    g = det.hcal_group
    tower_eta = lambda i: (np.asarray(i) + 0.5) * det.cell * g - det.eta_max  # noqa: E731
    tower_phi = lambda i: det.phi_center(np.asarray(i) * g + g // 2)  # noqa: E731
    hcal_e = _cone_sum(towers, i_eta // g, i_phi // g, 3, eta_c, phi_c, tower_eta, tower_phi,
                       presel.h_over_e_cone) * np.cosh(eta_c)
    h_over_e = hcal_e / np.maximum(shapes["e5x5"], 1e-9)
    keep &= h_over_e < presel.h_over_e_max
    counts.h_over_e += z_matched(keep) if z_event else int(keep.sum())

    # 3. a matched track
    charged = ((p.charge != 0) & (measured > presel.track_pt_min)
               & (np.abs(p.eta) < presel.track_eta_max))
    charged &= rng.random(len(p)) < presel.track_efficiency
    tracks = np.flatnonzero(charged)
    track_phi = phi_at(p.phi[tracks], p.charge[tracks], measured[tracks], det.ecal_radius_m,
                       det.field_tesla)
    d_eta = p.eta[tracks][None, :] - eta_c[:, None]
    d_phi = np.nan_to_num(_delta_phi(track_phi[None, :], phi_c[:, None]), nan=9)
    near = (np.abs(d_eta) < presel.match_deta) & (np.abs(d_phi) < presel.match_dphi)
    distance = np.where(near, np.hypot(d_eta, d_phi), np.inf)
    has_track = near.any(1) if len(tracks) else np.zeros(len(eta_c), dtype=bool)
    keep &= has_track
    selected = np.flatnonzero(keep)
    if not len(selected):
        return None
    best = tracks[distance[selected].argmin(1)]
    # one candidate per track: the highest-ET cluster (a brem cluster joins its electron's)
    order = np.argsort(-et[selected], kind="stable")
    _, first = np.unique(best[order], return_index=True)
    unique = np.sort(order[first])
    selected, best = selected[unique], best[unique]
    origins = np.array([origin(record, int(p.index[i])) for i in best], dtype=np.int64)
    if z_event:
        real = origins == ORIGINS["Z"]
        counts.track += int(np.isin(p.index[truth_index[is_z]], p.index[best[real]]).sum())
        selected, best, origins = selected[real], best[real], origins[real]
        if not len(selected):
            return None
    else:
        counts.track += len(selected)
    names = {code: name for name, code in ORIGINS.items()}
    for code, n in zip(*np.unique(origins, return_counts=True), strict=True):
        counts.origins[names[code]] = counts.origins.get(names[code], 0) + int(n)

    s = selected
    k = np.arange(len(s))
    # a tracks channel: the pT of every track where it crosses the ECAL
    track_grid = np.zeros((det.eta_cells, det.phi_cells))
    crossing = ~np.isnan(track_phi)
    np.add.at(track_grid, (det.eta_index(p.eta[tracks][crossing]),
                           det.phi_index(track_phi[crossing])), measured[tracks][crossing])
    win_tracks = _image(track_grid, i_eta[s], i_phi[s])
    match = distance[s].argmin(1)
    win_hcal = _image(hcal_cells, i_eta[s], i_phi[s])
    cone = presel.isolation_cone
    eta_of, phi_of = det.eta_center, det.phi_center
    # ECAL isolation as CMS's "Jurassic" veto: dR < 0.3 without an inner cone of 3 crystals
    # and a strip of |d eta| < 1.5 crystals along phi (the bremsstrahlung)
    ecal_iso = _cone_sum(ecal, i_eta[s], i_phi[s], 18, eta_c[s], phi_c[s], eta_of, phi_of,
                         cone, 3 * det.cell, 1.5 * det.cell)
    hcal_iso = _cone_sum(hcal_cells, i_eta[s], i_phi[s], 18, eta_c[s], phi_c[s], eta_of,
                         phi_of, cone, presel.h_over_e_cone)
    # track isolation at the vertex: other tracks with pT > 1 GeV in 0.015 < dR < 0.3
    tr_dr = np.hypot(p.eta[tracks][None, :] - p.eta[best][:, None],
                     _delta_phi(p.phi[tracks][None, :], p.phi[best][:, None]))
    track_iso = np.where((tr_dr > 0.015) & (tr_dr < cone), measured[tracks][None, :], 0).sum(1)
    momentum = measured[best] * np.cosh(p.eta[best])
    pt = et[s]
    return {
        "ECAL": win_ecal[s].astype(np.float32), "HCAL": win_hcal.astype(np.float32),
        "TRACKS": win_tracks.astype(np.float32),
        "pt": pt, "eta": eta_c[s], "phi": phi_c[s],
        "label": np.full(len(s), int(z_event), dtype=np.int64),
        "truth_pdgid": p.pdg[best], "truth_origin": origins, "truth_pt": p.pt[best],
        "track_pt": measured[best], "event_weight": np.full(len(s), p.weight),
        "h_over_e": h_over_e[s],
        "sigma_ieta_ieta": shapes["sigma_ieta_ieta"][s],
        "sigma_iphi_iphi": shapes["sigma_iphi_iphi"][s],
        "e1_over_e5x5": shapes["e1_over_e5x5"][s],
        "e3x3_over_e5x5": shapes["e3x3_over_e5x5"][s],
        "e_over_p": shapes["e5x5"][s] / momentum,
        "delta_eta": d_eta[s, match][k],
        "delta_phi": d_phi[s, match][k] * p.charge[best],
        "iso_ecal": ecal_iso / pt, "iso_hcal": hcal_iso / pt, "iso_track": track_iso / pt,
    }


FEATURES = ("h_over_e", "sigma_ieta_ieta", "sigma_iphi_iphi", "e1_over_e5x5", "e3x3_over_e5x5",
            "e_over_p", "delta_eta", "delta_phi", "iso_ecal", "iso_hcal", "iso_track")
"""The engineered identification variables stored beside the images (for the baselines)."""


def make_block(sample: ElectronSample, process: str, n: int, seed: int, block: int):
    """``n`` candidates of one class (real from "zee", fake from "qcd"), from one Pythia run."""
    from hepdl.generate.writer import block_rng

    rng = block_rng(seed, block)
    generator = Generator(process, int(rng.integers(0, 2**31)))
    counts = _Counts()
    parts: list[dict] = []
    made = 0
    for number, particles in enumerate(generator.events()):
        if number > 1000 * max(n, 20) and not made:
            raise HepdlError(f"no {process} candidate passed the preselection in {number} "
                             "events; loosen the preselection")
        found = candidates(sample.detector, sample.preselection, particles, rng, counts,
                           generator.record, process == "zee")
        if found is not None:
            parts.append(found)
            made += len(found["pt"])
        if made >= n:
            break
    out = {k: np.concatenate([part[k] for part in parts])[:n] for k in parts[0]}
    out["sum"] = out["ECAL"] + out["HCAL"]
    out["towers"] = np.stack([out.pop("ECAL"), out.pop("HCAL"), out.pop("TRACKS")], 1)
    for key, value in out.items():
        if value.dtype == np.float64:
            out[key] = value.astype(np.float32)
    out["_counts"] = asdict(counts)
    out["_process"] = process
    return out


def efficiencies(totals: dict[str, dict]) -> dict[str, float]:
    """Preselection efficiencies: per Z electron (real) and per QCD event (fakes)."""
    z, q = totals["zee"], totals["qcd"]
    real = max(z["truth_electrons"], 1)
    per_event = max(q["events"], 1)
    out = {"real: cluster ET > 10 GeV": z["clusters"] / real,
           "real: + H/E": z["h_over_e"] / real,
           "real: + matched track": z["track"] / real,
           "fake candidates per biased QCD event: cluster": q["clusters"] / per_event,
           "fake candidates per biased QCD event: + H/E": q["h_over_e"] / per_event,
           "fake candidates per biased QCD event: + matched track": q["track"] / per_event}
    fakes = max(sum(q["origins"].values()), 1)
    for name, count in sorted(q["origins"].items()):
        out[f"fakes behind the track: {name}"] = count / fakes
    return out


def class_blocks(events: int, block_size: int) -> tuple[list[tuple[str, int]], int]:
    """(process, candidates) of each generator block, and the HDF5 chunk (in events) that
    divides every block but the last, as the writer needs.

    Half of the events are real (``zee``) and half fake (``qcd``), in blocks of at most
    ``block_size`` candidates of one class taking turns; the real half is rounded to whole
    chunks (64 events from 256 events on), so that only the last block, a fake one, is partial.
    """
    chunk = 64
    while chunk > 1 and 4 * chunk > events:  # small files: smaller chunks, an exact half
        chunk //= 2
    chunk = math.gcd(chunk, block_size)
    left = {"zee": chunk * int(events / (2 * chunk) + 0.5)}
    left["qcd"] = events - left["zee"]
    blocks = []
    while any(left.values()):
        for process in ("zee", "qcd"):
            size = min(block_size, left[process])
            if size:
                blocks.append((process, size))
                left[process] -= size
    return blocks, chunk


def make_electrons(out: str | Path, events: int, *, seed: int = 1, workers: int = 1,
                   sample: ElectronSample | None = None, progress=None):
    """Write ``events`` candidates to ``out``, half real (Z -> ee) and half fake (QCD), made in
    blocks of ``sample.block_size`` candidates of one class taking turns (:func:`class_blocks`).

    Datasets: ``towers`` (N, 3, 47, 47): ECAL and HCAL energy and track pT in GeV (the tracks
    where they cross the ECAL), ``sum`` (N, 47, 47) ECAL + HCAL as seeds/003; ``label`` (1
    real, 0 fake); ``pt`` (cluster ET), ``eta``, ``phi``; the truth behind the matched track
    (``truth_pdgid``, ``truth_origin``, ``truth_pt``); and the identification variables
    :data:`FEATURES`. Attributes: the Pythia settings, the seed, the detector and preselection
    constants and the preselection's efficiencies (JSON). The same seed gives the same file for
    any number of workers.
    """
    from hepdl.generate.writer import run_blocks, write_blocks

    sample = sample or ElectronSample()
    blocks, chunk = class_blocks(events, sample.block_size)
    jobs = [(sample, process, size, seed, b) for b, (process, size) in enumerate(blocks)]
    totals = {p: asdict(_Counts()) for p in PROCESSES}

    def counted(blocks):
        for block in blocks:
            total = totals[block.extras["_process"]]
            for key, value in block.extras["_counts"].items():
                if key == "origins":
                    for name, n in value.items():
                        total["origins"][name] = total["origins"].get(name, 0) + n
                else:
                    total[key] += value
            yield block

    from hepdl.generate.pythia import COMMON

    attrs = {"generator": "hepdl.generate.electrons (Pythia 8 via pythia8mc)", "seed": seed,
             "pythia_common": COMMON, "pythia_zee": PROCESSES["zee"],
             "pythia_qcd": PROCESSES["qcd"], "origins": json.dumps(ORIGINS),
             "detector": json.dumps(asdict(sample.detector)),
             "preselection": json.dumps(asdict(sample.preselection)),
             "class_names": ["fake", "electron"], "towers_channels": ["ECAL", "HCAL", "tracks"]}
    path = write_blocks(out, events, counted(run_blocks(make_block, jobs,
                        workers, chunk)), attrs, chunk_events=chunk, progress=progress)
    effs = efficiencies(totals)
    import h5py

    with h5py.File(path, "r+") as handle:
        handle.attrs["efficiencies"] = json.dumps(effs)
        handle.attrs["counts"] = json.dumps(totals)
    return path, effs
