"""Likelihood and Baum-Welch E-step of a hidden-Markov loss model on a 0/1 trace, run by run (numpy only).

Model (the one of :mod:`channels._markov`): a hidden chain ``s_t`` with
row-stochastic ``P`` (K×K), packet t lost with probability ``e[s_t]``
independently given the states, packet 0's state drawn from ``v``.  With
``b(1) = e``, ``b(0) = 1 - e`` and ``D_o = diag(b(o))`` the likelihood of an
observed trace ``o_0 … o_{n-1}`` is::

    Λ = v D_{o_0} · Π_{t=1}^{n-1} M_{o_t} · 1,        M_o = P D_o

A trace of n packets has only as many *runs* (maximal blocks of equal
symbols) as it has loss bursts and gaps, so the product is taken run by run:
a run of m packets of symbol u is the matrix power ``M_u^m``, computed for
each distinct (u, m) by binary powering of ``M_u / ρ(M_u)`` (ρ the spectral
radius: the powers stay O(1); ``m·log ρ`` goes to the log-likelihood).  The
chain of run matrices is reduced pairwise (log-likelihood) or scanned
(Hillis-Steele prefix and suffix products, forward and backward vectors),
every partial product renormalised with its log-scale kept.

E-step by the Fisher identity.  Λ is a polynomial in the entries of ``P``
and ``b``, each path weighted by the product of the entries it uses, so the
posterior expected number of transitions i→j is ``P_ij ∂logΛ/∂P_ij`` and of
symbols o emitted from j is ``b_j(o) ∂logΛ/∂b_j(o)``.  For run k with
forward vector ``f`` (before the run) and backward vector ``g`` (after it),
``∂logΛ/∂R_k = G_k = f gᵀ / (f R_k g)``; the derivative of ``M^m`` is
``Σ_{j<m} M^j dM M^{m-1-j}``, so with ``A = Mᵀ``::

    H = Σ_{j=0}^{m-1} A^j G A^{m-1-j}  = upper-right block of [[A, G], [0, A]]^m
    E[# i→j in the run] = (M ∘ H)_ij,     E[# u emitted from j] = Σ_i (M ∘ H)_ij

H is linear in G, so the G of all runs with the same (u, m) are summed first
and one block power per distinct (u, m) suffices.  Packet 0 adds its
posterior state law ``γ_0 ∝ v ∘ b(o_0) ∘ g_0``.  (Baum 1970; the Fisher
identity for HMMs: Cappé, Moulines, Rydén, *Inference in Hidden Markov
Models*, 2005, §10.1.)  Sanity: the transition counts sum to n - 1, the
emission counts to n.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codec.errors import ParameterError

from ._intervals import expit, logit
from ._markov import stationary_distribution


@dataclass(frozen=True)
class Runs:
    """A 0/1 trace as runs: packet 0's symbol, then blocks (symbol, length) covering packets 1..n-1.

    ``group`` maps each block to its distinct (symbol, length) pair ``pairs[group[k]]``.
    """

    n: int
    first: int
    symbols: np.ndarray   # int8 (N,)
    lengths: np.ndarray   # int64 (N,)
    pairs: np.ndarray     # int64 (G, 2): distinct (symbol, length)
    group: np.ndarray     # int64 (N,)


def compress(losses: np.ndarray) -> Runs:
    """Run-length form of a bool loss trace (True = lost), at least one packet."""
    x = np.asarray(losses, dtype=bool)
    if x.ndim != 1 or x.size == 0:
        raise ParameterError(f"a loss trace must be a non-empty 1-D sequence, got shape {x.shape}")
    rest = x[1:]
    if rest.size:
        change = np.flatnonzero(np.diff(rest.view(np.int8))) + 1
        starts = np.concatenate(([0], change))
        lengths = np.diff(np.concatenate((starts, [rest.size]))).astype(np.int64)
        symbols = rest[starts].astype(np.int8)
    else:
        lengths = np.zeros(0, dtype=np.int64)
        symbols = np.zeros(0, dtype=np.int8)
    key = symbols.astype(np.int64) + 2 * lengths
    uniq, group = np.unique(key, return_inverse=True)
    pairs = np.stack([uniq % 2, uniq // 2], axis=1)
    return Runs(int(x.size), int(x[0]), symbols, lengths, pairs, group.astype(np.int64))


def _emission(e: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - e, e])  # b[o, j]


def _normalised_run_matrices(P: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M_u / ρ_u, log ρ_u)`` for u = 0, 1 (ρ = spectral radius, 1 where it is 0)."""
    b = _emission(e)
    M = P[None, :, :] * b[:, None, :]
    rho = np.array([np.max(np.abs(np.linalg.eigvals(M[u]))) for u in (0, 1)])
    rho = np.where(rho > 1e-300, rho, 1.0)
    return M / rho[:, None, None], np.log(rho)


def _batched_power(base: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """``base[g] ** exps[g]`` for a stack of square matrices (binary powering, all at once)."""
    G, K, _ = base.shape
    out = np.broadcast_to(np.eye(K), (G, K, K)).copy()
    b = base.copy()
    e = exps.astype(np.int64).copy()
    while np.any(e > 0):
        odd = (e & 1).astype(bool)
        if odd.any():
            out[odd] = out[odd] @ b[odd]
        e >>= 1
        live = e > 0
        if live.any():
            b[live] = b[live] @ b[live]
    return out


def _run_powers(Mn: np.ndarray, runs: Runs) -> np.ndarray:
    """Normalised run matrices ``(M_u/ρ_u)^m`` per distinct (u, m) pair, shape (G, K, K)."""
    u, m = runs.pairs[:, 0], runs.pairs[:, 1]
    return _batched_power(Mn[u], m)


def _rescale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Divide each (nonnegative) matrix of a stack by its entry sum; return it and the log-scales."""
    s = X.reshape(X.shape[0], -1).sum(axis=1)
    s = np.where(s > 0, s, 1.0)
    return X / s[:, None, None], np.log(s)


def _reduce(X: np.ndarray) -> tuple[np.ndarray, float]:
    """Ordered product X[0] @ X[1] @ … (renormalised) and its total log-scale."""
    logs = 0.0
    while X.shape[0] > 1:
        if X.shape[0] % 2:
            X = np.concatenate([X, np.eye(X.shape[1])[None]])
        X, ls = _rescale(X[0::2] @ X[1::2])
        logs += float(ls.sum())
    return X[0], logs


def _scan(X: np.ndarray, reverse: bool) -> np.ndarray:
    """Renormalised prefix products X[0]…X[k] (or suffix products X[k]…X[N-1] with ``reverse``).

    Two levels of √N: products within chunks (a loop over the position, vectorised over the chunks),
    then the running product of the chunk totals carried into each chunk.
    """
    N, K, _ = X.shape
    if reverse:
        X = X[::-1]
    c = max(1, int(np.ceil(np.sqrt(N))))
    Y = np.broadcast_to(np.eye(K), (c * c, K, K)).copy()
    Y[:N] = X
    Y = Y.reshape(c, c, K, K)  # [chunk, position]
    acc = Y[:, 0].copy()
    for j in range(1, c):
        acc = Y[:, j] @ acc if reverse else acc @ Y[:, j]
        acc, _ = _rescale(acc)
        Y[:, j] = acc
    carry = np.eye(K)
    for i in range(c):
        tot = Y[i, -1]
        Y[i] = Y[i] @ carry if reverse else carry @ Y[i]
        Y[i], _ = _rescale(Y[i])
        carry = tot @ carry if reverse else carry @ tot
        carry = carry / max(float(carry.sum()), 1e-300)
    out = Y.reshape(c * c, K, K)[:N]
    return out[::-1] if reverse else out


def log_likelihood(P: np.ndarray, e: np.ndarray, v: np.ndarray, runs: Runs) -> float:
    """``log Λ`` of the trace (``-inf`` if the model cannot produce it)."""
    b = _emission(e)
    f0 = v * b[runs.first]
    s0 = f0.sum()
    if s0 <= 0:
        return -np.inf
    ll = float(np.log(s0))
    if runs.symbols.size == 0:
        return ll
    Mn, lrho = _normalised_run_matrices(P, e)
    R = _run_powers(Mn, runs)
    ll += float((runs.lengths * lrho[runs.symbols]).sum())
    prod, logs = _reduce(R[runs.group])
    tail = float((f0 / s0) @ prod.sum(axis=1))
    return ll + logs + np.log(tail) if tail > 0 else -np.inf


@dataclass(frozen=True)
class EStep:
    """Posterior expected counts: ``xi[i, j]`` transitions i→j, ``emit[o, j]`` symbols o from state j, ``gamma0``."""

    log_likelihood: float
    xi: np.ndarray
    emit: np.ndarray
    gamma0: np.ndarray


def e_step(P: np.ndarray, e: np.ndarray, v: np.ndarray, runs: Runs) -> EStep:
    """One Baum-Welch E-step, run by run (module docstring).  Requires Λ > 0."""
    K = P.shape[0]
    b = _emission(e)
    f0 = v * b[runs.first]
    ll = float(np.log(f0.sum()))
    f0 = f0 / f0.sum()
    xi = np.zeros((K, K))
    emit = np.zeros((2, K))
    N = runs.symbols.size
    if N == 0:
        emit[runs.first] += f0
        return EStep(ll, xi, emit, f0)
    Mn, lrho = _normalised_run_matrices(P, e)
    R = _run_powers(Mn, runs)
    Rk = R[runs.group]                                      # (N, K, K)
    pre = _scan(Rk, reverse=False)                          # R_0 … R_k
    suf = _scan(Rk, reverse=True)                           # R_k … R_{N-1}
    f = np.empty((N, K))
    f[0] = f0
    f[1:] = f0 @ pre[:-1]                                   # forward vector before block k
    f /= f.sum(axis=1, keepdims=True)
    g = np.ones((N, K))
    g[:-1] = suf[1:].sum(axis=2)                            # backward vector after block k
    g /= g.max(axis=1, keepdims=True)
    denom = np.einsum("ni,nij,nj->n", f, Rk, g)
    if np.any(denom <= 0) or not np.all(np.isfinite(denom)):
        raise ParameterError("e_step: the model gives the trace zero probability")
    Gk = f[:, :, None] * g[:, None, :] / denom[:, None, None]
    Gsum = np.zeros((runs.pairs.shape[0], K, K))
    np.add.at(Gsum, runs.group, Gk)
    # H per distinct (u, m): upper-right block of [[A, G], [0, A]]^m, A = (M_u/ρ_u)ᵀ
    u, m = runs.pairs[:, 0], runs.pairs[:, 1]
    A = np.transpose(Mn[u], (0, 2, 1))
    W = np.zeros((u.size, 2 * K, 2 * K))
    W[:, :K, :K] = A
    W[:, K:, K:] = A
    W[:, :K, K:] = Gsum
    H = _batched_power(W, m)[:, :K, K:]
    C = Mn[u] * H                                           # expected transition counts per pair
    xi = C.sum(axis=0)
    for sym in (0, 1):
        emit[sym] = C[u == sym].sum(axis=(0, 1))
    # packet 0: γ_0 ∝ f0 ∘ (R_0 … R_{N-1} 1)
    g0 = f0 * suf[0].sum(axis=1)
    gamma0 = g0 / g0.sum()
    emit[runs.first] += gamma0
    ll = log_likelihood(P, e, v, runs)
    return EStep(ll, xi, emit, gamma0)


# --------------------------------------------------------------------------- EM loops
@dataclass
class EMRun:
    P: np.ndarray
    e: np.ndarray
    ll: float
    iterations: int
    converged: bool


def _em_step(P: np.ndarray, e: np.ndarray, runs: Runs, update_e: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """One EM step: (P', e', log-likelihood at the input (P, e))."""
    es = e_step(P, e, stationary_distribution(P), runs)
    rows = es.xi.sum(axis=1, keepdims=True)
    P = np.where(rows > 0, es.xi / np.where(rows > 0, rows, 1.0), P)
    if update_e:
        tot = es.emit.sum(axis=0)
        e = np.where(tot > 0, es.emit[1] / np.where(tot > 0, tot, 1.0), e)
    return P, e, es.log_likelihood


def em(P: np.ndarray, e: np.ndarray, runs: Runs, update_e: bool, max_iter: int, tol: float) -> EMRun:
    """Plain EM until one step gains less than ``tol·|log L|`` (relative) or ``max_iter`` steps."""
    ll_prev = -math.inf
    for it in range(1, max_iter + 1):
        P_new, e_new, ll = _em_step(P, e, runs, update_e)
        if ll - ll_prev < tol * abs(ll):
            return EMRun(P, e, ll, it, True)
        P, e, ll_prev = P_new, e_new, ll
    return EMRun(P, e, log_likelihood(P, e, stationary_distribution(P), runs), max_iter, False)


def _ge_vec(P: np.ndarray, e: np.ndarray) -> np.ndarray:
    v: np.ndarray = np.clip(np.array([P[0, 1], P[1, 0], e[0], e[1]]), 1e-12, 1 - 1e-12)
    return logit(v)


def _ge_mats(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r, eg, eb = (float(v) for v in expit(t))
    return np.array([[1 - p, p], [r, 1 - r]]), np.array([eg, eb])


def em_ge(P: np.ndarray, e: np.ndarray, runs: Runs, max_iter: int, tol: float) -> EMRun:
    """EM for the two-state chain, accelerated by SQUAREM (Varadhan & Roland 2008, scheme S3) in logit
    coordinates: two EM steps, an extrapolation along them, one EM step from there; the plain EM point is
    kept whenever the extrapolated one has a lower likelihood, so the likelihood never decreases.
    ``max_iter`` counts E-steps."""
    t0 = _ge_vec(P, e)
    ll_prev = -math.inf
    steps = 0
    while steps < max_iter:
        P1, e1, ll0 = _em_step(*_ge_mats(t0), runs, True)
        P2, e2, ll1 = _em_step(P1, e1, runs, True)
        steps += 2
        if ll0 - ll_prev < tol * abs(ll0):
            return EMRun(*_ge_mats(t0), ll0, steps, True)
        t1, t2 = _ge_vec(P1, e1), _ge_vec(P2, e2)
        r, v = t1 - t0, t2 - 2 * t1 + t0
        nv = float(np.linalg.norm(v))
        alpha = min(-1.0, -float(np.linalg.norm(r)) / nv) if nv > 0 else -1.0
        tx = np.clip(t0 - 2 * alpha * r + alpha * alpha * v, -30, 30)
        P3, e3, llx = _em_step(*_ge_mats(tx), runs, True)
        steps += 1
        if not np.isfinite(llx) or llx < ll1:  # extrapolation overshot: keep the plain EM point
            P3, e3, _ = _em_step(P2, e2, runs, True)
            steps += 1
        ll_prev = max(ll0, ll1)
        t0 = _ge_vec(P3, e3)
    P, e = _ge_mats(t0)
    return EMRun(P, e, log_likelihood(P, e, stationary_distribution(P), runs), steps, False)
