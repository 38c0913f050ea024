"""Shower-shape features of calorimeter images, the inputs of a cut-based or BDT identification.

Vectorized over events; images are (N, x, y, layer) as in the LCD layout. The features are the
classic ones of electromagnetic identification (e.g. ATLAS's R_eta, w_eta2, f1, E_ratio, R_had):
where the energy is, how deep, how wide, and how many showers it looks like.
"""

from __future__ import annotations

import numpy as np


def _moments(image: np.ndarray, axis_values: np.ndarray, axis: int):
    """Energy-weighted mean and standard deviation along one axis (the others summed)."""
    others = tuple(a for a in range(1, image.ndim) if a != axis)
    profile = image.sum(axis=others)
    total = np.maximum(profile.sum(1), 1e-12)
    mean = profile @ axis_values / total
    var = profile @ axis_values**2 / total - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def shower_shapes(ecal: np.ndarray, hcal: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event shower-shape features.

    Returns
    -------
    dict of str to ndarray (N,)
        ``ecal_energy``, ``hcal_energy``, ``hcal_fraction``; ``depth`` and ``depth_width``
        (ECAL layers); ``front_fraction`` (first 3 layers); ``first_layer_energy`` (a charged
        particle entering leaves a MIP there, a photon nothing); ``width_x``, ``width_y`` (cells);
        ``core_fraction`` (3x3 around the hottest tower over 7x7: R_eta-like);
        ``max_cell_fraction``; ``e_ratio`` ((E1 - E2) / (E1 + E2) of the two hottest towers
        that are not neighbours: two merged photons lower it); ``ecal_hits``, ``hcal_hits``.
    """
    ecal = np.asarray(ecal, dtype=np.float64)
    hcal = np.asarray(hcal, dtype=np.float64)
    n, nx, ny, nl = ecal.shape
    e_ecal = ecal.sum((1, 2, 3))
    e_hcal = hcal.sum((1, 2, 3))
    safe = np.maximum(e_ecal, 1e-12)
    depth, depth_width = _moments(ecal, np.arange(nl) + 0.5, 3)
    _, width_x = _moments(ecal, np.arange(nx, dtype=float), 1)
    _, width_y = _moments(ecal, np.arange(ny, dtype=float), 2)

    towers = ecal.sum(3)  # (n, x, y): the energy seen in (eta, phi)
    flat = towers.reshape(n, -1)
    hottest = flat.argmax(1)
    hx, hy = np.unravel_index(hottest, (nx, ny))
    padded = np.pad(towers, ((0, 0), (3, 3), (3, 3)))
    # windows around the hottest tower: gather a 7x7 block per event with one fancy index
    offsets = np.arange(-3, 4)
    rows = (hx[:, None] + 3 + offsets)[:, :, None]
    cols = (hy[:, None] + 3 + offsets)[:, None, :]
    block = padded[np.arange(n)[:, None, None], rows, cols]
    core = block[:, 2:5, 2:5].sum((1, 2))
    wide = np.maximum(block.sum((1, 2)), 1e-12)

    first = flat.max(1)
    xs, ys = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    far = ((np.abs(xs.ravel()[None] - hx[:, None]) > 1)
           | (np.abs(ys.ravel()[None] - hy[:, None]) > 1))
    second = np.where(far, flat, 0.0).max(1)

    return {
        "ecal_energy": e_ecal,
        "hcal_energy": e_hcal,
        "hcal_fraction": e_hcal / np.maximum(e_ecal + e_hcal, 1e-12),
        "depth": depth,
        "depth_width": depth_width,
        "front_fraction": ecal[..., :3].sum((1, 2, 3)) / safe,
        "first_layer_energy": ecal[..., 0].sum((1, 2)),
        "width_x": width_x,
        "width_y": width_y,
        "core_fraction": core / wide,
        "max_cell_fraction": ecal.reshape(n, -1).max(1) / safe,
        "e_ratio": (first - second) / np.maximum(first + second, 1e-12),
        "ecal_hits": np.count_nonzero(ecal.reshape(n, -1), axis=1).astype(float),
        "hcal_hits": np.count_nonzero(hcal.reshape(n, -1), axis=1).astype(float),
    }
