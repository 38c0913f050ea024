"""Models by name, after timm: ``@register_model("mlp")`` on a builder, ``create_model(...)``."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from hepdl.errors import ConfigError

_MODELS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Register a builder ``fn(config, input_shapes, n_outputs) -> nn.Module`` under ``name``."""

    def add(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        return builder

    return add


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(config, input_shapes: dict[str, tuple[int, ...]], n_outputs: int):
    """Build the body network named by ``config.name``.

    Raises
    ------
    ConfigError
        The name is not registered; the message lists close matches.
    """
    builder = _MODELS.get(config.name)
    if builder is None:
        close = difflib.get_close_matches(config.name, _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError("model.name", f"unknown model {config.name!r}{hint} "
                                        f"(known: {', '.join(list_models())})")
    return builder(config, input_shapes, n_outputs)
