"""Fitting loss models to a measured 0/1 loss trace, with 95 % intervals and a likelihood for model choice.

Four families, each returning a :class:`FitResult` whose ``model`` is the
ordinary channel object (``sample``, ``to_netem()``, sweep configs):

=========  =====================================================  =============================================
family     model                                                  estimator
=========  =====================================================  =============================================
bernoulli  ``Bernoulli(p)``                                       ``p̂ = losses / n`` (closed form, the MLE)
gilbert    ``GilbertElliott(p, r, h=0, k=1)`` (simple Gilbert)    closed form from the runs (transition counts)
ge         ``GilbertElliott(p, r, h, k)`` (hidden states)         maximum likelihood by EM (Baum-Welch)
4state     ``FourStateMarkov(p13, p31, p32, p23, p14)``           Salsano et al.'s g_min classification
                                                                  (``method="gmin"``), or maximum likelihood
                                                                  by EM started there (``method="ml"``)
=========  =====================================================  =============================================

Simple Gilbert.  With h = 0, k = 1 the state is the observation, so the
likelihood is that of an observed two-state chain and the MLE is the
transition frequency (Gilbert 1960): with ``n_G`` received packets that are
followed by another packet, ``n_GB`` of them followed by a loss (= the loss
runs that start after packet 0), ``n_B`` and ``n_BG`` likewise for losses,
``p̂ = n_GB / n_G`` and ``r̂ = n_BG / n_B``.  In run terms: ``1/r̂`` is the
mean loss-run length, runs cut by the end of the trace counted as censored.

Gilbert-Elliott.  The likelihood of the hidden chain (:mod:`channels._hmm`,
computed run by run) is maximised by EM (Baum 1970; for this channel
e.g. Hasslinger & Hohlfeld 2008): E-step the expected transition and
emission counts, M-step ``P_ij = ξ_ij / Σ_j ξ_ij``, ``e_j = (losses emitted
in j) / (packets in j)``.  The first packet's state is taken from the
stationary law of the current ``P`` (the model is a window of a running
link), a term the M-step leaves out (its weight is 1/n).  Starts: the
simple Gilbert estimate with the Bad state made a little leaky, a
"long, half-lossy Bad period" start and a "near-Bernoulli" start; each runs
``pre_iter`` steps, the best continues to convergence (log-likelihood gain
below ``tol`` per step, or ``max_iter``).  The states are labelled so that
Bad is the lossier one (1-h ≥ 1-k).

netem's 4-state model.  Salsano, Ludovici, Ordine, Giannuzzi, *Definition
of a general and intuitive loss model for packet networks and its
implementation in the Netem module in the Linux kernel* (TR v3.1, 2012,
§4.1) define the states from the trace with the burst/gap rule of RFC 3611
§4.7.2 (after Clark's model): runs of ≥ ``gmin`` received packets (16 in
RFC 3611) are *gap* periods, everything between them is a *burst* period
(it starts and ends with a loss).  A packet is then in state 1 (received in
a gap), 2 (received in a burst), 3 (lost in a burst) or 4 (an isolated
loss: a burst period of one single loss).  Received runs touching the ends
of the trace count as gap.  The transition probabilities are the
frequencies of the labelled transitions, ``p_ij = c_ij / Σ_j c_ij``.  The
labelled sequence is exactly a path of netem's chain (1→1|3|4, 3→1|2|3,
2→2|3, 4→1), but the rule mislabels what the chain can also do (a burst
that is a single loss — probability p31 — is called an isolated loss, a
burst with an inner gap ≥ g_min is split, two isolated losses < g_min apart
are one burst), so this estimator is consistent only where such events are
rare; ``method="ml"`` maximises the exact likelihood instead (measured on a
``FourStateMarkov(0.01, 0.3, 0.2, 0.7, 0.005)`` trace of 6·10^4 packets:
g_min gives p23 = 0.30, ML 0.70).

Intervals (all at ``level``, default 95 %).  Count-based estimators
(Bernoulli, simple Gilbert, g_min) give each probability the Wilson score
interval of its count and denominator.  EM fits use the observed
information: the numerical Hessian of the exact log-likelihood in logit
coordinates, a Wald interval there, mapped back (so intervals stay in
[0, 1]); a parameter that converged to a bound gets the one-sided interval
where the log-likelihood (others held) stays within χ²₁(level)/2.  Derived
quantities (loss rate, mean burst length) use the delta method on the logit
/ log scale.  A flat direction (the Bad and Good states of a near-Bernoulli
trace are not identifiable) shows as an interval close to [0, 1].

Model choice: ``AIC = 2k − 2 log L`` and ``BIC = k log n − 2 log L`` with
k free parameters (1, 2, 4, 5), all with the same likelihood (stationary
start), so the numbers compare across families.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from scipy import stats as sps

from codec.errors import ParameterError

from . import _hmm
from ._hmm import em, em_ge
from ._intervals import (
    Estimate,
    ci_from_se,
    derived_intervals,
    em_intervals,
    expit,
    logit,
    observed_information,
    wilson,
)
from ._markov import MarkovChannel
from .base import LossModel
from .bernoulli import Bernoulli
from .gilbert import GilbertElliott
from .markov4 import FourStateMarkov

FittedModel = Bernoulli | GilbertElliott | FourStateMarkov
"""The model families ``fit_all`` fits (each has ``to_netem``)."""

FAMILIES = ("bernoulli", "gilbert", "ge", "4state")
"""Family names, in order of complexity (``vqsim channels fit --models``)."""

GMIN_DEFAULT = 16
"""RFC 3611 §4.7.2's g_min: a gap is ≥ 16 consecutive received packets."""


@dataclass(frozen=True)
class FitResult:
    """One fitted family.

    Attributes:
        family: one of :data:`FAMILIES`.
        model: the fitted channel (``start="stationary"``: the trace is a window of a running link).
        params: netem-convention parameters (``p, r, 1-h, 1-k`` / ``p13 … p14``) with intervals.
        derived: ``loss_rate`` (fraction) and ``mean_burst`` (packets) of the model, with intervals.
        log_likelihood: exact log-likelihood of the trace under ``model`` (nats).
        n_params: free parameters k; ``aic``, ``bic`` computed from it.
        n: packets in the trace.  method: how it was estimated.  level: interval level.
        converged, iterations: EM's report (closed forms: True, 0).  seconds: fit time.
        notes: anything the user should know (flat directions, starts that disagreed, …).
    """

    family: str
    model: FittedModel
    params: dict[str, Estimate]
    derived: dict[str, Estimate]
    log_likelihood: float
    n_params: int
    n: int
    method: str
    level: float = 0.95
    converged: bool = True
    iterations: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def aic(self) -> float:
        return 2.0 * self.n_params - 2.0 * self.log_likelihood

    @property
    def bic(self) -> float:
        return self.n_params * math.log(self.n) - 2.0 * self.log_likelihood

    def to_netem(self, digits: int | None = None) -> str:
        """The model's netem loss string; with ``digits``, every percentage rounded to that many significant digits."""
        text = self.model.to_netem()
        if digits is None:
            return text
        return re.sub(r"([0-9.eE+-]+)%", lambda m: f"{float(m.group(1)):.{int(digits)}g}%", text)


# --------------------------------------------------------------------------- helpers
def as_losses(trace: Any) -> np.ndarray:
    """A bool loss array from a bool / 0-1 array-like or an object with ``.losses`` (e.g. a ``LossTrace``)."""
    x = np.asarray(getattr(trace, "losses", trace))
    if x.ndim != 1:
        raise ParameterError(f"fit: a loss trace must be 1-D, got shape {x.shape}")
    if x.size < 2:
        raise ParameterError(f"fit: a loss trace needs at least 2 packets, got {x.size}")
    if x.dtype != bool:
        if not np.issubdtype(x.dtype, np.number) or np.any((x != 0) & (x != 1)):
            raise ParameterError("fit: a loss trace holds only 0 (received) and 1 (lost) or booleans")
        x = x == 1
    return x


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.5 <= float(level) < 1.0:
        raise ParameterError(f"fit: level must be a number in [0.5, 1), got {level!r}")
    return float(level)


def chain_of(model: LossModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, e, π) of a Bernoulli / Gilbert-Elliott / 4-state model (Bernoulli as a one-state chain)."""
    if isinstance(model, Bernoulli):
        return np.ones((1, 1)), np.array([model.p]), np.ones(1)
    P, e, pi = cast(MarkovChannel, model)._chain_arrays()  # GilbertElliott / FourStateMarkov
    return P, np.asarray(e, dtype=float), pi


def log_likelihood(model: LossModel, trace: Any) -> float:
    """Exact log-likelihood (nats) of a loss trace under a Bernoulli, Gilbert-Elliott or 4-state model,
    its first packet drawn from the stationary law."""
    x = as_losses(trace)
    if isinstance(model, Bernoulli):
        k, n = int(x.sum()), x.size
        return float(sps.binom.logpmf(k, n, model.p) - math.log(math.comb(n, k))) if 0 < model.p < 1 else (
            0.0 if (model.p == 0 and k == 0) or (model.p == 1 and k == n) else -math.inf)
    P, e, pi = chain_of(model)
    return _hmm.log_likelihood(P, e, pi, _hmm.compress(x))


# --------------------------------------------------------------------------- closed forms
def fit_bernoulli(trace: Any, level: float = 0.95) -> FitResult:
    """``p̂ = losses / n``; Wilson interval; mean burst ``1/(1-p)`` with the interval mapped through."""
    t0 = time.perf_counter()
    x, level = as_losses(trace), _check_level(level)
    n, k = x.size, int(x.sum())
    p = k / n
    lo, hi = wilson(k, n, level)
    model = Bernoulli(p)
    mb = model.mean_burst_length
    derived = {"loss_rate": Estimate(p, lo, hi),
               "mean_burst": Estimate(mb, 1.0 / (1.0 - lo) if k else 0.0, 1.0 / (1.0 - hi) if hi < 1 else math.inf)}
    return FitResult("bernoulli", model, {"p": Estimate(p, lo, hi)}, derived, log_likelihood(model, x), 1, n,
                     "closed form (loss frequency)", level, seconds=time.perf_counter() - t0)


def _transitions(x: np.ndarray) -> tuple[int, int, int, int]:
    """(n_G, n_GB, n_B, n_BG): packets of each kind followed by another, and how many switched."""
    a, b = x[:-1], x[1:]
    return int((~a).sum()), int((~a & b).sum()), int(a.sum()), int((a & ~b).sum())


def fit_simple_gilbert(trace: Any, level: float = 0.95) -> FitResult:
    """Simple Gilbert (h = 0, k = 1) from the transition counts (module docstring); Wilson intervals."""
    t0 = time.perf_counter()
    x, level = as_losses(trace), _check_level(level)
    nG, nGB, nB, nBG = _transitions(x)
    if nBG == 0:
        raise ParameterError("fit gilbert: the trace has no loss burst that ends (no lost packet followed by a "
                             "received one), so r = P(Bad→Good) cannot be estimated")
    p, r = nGB / nG, nBG / nB
    model = GilbertElliott(p=p, r=r, h=0.0, k=1.0)
    params = {"p": Estimate(p, *wilson(nGB, nG, level)), "r": Estimate(r, *wilson(nBG, nB, level))}
    theta = np.array([logit(p), logit(r)])
    var = [1.0 / (nG * p * (1 - p)) if 0 < p < 1 else math.inf, 1.0 / (nB * r * (1 - r)) if 0 < r < 1 else math.inf]
    cov = np.diag(var)
    derived = derived_intervals(model, lambda t: GilbertElliott(p=float(expit(t[0])), r=float(expit(t[1]))),
                                   theta, cov, level)
    # mean burst 1/r exactly: map r's interval
    derived["mean_burst"] = Estimate(1.0 / r, 1.0 / params["r"].high, 1.0 / params["r"].low if params["r"].low > 0
                                     else math.inf)
    return FitResult("gilbert", model, params, derived, log_likelihood(model, x), 2, x.size,
                     "closed form (transition counts of the runs)", level, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- EM
def _ge_from(P: np.ndarray, e: np.ndarray) -> GilbertElliott:
    return GilbertElliott(p=float(P[0, 1]), r=float(P[1, 0]), h=float(1 - e[1]), k=float(1 - e[0]))


def fit_gilbert_elliott(trace: Any, level: float = 0.95, max_iter: int = 1000, tol: float = 1e-8,
                        pre_iter: int = 10) -> FitResult:
    """Full Gilbert-Elliott (p, r, h, k) by EM from three starts (module docstring).

    Args:
        trace: bool / 0-1 loss trace (True = lost) or a ``LossTrace``.
        level: interval level.  max_iter: cap on E-steps for the best start.  tol: stop when an EM
            cycle gains less than ``tol·|log L|``.  pre_iter: E-steps given to every start before the best
            is chosen.
    """
    t0 = time.perf_counter()
    x, level = as_losses(trace), _check_level(level)
    nG, nGB, nB, nBG = _transitions(x)
    if nBG == 0 or nGB == 0:
        raise ParameterError("fit ge: the trace needs at least one loss burst that starts and ends inside it")
    if not (isinstance(max_iter, int) and max_iter >= 1 and isinstance(pre_iter, int) and pre_iter >= 1):
        raise ParameterError(f"fit ge: max_iter and pre_iter must be integers >= 1, got {max_iter!r}, {pre_iter!r}")
    runs = _hmm.compress(x)
    L = float(x.mean())
    p0, r0 = nGB / nG, nBG / nB
    starts = []
    for p, r, lb, lg in ((0.9 * p0, r0, 0.9, 0.05 * L),      # Bad ≈ the observed bursts, slightly leaky
                         (None, r0 / 4, 0.5, 0.2 * L),       # long, half-lossy Bad periods
                         (None, 0.5, min(0.95, 3 * L), 0.5 * L)):  # near-Bernoulli
        if p is None:
            pb = min(0.9, max(1e-4, (L - lg) / max(lb - lg, 1e-6)))
            p = min(0.99, r * pb / (1 - pb))
        P = np.array([[1 - p, p], [r, 1 - r]])
        starts.append((np.clip(P, 1e-6, 1 - 1e-6), np.clip(np.array([lg, lb]), 1e-6, 1 - 1e-6)))
    pre = [em_ge(P, e, runs, pre_iter, tol) for P, e in starts]
    best = max(pre, key=lambda s: s.ll)
    run = em_ge(best.P, best.e, runs, max_iter, tol) if not best.converged else best
    P, e = run.P, run.e
    if e[0] > e[1]:  # label Bad as the lossier state
        P, e = P[::-1, ::-1].copy(), e[::-1].copy()
    model = _ge_from(P, e)
    notes = []
    lls = sorted(s.ll for s in pre)
    if len(lls) > 1 and lls[-1] - lls[0] > 1.0:
        notes.append(f"EM starts reached log-likelihoods {', '.join(f'{v:.1f}' for v in lls)} after {pre_iter} "
                     "steps; the best was continued")

    def ll_theta(t: np.ndarray) -> float:
        pp, rr, lb, lg = (float(v) for v in expit(t))
        return _hmm.log_likelihood(np.array([[1 - pp, pp], [rr, 1 - rr]]), np.array([lg, lb]),
                                   np.array([rr, pp]) / (pp + rr), runs)

    theta = logit(np.array([model.p, model.r, 1 - model.h, 1 - model.k]))
    params, cov, more = em_intervals(ll_theta, theta, ["p", "r", "1-h", "1-k"], level)
    derived = derived_intervals(
        model, lambda t: GilbertElliott(float(expit(t[0])), float(expit(t[1])), float(1 - expit(t[2])),
                                        float(1 - expit(t[3]))), theta, cov, level)
    if not run.converged:
        notes.append(f"EM stopped at max_iter={max_iter} before the relative gain per step fell below {tol:g}")
    return FitResult("ge", model, params, derived, log_likelihood(model, x), 4, x.size,
                     "maximum likelihood, EM (Baum-Welch, SQUAREM-accelerated), 3 starts", level, run.converged,
                     run.iterations + (0 if run is best else pre_iter), time.perf_counter() - t0,
                     tuple(notes + more))


# --------------------------------------------------------------------------- 4-state
def gmin_states(trace: Any, gmin: int = GMIN_DEFAULT) -> np.ndarray:
    """netem 4-state labels (1..4, int8) of every packet by the g_min rule (module docstring)."""
    x = as_losses(trace)
    if isinstance(gmin, bool) or not isinstance(gmin, (int, np.integer)) or gmin < 1:
        raise ParameterError(f"fit 4state: gmin must be an integer >= 1 (received packets that make a gap), "
                             f"got {gmin!r}")
    n = x.size
    lab = np.where(x, 3, 2).astype(np.int8)
    # received runs: gap if long enough or touching an end of the trace
    pad = np.concatenate(([True], x, [True])).view(np.int8)
    d = np.diff(pad)
    rs, re = np.flatnonzero(d == -1), np.flatnonzero(d == 1)  # starts / ends (exclusive) of received runs
    gap = ((re - rs) >= gmin) | (rs == 0) | (re == n)
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, rs[gap], 1)
    np.add.at(cover, re[gap], -1)
    in_gap = np.cumsum(cover[:n]) > 0
    lab[in_gap] = 1
    # burst periods = maximal stretches outside gap runs; a one-packet period is an isolated loss
    pad2 = np.concatenate(([True], in_gap, [True])).view(np.int8)
    d2 = np.diff(pad2)
    bs, be = np.flatnonzero(d2 == -1), np.flatnonzero(d2 == 1)
    single = bs[(be - bs) == 1]
    lab[single] = 4
    return lab


_FOUR_STATE_CELLS = {"p13": (0, 2), "p31": (2, 0), "p32": (2, 1), "p23": (1, 2), "p14": (0, 3)}
"""Each 4-state transition probability and its (from, to) cell of the state-transition counts."""


def _four_state(p13: float, p31: float, p32: float, p23: float, p14: float) -> FourStateMarkov:
    return FourStateMarkov(p13, p31, p32, p23, p14)


def _four_state_counts(x: np.ndarray, gmin: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Transition counts c (4×4), counts out of each state, and the g_min estimate of each probability."""
    lab = gmin_states(x, gmin) - 1
    c = np.zeros((4, 4), dtype=np.int64)
    np.add.at(c, (lab[:-1], lab[1:]), 1)
    out = c.sum(axis=1)
    if c[0, 2] + c[0, 3] == 0:
        raise ParameterError("fit 4state: the trace has no loss after a gap period; nothing to fit")
    if c[2, 0] + c[3, 0] == 0:
        raise ParameterError("fit 4state: no burst period ends inside the trace, so p31 cannot be estimated")

    def frac(i: int, j: int) -> float:
        return cast(float, c[i, j] / out[i]) if out[i] else 0.0

    p13, p14 = frac(0, 2), frac(0, 3)
    p31 = frac(2, 0) if out[2] else 1.0
    p32 = frac(2, 1)
    p23 = frac(1, 2) if out[1] else 1.0
    if p13 > 0 and p31 == 0:
        raise ParameterError("fit 4state: no burst of ≥ 2 losses ends inside the trace, so p31 cannot be estimated")
    return c, out, {"p13": p13, "p31": p31, "p32": p32, "p23": p23, "p14": p14}


def fit_four_state(trace: Any, level: float = 0.95, method: str = "gmin", gmin: int = GMIN_DEFAULT,
                   max_iter: int = 1000, tol: float = 1e-9) -> FitResult:
    """netem 4-state model: Salsano et al.'s g_min classification (``"gmin"``) or exact ML by EM (``"ml"``)."""
    t0 = time.perf_counter()
    x, level = as_losses(trace), _check_level(level)
    if method not in ("gmin", "ml"):
        raise ParameterError(f"fit 4state: method must be 'gmin' (Salsano et al.) or 'ml' (EM), got {method!r}")
    c, out, vals = _four_state_counts(x, gmin)
    model = _four_state(**vals)
    if method == "gmin":
        names = _FOUR_STATE_CELLS
        notes = [f"states from the g_min = {gmin} rule (RFC 3611 burst/gap; Salsano et al. §4.1)"]
        params = {k: Estimate(v, *wilson(c[names[k]], out[names[k][0]], level)) for k, v in vals.items()}
        theta = np.array([logit(vals[k]) for k in names])
        var = np.array([1.0 / (out[names[k][0]] * vals[k] * (1 - vals[k])) if 0 < vals[k] < 1 and out[names[k][0]]
                        else math.inf for k in names])
        # p13/p14 and p31/p32 share a denominator: the delta method below treats them as independent (small bias)
        derived = derived_intervals(model, lambda t: _four_state(*(float(v) for v in expit(t))), theta,
                                    np.diag(np.where(np.isfinite(var), var, 0.0)), level)
        return FitResult("4state", model, params, derived, log_likelihood(model, x), 5, x.size,
                         f"g_min classification (Salsano et al.), g_min = {gmin}", level,
                         seconds=time.perf_counter() - t0, notes=tuple(notes))
    start = " ".join(f"{100 * vals[k]:.4g}%" for k in ("p13", "p31", "p32", "p23", "p14"))
    notes = [f"EM started at the g_min = {gmin} estimate (loss state {start})"]
    return _fit_four_state_ml(x, model, level, max_iter, tol, notes, t0)


def _four_state_from_theta(t: np.ndarray) -> FourStateMarkov:
    """θ = (a13, a31, a32, a23, a14): softmax rows for {11, 13, 14} and {33, 31, 32}, logit for p23."""
    r1 = np.exp([0.0, t[0], t[4]])
    r3 = np.exp([0.0, t[1], t[2]])
    r1, r3 = r1 / r1.sum(), r3 / r3.sum()
    return FourStateMarkov(p13=float(r1[1]), p31=float(r3[1]), p32=float(r3[2]), p23=float(expit(t[3])),
                           p14=float(r1[2]))


def _fit_four_state_ml(x: np.ndarray, model: FourStateMarkov, level: float, max_iter: int, tol: float,
                       notes: list[str], t0: float) -> FitResult:
    """Exact ML: EM from the g_min estimate pulled a little into the interior (EM keeps zeros at zero)."""
    P = 0.9 * model.transition() + 0.1 * (FourStateMarkov(0.1, 0.4, 0.3, 0.5, 0.1).transition())
    e = np.array([0.0, 0.0, 1.0, 1.0])
    runs = _hmm.compress(x)
    run = em(P, e, runs, False, max_iter, tol)
    Pm = run.P
    fit = FourStateMarkov(p13=float(Pm[0, 2]), p31=float(Pm[2, 0]), p32=float(Pm[2, 1]), p23=float(Pm[1, 2]),
                          p14=float(Pm[0, 3]))
    build = _four_state_from_theta

    def ll_theta(t: np.ndarray) -> float:
        try:
            m = build(t)
        except ParameterError:
            return -math.inf
        return _hmm.log_likelihood(m.transition(), e, m._closed_form_pi(), runs)

    def lg(a: float, b: float) -> float:
        return math.log(max(a, 1e-300)) - math.log(max(b, 1e-300))

    p11, p33 = 1 - fit.p13 - fit.p14, 1 - fit.p31 - fit.p32
    theta = np.array([lg(fit.p13, p11), lg(fit.p31, p33), lg(fit.p32, p33), logit(fit.p23), lg(fit.p14, p11)])
    cov, pinv, fixed = observed_information(ll_theta, np.clip(theta, -30, 30), bound=11.0)
    cov = np.where(np.isnan(cov), 0.0, cov)
    params = {k: _delta_interval(fit, k, theta, cov, level) for k in _FOUR_STATE_CELLS}
    if fixed:
        notes.append("a transition converged to (near) 0 or 1; intervals of the probabilities it enters are "
                     "conditional on it")
    if not run.converged:
        notes.append(f"EM stopped at max_iter={max_iter} before the relative gain per step fell below {tol:g}")
    derived = derived_intervals(fit, build, theta, pinv, level)
    return FitResult("4state", fit, params, derived, log_likelihood(fit, x), 5, x.size,
                     "maximum likelihood, EM started at the g_min estimate", level, run.converged, run.iterations,
                     time.perf_counter() - t0, tuple(notes))


def _delta_interval(fit: FourStateMarkov, k: str, theta: np.ndarray, cov: np.ndarray, level: float) -> Estimate:
    """Interval of probability ``k`` by the delta method on its logit (numerical gradient in θ)."""
    v = getattr(fit, k)
    grad = np.zeros(5)
    for j in range(5):
        up, dn = theta.copy(), theta.copy()
        up[j] += 1e-5
        dn[j] -= 1e-5
        hi, lo = _four_state_from_theta(up), _four_state_from_theta(dn)
        grad[j] = (logit(getattr(hi, k)) - logit(getattr(lo, k))) / 2e-5
    idx = grad != 0
    sub = cov[np.ix_(idx, idx)]
    var = float(grad[idx] @ sub @ grad[idx]) if np.all(np.isfinite(sub)) else math.inf
    return ci_from_se(v, math.sqrt(var) if var >= 0 else math.inf, level, "prob")


FITTERS: dict[str, Callable[..., FitResult]] = {
    "bernoulli": fit_bernoulli,
    "gilbert": fit_simple_gilbert,
    "ge": fit_gilbert_elliott,
    "4state": fit_four_state,
}


def check_families(families: Any) -> tuple[str, ...]:
    """Family names as a tuple, each one of :data:`FAMILIES` (raises naming the unknown one)."""
    items = families.split(",") if isinstance(families, str) else list(families)
    out = []
    for f in items:
        f = str(f).strip().lower()
        if f not in FITTERS:
            raise ParameterError(f"unknown model family {f!r}; allowed: {', '.join(FAMILIES)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ParameterError(f"no model family given; allowed: {', '.join(FAMILIES)}")
    return tuple(out)


def fit(trace: Any, family: str, level: float = 0.95, **options: Any) -> FitResult:
    """Fit one family (``bernoulli``, ``gilbert``, ``ge``, ``4state``); options go to its estimator."""
    (fam,) = check_families([family])
    return FITTERS[fam](trace, level=level, **options)


def fit_all(trace: Any, families: Any = FAMILIES, level: float = 0.95, **options4: Any
            ) -> tuple[list[FitResult], dict[str, str]]:
    """Fit every family; returns (fits, {family: reason}) for the families the trace cannot support."""
    fits, skipped = [], {}
    for fam in check_families(families):
        try:
            fits.append(FITTERS[fam](trace, level=level, **(options4 if fam == "4state" else {})))
        except ParameterError as e:
            skipped[fam] = str(e)
    return fits, skipped
