"""ONNX export of a trained run, for reconstruction software and triggers that run no Python.

The exported graph is the whole :class:`~hepdl.models.Network`: the fitted preprocessing (its
buffers become constants), the body, and the class probabilities (softmax or sigmoid; the value
for regression), so that a C++ caller feeds raw detector inputs and reads scores. One named
input per model input (``ecal``, ``hcal``, ``features``) with a dynamic batch axis ``batch``;
one output ``scores`` (N, n_classes). The model's metadata holds the class names, the task, the
input shapes and the hepdl version.

torch.onnx's exporter (torch.export based, the default since torch 2.9) builds the graph;
onnxruntime checks it on the run's own test events before the file is written.

Example
-------
>>> exported = export_onnx("runs/calo-4class", "calo.onnx")
>>> exported.max_difference < 1e-5
True
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hepdl.errors import DataError, HepdlError

TOLERANCE = 1e-5
"""Largest difference allowed between onnxruntime's and PyTorch's scores on the test events."""


class ExportError(HepdlError):
    """The exported graph does not give the network's scores."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote and how well onnxruntime reproduced PyTorch."""

    path: Path
    inputs: dict[str, list[int]]
    class_names: list[str]
    events_checked: int
    max_difference: float


class _Scores(torch.nn.Module):
    """The network as a function of positional tensors (ONNX inputs are positional), returning
    class probabilities."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.names = list(network.input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        from hepdl.models import probabilities

        logits = self.network(dict(zip(self.names, inputs, strict=True)))
        return probabilities(logits, self.network.spec)


def _finished_network(run_dir: Path):
    from hepdl.runs import MODEL, Run

    run = Run.load(run_dir)
    status = run.meta.get("status")
    if status != "completed" or not (run.path / MODEL).is_file():
        reason = run.meta.get("reason")
        raise DataError(str(run_dir), f"the run is {status or 'not finished'}"
                                      f"{f' ({reason})' if reason else ''}; only a completed "
                                      "run's model.pt is exported")
    return run, run.network().eval()


def _test_events(run, limit: int) -> dict[str, torch.Tensor]:
    """Up to ``limit`` events of the run's test split, as dense float32 tensors."""
    from hepdl.data.dataset import load_split
    from hepdl.data.hits import Hits

    test = load_split(run.config.data, run.config.task, run.config.seed, "test")
    n = min(len(test), limit)
    return {name: (x[:n].to_dense() if isinstance(x, Hits) else torch.from_numpy(
        np.ascontiguousarray(x[:n], dtype=np.float32))) for name, x in test.inputs.items()}


def export_onnx(run_dir: str | Path, out: str | Path, *, check_events: int = 2048) -> OnnxExport:
    """Export a completed run to ONNX, checked by onnxruntime on its test events.

    Parameters
    ----------
    run_dir : path
        A run directory whose training completed.
    out : path
        The ``.onnx`` file; written under a temporary name and renamed once checked.
    check_events : int
        Test events scored by both PyTorch and onnxruntime.

    Raises
    ------
    DataError
        Not a completed run (failed, interrupted or still running), or its data is gone.
    ExportError
        onnxruntime's scores differ from PyTorch's by more than :data:`TOLERANCE`.
    """
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if not importlib.util.find_spec(m)]
    if missing:
        raise HepdlError(f"ONNX export needs {', '.join(missing)}: pip install 'hepdl[onnx]'")
    import onnxruntime

    from hepdl import __version__
    from hepdl.runs import temporary_path

    run, network = _finished_network(Path(run_dir))
    events = _test_events(run, check_events)
    names = list(network.input_names)
    example = tuple(events[name][:8] for name in names)
    if len(example[0]) < 2:  # torch.export fixes sizes 0 and 1; any values do for tracing
        example = tuple(torch.zeros(2, *x.shape[1:]) for x in example)
    scores = _Scores(network).eval()
    with warnings.catch_warnings():  # the exporter's progress chatter and deprecations
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:  # forward(*inputs): the dynamic shapes of the one varargs argument, per tensor
            program = torch.onnx.export(
                scores, example, dynamo=True, verbose=False, input_names=names,
                output_names=["scores"], dynamic_shapes=(tuple({0: "batch"} for _ in names),))
        except Exception as exc:  # the exporter's errors are pages long; its summary line
            summary = next((line for line in str(exc).splitlines() if "Error" in line),
                           str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ExportError(f"torch.onnx cannot export this network: {summary}") from None
    shapes = {name: list(network.spec["input_shapes"][name]) for name in names}
    program.model.metadata_props.update({
        "hepdl_version": __version__, "run": run.path.name, "task": network.spec["task"],
        "class_names": json.dumps(network.spec["class_names"]),
        "input_shapes": json.dumps(shapes),
        "outputs": "scores: class probabilities (N, n_classes); regression: values (N,)"})

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(out)
    try:
        program.save(tmp)
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(["scores"], {name: events[name].numpy() for name in names})[0]
        with torch.no_grad():
            expected = scores(*(events[name] for name in names)).numpy()
        difference = float(np.abs(got - expected).max()) if len(got) else 0.0
        if not difference <= TOLERANCE:
            raise ExportError(f"onnxruntime's scores differ from PyTorch's by {difference:.2e} "
                              f"(tolerance {TOLERANCE:g}) on {len(got)} test events; not written")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(out, shapes, list(network.spec["class_names"]), len(got), difference)
