"""Where training runs (``train.device``) and in what precision (``train.precision``).

``auto`` takes the GPU when torch sees one. Mixed precision is torch's autocast: the matrix
products and convolutions in bf16 or fp16, the weights, the optimizer and the loss reductions in
float32; fp16's narrow range needs a gradient scaler (``torch.amp.GradScaler``), bf16 does not.
"""

from __future__ import annotations

import contextlib

import torch

from hepdl.data.hits import Hits
from hepdl.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` as a torch device.

    Raises
    ------
    ConfigError
        ``cuda`` asked for where torch sees no GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        build = "a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise ConfigError("train.device", f"cuda asked for, but torch {torch.__version__} "
                                          f"({build}) sees no GPU; use cpu or auto")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs a GPU (its gradient scaler and fast kernels are CUDA's)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision", f"fp16 mixed precision needs a GPU; this run is on "
                                             f"{device.type}: use bf16 or fp32")


def autocast(device: torch.device, precision: str):
    """The forward pass's precision: torch.autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str):
    """fp16's gradient scaler (a no-op object for other precisions)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(inputs: dict, device: torch.device) -> dict:
    """A batch's inputs (tensors or hits) on ``device``."""
    if device.type == "cpu":
        return inputs
    return {name: x.to(device) if isinstance(x, Hits | torch.Tensor) else x
            for name, x in inputs.items()}
