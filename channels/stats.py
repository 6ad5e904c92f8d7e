"""Empirical loss statistics of a 0/1 loss (or bit-error) sequence (vectorised)."""
from __future__ import annotations

import math

import numpy as np

from codec.errors import ParameterError


def _as_mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 1:
        raise ParameterError(f"loss mask must be 1-D, got shape {m.shape}")
    return m.astype(bool, copy=False)


def run_lengths(mask: np.ndarray, value: bool = True, circular: bool = False) -> np.ndarray:
    """Lengths of maximal runs of ``value`` in a 1-D mask, in order (int64 array).

    With ``circular=True`` the sequence is treated as a loop: a run touching
    both ends is counted once, with the two parts joined (used for looping
    traces).  An all-``value`` circular sequence has a single infinite run,
    reported as one run of length ``len(mask)``.
    """
    m = _as_mask(mask)
    if not value:
        m = ~m
    if m.size == 0:
        return np.zeros(0, dtype=np.int64)
    x = np.concatenate(([False], m, [False])).view(np.int8)
    d = np.diff(x)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    lens = (ends - starts).astype(np.int64)
    if circular and lens.size > 1 and m[0] and m[-1]:
        lens = np.concatenate(([lens[0] + lens[-1]], lens[1:-1]))
    return lens


def loss_rate(mask: np.ndarray) -> float:
    """Fraction of True entries (0.0 for an empty mask)."""
    m = _as_mask(mask)
    return float(m.mean()) if m.size else 0.0


def mean_burst_length(mask: np.ndarray, circular: bool = False) -> float:
    """Mean length of runs of consecutive losses (0.0 if there is no loss).

    For ``circular=True`` and an all-loss mask the burst never ends: ``inf``.
    """
    m = _as_mask(mask)
    if circular and m.size and m.all():
        return math.inf
    lens = run_lengths(m, True, circular)
    return float(lens.mean()) if lens.size else 0.0
