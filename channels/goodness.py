"""Goodness of fit of a loss model to a measured trace: loss rate, burst- and gap-length laws (numpy/scipy only).

Three tests per fitted model, each a statistic and a p-value from a
parametric bootstrap (``n_boot`` traces of the trace's length drawn from
the model, ``start="stationary"``, with the ``rng`` passed in):

* loss rate: ``T = |L̂ − L|`` (trace's loss fraction vs the model's
  stationary loss rate).
* burst lengths, gap lengths (runs of losses / of receptions; runs cut by
  either end of the trace left out, in the trace and in every bootstrap
  trace alike): Pearson ``X² = Σ (O_j − E_j)²/E_j`` over bins of
  consecutive lengths, ``E_j = (number of runs) · P(length in bin j)`` from
  the model's exact law (:func:`channels._markov.burst_length_pmf`; for
  gaps the same with lost and received swapped).  Bins have about equal
  model probability (at most 20, at most runs/5), merged until each
  expects ≥ 5 runs; the last bin is open-ended and expects ≥ 1.

The p-value is ``(1 + #{T_b ≥ T}) / (1 + n_boot)``: it accounts for the
dependence between runs of a hidden-Markov trace, which the χ² table would
not.  The bootstrap does not refit the model on each simulated trace, so
with a model fitted to the same trace the p-values are conservative (a
model is rejected less often than at the nominal level).

The bootstrap traces also give, for the figure, a pointwise 95 % band of
the empirical CCDF ``P(length ≥ m)`` under the model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codec.checks import check_rng
from codec.errors import ParameterError

from ._markov import burst_length_pmf
from .base import LossModel
from .fit import FitResult, chain_of
from .stats import run_lengths

TESTS = ("loss_rate", "burst_lengths", "gap_lengths")
MAX_LENGTH = 100_000
"""Longest run length the exact laws are tabulated to."""


@dataclass(frozen=True)
class Test:
    """One test: statistic, bootstrap p-value (NaN when the trace has too few runs), and what was compared."""

    statistic: float
    p_value: float
    detail: str


@dataclass(frozen=True)
class GoodnessOfFit:
    """The three tests of one model, and CCDF bands for the figure (lengths 1..m, 2.5 % / 97.5 % quantiles)."""

    tests: dict[str, Test]
    n_boot: int
    burst_band: tuple[np.ndarray, np.ndarray]
    gap_band: tuple[np.ndarray, np.ndarray]

    def rejected(self, alpha: float = 0.05) -> list[str]:
        """Names of the tests with p < alpha."""
        return [k for k, t in self.tests.items() if np.isfinite(t.p_value) and t.p_value < alpha]


def inner_runs(losses: np.ndarray, lost: bool) -> np.ndarray:
    """Lengths of runs of losses (``lost=True``) or receptions, leaving out runs that touch either end."""
    x = np.asarray(losses, dtype=bool)
    r = run_lengths(x, value=lost)
    if r.size and x[0] == lost:
        r = r[1:]
    if r.size and x[-1] == lost:
        r = r[:-1]
    return r


def length_pmf(model: LossModel, m_max: int, lost: bool = True) -> np.ndarray:
    """Exact ``P(run length = m)``, m = 1..m_max, of loss runs (``lost=True``) or gap runs under ``model``."""
    P, e, pi = chain_of(model)
    return burst_length_pmf(P, e if lost else 1.0 - e, pi, int(m_max))


def ccdf(model: LossModel, m_max: int, lost: bool = True) -> np.ndarray:
    """``P(run length ≥ m)``, m = 1..m_max, under ``model``."""
    pmf = length_pmf(model, m_max, lost)
    return np.clip(1.0 - np.concatenate(([0.0], np.cumsum(pmf)[:-1])), 0.0, 1.0)


def empirical_ccdf(lengths: np.ndarray, m_max: int) -> np.ndarray:
    """Fraction of runs of length ≥ m, m = 1..m_max (zeros without runs)."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return np.zeros(m_max)
    counts = np.bincount(np.minimum(lengths, m_max + 1), minlength=m_max + 2)[1 : m_max + 2]
    return (counts[::-1].cumsum()[::-1] / lengths.size)[:m_max]


def _bins(pmf: np.ndarray, n_runs: int, max_bins: int = 20) -> np.ndarray:
    """Upper lengths (inclusive) of the bins; the last bin is open (> its predecessor).

    Bins of roughly equal model probability (at most ``max_bins``, at most ``n_runs/5``), consecutive
    lengths merged until every bin expects ≥ 5 runs, the open last bin ≥ 1 (the bootstrap, not the χ²
    table, calibrates the statistic; a model that all but forbids long runs must still be testable).
    Fewer than 2 bins: an empty array (no test).
    """
    K = min(max_bins, n_runs // 5)
    if K < 2:
        return np.zeros(0, dtype=np.int64)
    cdf = np.cumsum(pmf)
    cuts = np.unique(np.searchsorted(cdf, np.arange(1, K) / K, side="left") + 1)  # lengths ending each bin
    edges = []
    prev = 0.0
    for c in cuts:
        if c > pmf.size:
            break
        mass = cdf[c - 1] - prev
        if n_runs * mass >= 5 and n_runs * (1.0 - cdf[c - 1]) >= 1:
            edges.append(int(c))
            prev = cdf[c - 1]
    return np.array(edges, dtype=np.int64)


def _pearson(lengths: np.ndarray, pmf: np.ndarray, edges: np.ndarray) -> float:
    n = lengths.size
    if n == 0:
        return 0.0
    cdf = np.concatenate(([0.0], np.cumsum(pmf)))
    upper = np.concatenate((cdf[edges], [1.0]))
    p = np.maximum(np.diff(np.concatenate(([0.0], upper))), 1e-300)
    observed = np.bincount(np.searchsorted(edges, lengths, side="left"), minlength=edges.size + 1).astype(float)
    E = n * p
    return float(((observed - E) ** 2 / E).sum())


def goodness_of_fit(trace: np.ndarray, model: LossModel, rng: np.random.Generator, n_boot: int = 200,
                    m_plot: int | None = None) -> GoodnessOfFit:
    """Bootstrap tests of ``model`` against the bool loss ``trace`` (module docstring).

    Args:
        trace: bool (n,), True = lost.  model: a Bernoulli, Gilbert-Elliott or 4-state model.
        rng: the only source of randomness.  n_boot: bootstrap traces (>= 19).
        m_plot: longest run length of the CCDF bands (default: 1.5 × the longest run in the trace).
    """
    check_rng(rng)
    x = np.asarray(trace, dtype=bool)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 19:
        raise ParameterError(f"goodness_of_fit: n_boot must be an integer >= 19, got {n_boot!r}")
    n = x.size
    L = model.stationary_loss_rate
    b_obs, g_obs = inner_runs(x, True), inner_runs(x, False)
    longest = int(max(b_obs.max(initial=1), g_obs.max(initial=1)))
    m_tab = min(MAX_LENGTH, max(64, 2 * longest + 10))
    pmf_b, pmf_g = length_pmf(model, m_tab, True), length_pmf(model, m_tab, False)
    eb, eg = _bins(pmf_b, b_obs.size), _bins(pmf_g, g_obs.size)
    m_plot = int(m_plot or max(2, math.ceil(1.5 * longest)))
    T = {"loss_rate": abs(float(x.mean()) - L),
         "burst_lengths": _pearson(b_obs, pmf_b, eb) if eb.size else math.nan,
         "gap_lengths": _pearson(g_obs, pmf_g, eg) if eg.size else math.nan}
    sims = {k: np.empty(n_boot) for k in TESTS}
    cb = np.empty((n_boot, m_plot))
    cg = np.empty((n_boot, m_plot))
    for i in range(n_boot):
        y, _ = model.sample(n, rng)
        bs, gs = inner_runs(y, True), inner_runs(y, False)
        sims["loss_rate"][i] = abs(float(y.mean()) - L)
        sims["burst_lengths"][i] = _pearson(bs, pmf_b, eb) if eb.size else math.nan
        sims["gap_lengths"][i] = _pearson(gs, pmf_g, eg) if eg.size else math.nan
        cb[i], cg[i] = empirical_ccdf(bs, m_plot), empirical_ccdf(gs, m_plot)
    tests = {}
    for k in TESTS:
        if not np.isfinite(T[k]):
            tests[k] = Test(math.nan, math.nan, "too few complete runs for 2 bins of >= 5 expected")
            continue
        p = (1 + int((sims[k] >= T[k] - 1e-12).sum())) / (1 + n_boot)
        if k == "loss_rate":
            det = f"trace {x.mean():.4%} vs model {L:.4%}"
        else:
            nr = b_obs.size if k == "burst_lengths" else g_obs.size
            e = eb if k == "burst_lengths" else eg
            det = f"{nr} runs, {e.size + 1} bins (last: > {e[-1]}), X² = {T[k]:.2f}"
        tests[k] = Test(float(T[k]), p, det)
    def band(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.quantile(c, 0.025, axis=0), np.quantile(c, 0.975, axis=0)

    return GoodnessOfFit(tests, int(n_boot), band(cb), band(cg))


def verdict(fits: list[FitResult], gofs: dict[str, GoodnessOfFit], alpha: float = 0.05) -> list[str]:
    """Plain-language verdict lines from fits (``FitResult``s) and their ``GoodnessOfFit`` by family."""
    if not fits:
        return ["no model could be fitted to this trace"]
    order = sorted(fits, key=lambda f: f.aic)
    best = order[0]
    lines = []
    if len(order) > 1:
        gaps = ", ".join(f"{f.family} +{f.aic - best.aic:.1f}" for f in order[1:])
        lines.append(f"AIC prefers {best.family} (ΔAIC: {gaps})")
    ok = [f for f in order if f.family in gofs and not gofs[f.family].rejected(alpha)]
    for f in order:
        g = gofs.get(f.family)
        if g is None:
            continue
        rej = g.rejected(alpha)
        ps = ", ".join(f"{k.split('_')[0]} p={t.p_value:.3f}" for k, t in g.tests.items() if np.isfinite(t.p_value))
        lines.append(f"{f.family}: {'rejected (' + ', '.join(rej) + ')' if rej else 'not rejected'} at α={alpha:g} "
                     f"({ps})")
    if ok:
        choice = ok[0]
        why = "the lowest AIC" if choice is best else "the lowest AIC among the models the tests do not reject"
        lines.append(f"verdict: {choice.family} ({why}): {choice.to_netem(digits=4)}")
    else:
        lines.append(f"verdict: every fitted model is rejected at α={alpha:g}; {best.family} is the closest by AIC, "
                     "but the trace has structure none of these models has (replay it with model: trace)")
    return lines
