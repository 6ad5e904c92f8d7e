"""Bit-error (corrupting) channels: binary symmetric and bursty Gilbert-Elliott."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec.checks import check_count, check_prob, check_rng

from ._markov import (
    TwoStateChain,
    check_start,
    check_two_state,
    mean_burst_from_rates,
    start_aware_repr,
    two_state_matrix,
)
from .base import BitErrorModel


@dataclass(frozen=True)
class BinarySymmetric(BitErrorModel):
    """Binary symmetric channel: every bit flips independently with probability ``ber``.

    Math: ``f_i ~ Bernoulli(ber)`` i.i.d.; bit error rate ``ber``; error bursts
    are Geometric(1-ber) with mean ``1/(1-ber)``.  Sampling is
    ``rng.random(nbits) < ber`` (memoryless: the returned state is ``None``).

    Args:
        ber: bit flip probability in [0, 1].
    """

    ber: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "ber", check_prob("BinarySymmetric", "ber", self.ber))

    @property
    def stationary_bit_error_rate(self) -> float:
        return self.ber

    @property
    def mean_burst_length(self) -> float:
        """Mean run of consecutive flipped bits (0 if ber = 0, inf if ber = 1)."""
        return mean_burst_from_rates(self.ber, self.ber * (1.0 - self.ber))

    def error_mask(self, nbits: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, None]:
        """Bool mask (nbits,) of flipped bits, and ``None``."""
        nbits = check_count(nbits, "nbits")
        check_rng(rng)
        return rng.random(nbits) < self.ber, None


@dataclass(frozen=True)
class GilbertElliottBitError(TwoStateChain, BitErrorModel):
    """Bit-level Gilbert-Elliott channel (Gilbert 1960; Elliott 1963).

    Hidden chain over bits with states Good (0) and Bad (1)::

        P = [[1-p, p], [r, 1-r]],   p = P(Good->Bad), r = P(Bad->Good)

    and a bit flips with probability ``ber_good`` in Good and ``ber_bad`` in
    Bad.  ``π_B = p/(p+r)``; bit error rate
    ``BER = ber_good·r/(p+r) + ber_bad·p/(p+r)``.  The mean length of a run of
    consecutive flipped bits follows the same renewal formula as
    :class:`channels.gilbert.GilbertElliott` with loss probabilities
    (ber_good, ber_bad) (``mean_burst_length``).  The mean Bad sojourn is
    ``1/r`` bits; the mean Good sojourn ``1/p`` bits.

    Sampling: geometric sojourns expanded with ``np.repeat``, then one
    uniform per bit, in fixed blocks, so it is vectorised for millions of bits
    and exactly resumable through the returned ``ChainState``.

    Start of a fresh stream (``state=None``): ``start="stationary"``
    (default) draws bit 0's state from the stationary law, ``start="good"``
    puts bit 0 in Good (as :class:`channels.gilbert.GilbertElliott`; see
    ``channels._markov``).

    Args:
        p, r: transition probabilities in [0, 1] (r > 0 if p > 0).
        ber_good, ber_bad: flip probabilities in [0, 1] in each state.
        start: ``"stationary"`` (default) or ``"good"``.
    """

    p: float
    r: float
    ber_good: float
    ber_bad: float
    start: str = field(default="stationary", repr=False)

    GOOD = 0
    BAD = 1

    __repr__ = start_aware_repr

    def __post_init__(self) -> None:
        for name in ("p", "r", "ber_good", "ber_bad"):
            object.__setattr__(self, name, check_prob("GilbertElliottBitError", name, getattr(self, name)))
        check_two_state("GilbertElliottBitError", self.p, self.r)
        check_start("GilbertElliottBitError", self.start)

    def _chain_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pi = np.array([self.r, self.p]) / (self.p + self.r)
        return two_state_matrix(self.p, self.r), np.array([self.ber_good, self.ber_bad]), pi

    @property
    def stationary_bit_error_rate(self) -> float:
        pb = self.p / (self.p + self.r)
        return self.ber_good * (1.0 - pb) + self.ber_bad * pb

    @property
    def mean_burst_length(self) -> float:
        """Mean run of consecutive flipped bits (renewal formula ``L/S``)."""
        return mean_burst_from_rates(*self._run_rates())

    def error_mask(self, nbits: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, Any]:
        """Bool mask (nbits,) of flipped bits and a ``ChainState`` to continue the stream."""
        nbits = check_count(nbits, "nbits")
        mask, _, new = self._sample_chain(nbits, rng, state)
        return mask, new
