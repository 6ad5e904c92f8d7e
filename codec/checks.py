"""General argument validators shared by every package (numpy only; safe to import anywhere).

Each returns the value in its checked type or raises the typed error the CLI
reports as one line: ``ParameterError`` (a ``ValueError``) for a bad value,
``TypeError`` for a wrong kind of object.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .errors import ParameterError

__all__ = ["check_count", "check_prob", "check_rng"]


def check_prob(owner: str, name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1] or raise ``ParameterError`` naming ``owner`` and the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{owner}: {name} must be a real number in [0, 1], got {value!r}")
    v = float(value)
    if not (0.0 <= v <= 1.0):  # also rejects NaN
        raise ParameterError(f"{owner}: {name} must be in [0, 1], got {v!r}")
    return v


def check_count(n: Any, name: str = "n") -> int:
    """Return ``n`` as a non-negative int or raise ``ParameterError``."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ParameterError(f"{name} must be a non-negative integer, got {n!r}")
    n = int(n)
    if n < 0:
        raise ParameterError(f"{name} must be >= 0, got {n}")
    return n


def check_rng(rng: Any) -> np.random.Generator:
    """Require a ``numpy.random.Generator`` (the only randomness source allowed), else ``TypeError``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng
