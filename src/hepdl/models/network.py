"""The saved model: fitted preprocessing of each input, then the body network.

The preprocessing chains are the first modules of the network, so their fitted statistics are
buffers in ``model.pt`` and travel with the weights (DESIGN: preprocessing travels with the model).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hepdl.data.hits import Hits
from hepdl.models import cnn, mlp  # noqa: F401  (registers the models)
from hepdl.models.registry import create_model
from hepdl.preprocess import build_chain
from hepdl.preprocess.base import fit_streaming

CHUNKED_FIT_ABOVE = 256 * 2**20
"""Inputs above this many bytes are fitted chunk by chunk (:meth:`Network.fit_preprocessing`)."""
FIT_CHUNK_BYTES = 32 * 2**20
"""Dense bytes of one chunk of that fit."""


class Network(nn.Module):
    """``logits = body({name: chain_name(x_name)})``.

    Parameters
    ----------
    spec : dict
        What rebuilds the architecture without data: ``input_shapes``, ``n_outputs``,
        ``class_names``, ``preprocess`` and ``model`` (the config sections). Saved in checkpoints.
    """

    def __init__(self, spec: dict[str, Any]):
        super().__init__()
        from pydantic import TypeAdapter

        from hepdl.config import ModelConfig

        self.spec = spec
        shapes = {k: tuple(v) for k, v in spec["input_shapes"].items()}
        self.preprocess = nn.ModuleDict({
            name: build_chain(spec["preprocess"].get(name, []), shape, f"preprocess.{name}")
            for name, shape in shapes.items()
        })
        self.body = create_model(TypeAdapter(ModelConfig).validate_python(spec["model"]), shapes,
                                 spec["n_outputs"])
        # inputs held as hits (zero-suppressed): an MLP reads them by cell, when every
        # transform of their chain keeps them sparse; otherwise they are densified per batch
        self.hits_inputs = [name for name in spec.get("hits_inputs", [])
                            if self.preprocess[name].keeps_hits]
        if not (self.hits_inputs and hasattr(self.body, "by_cell") and self.body.by_cell()):
            self.hits_inputs = []

    @property
    def input_names(self) -> list[str]:
        return list(self.spec["input_shapes"])

    def fit_preprocessing(self, inputs: dict[str, torch.Tensor | Hits]) -> None:
        """Fit every chain on training inputs (never validation or test).

        Inputs larger than :data:`CHUNKED_FIT_ABOVE`, and hits, are fitted chunk by chunk
        (:func:`~hepdl.preprocess.base.fit_streaming` over chunks of :data:`FIT_CHUNK_BYTES` of
        dense events, hits made dense a chunk at a time): a standardization of the whole at once
        works in float64 and would take four times the inputs' memory.
        """
        size = sum(x.nbytes if isinstance(x, torch.Tensor) else 0 for x in inputs.values())
        if size <= CHUNKED_FIT_ABOVE and not any(isinstance(x, Hits) for x in inputs.values()):
            for name, chain in self.preprocess.items():
                chain.fit(inputs[name])
            return
        n = len(next(iter(inputs.values())))
        event_bytes = 4 * sum(math.prod(x.shape[1:]) for x in inputs.values())
        step = max(1, FIT_CHUNK_BYTES // event_bytes)

        def chunks():
            for lo in range(0, n, step):
                yield {name: x[lo:lo + step].to_dense() if isinstance(x, Hits)
                       else x[lo:lo + step] for name, x in inputs.items()}

        fit_streaming(self.preprocess, chunks)

    def forward(self, inputs: dict[str, torch.Tensor | Hits]) -> torch.Tensor:
        prepared = {}
        for name in self.input_names:
            x = inputs[name]
            if isinstance(x, Hits) and name not in self.hits_inputs:
                x = x.to_dense()
            prepared[name] = self.preprocess[name](x)
        return self.body(prepared)


def network_spec(config, input_shapes: dict[str, tuple[int, ...]], class_names: list[str],
                 hits_inputs: list[str] = ()) -> dict:
    """The architecture of a run: everything :class:`Network` needs, as plain data.

    ``hits_inputs``: inputs the training data holds as hits (zero-suppressed cells).
    """
    from hepdl.errors import ConfigError

    unknown = sorted(set(config.preprocess) - set(input_shapes))
    if unknown:
        raise ConfigError(f"preprocess.{unknown[0]}",
                          f"no such input; the inputs are {', '.join(input_shapes)}")
    if config.task == "regression":
        n_outputs = 1
    elif config.train.loss == "bce" and len(class_names) == 2:
        n_outputs = 1  # one sigmoid: P(class 1)
    else:
        n_outputs = len(class_names)
    return {
        "input_shapes": {k: list(v) for k, v in input_shapes.items()},
        "n_outputs": n_outputs,
        "class_names": list(class_names),
        "task": config.task,
        "loss": config.train.loss,
        "preprocess": {k: list(v) for k, v in config.preprocess.items()},
        "model": config.model.model_dump(mode="json"),
        "hits_inputs": list(hits_inputs),
    }


def probabilities(logits: torch.Tensor, spec: dict) -> torch.Tensor:
    """Class probabilities (N, n_classes) from logits; regression values pass through as (N,)."""
    if spec["task"] == "regression":
        return logits[:, 0]
    if spec["loss"] == "bce":
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1) if p.shape[1] == 1 else p
    return torch.softmax(logits, dim=1)
