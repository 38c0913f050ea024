"""hepdl: deep-learning studies on particle-physics detector data.

The public surface is below, the same functions the command line calls; everything else is
internal. Heavy libraries load on first use.

Example
-------
>>> import hepdl
>>> run = hepdl.train(hepdl.load_config("examples/digits.yaml", train__epochs=5))
>>> run.metrics["accuracy"], run.history
>>> run.plot_roc()
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Config", "HepdlError", "Run", "Scan", "__version__", "evaluate", "export_onnx",
           "load_config", "predict", "report", "resume", "scan", "train"]

_API = {"train", "resume", "evaluate", "report", "predict", "scan", "export_onnx"}


def __getattr__(name: str):
    # Lazy: ``import hepdl`` (and ``hepdl --help``) must not pay for torch. No subpackage may
    # share a name with a function here: importing it would replace the function.
    if name in _API:
        from hepdl import api

        return getattr(api, name)
    if name in {"Config", "load_config"}:
        from hepdl import config

        return getattr(config, name)
    if name == "Run":
        from hepdl.runs import Run

        return Run
    if name == "HepdlError":  # every error hepdl raises for bad input or a failed run
        from hepdl.errors import HepdlError

        return HepdlError
    if name == "Scan":
        from hepdl.scans.result import Scan

        return Scan
    raise AttributeError(f"module 'hepdl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
