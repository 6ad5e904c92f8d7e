"""Window geometry of the concealment transformers: which s×s window of the index map a position reads.

``window_origin`` is taming-transformers' sliding-window rule (the paper's);
``ar_tile_origins`` the ``rule="tiled"`` variant (fixed tiles at stride s/2);
``tile_starts`` / ``nearest_tile`` the bidirectional tiling; ``pos_table``
the position embedding of a window token.
"""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError

WINDOW = 16
AR_WINDOW_RULES = ("taming", "tiled")


def _local(i: int, n: int, size: int) -> int:
    """Position of index i inside its window along one axis of length n (taming's rule)."""
    if n <= size:
        return i
    half = size // 2
    if i <= half:
        return i
    if n - i < half:
        return size - (n - i)
    return half


def window_origin(i: int, j: int, H: int, W: int, size: int = WINDOW) -> tuple[int, int, int, int]:
    """Window of a lost position (i, j) in an H×W index map: ``(top, left, local_i, local_j)``.

    taming-transformers' sliding-window rule (``scripts/sample_conditional.py``)
    for s = ``size`` (16), half = s // 2:

        local_i = i                if i ≤ half
                = s − (H − i)      if H − i < half
                = half             otherwise

    (same for j with W); the window covers rows ``top … top + s − 1`` with
    ``top = i − local_i`` and columns likewise, so it always lies inside the
    map.  A dimension not larger than s uses the whole dimension
    (``top = 0``, ``local_i = i``).
    """
    for name, v in (("H", H), ("W", W), ("size", size)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ParameterError(f"{name} must be a positive int, got {v!r}")
    if size < 2:
        raise ParameterError(f"size must be ≥ 2, got {size}")
    if not (0 <= i < H and 0 <= j < W):
        raise ParameterError(f"position ({i}, {j}) outside the {H}×{W} map")
    li, lj = _local(int(i), int(H), int(size)), _local(int(j), int(W), int(size))
    return int(i) - li, int(j) - lj, li, lj


def window_origins(ii: np.ndarray, n: int, size: int) -> np.ndarray:
    """Vectorised ``_local`` along one axis: returns local offsets of positions ``ii``."""
    ii = np.asarray(ii, dtype=np.int64)
    if n <= size:
        return ii.copy()
    half = size // 2
    return np.where(ii <= half, ii, np.where(n - ii < half, size - (n - ii), half))
def tile_starts(n: int, size: int) -> np.ndarray:
    """Start offsets of overlapping tiles of length ``size`` at stride size//2 covering [0, n)."""
    if n <= size:
        return np.array([0])
    stride = max(1, size // 2)
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return np.array(starts)


def nearest_tile(ii: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """For each coordinate, the tile start whose centre (start + (size−1)/2) is nearest (ties → lower)."""
    centres = starts + (size - 1) / 2.0
    d = np.abs(np.asarray(ii)[:, None] - centres[None, :])
    return starts[d.argmin(1)]


def ar_tile_origins(
    ii: np.ndarray, jj: np.ndarray, H: int, W: int, size: int = WINDOW
) -> tuple[np.ndarray, np.ndarray]:
    """Window origins of the ``rule="tiled"`` AR variant (not the paper's rule).

    Windows come from a fixed set of s×s tiles at stride s/2
    (:func:`tile_starts`), so many lost positions share a window and its
    key/value cache.  Rows: the tile starting lowest with the position still
    inside (most rows of context above: local_i ∈ [s/2, s) away from the top
    edge); columns: the tile whose centre is nearest.
    """
    rs = tile_starts(H, size)
    ii = np.asarray(ii, dtype=np.int64)
    top = rs[np.searchsorted(rs, ii - size, side="right")]
    left = nearest_tile(np.asarray(jj, dtype=np.int64), tile_starts(W, size), size)
    return top, left


def pos_table(sh: int, sw: int, size: int) -> np.ndarray:
    """Position-embedding index of window token k (raster in sh×sw): (k // sw)·size + k % sw."""
    k = np.arange(sh * sw)
    return (k // sw) * size + (k % sw)
