"""Proton-proton events from Pythia 8 (the ``pythia8mc`` package): Z -> ee and QCD multijets.

Each event is handed on as its final-state particles in NumPy arrays, with the event record kept
alive so that the origin of a few particles can be traced through their mothers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hepdl.errors import HepdlError

COMMON = [
    "Beams:eCM = 13600.",
    "Next:numberCount = 0", "Next:numberShowEvent = 0", "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0", "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off", "Init:showProcesses = off",
    "Init:showMultipartonInteractions = off", "Print:quiet = on", "Print:errors = off",
    "Random:setSeed = on",
]
"""Settings of every process: LHC Run 3 energy, a quiet log, the seed set by hepdl."""

PROCESSES = {
    # Drell-Yan with the Z only (no photon interference), forced to e+e-
    "zee": ["WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off",
            "23:onIfAny = 11"],
    # every 2 -> 2 QCD process above pT-hat 20 GeV, biased by (pT-hat / 20 GeV)^4 towards hard
    # jets (event weights undo it), so that fake candidates cover 10-100 GeV and one in about
    # 40 events yields one: unbiased, a few in a thousand do
    "qcd": ["HardQCD:all = on", "PhaseSpace:pTHatMin = 20.", "PhaseSpace:pTHatMax = 250.",
            "PhaseSpace:bias2Selection = on", "PhaseSpace:bias2SelectionPow = 4.",
            "PhaseSpace:bias2SelectionRef = 20."],
    # seeds/004's SUSY benchmark (Baldi et al.): chargino pairs from the SLHA spectrum that
    # hepdl.generate.susy writes (the SLHA:file setting it adds), each chargino -> W + LSP; and
    # the background W+W-; every W forced to e nu or mu nu
    "chargino": ["SUSY:qqbar2chi+chi- = on", "24:onMode = off", "24:onIfAny = 11 13"],
    "ww": ["WeakDoubleBoson:ffbar2WW = on", "24:onMode = off", "24:onIfAny = 11 13"],
}

# origin of the particle behind a candidate (stored as a code, names in the file's attributes)
ORIGINS = {"other": 0, "Z": 1, "heavy_flavour": 2, "light_electron": 3, "hadron": 4}


@dataclass
class FinalState:
    """The final-state particles of one event (generator level)."""

    pdg: np.ndarray  # PDG id
    charge: np.ndarray  # units of e
    pt: np.ndarray  # GeV
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray  # GeV
    index: np.ndarray  # position in the Pythia event record
    weight: float = 1.0  # the event weight (QCD: undoes the pT-hat bias)

    def __len__(self) -> int:
        return len(self.pdg)


def settings(process: str, seed: int, extra: Sequence[str] = ()) -> list[str]:
    """The Pythia settings of ``process`` (a key of :data:`PROCESSES`) with the random ``seed``
    and any ``extra`` settings (the SLHA file of the SUSY spectrum)."""
    if process not in PROCESSES:
        raise HepdlError(f"unknown process {process!r}; expected one of {sorted(PROCESSES)}")
    # Pythia takes seeds 0 ... 900,000,000 (0: from the clock, never used here)
    return [*COMMON, *PROCESSES[process], *extra, f"Random:seed = {seed % 900_000_000 + 1}"]


class Generator:
    """A Pythia 8 instance producing one process; ``events()`` yields :class:`FinalState`."""

    def __init__(self, process: str, seed: int, extra: Sequence[str] = ()):
        import pythia8mc

        self.process = process
        self.pythia = pythia8mc.Pythia("", False)
        for line in settings(process, seed, extra):
            if not self.pythia.readString(line):
                raise HepdlError(f"Pythia rejected the setting {line!r}")
        if not self.pythia.init():
            raise HepdlError(f"Pythia failed to initialize the {process!r} process")

    @property
    def record(self):
        """The current event record (for :func:`origin`)."""
        return self.pythia.event

    def events(self) -> Iterator[FinalState]:
        """Events without end (a failed event is skipped, as Pythia's examples do)."""
        while True:
            if not self.pythia.next():
                continue
            # pythia8mc hands out the event record one particle at a time (no array view):
            # this one pass per event is the only per-particle Python of the generator
            rows = [(p.id(), p.charge(), p.px(), p.py(), p.pz(), p.e(), p.index())
                    for p in self.pythia.event if p.isFinal()]
            table = np.array(rows, dtype=np.float64).reshape(-1, 7)
            px, py, pz, energy = table[:, 2], table[:, 3], table[:, 4], table[:, 5]
            pt = np.hypot(px, py)
            with np.errstate(divide="ignore", invalid="ignore"):
                eta = np.arcsinh(np.where(pt > 0, pz / pt, np.sign(pz) * 1e6))
            yield FinalState(pdg=table[:, 0].astype(np.int64), charge=table[:, 1], pt=pt,
                             eta=eta, phi=np.arctan2(py, px), energy=energy,
                             index=table[:, 6].astype(np.int64),
                             weight=float(self.pythia.infoPython().weight()))


def _is_heavy_hadron(pdg: int) -> bool:
    pdg = abs(pdg)
    meson_flavour = pdg // 100 % 10
    baryon_flavour = pdg // 1000 % 10
    return pdg > 100 and (meson_flavour in (4, 5) or baryon_flavour in (4, 5))


def origin(record, index: int) -> int:
    """Where the particle at ``index`` comes from (a code of :data:`ORIGINS`).

    Electrons: from the Z; from the decay of a charm or bottom hadron (heavy flavour); or any
    other (Dalitz decays, photon conversions in the generator). Other charged particles: hadron.
    """
    particle = record[index]
    if abs(particle.id()) != 11:
        return ORIGINS["hadron"] if particle.isHadron() else ORIGINS["other"]
    seen, todo = set(), [index]
    while todo:  # walk every ancestor once
        i = todo.pop()
        for mother in record[i].motherList():
            if mother in seen or mother <= 0:
                continue
            seen.add(mother)
            pdg = record[mother].id()
            if pdg == 23:
                return ORIGINS["Z"]
            if _is_heavy_hadron(pdg):
                return ORIGINS["heavy_flavour"]
            todo.append(mother)
    return ORIGINS["light_electron"]
