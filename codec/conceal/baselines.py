"""Model-free concealment baselines: mean codeword, nearest neighbour, latent average, none.

``mean`` — the codeword nearest (L2) to the mean codeword of the codebook.
``neighbor`` — copy the nearest received index (Euclidean grid distance,
    ``scipy.ndimage.distance_transform_edt`` feature transform).
``latent_avg`` — average the codewords of the known 4- (or 8-) neighbours,
    take the nearest codeword; holes fill inward ring by ring (a ring uses
    only positions known before it).
``none`` — leave lost indices as they are (or set ``fill_value``).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ParameterError
from ..types import IndexMap, check_loss_mask
from .decoding import check_codebook, nearest_codeword


def conceal_mean(index_map: IndexMap, lost_mask: np.ndarray, codebook) -> IndexMap:
    """Every lost index → the codeword nearest to the mean of all K codewords."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    cb = check_codebook(codebook, index_map.codebook_size)
    k = int(nearest_codeword(cb.mean(0, keepdims=True), cb)[0])
    out = index_map.indices.copy()
    out[lost] = k
    return index_map.with_indices(out)


def conceal_neighbor(index_map: IndexMap, lost_mask: np.ndarray, codebook=None) -> IndexMap:
    """Copy the nearest received index (Euclidean distance on the grid, EDT feature transform).

    Ties between equidistant received neighbours are broken deterministically
    by scipy's exact EDT.  With nothing received, falls back to ``mean``
    (needs ``codebook``).
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    if not lost.any():
        return index_map.with_indices(index_map.indices)
    if lost.all():
        return conceal_mean(index_map, lost, codebook)
    _, (ri, rj) = ndimage.distance_transform_edt(lost, return_distances=True, return_indices=True)
    out = index_map.indices.copy()
    out[lost] = index_map.indices[ri[lost], rj[lost]]
    return index_map.with_indices(out)


NEIGHBOR_OFFSETS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)),
}


def conceal_latent_avg(index_map: IndexMap, lost_mask: np.ndarray, codebook, connectivity: int = 4) -> IndexMap:
    """Average the known neighbours' codewords and snap to the nearest codeword, ring by ring.

    Ring r = lost positions with a known neighbour after r−1 rings (known =
    received or filled in an earlier ring); each position of the ring takes
    ``nearest_codeword(mean of its known 4-/8-neighbours' codewords)``.
    Positions thus fill in order of (4-/8-connected) distance to received data.
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    cb = check_codebook(codebook, index_map.codebook_size)
    if connectivity not in NEIGHBOR_OFFSETS:
        raise ParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if lost.all():
        return conceal_mean(index_map, lost, cb)
    H, W = lost.shape
    idx = index_map.indices.astype(np.int64)
    known = ~lost
    D = cb.shape[1]
    vec = np.zeros((H + 2, W + 2, D))
    vec[1:-1, 1:-1][known] = cb[idx[known]]
    kn = np.zeros((H + 2, W + 2))
    kn[1:-1, 1:-1] = known
    while not kn[1:-1, 1:-1].all():
        s = np.zeros((H, W, D))
        c = np.zeros((H, W))
        for dy, dx in NEIGHBOR_OFFSETS[connectivity]:
            s += vec[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
            c += kn[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
        ring = (kn[1:-1, 1:-1] == 0) & (c > 0)
        new = nearest_codeword(s[ring] / c[ring][:, None], cb)
        idx[ring] = new
        vec[1:-1, 1:-1][ring] = cb[new]
        kn[1:-1, 1:-1][ring] = 1
    return index_map.with_indices(idx)


def conceal_none(index_map: IndexMap, lost_mask: np.ndarray, fill_value: int | None = None) -> IndexMap:
    """No concealment: lost indices stay as they are, or become ``fill_value``."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    if fill_value is None:
        return index_map.with_indices(index_map.indices)
    if not 0 <= int(fill_value) < index_map.codebook_size:
        raise ParameterError(f"fill_value must be in [0, {index_map.codebook_size}), got {fill_value}")
    out = index_map.indices.copy()
    out[lost] = int(fill_value)
    return index_map.with_indices(out)
