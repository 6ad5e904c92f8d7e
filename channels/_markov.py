"""Shared machinery for hidden-Markov channels (numpy only).

A hidden-Markov channel has a finite state chain ``s_t`` with row-stochastic
transition matrix ``P`` (``P[i, j] = P(s_{t+1}=j | s_t=i)``) and, per state, a
probability ``e[s]`` that the packet (or bit) at time t is lost (flipped):
``l_t ~ Bernoulli(e[s_t])`` independently given the states.

Analytical run statistics (used by every Markov model in this package)
----------------------------------------------------------------------
With ``π`` the stationary distribution (``π P = π``, ``Σπ = 1``) and
``D_x = diag(x)``:

* loss rate            ``L = π · e``
* burst-start rate     ``S = P(l_{t-1}=0, l_t=1) = π D_{1-e} P e``
* mean burst length    ``L / S``       (renewal-reward: every loss belongs to
  exactly one burst, and bursts start at rate S per packet)
* mean gap length      ``(1-L) / S``   (runs of received packets)
* burst-length law     ``P(B = m) = a (P D_e)^{m-1} P (1-e) / (a 1)``, with
  ``a = π D_{1-e} P D_e`` the (unnormalised) state distribution at the first
  loss of a burst — a discrete phase-type law, geometric for the 2-state
  simple Gilbert model.

Conventions: mean burst length is 0.0 when L = 0 (there are no bursts) and
``inf`` when L > 0 but S = 0 (a burst never ends).

Vectorised sampling
-------------------
The chain is sampled run by run: the sequence of visited states (the "jump
chain", whose structure each model provides via ``_jump_sequence``) and a
geometric sojourn time per visit, ``T_s ~ Geometric(q_s)`` with
``q_s = 1 - P[s, s]``, expanded with ``np.repeat``; per-state losses are then
one vectorised comparison.  Work is done in blocks whose sizes depend only
on their index in the stream (``FIRST_BLOCK`` doubling up to ``BLOCK``);
packets drawn beyond the requested ``n`` travel in the returned
:class:`ChainState` together with the remaining sojourn of the current run.
Because the random draws of a block depend only on the generator and the
carried state, never on ``n``, splitting a stream into calls of any sizes
gives exactly the same packets as one long call — provided the generator is
not used for anything else between the calls (if it is, the stream is still
a correct continuation of the chain, just a different realisation).

Start of a stream (``start``)
-----------------------------
Every Markov model takes ``start``, used when ``sample``/``error_mask`` is
called with ``state=None`` (a fresh stream):

* ``"stationary"`` (default of the model classes): packet 0's hidden state is
  drawn from ``π``, so every packet of the stream has the stationary loss
  probability ``L``;
* ``"good"``: netem's transient.  Linux ``sch_netem.c`` sets the chain to
  state 1 (``GOOD_STATE`` / ``TX_IN_GAP_PERIOD``) whenever a loss model is
  configured.  Each model's ``GOOD_START`` says what that means for its
  packets: ``(GOOD, False)`` for the two-state models — packet 0 *is* in
  Good (``loss_gilb_ell`` decides a packet's loss with the state it is in
  before drawing the transition) — and ``(state 1, True)`` for the 4-state
  model — state 1 is the state *before* packet 0 (``loss_4state`` moves
  first and labels the packet with the state it enters), so packet 0 is
  lost with probability ``p13 + p14``.  The law of packet t is then
  ``initial_distribution @ P^t`` (:meth:`MarkovChannel.loss_probabilities`),
  which tends to ``π``.

``start`` is only read when ``state is None``: each call with ``state=None``
is a new stream and starts afresh (with ``"good"``, in Good again), however
many calls were made on the same generator before; passing the returned
``ChainState`` (or an int hidden state) continues a stream and ignores
``start``.  The draws depend only on the generator, so the same seed gives
the same packets, and splitting a stream into calls of any sizes gives the
same packets as one call, for either start.  For per-image use: a caller
that carries the state across images (``sim.NetworkSimulator`` keeps it for
its lifetime) sees the transient once, at its first packet; one that starts
each image with ``state=None`` (a new simulator per image) sees it at the
start of every image, like a netem qdisc (re)configured before each image.

Apart from the start, vqsim's order (packet t in ``s_t``, lost with
``e[s_t]``, then ``s_{t+1} ~ P[s_t]``) is netem's for both models: for
``gemodel`` ``s_t`` is netem's state when packet t arrives, for ``state`` it
is netem's state after packet t's transition (the 4-state chain's states are
loss labels).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.checks import check_count as check_count  # re-exported: the validators used to live here
from codec.checks import check_prob as check_prob
from codec.checks import check_rng as check_rng
from codec.errors import ParameterError

#: largest block of packets generated at once
BLOCK: int = 1 << 14
#: first block after a fresh start; block sizes then double up to BLOCK, so a
#: short stream costs little while the sizes still depend only on the block index
FIRST_BLOCK: int = 1 << 8
#: sojourn length standing for "never leaves" (absorbing state)
_INF_RUN: int = 1 << 60


# --------------------------------------------------------------------------- validation
#: allowed values of the Markov models' ``start`` parameter
START_CHOICES: tuple[str, ...] = ("stationary", "good")


def check_start(owner: str, start: Any) -> str:
    """Return ``start`` if it is ``"stationary"`` or ``"good"``, else raise ``ParameterError``."""
    if not isinstance(start, str) or start not in START_CHOICES:
        raise ParameterError(
            f"{owner}: start must be 'stationary' (first packet's hidden state drawn from the stationary law) "
            f"or 'good' (netem's transient: the chain starts in state 1 / Good at the first packet of each "
            f"fresh stream), got {start!r}"
        )
    return start


def start_aware_repr(self: Any) -> str:
    """Dataclass-style repr that shows ``start`` only when it is not the default ``"stationary"``.

    Keeps the repr of a default model exactly what it was before ``start`` existed.
    """
    parts = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr]
    if self.start != "stationary":
        parts.append(f"start={self.start!r}")
    return f"{type(self).__qualname__}({', '.join(parts)})"


# --------------------------------------------------------------------------- analytics
def stationary_distribution(P: np.ndarray, start: int = 0) -> np.ndarray:
    """Stationary distribution of the closed class reachable from ``start``.

    Solves ``π P = π`` restricted to the states reachable from ``start``
    (which the models' validation guarantees form one closed communicating
    class); unreachable states get probability 0.
    """
    K = P.shape[0]
    reach = {start}
    frontier = [start]
    while frontier:
        i = frontier.pop()
        for jj in np.flatnonzero(P[i] > 0):
            j = int(jj)
            if j not in reach:
                reach.add(j)
                frontier.append(j)
    idx = np.array(sorted(reach))
    Q = P[np.ix_(idx, idx)]
    m = idx.size
    A = np.vstack([Q.T - np.eye(m), np.ones((1, m))])
    b = np.zeros(m + 1)
    b[-1] = 1.0
    sol, *_ = np.linalg.lstsq(A, b, rcond=None)
    sol = np.clip(sol, 0.0, None)
    pi = np.zeros(K)
    pi[idx] = sol / sol.sum()
    return pi


def run_rates(P: np.ndarray, e: np.ndarray, pi: np.ndarray) -> tuple[float, float]:
    """Return ``(L, S)``: loss rate ``π·e`` and burst-start rate ``π D_{1-e} P e``."""
    L = float(pi @ e)
    S = float((pi * (1.0 - e)) @ P @ e)
    return L, S


def mean_burst_from_rates(L: float, S: float) -> float:
    """Mean burst length ``L/S`` with the package conventions (0 if no loss, inf if never ends)."""
    if L <= 0.0:
        return 0.0
    if S <= 0.0:
        return math.inf
    return L / S


def mean_gap_from_rates(L: float, S: float) -> float:
    """Mean length of a run of received packets, ``(1-L)/S`` (0 if always lost, inf if never lost)."""
    if L >= 1.0:
        return 0.0
    if S <= 0.0:
        return math.inf
    return (1.0 - L) / S


def burst_length_pmf(P: np.ndarray, e: np.ndarray, pi: np.ndarray, m_max: int) -> np.ndarray:
    """Exact ``P(burst length = m)`` for ``m = 1..m_max`` (array of shape (m_max,)).

    ``P(B=m) = a (P D_e)^{m-1} P (1-e) / (a·1)`` with ``a = π D_{1-e} P D_e``.
    Returns zeros if the channel never starts a burst.
    """
    m_max = check_count(m_max, "m_max")
    a = (pi * (1.0 - e)) @ P * e
    total = a.sum()
    out = np.zeros(m_max)
    if total <= 0.0:
        return out
    v = a / total
    M = P * e[None, :]
    end = P @ (1.0 - e)
    for m in range(m_max):
        out[m] = v @ end
        v = v @ M
    return out


# --------------------------------------------------------------------------- state
@dataclass(frozen=True, eq=False)
class ChainState:
    """Stream state of a hidden-Markov channel, returned by ``sample``/``error_mask``.

    Attributes:
        state: hidden state index of the last delivered packet (model-specific
            meaning, see the model's ``STATE_NAMES``).
        run_left: packets still to come in the current sojourn beyond the
            already-drawn ``pending_*`` packets (``>= 2**60`` means "forever").
        pending_lost: bool (m,), fates of the next m packets, already drawn
            (look-ahead that makes chunked sampling exactly reproducible).
        pending_states: int8 (m,), hidden states of those packets.
        next_block: size of the next block of packets to draw.

    Treat it as opaque and immutable; pass it back to continue the stream.
    A plain ``int`` hidden state is also accepted by ``sample`` ("the previous
    packet was in this state").
    """

    state: int
    run_left: int
    pending_lost: np.ndarray
    pending_states: np.ndarray
    next_block: int = BLOCK

    @property
    def run_state(self) -> int:
        """Hidden state of the last drawn packet (the one whose sojourn ``run_left`` continues)."""
        return int(self.pending_states[-1]) if self.pending_states.size else self.state

    def __repr__(self) -> str:
        return (
            f"ChainState(state={self.state}, run_left={self.run_left}, "
            f"pending={self.pending_lost.size})"
        )


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------- sampler mixin
class MarkovChannel:
    """Mixin implementing block-wise, exactly resumable sampling of a hidden Markov chain.

    Subclasses provide ``STATE_NAMES`` and the cached chain description via
    ``_chain_arrays()`` returning ``(P, e, pi)``, and ``_jump_sequence``; a
    ``start`` attribute (``"stationary"``/``"good"``) and ``GOOD_START``
    select how a fresh stream begins (module docstring).
    """

    STATE_NAMES: tuple[str, ...] = ()
    #: (hidden state, before_first) of ``start="good"``: packet 0 is in that state
    #: (before_first False) or the state before packet 0 is (True)
    GOOD_START: tuple[int, bool] = (0, False)

    # -- to be provided -------------------------------------------------------------
    def _chain_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _jump_sequence(self, rng: np.random.Generator, s: int, k: int) -> np.ndarray:  # pragma: no cover
        """At least ``k`` (int8) states visited after leaving state ``s``, in order."""
        raise NotImplementedError

    # -- cached derived arrays (stored in the instance __dict__, works on frozen dataclasses)
    def _derived(self) -> dict[str, Any]:
        d = self.__dict__.get("_chain_cache")
        if d is None:
            P, e, pi = self._chain_arrays()
            q = 1.0 - np.diag(P)
            q = np.where(q < 1e-15, 0.0, q)
            e = np.asarray(e, dtype=np.float64)
            d = {
                "P": P,
                "e": e,
                "pi": pi,
                "q": q,
                "q_safe": np.where(q > 0, q, 1.0),
                "absorbing": q == 0.0,
                "jump_rate": float(pi @ q),
                "deterministic": bool(np.all((e == 0.0) | (e == 1.0))),
                "e_bool": e >= 1.0,
                "cum_pi": np.cumsum(pi),
            }
            self.__dict__["_chain_cache"] = d
        return d

    # -- analytics shared by all Markov models -----------------------------------------
    def _run_rates(self) -> tuple[float, float]:
        d = self._derived()
        return run_rates(d["P"], d["e"], d["pi"])

    @property
    def stationary_distribution(self) -> np.ndarray:
        """Stationary probabilities of the hidden states (copy), in ``STATE_NAMES`` order."""
        pi: np.ndarray = self._derived()["pi"]
        return pi.copy()

    @property
    def transition_matrix(self) -> np.ndarray:
        """Row-stochastic hidden-state transition matrix (copy)."""
        P: np.ndarray = self._derived()["P"]
        return P.copy()

    @property
    def mean_gap_length(self) -> float:
        """Mean length of a run of consecutive received (unflipped) units, ``(1-L)/S``."""
        return mean_gap_from_rates(*self._run_rates())

    def burst_length_pmf(self, m_max: int) -> np.ndarray:
        """Exact probabilities that a loss burst has length 1..m_max (see module docstring)."""
        d = self._derived()
        return burst_length_pmf(d["P"], d["e"], d["pi"], m_max)

    @property
    def initial_distribution(self) -> np.ndarray:
        """Law of packet 0's hidden state in a fresh stream (``state=None``) under ``self.start``.

        ``π`` for ``"stationary"``; for ``"good"`` the unit vector of
        ``GOOD_START``'s state, times ``P`` if that state is the one before packet 0.
        """
        d = self._derived()
        if getattr(self, "start", "stationary") != "good":
            pi: np.ndarray = d["pi"]
            return pi.copy()
        s, before = self.GOOD_START
        v = np.zeros(len(d["pi"]))
        v[s] = 1.0
        return v @ d["P"] if before else v

    def loss_probabilities(self, n: int) -> np.ndarray:
        """Exact ``P(packet t lost)`` (bit flipped) for t = 0..n-1 of a fresh stream, shape (n,).

        ``initial_distribution @ P^t @ e``: constant ``L`` for ``start="stationary"``,
        netem's transient towards ``L`` for ``start="good"``.
        """
        n = check_count(n)
        d = self._derived()
        out = np.empty(n)
        v = self.initial_distribution
        for t in range(n):
            out[t] = v @ d["e"]
            v = v @ d["P"]
        return out

    # -- sampling ---------------------------------------------------------------------
    def _geometric(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """Sojourn lengths (>= 1) for visits to ``states``; absorbing states get ``_INF_RUN``."""
        d = self._derived()
        lens: np.ndarray = rng.geometric(d["q_safe"][states]).astype(np.int64, copy=False)
        if d["absorbing"].any():
            lens[d["absorbing"][states]] = _INF_RUN
        return lens

    def _start(self, rng: np.random.Generator, state: Any) -> tuple[int, int]:
        """(run_state, run_left) from ``None`` (fresh stream, per ``self.start``) or an int hidden state."""
        d = self._derived()
        K = len(d["pi"])
        if state is None and getattr(self, "start", "stationary") == "good":
            s, before = self.GOOD_START
            run = int(self._geometric(rng, np.array([s]))[0])
            # before_first: like an int state (the virtual packet -1 is in s); else packet 0 is in s
            return s, (run - 1 if before else run)
        if state is None:
            s = int(np.searchsorted(d["cum_pi"], rng.random(), side="right"))
            s = min(s, K - 1)
            while d["pi"][s] == 0.0:  # guard against round-off landing on a null state
                s -= 1
            run = int(self._geometric(rng, np.array([s]))[0])
            return s, run  # packet 0 is in s, and the sojourn from 0 is Geometric(q_s)
        if isinstance(state, bool) or not isinstance(state, numbers.Integral) or not 0 <= int(state) < K:
            names = ", ".join(f"{i}={n}" for i, n in enumerate(self.STATE_NAMES))
            raise ParameterError(
                f"{type(self).__name__}: state must be None, a ChainState returned by a previous call, "
                f"or a hidden-state index ({names}); got {state!r}"
            )
        s = int(state)
        run = int(self._geometric(rng, np.array([s]))[0]) - 1  # further packets staying in s
        return s, run

    def _gen_block(
        self, rng: np.random.Generator, s: int, c: int, B: int
    ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Draw one block of ``B`` packets continuing run (s, c).

        Returns (lost bool (B,), states int8 (B,), s, c) with (s, c) the
        run carried into the next block.
        """
        d = self._derived()
        states = np.empty(B, dtype=np.int8)
        take = min(c, B)
        states[:take] = s
        c -= take
        pos = take
        rate = d["jump_rate"]
        while pos < B:  # here c == 0: the current run has ended, jump on
            need = B - pos
            k = min(need, int(need * rate * 1.25) + 16)
            seq = self._jump_sequence(rng, s, k)
            lens = self._geometric(rng, seq)
            capped = np.minimum(lens, need)
            cum = np.cumsum(capped)
            j = int(np.searchsorted(cum, need))  # first run reaching the block end
            if j < seq.size:
                states[pos:] = np.repeat(seq[: j + 1], capped[: j + 1])[:need]
                used = need - (int(cum[j - 1]) if j > 0 else 0)
                s, c = int(seq[j]), int(lens[j]) - used
                pos = B
            else:
                total = int(cum[-1])
                states[pos : pos + total] = np.repeat(seq, capped)
                s, c = int(seq[-1]), 0
                pos += total
        if d["deterministic"]:
            lost = d["e_bool"][states]
        else:
            lost = rng.random(B) < d["e"][states]
        return lost, states, s, c

    def _sample_chain(
        self, n: Any, rng: Any, state: Any, want_states: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, Any]:
        """Core of ``sample``: returns (lost (n,), hidden states (n,) or None, new state)."""
        n = check_count(n)
        check_rng(rng)
        if n == 0:
            return np.zeros(0, dtype=bool), (np.zeros(0, dtype=np.int8) if want_states else None), state
        if isinstance(state, ChainState):
            K = len(self._derived()["pi"])
            if not (0 <= state.state < K and 0 <= state.run_state < K):
                raise ParameterError(f"{type(self).__name__}: ChainState does not belong to this model ({state!r})")
            pend_lost, pend_states = state.pending_lost, state.pending_states
            last, s, c = state.state, state.run_state, state.run_left
            bsize = state.next_block
        else:
            s, c = self._start(rng, state)
            pend_lost = np.zeros(0, dtype=bool)
            pend_states = np.zeros(0, dtype=np.int8)
            last = s
            bsize = FIRST_BLOCK
        lost = np.empty(n, dtype=bool)
        states = np.empty(n, dtype=np.int8) if want_states else None
        m = min(n, pend_lost.size)
        lost[:m] = pend_lost[:m]
        if states is not None:
            states[:m] = pend_states[:m]
        if m > 0:
            last = int(pend_states[m - 1])
        if m < pend_lost.size:  # request served from the look-ahead alone
            new = ChainState(last, c, pend_lost[m:], pend_states[m:], bsize)
            return lost, states, new
        pos = m
        blk_lost = blk_states = None
        t = 0
        while pos < n:
            blk_lost, blk_states, s, c = self._gen_block(rng, s, c, bsize)
            t = min(bsize, n - pos)
            bsize = min(2 * bsize, BLOCK)
            lost[pos : pos + t] = blk_lost[:t]
            if states is not None:
                states[pos : pos + t] = blk_states[:t]
            pos += t
        if blk_lost is not None and blk_states is not None:
            last = int(blk_states[t - 1])
            new = ChainState(last, c, _readonly(blk_lost[t:]), _readonly(blk_states[t:]), bsize)
        else:
            new = ChainState(last, c, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int8), bsize)
        return lost, states, new

    def sample_states(self, n: int, rng: np.random.Generator, state: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
        """Like ``sample`` but also returns the hidden state of every packet.

        Returns (lost bool (n,), states int8 (n,), state); same draws as ``sample``.
        """
        lost, states, new = self._sample_chain(n, rng, state, want_states=True)
        assert states is not None  # want_states=True
        return lost, states, new


# --------------------------------------------------------------------------- two-state chains
#: hidden states of the two-state chains (Gilbert-Elliott packet loss and bit errors)
GOOD = 0
BAD = 1


def check_two_state(owner: str, p: float, r: float) -> None:
    """Reject two-state chains with an absorbing Bad state or an undefined stationary law."""
    if r == 0.0 and p > 0.0:
        raise ParameterError(
            f"{owner}: r = P(Bad->Good) must be > 0 when p = P(Good->Bad) > 0 "
            f"(got p={p!r}, r=0): the chain would never recover from Bad"
        )
    if r == 0.0 and p == 0.0:
        raise ParameterError(
            f"{owner}: p and r cannot both be 0: the chain would never change state and its "
            f"stationary distribution is undefined"
        )


def two_state_matrix(p: float, r: float) -> np.ndarray:
    """``[[1-p, p], [r, 1-r]]`` (states Good=0, Bad=1)."""
    return np.array([[1.0 - p, p], [r, 1.0 - r]])


class TwoStateChain(MarkovChannel):
    """Jump chain of a two-state model: states simply alternate."""

    STATE_NAMES = ("good", "bad")
    #: start="good": packet 0 is in Good (netem loss_gilb_ell: loss decided with the pre-transition state)
    GOOD_START = (GOOD, False)

    def _jump_sequence(self, rng: np.random.Generator, s: int, k: int) -> np.ndarray:
        return ((s + 1 + np.arange(k)) % 2).astype(np.int8)
