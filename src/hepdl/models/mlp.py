"""The multi-layer perceptron: CaloDNN's Fully3DImageClassification generalized.

Every input is flattened and the inputs are concatenated (the ECAL and HCAL towers merged), then
``depth`` x [Linear(width) -> BatchNorm? -> activation -> Dropout?] and a linear output layer
whose logits the loss turns into probabilities (softmax or sigmoid) or regression values.
"""

from __future__ import annotations

import torch
from torch import nn

from hepdl.models.layers import CellLinear, activation, flat_size, initialize
from hepdl.models.registry import register_model


class MLP(nn.Module):
    def __init__(self, input_names: list[str], n_inputs: int, n_outputs: int, *, width: int,
                 depth: int, activation_name: str, dropout: float, batch_norm: bool,
                 input_sizes: list[int] | None = None):
        super().__init__()
        self.input_names = list(input_names)
        self.input_sizes = list(input_sizes or [n_inputs])
        layers: list[nn.Module] = []
        size = n_inputs
        for _ in range(depth):
            layers.append(nn.Linear(size, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation(activation_name))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = width
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(size, n_outputs)

    @property
    def takes_hits(self) -> bool:
        """Whether the first layer reads zero-suppressed inputs as hits (:meth:`by_cell`)."""
        return len(self.hidden) > 0 and isinstance(self.hidden[0], CellLinear)

    def by_cell(self) -> bool:
        """Store the first layer by cell (:class:`CellLinear`, the same map), so that inputs
        given as :class:`~hepdl.data.hits.Hits` touch only their non-zero cells; False for a
        network without hidden layers (it takes dense inputs)."""
        if len(self.hidden) and not self.takes_hits:
            self.hidden[0] = CellLinear.from_linear(self.hidden[0], self.input_sizes)
        return self.takes_hits

    def forward(self, inputs: dict) -> torch.Tensor:
        if self.takes_hits:
            first = self.hidden[0]([inputs[name] for name in self.input_names])
            return self.output(self.hidden[1:](first))
        x = torch.cat([inputs[name].flatten(1) for name in self.input_names], dim=1)
        return self.output(self.hidden(x))


@register_model("mlp")
def build_mlp(config, input_shapes: dict[str, tuple[int, ...]], n_outputs: int) -> MLP:
    sizes = [flat_size(s) for s in input_shapes.values()]
    model = MLP(list(input_shapes), sum(sizes), n_outputs, width=config.width,
                depth=config.depth, activation_name=config.activation, dropout=config.dropout,
                batch_norm=config.batch_norm, input_sizes=sizes)
    initialize(model, config.init)
    return model
