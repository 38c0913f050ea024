"""hepdl: deep-learning studies on particle-physics detector data.

The public surface is below; everything else is internal. Heavy libraries load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Config", "Run", "__version__", "evaluate", "load_config", "predict", "report",
           "resume", "train"]


def __getattr__(name: str):
    # Lazy: ``import hepdl`` (and ``hepdl --help``) must not pay for torch.
    if name in {"train", "resume", "evaluate", "report", "predict"}:
        from hepdl import api

        return getattr(api, name)
    if name in {"Config", "load_config"}:
        from hepdl import config

        return getattr(config, name)
    if name == "Run":
        from hepdl.runs import Run

        return Run
    raise AttributeError(f"module 'hepdl' has no attribute {name!r}")
