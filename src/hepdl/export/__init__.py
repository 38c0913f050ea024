"""Exits to the outside: prediction files (ONNX export in a later stage)."""

from hepdl.export.predictions import write_predictions

__all__ = ["write_predictions"]
