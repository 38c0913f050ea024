"""Scores of a trained network on a dataset, kept with labels and observers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hepdl.data.dataset import Dataset
from hepdl.data.loader import InMemoryLoader
from hepdl.models import Network, probabilities


@dataclass
class Predictions:
    """What a network said about each event.

    Attributes
    ----------
    scores : ndarray
        (N, n_classes) class probabilities, or (N,) regression values.
    labels : ndarray or None
        True class indices or targets, when the data has them.
    observers : dict of str to ndarray
        Per-event quantities for binned evaluation.
    class_names : list of str
    task : {"classification", "regression"}
    """

    scores: np.ndarray
    labels: np.ndarray | None
    observers: dict[str, np.ndarray] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    task: str = "classification"

    def __len__(self) -> int:
        return len(self.scores)


def _scores(parts: list[torch.Tensor], spec: dict) -> np.ndarray:
    """The batches' scores as one float64 array; (0, n_classes) or (0,) for no events."""
    if not parts:
        width = () if spec["task"] == "regression" else (len(spec["class_names"]),)
        return np.zeros((0, *width))
    return torch.cat(parts).numpy().astype(np.float64)


@torch.no_grad()
def predict(network: Network, dataset: Dataset, batch_size: int = 4096) -> Predictions:
    """Run ``network`` (eval mode) over ``dataset`` in batches."""
    network.eval()
    loader = InMemoryLoader(dataset, batch_size=batch_size)
    parts = [probabilities(network(inputs), network.spec) for inputs, _ in loader.batches()]
    scores = _scores(parts, network.spec)
    return Predictions(scores, dataset.labels, dict(dataset.observers),
                       list(network.spec["class_names"]), network.spec["task"])


@torch.no_grad()
def predict_files(network: Network, events, batch_size: int = 4096) -> Predictions:
    """Run ``network`` over every event of HDF5 files (:class:`~hepdl.data.streaming.EventFiles`)
    block by block: memory holds one block of inputs (about 16 MB) and the scores, however
    large the files."""
    network.eval()
    parts = []
    for inputs in events.read_all():
        for lo in range(0, len(next(iter(inputs.values()))), batch_size):
            batch = {k: torch.from_numpy(v[lo:lo + batch_size]) for k, v in inputs.items()}
            parts.append(probabilities(network(batch), network.spec))
    scores = _scores(parts, network.spec)
    return Predictions(scores, events.labels, events.read_observers(),
                       list(network.spec["class_names"]), network.spec["task"])
