"""Four-state Markov packet loss (Linux netem ``loss state p13 [p31 [p32 [p23 [p14]]]]``).

``start`` (see :mod:`channels._markov`): ``FourStateMarkov(...)`` starts a
fresh stream from the stationary law by default; ``start="good"``
reproduces a netem qdisc, whose ``loss_4state`` chain is in state 1
(``TX_IN_GAP_PERIOD``) before the first packet and, per packet, first moves
and then drops the packet iff the state entered is 3 or 4 — so packet 0 is
lost with probability ``p13 + p14``.  ``FourStateMarkov.from_netem`` /
:func:`channels.parse_netem` default to ``start="good"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codec.checks import check_prob
from codec.errors import ParameterError

from ._markov import MarkovChannel, check_start, mean_burst_from_rates, start_aware_repr
from ._tc import NetemLossSpec
from .base import LossModel

# hidden-state indices (netem state number minus one)
GAP_RX = 0      # netem state 1: good reception (gap period)
BURST_RX = 1    # netem state 2: good reception within a burst
BURST_LOSS = 2  # netem state 3: loss within a burst
GAP_LOSS = 3    # netem state 4: isolated loss (gap period)


@dataclass(frozen=True)
class FourStateMarkov(MarkovChannel, NetemLossSpec, LossModel):
    """netem's 4-state Markov loss model (Salsano, Ludovici, Ordine; tc-netem(8) ``loss state``).

    States (netem numbering; index = number - 1): 1 good reception in a gap
    period, 2 good reception within a burst, 3 loss within a burst,
    4 isolated loss within a gap.  Packets in states 3 and 4 are lost.
    Transitions (``sch_netem.c: loss_4state``; all other moves impossible)::

        1 -> 3: p13     1 -> 4: p14     1 -> 1: 1 - p13 - p14
        3 -> 1: p31     3 -> 2: p32     3 -> 3: 1 - p31 - p32
        2 -> 3: p23     2 -> 2: 1 - p23
        4 -> 1: 1

    Defaults follow iproute2's ``tc`` (q_netem.c): p31 = 1 - p13, p32 = 0,
    p23 = 1, p14 = 0; ``p13`` alone is then the Bernoulli model, p13 + p31 the
    2-state (simple Gilbert) model.

    Stationary distribution (solve the balance equations; the chain started in
    state 1 as netem does)::

        π ∝ (1, p13·p32/(p31·p23), p13/p31, p14)       for states (1, 2, 3, 4)

    Loss rate ``L = π3 + π4``.  A loss burst starts on 1->3, 1->4 or 2->3, at
    rate ``S = π1(p13 + p14) + π2·p23 = π3(p31 + p32) + π4``, so the mean
    burst length (mean run of consecutive losses) is
    ``L / S = (π3 + π4) / (π3(p31 + p32) + π4)``.  The exact burst-length law is
    :meth:`burst_length_pmf`.  Conventions: 0.0 if L = 0, inf if bursts never end.

    Validation: probabilities in [0, 1]; p13 + p14 <= 1; p31 + p32 <= 1;
    p31 > 0 when p13 > 0 (else a burst never ends); p23 > 0 when p13 > 0 and
    p32 > 0 (else the chain is stuck in state 2).

    Sampling is vectorised on the structure of the chain: the states 1 and 3
    are "hubs"; a visit to 1 is followed by an isolated loss (4, then back to
    1) with probability ``p14/(p13+p14)`` else by a burst (3); a visit to 3 is
    followed by a received-in-burst period (2, then back to 3) with
    probability ``p32/(p31+p32)`` else by a gap (1).  The hub sequence is thus
    alternating episodes of Geometric length, and every visit gets a
    Geometric sojourn (``1-P[s,s]``); see ``channels._markov``.

    Start of a fresh stream (``state=None``): ``start="stationary"`` draws
    packet 0's state from ``π``; ``start="good"`` is netem's transient
    (``sch_netem.c: get_loss_clg`` sets ``TX_IN_GAP_PERIOD``; ``loss_4state``
    draws the move out of the current state and drops the packet iff it
    enters 3 or 4), i.e. state 1 is the state *before* packet 0 — the same as
    passing ``state=FourStateMarkov.GAP_RX`` — and packet 0 is lost with
    probability ``p13 + p14`` (:meth:`loss_probabilities` gives the whole
    transient).  Every call with ``state=None`` is a new stream; pass the
    returned state to continue one.

    Args:
        p13, p31, p32, p23, p14: transition probabilities as above.
        start: ``"stationary"`` (default) or ``"good"`` (netem's transient).
    """

    p13: float
    p31: float = None  # type: ignore[assignment]  # None means 1 − p13; always a float after __post_init__
    p32: float = 0.0
    p23: float = 1.0
    p14: float = 0.0
    start: str = field(default="stationary", repr=False)

    STATE_NAMES = ("gap_rx(1)", "burst_rx(2)", "burst_loss(3)", "gap_loss(4)")
    GAP_RX = GAP_RX
    BURST_RX = BURST_RX
    BURST_LOSS = BURST_LOSS
    GAP_LOSS = GAP_LOSS
    NETEM_KIND = "state"
    #: start="good": state 1 is the state before packet 0 (netem loss_4state moves, then labels the packet)
    GOOD_START = (GAP_RX, True)

    __repr__ = start_aware_repr

    def __post_init__(self) -> None:
        own = "FourStateMarkov"
        check_start(own, self.start)
        p13 = check_prob(own, "p13", self.p13)
        p31 = 1.0 - p13 if self.p31 is None else check_prob(own, "p31", self.p31)
        vals = {"p13": p13, "p31": p31}
        for name in ("p32", "p23", "p14"):
            vals[name] = check_prob(own, name, getattr(self, name))
        for name, v in vals.items():
            object.__setattr__(self, name, v)
        if p13 + vals["p14"] > 1.0 + 1e-12:
            raise ParameterError(f"{own}: p13 + p14 must be <= 1 (they leave state 1), got {p13} + {vals['p14']}")
        if p31 + vals["p32"] > 1.0 + 1e-12:
            raise ParameterError(f"{own}: p31 + p32 must be <= 1 (they leave state 3), got {p31} + {vals['p32']}")
        if p13 > 0.0 and p31 == 0.0:
            raise ParameterError(f"{own}: p31 must be > 0 when p13 > 0 (got p13={p13}, p31=0): a burst would never end")
        if p13 > 0.0 and vals["p32"] > 0.0 and vals["p23"] == 0.0:
            raise ParameterError(
                f"{own}: p23 must be > 0 when p32 > 0 (got p32={vals['p32']}, p23=0): "
                "the chain would stay in state 2 forever"
            )

    # -- alternate constructors ------------------------------------------------------
    # from_netem(spec, start="good"): inherited from channels._tc.NetemLossSpec

    def to_netem(self) -> str:
        """netem form ``loss state p13% p31% p32% p23% p14%`` (parameters only; netem always starts in state 1)."""
        def pct(x: float) -> str:
            return f"{100.0 * x:.12g}%"

        return "loss state " + " ".join(pct(v) for v in (self.p13, self.p31, self.p32, self.p23, self.p14))

    # -- analytics ------------------------------------------------------------------
    def transition(self) -> np.ndarray:
        """4x4 transition matrix in index order (states 1, 2, 3, 4)."""
        p13, p31, p32, p23, p14 = self.p13, self.p31, self.p32, self.p23, self.p14
        P = np.zeros((4, 4))
        P[GAP_RX, BURST_LOSS] = p13
        P[GAP_RX, GAP_LOSS] = p14
        P[GAP_RX, GAP_RX] = 1.0 - p13 - p14
        P[BURST_LOSS, GAP_RX] = p31
        P[BURST_LOSS, BURST_RX] = p32
        P[BURST_LOSS, BURST_LOSS] = 1.0 - p31 - p32
        P[BURST_RX, BURST_LOSS] = p23
        P[BURST_RX, BURST_RX] = 1.0 - p23
        P[GAP_LOSS, GAP_RX] = 1.0
        return np.clip(P, 0.0, 1.0)

    def _closed_form_pi(self) -> np.ndarray:
        w = np.zeros(4)
        w[GAP_RX] = 1.0
        w[GAP_LOSS] = self.p14
        if self.p13 > 0.0:
            w[BURST_LOSS] = self.p13 / self.p31
            if self.p32 > 0.0:
                w[BURST_RX] = self.p13 * self.p32 / (self.p31 * self.p23)
        pi: np.ndarray = w / w.sum()
        return pi

    def _chain_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e = np.array([0.0, 0.0, 1.0, 1.0])
        return self.transition(), e, self._closed_form_pi()

    @property
    def stationary_loss_rate(self) -> float:
        pi = self._closed_form_pi()
        return float(pi[BURST_LOSS] + pi[GAP_LOSS])

    @property
    def mean_burst_length(self) -> float:
        pi = self._closed_form_pi()
        L = float(pi[BURST_LOSS] + pi[GAP_LOSS])
        S = float(pi[BURST_LOSS] * (self.p31 + self.p32) + pi[GAP_LOSS])
        return mean_burst_from_rates(L, S)

    # -- sampling -------------------------------------------------------------------
    def _jump_sequence(self, rng: np.random.Generator, s: int, k: int) -> np.ndarray:
        """States visited after leaving ``s`` (at least k), built from hub episodes.

        Episode of hub 1: ``1 (4 1)*m`` with ``m ~ Geometric(1-x1) - 1``,
        ``x1 = p14/(p13+p14)``; episode of hub 3: ``3 (2 3)*m``,
        ``x3 = p32/(p31+p32)``; episodes alternate.  After 4 (resp. 2) a fresh
        episode of hub 1 (resp. 3) starts; after a hub the rest of its episode
        follows (memoryless coins), i.e. a fresh episode minus its first visit.
        """
        d13 = self.p13 + self.p14
        d31 = self.p31 + self.p32
        x = {GAP_RX: (self.p14 / d13) if d13 > 0 else 0.0, BURST_LOSS: (self.p32 / d31) if d31 > 0 else 0.0}
        other = {GAP_RX: BURST_LOSS, BURST_LOSS: GAP_RX}
        hub = GAP_RX if s in (GAP_RX, GAP_LOSS) else BURST_LOSS
        drop = 1 if s == hub else 0
        pieces = []
        total = -drop
        x1, x3 = x[GAP_RX], x[BURST_LOSS]
        # mean episode length in jump states: 1 + E[m1] + E[m3] averaged over the two hub types
        mean_len = 1.0 + x1 / max(1e-12, 1.0 - x1) + x3 / max(1e-12, 1.0 - x3)
        while total < k:
            E = int(1.2 * (k - total) / mean_len) + 2
            hubs = np.where(np.arange(E) % 2 == 0, hub, other[hub]).astype(np.int8)
            is1 = hubs == GAP_RX
            mids = np.where(is1, GAP_LOSS, BURST_RX).astype(np.int8)
            leave = np.where(is1, 1.0 - x1, 1.0 - x3)
            m = np.full(E, k + 1, dtype=np.int64)  # leave == 0: endless episode, k+1 is enough
            ok = leave > 0.0
            m[ok] = np.minimum(rng.geometric(leave[ok]) - 1, k + 1)
            lens = 2 * m + 1
            ep = np.repeat(np.arange(E), lens)
            starts = np.cumsum(lens) - lens
            off = np.arange(ep.size) - starts[ep]
            seq = np.where(off % 2 == 0, hubs[ep], mids[ep]).astype(np.int8)
            pieces.append(seq)
            total += seq.size
            hub = other[int(hubs[-1])]  # the next episode starts at the other hub
        out = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        return out[drop:]

    def sample(self, n: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, Any]:
        """Loss mask (n,) and a ``ChainState`` (``state.state`` = index of netem state - 1)."""
        lost, _, new = self._sample_chain(n, rng, state)
        return lost, new
