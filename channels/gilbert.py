"""Gilbert-Elliott two-state bursty packet loss (Linux netem ``loss gemodel`` convention).

``start`` (see :mod:`channels._markov`): ``GilbertElliott(...)`` starts a fresh
stream from the stationary law by default; ``start="good"`` reproduces a
netem qdisc, whose ``loss_gilb_ell`` chain starts in ``GOOD_STATE`` and
decides each packet's loss with the state the packet arrives in (then draws
the transition), so packet 0 is lost with probability ``1-k``.
``GilbertElliott.from_netem`` / :func:`channels.parse_netem` default to
``start="good"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec.checks import check_prob
from codec.errors import ParameterError

from ._markov import (
    BAD,
    GOOD,
    TwoStateChain,
    check_start,
    check_two_state,
    mean_burst_from_rates,
    start_aware_repr,
    two_state_matrix,
)
from ._tc import NetemLossSpec
from .base import LossModel


@dataclass(frozen=True)
class GilbertElliott(TwoStateChain, NetemLossSpec, LossModel):
    """Gilbert-Elliott packet loss, parameterised exactly like netem ``loss gemodel p r 1-h 1-k``.

    Hidden chain with states Good (0) and Bad (1)::

        P = [[1-p, p  ],      p = P(Good -> Bad)
             [r,   1-r]]      r = P(Bad -> Good)

    A packet sent in Good is lost with probability ``1-k``, in Bad with
    probability ``1-h`` (``h``/``k`` are the probabilities of *correct*
    delivery, as in Gilbert 1960 / Elliott 1963 and in netem's
    ``sch_netem.c: loss_gilb_ell``, where the tc arguments are p, r, 1-h, 1-k;
    see tc-netem(8): "1-h is the loss probability in the bad state and 1-k is
    the loss probability in the good state").  Special cases (tc-netem(8)):
    simple Gilbert (h=0, k=1), Gilbert (k=1), Bernoulli (r = 1-p, h=0, k=1).

    Stationary law: ``π_G = r/(p+r)``, ``π_B = p/(p+r)``.

    Loss rate: ``L = (1-k)·π_G + (1-h)·π_B``.

    Mean burst length (mean run of consecutive losses): a burst starts at t when
    packet t-1 is received and packet t lost, at rate (per packet)::

        S = π_G k [(1-p)(1-k) + p(1-h)] + π_B h [r(1-k) + (1-r)(1-h)]

    and by the renewal-reward theorem ``mean_burst = L / S``.  For the simple
    Gilbert model this is ``π_B / (π_G p) = 1/r`` and bursts are exactly
    Geometric(r); in general a burst can span several Good/Bad sojourns and
    its length has the phase-type law given by :meth:`burst_length_pmf`
    (derivation in ``channels._markov``).  Conventions: 0.0 when L = 0,
    ``inf`` when losses never end.

    Sampling draws geometric sojourn times (Geometric(p) in Good,
    Geometric(r) in Bad) and expands them with ``np.repeat``; see
    ``channels._markov`` for the resumable ``ChainState``.  An ``int`` state
    (``GilbertElliott.GOOD``/``BAD``) means "the previous packet was in that
    state", and overrides ``start``.

    Start of a fresh stream (``state=None``): ``start="stationary"`` draws
    packet 0's state from ``(π_G, π_B)``; ``start="good"`` puts packet 0 in
    Good, as netem does (``sch_netem.c: get_loss_clg`` sets ``GOOD_STATE``,
    ``loss_gilb_ell`` draws the move to Bad and then the loss with Good's
    ``1-k``), so ``P(packet t lost) = δ_G P^t e`` (:meth:`loss_probabilities`):
    ``1-k`` at t = 0, then towards the stationary ``L``.  Every call with
    ``state=None`` is a new stream (starts in Good again); pass the returned
    state to continue one.  Details in ``channels._markov``.

    Args:
        p: P(Good->Bad) in [0, 1].
        r: P(Bad->Good) in [0, 1]; must be > 0 if p > 0.
        h: probability of delivery in Bad (loss prob 1-h), default 0 (all lost).
        k: probability of delivery in Good (loss prob 1-k), default 1 (none lost).
        start: ``"stationary"`` (default) or ``"good"`` (netem's transient).
    """

    p: float
    r: float
    h: float = 0.0
    k: float = 1.0
    start: str = field(default="stationary", repr=False)

    GOOD = GOOD
    BAD = BAD
    NETEM_KIND = "gemodel"

    __repr__ = start_aware_repr

    def __post_init__(self) -> None:
        for name in ("p", "r", "h", "k"):
            object.__setattr__(self, name, check_prob("GilbertElliott", name, getattr(self, name)))
        check_two_state("GilbertElliott", self.p, self.r)
        check_start("GilbertElliott", self.start)

    # -- alternate constructors ------------------------------------------------------
    @classmethod
    def from_loss_and_burst(cls, loss_rate: float, mean_burst: float, start: str = "stationary") -> "GilbertElliott":
        """Simple Gilbert model (h=0, k=1) with the given loss rate and mean burst length.

        ``r = 1/mean_burst`` and ``p = r·L/(1-L)`` (from ``π_B = p/(p+r) = L``).
        Requires 0 <= L < 1, mean_burst >= 1 and ``L <= mean_burst/(1+mean_burst)``
        (otherwise p would exceed 1).
        """
        L = check_prob("GilbertElliott.from_loss_and_burst", "loss_rate", loss_rate)
        if L >= 1.0:
            raise ParameterError("GilbertElliott.from_loss_and_burst: loss_rate must be < 1 (a burst must end)")
        if isinstance(mean_burst, bool) or not isinstance(mean_burst, (int, float, np.integer, np.floating)):
            raise ParameterError(
                f"GilbertElliott.from_loss_and_burst: mean_burst must be a number >= 1, got {mean_burst!r}")
        mb = float(mean_burst)
        if not (mb >= 1.0) or mb == float("inf"):
            raise ParameterError(
                f"GilbertElliott.from_loss_and_burst: mean_burst must be finite and >= 1 packet, got {mb!r}")
        r = 1.0 / mb
        p = r * L / (1.0 - L)
        if p > 1.0:
            raise ParameterError(
                f"GilbertElliott.from_loss_and_burst: loss_rate={L} is unreachable with mean_burst={mb} "
                f"(needs p={p:.4g} > 1); the maximum loss rate for this burst length is {mb / (1 + mb):.4g}"
            )
        return cls(p=p, r=r, h=0.0, k=1.0, start=start)

    # from_netem(spec, start="good"): inherited from channels._tc.NetemLossSpec

    def to_netem(self) -> str:
        """netem form ``loss gemodel p% r% 1-h% 1-k%`` (parameters only; a netem qdisc always starts in Good)."""
        def pct(x: float) -> str:
            return f"{100.0 * x:.12g}%"

        return f"loss gemodel {pct(self.p)} {pct(self.r)} {pct(1.0 - self.h)} {pct(1.0 - self.k)}"

    # -- analytics ------------------------------------------------------------------
    def _chain_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pi = np.array([self.r, self.p]) / (self.p + self.r)
        return two_state_matrix(self.p, self.r), np.array([1.0 - self.k, 1.0 - self.h]), pi

    @property
    def stationary_bad_probability(self) -> float:
        """``π_B = p/(p+r)``."""
        return self.p / (self.p + self.r)

    @property
    def stationary_loss_rate(self) -> float:
        pb = self.stationary_bad_probability
        return (1.0 - self.k) * (1.0 - pb) + (1.0 - self.h) * pb

    @property
    def mean_burst_length(self) -> float:
        p, r, h, k = self.p, self.r, self.h, self.k
        pb = p / (p + r)
        pg = 1.0 - pb
        L = (1.0 - k) * pg + (1.0 - h) * pb
        S = pg * k * ((1.0 - p) * (1.0 - k) + p * (1.0 - h)) + pb * h * (r * (1.0 - k) + (1.0 - r) * (1.0 - h))
        return mean_burst_from_rates(L, S)

    # -- sampling -------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, Any]:
        """Loss mask (n,) and a ``ChainState`` (``state.state`` is 0=Good / 1=Bad of packet n-1)."""
        lost, _, new = self._sample_chain(n, rng, state)
        return lost, new
