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
        if not isinstance(layer, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
            continue
        weight = layer.weight
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
