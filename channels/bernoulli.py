"""Bernoulli (memoryless, i.i.d.) packet loss."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.checks import check_count, check_prob, check_rng

from .base import LossModel


@dataclass(frozen=True)
class Bernoulli(LossModel):
    """Independent losses: every packet is lost with probability ``p``.

    Math:
        ``l_t ~ Bernoulli(p)`` i.i.d.
        Stationary loss rate ``p``.
        Loss-burst length is geometric, ``P(B=m) = p^{m-1}(1-p)``, so the mean
        burst length is ``1/(1-p)`` (``inf`` for p = 1, 0.0 for p = 0 — no bursts).
        Equivalent to netem ``loss random P`` (without correlation).

    Sampling: ``rng.random(n) < p``; the model has no memory, so ``sample``
    returns ``None`` as state, and splitting a stream into several calls with
    the same generator gives exactly the draws of one long call.

    Args:
        p: loss probability in [0, 1].
    """

    p: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "p", check_prob("Bernoulli", "p", self.p))

    @property
    def stationary_loss_rate(self) -> float:
        return self.p

    @property
    def mean_burst_length(self) -> float:
        if self.p == 0.0:
            return 0.0
        if self.p == 1.0:
            return math.inf
        return 1.0 / (1.0 - self.p)

    def sample(self, n: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, None]:
        """Bool loss mask of shape (n,) and ``None`` (memoryless model has no state)."""
        n = check_count(n)
        check_rng(rng)
        return rng.random(n) < self.p, None

    def to_netem(self) -> str:
        """netem form, ``loss random P%``."""
        return f"loss random {100.0 * self.p:.12g}%"
