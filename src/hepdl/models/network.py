"""The saved model: fitted preprocessing of each input, then the body network.

The preprocessing chains are the first modules of the network, so their fitted statistics are
buffers in ``model.pt`` and travel with the weights (DESIGN: preprocessing travels with the model).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hepdl.models import cnn, mlp  # noqa: F401  (registers the models)
from hepdl.models.registry import create_model
from hepdl.preprocess import build_chain


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

    @property
    def input_names(self) -> list[str]:
        return list(self.spec["input_shapes"])

    def fit_preprocessing(self, inputs: dict[str, torch.Tensor]) -> None:
        """Fit every chain on training inputs (never validation or test)."""
        for name, chain in self.preprocess.items():
            chain.fit(inputs[name])

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.body({name: self.preprocess[name](inputs[name]) for name in self.input_names})


def network_spec(config, input_shapes: dict[str, tuple[int, ...]], class_names: list[str]) -> dict:
    """The architecture of a run: everything :class:`Network` needs, as plain data."""
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
    }


def probabilities(logits: torch.Tensor, spec: dict) -> torch.Tensor:
    """Class probabilities (N, n_classes) from logits; regression values pass through as (N,)."""
    if spec["task"] == "regression":
        return logits[:, 0]
    if spec["loss"] == "bce":
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1) if p.shape[1] == 1 else p
    return torch.softmax(logits, dim=1)
