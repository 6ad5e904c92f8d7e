"""Channel interfaces (numpy only).

Two kinds of channel act on a packet stream:

* ``LossModel`` (erasure channel): for each of n packets decides whether it is
  dropped.  ``sample(n, rng, state)`` returns a boolean array (True = lost)
  and the model's state after the last packet, so a stream of images sent
  back to back can carry bursts over from one call to the next.
* ``BitErrorModel`` (corrupting channel): for each bit decides whether it is
  flipped; ``corrupt(data, rng, state)`` applies that to bytes.

Models are immutable parameter holders: all randomness comes from the
``numpy.random.Generator`` passed in, all memory from the ``state`` passed in,
so the same seed and state give the same draws.  Invalid parameters raise
``ValueError`` at construction.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class LossModel(ABC):
    """Packet erasure channel."""

    @property
    @abstractmethod
    def stationary_loss_rate(self) -> float:
        """Long-run fraction of packets lost (analytical)."""

    @property
    @abstractmethod
    def mean_burst_length(self) -> float:
        """Mean length, in packets, of a run of consecutive losses (analytical; inf if never ends)."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, Any]:
        """Draw the fate of n packets.

        Args:
            n: number of packets (≥ 0).
            rng: seeded generator, the only source of randomness.
            state: the state returned by a previous call (continue the same
                stream), or None to start a fresh stream — from the
                stationary distribution, or, for the Markov models built
                with ``start="good"`` (the default of netem-parsed models),
                in netem's initial Good state (see ``channels._markov``).

        Returns:
            (lost, state): ``lost`` is a bool array of shape (n,), True where the
            packet is lost; ``state`` is the model state after packet n-1.
        """

    def loss_mask(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Shortcut for ``sample(n, rng)[0]``."""
        return self.sample(n, rng)[0]


class BitErrorModel(ABC):
    """Bit-flipping (corrupting) channel."""

    @property
    @abstractmethod
    def stationary_bit_error_rate(self) -> float:
        """Long-run fraction of bits flipped (analytical)."""

    @abstractmethod
    def error_mask(self, nbits: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, Any]:
        """Bool array (nbits,) True where a bit is flipped, and the state after the last bit."""

    def corrupt(self, data: bytes | np.ndarray, rng: np.random.Generator, state: Any = None) -> tuple[bytes, int, Any]:
        """Flip bits of ``data``.

        Returns (corrupted bytes, number of flipped bits, state).
        """
        if isinstance(data, np.ndarray):
            buf = data.astype(np.uint8, copy=False).ravel()
        else:
            buf = np.frombuffer(bytes(data), dtype=np.uint8)
        flips, state = self.error_mask(buf.size * 8, rng, state)
        if not flips.any():
            return buf.tobytes(), 0, state
        out = buf ^ np.packbits(flips)
        return out.tobytes(), int(flips.sum()), state
