"""Confidence intervals of fitted loss models (numpy/scipy only): Wilson, observed information, likelihood ratio.

Used by :mod:`channels.fit` (the module docstring there says which estimator gets which interval).

* :func:`wilson`: the Wilson score interval of a binomial proportion x/n.
* :func:`observed_information`: covariance of θ̂ from the numerical Hessian of the exact log-likelihood
  (central differences, step 1e-3) in unconstrained (logit / log-ratio) coordinates; a coordinate whose
  probability is within ~2e-5 of 0 or 1 is held fixed, a flat direction of the likelihood gets infinite
  variance in the coordinates that load on it.
* :func:`boundary_interval`: the one-sided interval of a probability at a bound, where the log-likelihood
  (others held) stays within χ²₁(level)/2 of its maximum.
* :func:`ci_from_se`: a Wald interval on the logit (probabilities) or log (lengths) scale, mapped back,
  so intervals stay in range; :func:`derived_intervals`: the delta method for the loss rate and mean
  burst length.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .base import LossModel


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its interval (same units as the parameter: probabilities, or packets)."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


def wilson(x: float, n: float, level: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion x/n ([0, 1] when n = 0)."""
    if n <= 0:
        return 0.0, 1.0
    z = sps.norm.ppf(0.5 + level / 2)
    ph = x / n
    c = (ph + z * z / (2 * n)) / (1 + z * z / n)
    w = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, c - w), min(1.0, c + w)


@overload
def logit(p: float) -> float: ...
@overload
def logit(p: np.ndarray) -> np.ndarray: ...
def logit(p: np.ndarray | float) -> np.ndarray | float:
    """log(p / (1 − p)), elementwise; p clipped to [1e-300, 1 − 1e-16]."""
    p = np.clip(p, 1e-300, 1 - 1e-16)
    out: np.ndarray | float = np.log(p) - np.log1p(-p)
    return out


@overload
def expit(t: float) -> float: ...
@overload
def expit(t: np.ndarray) -> np.ndarray: ...
def expit(t: np.ndarray | float) -> np.ndarray | float:
    """1 / (1 + e^−t), elementwise (the inverse of ``logit``)."""
    out: np.ndarray | float = 1.0 / (1.0 + np.exp(-np.asarray(t, dtype=float)))
    return out


def ci_from_se(value: float, se: float, level: float, kind: str) -> Estimate:
    """Wald interval on the logit (probabilities) or log (lengths ≥ 1) scale, mapped back."""
    z = sps.norm.ppf(0.5 + level / 2)
    if not np.isfinite(se):
        return Estimate(value, 0.0 if kind == "prob" else 1.0, 1.0 if kind == "prob" else math.inf)
    if kind == "prob":
        t = logit(value)
        return Estimate(value, float(expit(t - z * se)), float(expit(t + z * se)))
    t = math.log(value)
    return Estimate(value, math.exp(t - z * se), math.exp(t + z * se))


def derived_intervals(model: LossModel, draws: Callable[[np.ndarray], LossModel], theta: np.ndarray,
                         cov: np.ndarray, level: float) -> dict[str, Estimate]:
    """Delta-method intervals of loss rate (logit scale) and mean burst (log scale) from θ's covariance."""
    out = {}
    measures: tuple[tuple[str, Callable[[LossModel], float], str], ...] = (
        ("loss_rate", lambda m: m.stationary_loss_rate, "prob"),
        ("mean_burst", lambda m: m.mean_burst_length, "len"))
    for name, fn, kind in measures:
        v = float(fn(model))
        if not (0 < v < 1 if kind == "prob" else 1 <= v < math.inf):
            out[name] = Estimate(v, v, v)
            continue
        tf: Callable[[float], float] = logit if kind == "prob" else math.log
        grad = np.zeros(theta.size)
        for i in range(theta.size):
            h = 1e-5 * max(1.0, abs(theta[i]))
            up, dn = theta.copy(), theta.copy()
            up[i] += h
            dn[i] -= h
            grad[i] = (tf(fn(draws(up))) - tf(fn(draws(dn)))) / (2 * h)
        var = float(grad @ cov @ grad)
        out[name] = ci_from_se(v, math.sqrt(var) if var >= 0 and np.all(np.isfinite(cov)) else math.inf, level, kind)
    return out


def observed_information(ll: Callable[[np.ndarray], float], theta: np.ndarray, bound: float = 11.0
                          ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Covariance of θ̂ from the numerical Hessian of ``ll``.

    Returns (cov, pinv, fixed): coordinates with |θ| > bound (a probability within ~2e-5 of 0 or 1) are
    held fixed (listed in ``fixed``); ``cov`` is inf for them and for coordinates along a flat direction of
    the likelihood; ``pinv`` is the pseudo-inverse over the identified directions (0 elsewhere), which is
    what the delta method needs for quantities the flat direction does not change (e.g. the loss rate).
    """
    d = theta.size
    free = [i for i in range(d) if abs(theta[i]) <= bound]
    fixed = [i for i in range(d) if i not in free]
    cov = np.full((d, d), np.nan)
    pinv = np.zeros((d, d))
    for i in fixed:
        cov[i, i] = math.inf
    if not free:
        return cov, pinv, fixed
    h = 1e-3
    f0 = ll(theta)
    Hm = np.zeros((len(free), len(free)))
    for a, i in enumerate(free):
        for b, j in enumerate(free[: a + 1]):
            if i == j:
                up, dn = theta.copy(), theta.copy()
                up[i] += h
                dn[i] -= h
                Hm[a, a] = (ll(up) - 2 * f0 + ll(dn)) / (h * h)
            else:
                vals = []
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    t = theta.copy()
                    t[i] += si * h
                    t[j] += sj * h
                    vals.append(si * sj * ll(t))
                Hm[a, b] = Hm[b, a] = sum(vals) / (4 * h * h)
    w, V = np.linalg.eigh(-Hm)                      # observed information of the free coordinates
    ok = w > 1e-8 * max(1.0, float(w.max()))
    sub = (V[:, ok] / w[ok]) @ V[:, ok].T             # pseudo-inverse on the identified directions
    flat = np.abs(V[:, ~ok]).max(axis=1) > 1e-3 if (~ok).any() else np.zeros(len(free), dtype=bool)
    for a, i in enumerate(free):
        for b, j in enumerate(free):
            cov[i, j] = math.inf if (flat[a] or flat[b]) else sub[a, b]
            pinv[i, j] = sub[a, b]
    return cov, pinv, fixed


def boundary_interval(
    ll: Callable[[np.ndarray], float], theta: np.ndarray, i: int, level: float
) -> tuple[float, float]:
    """One-sided interval of the probability ``expit(θ_i)`` at a bound: where ll (others held) drops by χ²/2."""
    drop = sps.chi2.ppf(level, 1) / 2
    f0 = ll(theta)
    at_zero = theta[i] < 0

    def g(p: float) -> float:
        t = theta.copy()
        t[i] = logit(p)
        return float(f0 - ll(t) - drop)

    edge = float(expit(theta[i]))
    far = 0.5
    if g(far) < 0:
        return (0.0, far) if at_zero else (far, 1.0)
    p = optimize.brentq(g, edge, far) if at_zero else optimize.brentq(g, far, edge)
    return (0.0, p) if at_zero else (p, 1.0)


def em_intervals(ll: Callable[[np.ndarray], float], theta: np.ndarray, names: list[str], level: float
                  ) -> tuple[dict[str, Estimate], np.ndarray, list[str]]:
    cov, pinv, fixed = observed_information(ll, theta)
    params, notes = {}, []
    for i, name in enumerate(names):
        v = float(expit(theta[i]))
        if i in fixed:
            lo, hi = boundary_interval(ll, theta, i, level)
            params[name] = Estimate(v, lo, hi)
            notes.append(f"{name} converged to a bound ({v:.3g}); its interval is one-sided (likelihood ratio)")
        else:
            se = math.sqrt(cov[i, i]) if np.isfinite(cov[i, i]) and cov[i, i] >= 0 else math.inf
            params[name] = ci_from_se(v, se, level, "prob")
            if not np.isfinite(se):
                notes.append(f"{name} is not identifiable from this trace (flat likelihood): interval [0, 1]")
    return params, pinv, notes
