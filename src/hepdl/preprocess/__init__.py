"""Input normalizations as fitted torch modules that travel with the model."""

from hepdl.preprocess import (  # noqa: F401  (registers the transforms)
    learnable,
    nonlinear,
    pca,
    scaling,
    standardize,
)
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
