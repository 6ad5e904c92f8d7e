"""Random loss masks: exactly round(fraction·h·w) lost positions, uniform without replacement."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def random_loss_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(fraction·h·w) lost positions chosen uniformly without replacement."""
    if not 0.0 <= fraction <= 1.0:
        raise ParameterError(f"fraction must be in [0, 1], got {fraction}")
    h, w = shape
    m = np.zeros(h * w, dtype=bool)
    m[rng.choice(h * w, int(round(fraction * h * w)), replace=False)] = True
    return m.reshape(h, w)


#: loss shapes of :func:`shaped_loss_mask` (what the channels produce on a raster-packetized map)
LOSS_SHAPES = ("scattered", "rows", "interleaved")


def shaped_loss_mask(shape: tuple[int, int], fraction: float, kind: str, rng: np.random.Generator,
                     packet: int | None = None) -> np.ndarray:
    """About round(fraction·h·w) lost positions in one of the shapes channels produce.

    * ``scattered`` — :func:`random_loss_mask` (exact count).
    * ``rows`` — whole packets of ``packet`` consecutive raster positions
      (default: one map row), lost at random: row bursts.
    * ``interleaved`` — packets built by stride interleaving (packet j holds
      positions j, j + P, j + 2P, … of the raster order, P packets), lost at
      random: a regular comb of losses.

    Packet shapes lose whole packets, so the count is round(fraction·P)·packet
    (clipped to the map), the nearest the shape allows.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ParameterError(f"fraction must be in [0, 1], got {fraction}")
    if kind == "scattered":
        return random_loss_mask(shape, fraction, rng)
    if kind not in LOSS_SHAPES:
        raise ParameterError(f"loss shape must be one of {LOSS_SHAPES}, got {kind!r}")
    h, w = shape
    n = h * w
    size = int(packet) if packet is not None else w
    if size < 1:
        raise ParameterError(f"packet must be >= 1, got {packet}")
    n_pk = -(-n // size)
    lost_pk = rng.choice(n_pk, int(round(fraction * n_pk)), replace=False)
    m = np.zeros(n, dtype=bool)
    if kind == "rows":
        for j in lost_pk:
            m[j * size:(j + 1) * size] = True
    else:
        pk = np.arange(n) % n_pk
        m[np.isin(pk, lost_pk)] = True
    return m.reshape(h, w)
