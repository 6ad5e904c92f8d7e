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
