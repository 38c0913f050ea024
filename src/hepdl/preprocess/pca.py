"""PCA: scikit-learn's PCA fitted on the training split, applied as a torch linear map.

seeds/002: directions of maximal variance, the eigenvectors of the covariance matrix; with
``whiten`` each component is scaled to unit variance. Flat features only.
"""

from __future__ import annotations

import numpy as np
import torch

from hepdl.preprocess.base import Transform, register_transform


@register_transform("pca")
class PCA(Transform):
    """``(x - mean) @ components.T`` (divided by sqrt(explained variance) when ``whiten``).

    The output keeps the input's width (all components), so later layers see the same shape.
    Quantities are exact on the data it was given: streamed chunks are kept until the fit ends
    (:meth:`end_fit`), then let go.
    """

    def __init__(self, *, shape, whiten: bool = False):
        super().__init__(shape=shape)
        if len(self.shape) != 1:
            raise TypeError(f"pca needs flat features, got event shape {self.shape}")
        n = self.shape[0]
        self.whiten = bool(whiten)
        self.register_buffer("mean_", torch.zeros(n))
        self.register_buffer("components_", torch.eye(n))
        self.register_buffer("scale_", torch.ones(n))
        self._chunks: list[np.ndarray] = []

    def reset(self) -> None:
        self._chunks = []
        self.mean_.zero_()
        self.components_.copy_(torch.eye(self.shape[0]))
        self.scale_.fill_(1)
        self.fitted_.fill_(False)

    @torch.no_grad()
    def partial_fit(self, x: torch.Tensor) -> PCA:
        if len(x):  # kept until end_fit: the components need every event at once
            self._chunks.append(x.double().numpy())
        return self

    @torch.no_grad()
    def end_fit(self) -> PCA:
        from sklearn.decomposition import PCA as SklearnPCA

        data = np.concatenate(self._chunks) if self._chunks else np.zeros((0, self.shape[0]))
        self._chunks = []
        if len(data) >= 2:
            pca = SklearnPCA(n_components=min(data.shape), whiten=False).fit(data)
            k = pca.n_components_
            components = np.eye(self.shape[0])
            components[:k] = pca.components_
            self.mean_.copy_(torch.from_numpy(pca.mean_))
            self.components_.copy_(torch.from_numpy(components))
            scale = np.ones(self.shape[0])
            if self.whiten:
                scale[:k] = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
            self.scale_.copy_(torch.from_numpy(scale))
        self.fitted_.fill_(True)
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean_) @ self.components_.T) / self.scale_

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale_) @ self.components_ + self.mean_
