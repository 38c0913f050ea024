"""Activations and weight initializations by the names used in configs (seeds/002, seeds/004)."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU,
    "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


@torch.no_grad()
def initialize(module: nn.Module, scheme: str) -> None:
    """Initialize the weights of every Linear and Conv layer; biases start at zero.

    Glorot (Xavier): sigma = sqrt(2 / (n_in + n_out)), or U(-a, a), a = sqrt(6 / (n_in + n_out)).
    He (Kaiming): sigma = sqrt(2 / n_in), the factor 2 because ReLU zeroes half the outputs.
    ``normal``: the naive N(0, 1) that seeds/002 shows diverging as n_in <w^2><x^2>.
    ``default``: PyTorch's own. (Glorot & Bengio 2010; He et al. 2015; seeds/002.)
    """
    if scheme == "default":
        return
    for layer in module.modules():
        if not isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d | CellLinear):
            continue
        weight = layer.weight_t.T if isinstance(layer, CellLinear) else layer.weight
        if scheme == "glorot_normal":
            nn.init.xavier_normal_(weight)
        elif scheme == "glorot_uniform":
            nn.init.xavier_uniform_(weight)
        elif scheme == "he_normal":
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
        elif scheme == "he_uniform":
            nn.init.kaiming_uniform_(weight, mode="fan_in", nonlinearity="relu")
        elif scheme == "normal":
            nn.init.normal_(weight, 0.0, 1.0)
        else:
            raise ValueError(f"unknown initialization {scheme!r}")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def flat_size(shape: tuple[int, ...]) -> int:
    return math.prod(shape) if shape else 1


class CellLinear(nn.Module):
    """A linear layer over the cells of several inputs, stored by cell: ``weight_t`` is
    (cells, out), so that a hit gathers one contiguous row.

    ``forward(parts)`` takes the inputs in order, each dense (N, *shape) or as
    :class:`~hepdl.data.hits.Hits`, and returns ``sum_k parts_k @ weight_t[cells of k] + bias``:
    the product of ``nn.Linear`` on the concatenated inputs. For hits it is
    ``torch.nn.functional.embedding_bag`` (one weighted sum of rows per event, in a kernel of
    its own) plus ``base @ weight_t`` for what every cell holds besides its hits, so the empty
    cells cost nothing in the forward pass nor in the weight gradient. The layout is by cell
    because the gather of a (out, cells) ``nn.Linear`` weight's columns ran 5x slower here.
    """

    def __init__(self, sizes: list[int], out_features: int):
        super().__init__()
        self.sizes = list(sizes)
        self.weight_t = nn.Parameter(torch.empty(sum(sizes), out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        # nn.Linear's default initialization, on the (out, in) view
        nn.init.kaiming_uniform_(self.weight_t.T, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(sum(sizes)), 1 / math.sqrt(sum(sizes)))

    @classmethod
    def from_linear(cls, layer: nn.Linear, sizes: list[int]) -> CellLinear:
        """The same map as ``layer`` (weights copied), stored by cell."""
        cells = cls(sizes, layer.out_features)
        with torch.no_grad():
            cells.weight_t.copy_(layer.weight.T)
            cells.bias.copy_(layer.bias)
        return cells

    def forward(self, parts: list) -> torch.Tensor:
        from hepdl.data.hits import Hits

        out = self.bias
        start = 0
        for part, size in zip(parts, self.sizes, strict=True):
            weight = self.weight_t[start:start + size]  # rows: a view, no copy
            start += size
            if isinstance(part, Hits):
                out = out + nn.functional.embedding_bag(
                    part.index, weight, part.indptr[:-1], mode="sum",
                    per_sample_weights=part.value)
                if part.base is not None:
                    out = out + part.base @ weight
            else:
                out = out + part.reshape(len(part), -1) @ weight
        return out

    def extra_repr(self) -> str:
        return f"in_features={sum(self.sizes)} (cells of {self.sizes}), " \
               f"out_features={self.weight_t.shape[1]}"
