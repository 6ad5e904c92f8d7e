"""The statistics behind vqsim's paired verdicts: clustered t-intervals, Holm / BH corrections, power.

Pure numpy + scipy, vectorised over leading axes, so a simulation can check
them over thousands of repetitions at once (``tests/experiments/test_paired.py``).

**Unit of the interval.** A paired difference ``d[i, s]`` (image i, seed s)
shares the image's content with every other seed of the same image, so the
seeds of one image are correlated, not independent samples.  With
``unit="image"`` (the default everywhere) the seeds are averaged within each
image first and the image means are the samples:

    x_i = (1/S_i) Σ_s d[i, s],    x̄ = (1/I) Σ_i x_i,    s_x² = Σ_i (x_i − x̄)² / (I − 1)
    interval  x̄ ± t_{(1+level)/2, I−1} · s_x / √I,     p = 2 · P(T_{I−1} > |x̄| / (s_x/√I))

For the model ``d[i, s] = Δ + b_i + e_{i,s}`` (image effect b_i ~ N(0, σ_b²),
seed noise e ~ N(0, σ_e²)) and equal S_i = S the x_i are i.i.d.
N(Δ, σ_b² + σ_e²/S), so the interval is exact.  ``unit="trial"`` is the old
interval that treats all I·S trials as independent (n = I·S, df = I·S − 1);
it is too narrow whenever σ_b > 0 (its variance estimate misses the factor
1 + (S − 1)·ρ, ρ = σ_b² / (σ_b² + σ_e²)).

**Many comparisons.** :func:`adjust_pvalues` over the m comparisons of one
table or figure (p_(1) ≤ … ≤ p_(m) sorted):

* Holm (family-wise error ≤ α under any dependence):
  p̃_(j) = min(1, max_{k ≤ j} (m − k + 1) · p_(k))
* Benjamini–Hochberg (false discovery rate ≤ α for independent or positively dependent tests):
  p̃_(j) = min(1, min_{k ≥ j} m / k · p_(k))

A comparison is significant when p̃ < α = 1 − level.

**How much data.** Power of the two-sided one-sample t-test with n units,
per-unit standard deviation σ and true difference δ (noncentral t,
nc = δ·√n/σ, df = n − 1, c = t_{1−α/2, n−1}):

    power(δ, n, σ) = P(T'_{n−1, nc} > c) + P(T'_{n−1, nc} < −c)

:func:`min_detectable` solves power = 0.8 for δ at the sweep's n;
:func:`units_needed` gives the smallest n ≥ 2 reaching 0.8 for a given δ
(σ: the observed standard deviation of the image means, i.e. at the sweep's
number of seeds per image).
"""
from __future__ import annotations

import math

import numpy as np

from codec.errors import ParameterError

__all__ = ["mean_ci", "UNITS", "CORRECTIONS", "MIN_IMAGES", "POWER", "check_level", "check_unit", "check_correction",
           "t_stats", "paired_stats", "adjust_pvalues", "power", "min_detectable", "units_needed"]

#: what an interval treats as its independent samples: images (seeds averaged first) or single trials
UNITS = ("image", "trial")
#: corrections for many comparisons: Holm (family-wise error), Benjamini–Hochberg (false discovery rate), none
CORRECTIONS = ("holm", "bh", "none")
#: fewer images than this behind an interval draw a warning (the t quantile and s are both unstable)
MIN_IMAGES = 5
#: target power of the sample-size statements
POWER = 0.8
#: the largest number of units :func:`units_needed` searches (beyond it: inf)
MAX_UNITS = 10_000_000


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the Student t confidence interval of the mean.

    half-width = t_{(1+level)/2, n−1} · s / √n with the sample std s (ddof 1);
    n = 1 gives a zero-width interval.  NaN / inf values are dropped.  (Here, below the plots, so that
    the statistics never import the plotting package; ``experiments.plots.mean_ci`` is this function.)
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, m, m, 1
    h = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return m, m - h, m + h, n


def check_level(level: float) -> float:
    """``level`` as a float in (0, 1), else ParameterError."""
    try:
        v = float(level)
    except (TypeError, ValueError):
        raise ParameterError(f"confidence level must be a number in (0, 1), got {level!r}") from None
    if not 0.0 < v < 1.0:
        raise ParameterError(f"confidence level must be in (0, 1), got {level!r}")
    return v


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        raise ParameterError(f"interval unit must be one of {', '.join(UNITS)}, got {unit!r}")
    return unit


def check_correction(correction: str) -> str:
    if correction not in CORRECTIONS:
        raise ParameterError(f"multiple-comparison correction must be one of {', '.join(CORRECTIONS)}, "
                             f"got {correction!r}")
    return correction


def t_stats(x: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Student-t mean, interval and two-sided p-value (H0: mean 0) of the samples along the last axis.

    Non-finite entries are ignored.  Returns arrays over the leading axes: ``mean``, ``lo``, ``hi``,
    ``p``, ``n`` (finite samples) and ``sd`` (ddof 1).  With n < 2 the interval and p are nan (one
    sample is never significant); with sd = 0 the interval has zero width and p is 0 (mean ≠ 0) or 1.
    """
    from scipy import stats

    level = check_level(level)
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    n = ok.sum(axis=-1)
    xs = np.where(ok, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=-1) / n
        ss = np.where(ok, (x - mean[..., None]) ** 2, 0.0).sum(axis=-1)
        sd = np.sqrt(ss / (n - 1))
        se = sd / np.sqrt(n)
        df = np.where(n >= 2, n - 1, 1)
        h = stats.t.ppf(0.5 + level / 2, df) * se
        tstat = np.abs(mean) / se
        p = np.where(se > 0, 2.0 * stats.t.sf(tstat, df), np.where(mean != 0, 0.0, 1.0))
    few = n < 2
    nan = np.nan
    return {"mean": np.where(n >= 1, mean, nan), "lo": np.where(few, nan, mean - h),
            "hi": np.where(few, nan, mean + h), "p": np.where(few, nan, p), "n": n,
            "sd": np.where(few, nan, sd)}


def paired_stats(d: np.ndarray, unit: str = "image", level: float = 0.95) -> dict[str, np.ndarray]:
    """:func:`t_stats` of per-trial values ``d`` shaped ``(..., images, seeds)`` (nan: no trial).

    ``unit="image"``: the seeds of each image are averaged first (images without a trial are
    dropped) and the interval is over the image means; ``unit="trial"``: over every trial.
    Adds ``n_images`` (images with ≥ 1 trial) and ``n_trials`` to the result.
    """
    check_unit(unit)
    d = np.asarray(d, dtype=np.float64)
    if d.ndim < 2:
        raise ParameterError(f"paired values must be shaped (..., images, seeds), got shape {d.shape}")
    ok = np.isfinite(d)
    cnt = ok.sum(axis=-1)
    if unit == "image":
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.where(ok, d, 0.0).sum(axis=-1) / cnt       # nan for images without a trial
    else:
        x = d.reshape(*d.shape[:-2], -1)
    out = t_stats(x, level)
    out["n_images"] = (cnt > 0).sum(axis=-1)
    out["n_trials"] = cnt.sum(axis=-1)
    return out


def adjust_pvalues(p: np.ndarray, correction: str = "holm") -> np.ndarray:
    """Adjusted p-values over the last axis (one family per row); nan entries are not in the family.

    Holm: p̃_(j) = min(1, max_{k≤j} (m−k+1)·p_(k)); Benjamini–Hochberg ("bh"): p̃_(j) = min(1, min_{k≥j} m/k·p_(k));
    "none": p unchanged.  m counts the finite p of the row.
    """
    check_correction(correction)
    p = np.asarray(p, dtype=np.float64)
    if correction == "none" or p.size == 0:
        return p.copy()
    if np.any(p[np.isfinite(p)] < 0) or np.any(p[np.isfinite(p)] > 1):
        raise ParameterError("p-values must lie in [0, 1]")
    ok = np.isfinite(p)
    m = ok.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(ok, p, np.inf), axis=-1, kind="stable")
    ps = np.take_along_axis(np.where(ok, p, np.inf), order, axis=-1)
    j = np.arange(1, p.shape[-1] + 1)                         # rank (1-based) in the sorted row
    with np.errstate(invalid="ignore"):
        if correction == "holm":
            adj = np.maximum.accumulate(np.where(j <= m, (m - j + 1) * ps, np.inf), axis=-1)
        else:
            adj = np.flip(np.minimum.accumulate(np.flip(np.where(j <= m, m / j * ps, np.inf), -1), axis=-1), -1)
    adj = np.minimum(adj, 1.0)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return np.where(ok, out, np.nan)


def power(delta, n, sd, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided one-sample t-test (noncentral t, see the module docstring); arrays broadcast."""
    from scipy import stats

    n = np.asarray(n, dtype=np.float64)
    df = np.maximum(n - 1.0, 1.0)
    c = stats.t.ppf(1.0 - alpha / 2.0, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        nc = np.abs(np.asarray(delta, dtype=np.float64)) * np.sqrt(n) / np.asarray(sd, dtype=np.float64)
    nc = np.where(np.isnan(nc), 0.0, nc)                      # 0/0: no difference, no spread
    big = nc > 1e6
    ncs = np.where(big, 0.0, nc)
    with np.errstate(invalid="ignore"):
        pw = stats.nct.sf(c, df, ncs) + stats.nct.cdf(-c, df, ncs)
    # scipy's nct returns nan far in the tail (large nc); the normal approximation is exact enough there
    pw = np.where(np.isfinite(pw), pw, stats.norm.sf(c - ncs) + stats.norm.cdf(-c - ncs))
    return np.where(big, 1.0, np.where(n >= 2, np.clip(pw, 0.0, 1.0), np.nan))


def min_detectable(n, sd, alpha: float = 0.05, target: float = POWER) -> np.ndarray:
    """The smallest |δ| whose two-sided t-test with ``n`` units and spread ``sd`` has power ``target``.

    Solved by bisection on the effect size δ/sd (power rises with it); nan where n < 2 or sd is nan.
    """
    n = np.asarray(n, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    n, sd = np.broadcast_arrays(n, sd)
    valid = (n >= 2) & np.isfinite(sd)
    nn = np.where(valid, n, 2.0)
    lo = np.zeros(n.shape)
    hi = np.full(n.shape, 1.0)
    for _ in range(200):                                       # grow hi until it has the power
        short = power(hi, nn, 1.0, alpha) < target
        if not short.any():
            break
        hi = np.where(short, hi * 2.0, hi)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        ok = power(mid, nn, 1.0, alpha) >= target
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return np.where(valid, hi * sd, np.nan)


def units_needed(delta: float, sd, alpha: float = 0.05, target: float = POWER) -> np.ndarray:
    """The smallest n ≥ 2 whose two-sided t-test detects |δ| = ``delta`` with power ``target`` (spread ``sd``).

    Integer bisection (power rises with n) up to :data:`MAX_UNITS`; inf beyond it, nan where sd is nan.
    """
    try:
        delta = float(delta)
    except (TypeError, ValueError):
        raise ParameterError(f"difference to detect must be a positive number, got {delta!r}") from None
    if not (math.isfinite(delta) and delta > 0):
        raise ParameterError(f"difference to detect must be a positive number, got {delta!r}")
    sd = np.asarray(sd, dtype=np.float64)
    valid = np.isfinite(sd)
    s = np.where(valid, sd, 1.0)
    lo = np.full(sd.shape, 1.0)                               # power(lo) < target (n = 1 has no test)
    hi = np.full(sd.shape, float(MAX_UNITS))
    reach = power(delta, hi, s, alpha) >= target
    enough = power(delta, 2.0, s, alpha) >= target
    for _ in range(int(math.ceil(math.log2(MAX_UNITS))) + 1):
        mid = np.floor((lo + hi) / 2.0)
        ok = power(delta, np.maximum(mid, 2.0), s, alpha) >= target
        hi = np.where(ok & (mid > lo), mid, hi)
        lo = np.where(ok, lo, mid)
    n = np.where(enough, 2.0, hi)
    return np.where(~valid, np.nan, np.where(reach, n, np.inf))
