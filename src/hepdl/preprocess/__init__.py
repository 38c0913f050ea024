"""Input normalizations as fitted torch modules that travel with the model."""

from hepdl.preprocess import nonlinear, standardize  # noqa: F401  (registers the transforms)
from hepdl.preprocess.base import (
    Chain,
    Transform,
    build_chain,
    build_transform,
    list_transforms,
    register_transform,
)

__all__ = ["Chain", "Transform", "build_chain", "build_transform", "list_transforms",
           "register_transform"]
