"""Concealment of lost VQ indices.

``conceal(index_map, lost_mask, method, ...)`` replaces the indices marked
lost (``lost_mask`` True) by estimates.  Methods (``CONCEAL_METHODS``):

``ar`` / ``ar_naive`` — the paper's sliding-window autoregressive transformer
    (taming-transformers' sampling rule).  For a lost position (i, j) of an
    h×w map the s×s window (s = 16) starts at ``(i − local_i, j − local_j)``
    (:func:`window_origin`).  The window's tokens in raster order
    w[0 … n−1] are fed as ``[sos] + w[0 … n−2]`` (the unconditional model's
    start token first, value 0 as taming's ``SOSProvider``); the logits at
    sequence position t = local_i·s_w + local_j predict w[t], i.e. the model
    reads exactly the window tokens before the target.  Lost positions are
    filled in raster order and each estimate becomes context for later ones
    (``context="filled"``; with raster filling every token a causal model
    reads is final by then, so no [mask] token is ever read).
    ``context="mask"`` keeps lost positions as the [mask] token in every
    context instead (needs a model with a [mask] token, one parallel pass).
    Windows narrower than s (maps smaller than 16) use the whole dimension;
    token (r, c) of a window always gets position embedding r·s + c.
    Decoding: argmax, or sampling (temperature, top-k) by inverse CDF with one
    uniform number per lost index drawn up front in raster order from the
    seeded ``torch.Generator`` — so the draw a position gets does not depend
    on the order in which positions are computed.

    ``ar_naive`` runs one full window forward per lost index, in raster
    order.  ``ar`` gives the same answer faster: positions are grouped in
    dependency *waves* (wave(p) = 1 + max wave of the lost positions in p's
    window prefix) and each wave is one batched forward; a window shared by
    several lost positions (near the borders) keeps its key/value cache
    (:class:`codec.transformer.SlotKVCache`) so its tokens are computed
    once; sequences stop at the target (no wasted suffix) and the last
    block, ``ln_f`` and the head run only at target positions.  Results
    equal ``ar_naive`` exactly: where the top-2 logit margin (or, sampling,
    the distance of the uniform draw to a CDF bin edge) is below ``tie_tol``
    — where float rounding differences between the batched and the single
    forward could flip the choice — the position is recomputed with the
    naive single forward.

    Cost: with taming's rule every interior lost index has its own window
    (origin (i−8, j−8)), so no exact method can share work between them; the
    tokens to compute fall from 256 per lost index to ≈ the target's prefix
    (≈ 136 inside the map) and once per shared border window — 2.8–3.8×
    fewer on a 32×48 map at 10–40 % loss, which bounds the speed-up on a
    compute-bound CPU (a GPU also gains from the batching).  ``rule="tiled"``
    (not the paper's) takes windows from fixed 16×16 tiles at stride 8
    (:func:`ar_tile_origins`), so all lost indices of a tile share one cache:
    10–30× fewer tokens.

``bidir`` — MaskGIT-style: a bidirectional model (vocabulary K+1, [mask] = K)
    sees the window with all still-unknown positions as [mask] and predicts
    them all; the most confident fraction is kept (cosine schedule over
    ``steps`` steps), the rest re-predicted.  Maps up to s×s are one window;
    larger maps use overlapping s×s tiles at stride s/2, each position taking
    the prediction of the tile whose centre is nearest.

``ar_mean`` / ``bidir_mean`` — ``ar`` / ``bidir`` with ``estimate="mean"``:
    each lost index becomes the codeword nearest to the model's posterior-mean
    codeword Σ_k p_k e_k rather than its most probable one (the L2-optimal
    estimate in latent space; it hedges where the model is unsure, as
    ``latent_avg`` does, but with the model's context). Needs ``codebook``.

``mean`` — the codeword nearest (L2) to the mean codeword of the codebook.
``neighbor`` — copy the nearest received index (Euclidean grid distance,
    ``scipy.ndimage.distance_transform_edt`` feature transform).
``latent_avg`` — average the codewords of the known 4- (or 8-) neighbours,
    take the nearest codeword; holes fill inward ring by ring (a ring uses
    only positions known before it).
``none`` — leave lost indices as they are (or set ``fill_value``).

Baselines need ``codebook`` (K, D); model methods need ``model`` (a
:class:`codec.transformer.GPT` with vocabulary K or K+1).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import ParameterError
from .types import IndexMap, check_loss_mask

CONCEAL_METHODS = ("ar", "ar_naive", "ar_mean", "bidir", "bidir_mean", "mean", "neighbor", "latent_avg", "none")
#: model methods and the transformer kind each needs ("*_mean": the same model with estimate="mean")
MODEL_KIND = {"ar": "ar", "ar_naive": "ar", "ar_mean": "ar", "bidir": "bidir", "bidir_mean": "bidir"}
WINDOW = 16
ESTIMATES = ("mode", "mean")  # model methods: most probable codeword | nearest to the posterior-mean codeword


# --------------------------------------------------------------------------- windows
def _local(i: int, n: int, size: int) -> int:
    """Position of index i inside its window along one axis of length n (taming's rule)."""
    if n <= size:
        return i
    half = size // 2
    if i <= half:
        return i
    if n - i < half:
        return size - (n - i)
    return half


def window_origin(i: int, j: int, H: int, W: int, size: int = WINDOW) -> tuple[int, int, int, int]:
    """Window of a lost position (i, j) in an H×W index map: ``(top, left, local_i, local_j)``.

    taming-transformers' sliding-window rule (``scripts/sample_conditional.py``)
    for s = ``size`` (16), half = s // 2:

        local_i = i                if i ≤ half
                = s − (H − i)      if H − i < half
                = half             otherwise

    (same for j with W); the window covers rows ``top … top + s − 1`` with
    ``top = i − local_i`` and columns likewise, so it always lies inside the
    map.  A dimension not larger than s uses the whole dimension
    (``top = 0``, ``local_i = i``).
    """
    for name, v in (("H", H), ("W", W), ("size", size)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ParameterError(f"{name} must be a positive int, got {v!r}")
    if size < 2:
        raise ParameterError(f"size must be ≥ 2, got {size}")
    if not (0 <= i < H and 0 <= j < W):
        raise ParameterError(f"position ({i}, {j}) outside the {H}×{W} map")
    li, lj = _local(int(i), int(H), int(size)), _local(int(j), int(W), int(size))
    return int(i) - li, int(j) - lj, li, lj


def _window_origins(ii: np.ndarray, n: int, size: int) -> np.ndarray:
    """Vectorised ``_local`` along one axis: returns local offsets of positions ``ii``."""
    ii = np.asarray(ii, dtype=np.int64)
    if n <= size:
        return ii.copy()
    half = size // 2
    return np.where(ii <= half, ii, np.where(n - ii < half, size - (n - ii), half))


AR_WINDOW_RULES = ("taming", "tiled")


def _tile_starts(n: int, size: int) -> np.ndarray:
    """Start offsets of overlapping tiles of length ``size`` at stride size//2 covering [0, n)."""
    if n <= size:
        return np.array([0])
    stride = max(1, size // 2)
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return np.array(starts)


def _nearest_tile(ii: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """For each coordinate, the tile start whose centre (start + (size−1)/2) is nearest (ties → lower)."""
    centres = starts + (size - 1) / 2.0
    d = np.abs(np.asarray(ii)[:, None] - centres[None, :])
    return starts[d.argmin(1)]


def ar_tile_origins(ii: np.ndarray, jj: np.ndarray, H: int, W: int, size: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Window origins of the ``rule="tiled"`` AR variant (not the paper's rule).

    Windows come from a fixed set of s×s tiles at stride s/2
    (:func:`_tile_starts`), so many lost positions share a window and its
    key/value cache.  Rows: the tile starting lowest with the position still
    inside (most rows of context above: local_i ∈ [s/2, s) away from the top
    edge); columns: the tile whose centre is nearest.
    """
    rs = _tile_starts(H, size)
    ii = np.asarray(ii, dtype=np.int64)
    top = rs[np.searchsorted(rs, ii - size, side="right")]
    left = _nearest_tile(np.asarray(jj, dtype=np.int64), _tile_starts(W, size), size)
    return top, left


# --------------------------------------------------------------------------- helpers
def _import_torch():
    import torch

    return torch


def _as_torch_generator(rng):
    """torch.Generator as is; numpy Generator → a torch.Generator seeded from it; None → None."""
    torch = _import_torch()
    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, np.random.Generator):
        return torch.Generator().manual_seed(int(rng.integers(0, 2 ** 63 - 1)))
    raise TypeError(f"rng must be a torch.Generator, numpy.random.Generator or None, got {type(rng).__name__}")


def _check_codebook(codebook, K: int) -> np.ndarray:
    if codebook is None:
        raise ParameterError("this concealment method needs codebook= (K, D) codewords")
    cb = np.asarray(codebook, dtype=np.float64)
    if cb.ndim != 2 or cb.shape[0] != K:
        raise ParameterError(f"codebook must have shape ({K}, D) for codebook_size {K}, got {cb.shape}")
    if not np.isfinite(cb).all():
        raise ParameterError("codebook contains non-finite values")
    return cb


def nearest_codeword(vectors: np.ndarray, codebook: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """argmin_k ‖v − c_k‖² for each row v of ``vectors`` (n, D); ties → lowest k. Returns int64 (n,)."""
    v = np.asarray(vectors, dtype=np.float64)
    cb = np.asarray(codebook, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != cb.shape[1]:
        raise ParameterError(f"vectors must be (n, {cb.shape[1]}), got {v.shape}")
    c2 = (cb * cb).sum(1)
    out = np.empty(len(v), dtype=np.int64)
    for s in range(0, len(v), chunk):
        blk = v[s:s + chunk]
        d = c2[None, :] - 2.0 * blk @ cb.T  # ‖v‖² is constant per row
        out[s:s + chunk] = d.argmin(1)
    return out


@dataclass
class _Vocab:
    K: int
    mask: int | None  # id of the [mask] token (K) when the model has one


def _model_vocab(model, K: int, method: str, need_mask: bool = False, causal: bool | None = None) -> _Vocab:
    """Check that ``model`` fits a codebook of size K: vocab K (no [mask]) or K+1 ([mask] = K)."""
    if model is None:
        raise ParameterError(f"method {method!r} needs model= (a codec.transformer.GPT)")
    cfg = getattr(model, "config", None)
    V = getattr(cfg, "vocab_size", None)
    if V is None:
        raise TypeError(f"model must be a codec.transformer.GPT, got {type(model).__name__}")
    if V not in (K, K + 1):
        raise ParameterError(f"model vocab_size {V} does not fit codebook size {K} (expected {K} or {K + 1} with [mask])")
    mask = K if V == K + 1 else None
    if need_mask and mask is None:
        raise ParameterError(f"method {method!r} needs a model with a [mask] token (vocab_size {K + 1}), got {V}")
    if causal is not None and bool(cfg.causal) != causal:
        kind = "causal (autoregressive)" if causal else "bidirectional (causal=False)"
        raise ParameterError(f"method {method!r} needs a {kind} model")
    return _Vocab(K, mask)


def _pos_table(sh: int, sw: int, size: int) -> np.ndarray:
    """Position-embedding index of window token k (raster in sh×sw): (k // sw)·size + k % sw."""
    k = np.arange(sh * sw)
    return (k // sw) * size + (k % sw)


def _choose(logits, K: int, u, temperature: float, top_k: int | None, tie_tol: float, codebook=None):
    """Pick tokens from logits (n, V) restricted to the K codewords.

    Argmax when ``u`` is None (ties → lowest index); otherwise inverse-CDF
    sampling of softmax(logits / temperature) (top-k filtered) with the
    uniform numbers ``u`` (n,) float64.  With ``codebook`` (K, D) float64 and
    ``u`` None: the posterior-mean estimate, the codeword nearest (L2) to
    m = Σ_k p_k e_k with p = softmax(logits / temperature) (top-k filtered).
    Also returns ``unsafe`` (n,) bool: choices that a perturbation of the
    logits of order ``tie_tol`` could flip.
    """
    torch = _import_torch()
    lg = logits[:, :K].float()
    if codebook is not None and u is None:
        lg = lg / temperature
        if top_k is not None and top_k < K:
            kth = torch.topk(lg, top_k, dim=1).values[:, -1:]
            lg = lg.masked_fill(lg < kth, float("-inf"))
        cb = codebook.to(lg.device)
        m = torch.softmax(lg.double(), dim=1) @ cb                      # (n, D) expected codeword
        score = 2.0 * (m @ cb.t()) - (cb * cb).sum(dim=1)[None, :]        # −‖m − e_k‖² + ‖m‖²
        top = torch.topk(score, min(2, K), dim=1)
        tok = torch.argmax(score, dim=1)
        margin = top.values[:, 0] - top.values[:, -1]
        unsafe = margin <= tie_tol * torch.clamp(top.values[:, 0].abs(), min=1.0)
        return tok, unsafe
    if u is None:
        top = torch.topk(lg, min(2, K), dim=1)
        tok = torch.argmax(lg, dim=1)
        margin = top.values[:, 0] - top.values[:, -1]
        unsafe = margin <= tie_tol * torch.clamp(top.values[:, 0].abs(), min=1.0)
        return tok, unsafe
    lg = lg / temperature
    if top_k is not None and top_k < K:
        kth = torch.topk(lg, top_k, dim=1).values[:, -1:]
        lg = lg.masked_fill(lg < kth, float("-inf"))
    p = torch.softmax(lg.double(), dim=1)
    cdf = torch.cumsum(p, dim=1)
    x = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
    tok = torch.searchsorted(cdf, x, right=True).squeeze(1).clamp_(max=K - 1)
    hi = cdf.gather(1, tok[:, None]).squeeze(1)
    lo = torch.where(tok > 0, cdf.gather(1, (tok - 1).clamp(min=0)[:, None]).squeeze(1), torch.zeros_like(hi))
    x = x.squeeze(1)
    unsafe = torch.minimum(x - lo, hi - x) <= tie_tol
    return tok, unsafe


@dataclass
class _Decoding:
    sample: bool
    temperature: float
    top_k: int | None
    tie_tol: float
    codebook: Any = None   # float64 torch (K, D) for estimate="mean", else None

    @classmethod
    def make(cls, sample: bool, temperature: float, top_k: int | None, tie_tol: float, K: int,
             estimate: str = "mode", codebook=None) -> "_Decoding":
        if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
            raise ParameterError(f"temperature must be > 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ParameterError(f"top_k must be a positive int or None, got {top_k!r}")
        if not (isinstance(tie_tol, (int, float)) and 0 <= tie_tol < 1):
            raise ParameterError(f"tie_tol must be in [0, 1), got {tie_tol!r}")
        if estimate not in ESTIMATES:
            raise ParameterError(f"estimate must be one of {ESTIMATES}, got {estimate!r}")
        cb = None
        if estimate == "mean":
            if sample:
                raise ParameterError("estimate='mean' is a deterministic estimate; it cannot be combined with sample=True")
            torch = _import_torch()
            cb = torch.as_tensor(_check_codebook(codebook, K), dtype=torch.float64)
        return cls(bool(sample), float(temperature), None if top_k is None else min(int(top_k), K), float(tie_tol), cb)


# --------------------------------------------------------------------------- AR problem
class _ARProblem:
    """Everything both AR implementations share: windows, targets, context rules, draws."""

    def __init__(self, index_map: IndexMap, lost: np.ndarray, model, *, window: int, sos_token: int | None,
                 context: str, rule: str, dec: _Decoding, rng, method: str) -> None:
        torch = _import_torch()
        K = index_map.codebook_size
        self.vocab = _model_vocab(model, K, method, need_mask=(context == "mask"), causal=True)
        if context not in ("filled", "mask"):
            raise ParameterError(f"context must be 'filled' or 'mask', got {context!r}")
        if rule not in AR_WINDOW_RULES:
            raise ParameterError(f"rule must be one of {AR_WINDOW_RULES}, got {rule!r}")
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
            raise ParameterError(f"window must be an int ≥ 2, got {window!r}")
        self.model = model
        self.size = int(window)
        H, W = index_map.shape
        self.H, self.W = H, W
        self.sh, self.sw = min(H, self.size), min(W, self.size)
        self.n_win = self.sh * self.sw
        self.pos = _pos_table(self.sh, self.sw, self.size)
        if int(self.pos[-1]) >= model.config.block_size:
            raise ParameterError(f"model block_size {model.config.block_size} is too small for {self.sh}×{self.sw} windows "
                             f"(needs ≥ {int(self.pos[-1]) + 1}); use a smaller window=")
        if sos_token is None:
            sos_token = int(getattr(model, "sos_token", 0))
        if not 0 <= sos_token < model.config.vocab_size:
            raise ParameterError(f"sos_token must be in [0, {model.config.vocab_size}), got {sos_token}")
        self.sos = int(sos_token)
        self.context = context
        self.placeholder = self.vocab.mask if self.vocab.mask is not None else 0
        self.dec = dec
        self.device = next(model.parameters()).device
        # lost positions in raster order, their windows and target sequence positions
        ii, jj = np.nonzero(lost)
        self.ii, self.jj = ii.astype(np.int64), jj.astype(np.int64)
        self.n = len(ii)
        if rule == "taming":
            li = _window_origins(self.ii, H, self.size)
            lj = _window_origins(self.jj, W, self.size)
            self.top, self.left = self.ii - li, self.jj - lj
        else:
            self.top, self.left = ar_tile_origins(self.ii, self.jj, H, W, self.size)
            li, lj = self.ii - self.top, self.jj - self.left
        self.t = li * self.sw + lj
        self.rank = np.full((H, W), -1, dtype=np.int64)
        self.rank[ii, jj] = np.arange(self.n)
        # working grid: received indices; unknown positions = placeholder
        grid = index_map.indices.astype(np.int64)
        grid[lost] = self.placeholder if context == "filled" else self.vocab.mask
        self.grid = grid
        self.out = index_map.indices.astype(np.int64)  # final answer
        # one uniform draw per lost index, raster order (independent of compute order)
        if dec.sample:
            gen = _as_torch_generator(rng)
            if gen is None:
                raise ParameterError("sampling (sample=True) needs rng= (a torch or numpy Generator)")
            self.u = torch.rand(self.n, generator=gen, dtype=torch.float64)
        else:
            self.u = None

    # the window input sequence of origin (top, left) read from a grid: [sos] + w[:-1]
    def window_tokens(self, grid: np.ndarray, top: int, left: int) -> np.ndarray:
        w = grid[top:top + self.sh, left:left + self.sw].reshape(-1)
        seq = np.empty(self.n_win, dtype=np.int64)
        seq[0] = self.sos
        seq[1:] = w[:-1]
        return seq

    def naive_context(self, k: int) -> np.ndarray:
        """The window input the naive implementation feeds for lost index k (raster rank k)."""
        top, left = int(self.top[k]), int(self.left[k])
        if self.context == "mask":
            return self.window_tokens(self.grid, top, left)
        w = self.grid[top:top + self.sh, left:left + self.sw].copy()
        r = self.rank[top:top + self.sh, left:left + self.sw]
        w[r >= k] = self.placeholder  # not yet filled in raster order
        return self.window_tokens(w, 0, 0)

    def predict_naive(self, k: int):
        """One full forward of lost index k's window (batch 1); logits at the target. (V,)"""
        torch = _import_torch()
        seq = torch.from_numpy(self.naive_context(k)).to(self.device)[None]
        pos = torch.from_numpy(self.pos).to(self.device)
        logits = self.model(seq, pos=pos)  # full window, every position, default causal mask
        return logits[0, int(self.t[k])]

    def choose(self, logits, ks: np.ndarray):
        u = None if self.u is None else self.u[_torch_index(ks)]
        return _choose(logits, self.vocab.K, u, self.dec.temperature, self.dec.top_k, self.dec.tie_tol, self.dec.codebook)

    def commit(self, ks: np.ndarray, toks: np.ndarray) -> None:
        self.out[self.ii[ks], self.jj[ks]] = toks
        if self.context == "filled":
            self.grid[self.ii[ks], self.jj[ks]] = toks


def _torch_index(ks: np.ndarray):
    torch = _import_torch()
    return torch.from_numpy(np.asarray(ks, dtype=np.int64))


def _ar_naive(prob: _ARProblem) -> tuple[np.ndarray, dict]:
    for k in range(prob.n):
        logits = prob.predict_naive(k)[None]
        tok, _ = prob.choose(logits, np.array([k]))
        prob.commit(np.array([k]), tok.cpu().numpy())
    return prob.out, {"forwards": prob.n, "waves": prob.n}


def dependency_waves(prob: _ARProblem) -> np.ndarray:
    """wave[k] = 1 + max wave of lost positions in k's window prefix (0 if none); (n,) int64.

    The window prefix of target (i, j) in window (top, left) is rows
    top … i−1 (all window columns) plus row i, columns left … j−1: exactly the
    tokens a causal model reads before predicting (i, j).
    """
    if prob.context == "mask":
        return np.zeros(prob.n, dtype=np.int64)
    wave = np.full((prob.H, prob.W), -1, dtype=np.int64)
    out = np.empty(prob.n, dtype=np.int64)
    sw = prob.sw
    for k in range(prob.n):
        i, j, top, left = int(prob.ii[k]), int(prob.jj[k]), int(prob.top[k]), int(prob.left[k])
        m = -1
        if i > top:
            m = int(wave[top:i, left:left + sw].max())
        if j > left:
            m = max(m, int(wave[i, left:j].max()))
        wave[i, j] = out[k] = m + 1
    return out


def _chunks(lengths: list[int], max_tokens: int, overhead: int = 16) -> list[tuple[int, int]]:
    """Split rows sorted by length into contiguous [start, end) batches.

    Minimises Σ (rows · longest + ``overhead``) over batches — padded tokens
    computed plus a per-forward cost in token equivalents — subject to
    rows · longest ≤ ``max_tokens`` (dynamic programming over the sorted rows).
    """
    n = len(lengths)
    if n == 0:
        return []
    L = np.asarray(lengths, dtype=np.int64)
    best = np.zeros(n + 1)
    arg = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):  # batch = rows i … j−1 (0-based), longest = L[j−1]
        i = np.arange(j)
        rows = j - i
        cost = best[:j] + rows * L[j - 1] + overhead
        cost[(rows * L[j - 1] > max_tokens) & (rows > 1)] = np.inf
        arg[j] = int(np.argmin(cost))
        best[j] = cost[arg[j]]
    out, j = [], n
    while j > 0:
        out.append((int(arg[j]), j))
        j = int(arg[j])
    return out[::-1]


def _ar_fast(prob: _ARProblem, max_tokens: int = 8192) -> tuple[np.ndarray, dict]:
    """Wave-batched AR concealment with per-window key/value caches (same result as naive).

    With ``context="filled"`` a wave holds at most one target per window
    (two targets of one window depend on each other).  A window with a
    single target runs once, from its [sos] to the target (plain batched
    forward).  A window with several targets gets a cache slot
    (:class:`SlotKVCache`); each of its targets adds only the tokens between
    the previous target and itself — they are final by then, so cached
    keys/values stay valid.  With ``context="mask"`` everything is one wave
    and one forward per window serves all its targets.
    """
    torch = _import_torch()
    from .transformer import SlotKVCache

    model, dev = prob.model, prob.device
    stats = {"forwards": 0, "waves": 0, "recomputed": 0, "tokens": 0}
    if prob.n == 0:
        return prob.out, stats
    waves = dependency_waves(prob)
    origin = prob.top * prob.W + prob.left
    uniq, inv, counts = np.unique(origin, return_inverse=True, return_counts=True)
    remaining = counts.copy()
    # a window with several targets in different waves keeps a cache slot; in "mask" mode all of a
    # window's targets fall in wave 0 and one forward serves them all
    use_slot = (counts > 1) & (prob.context == "filled")
    cache = SlotKVCache(model, prob.n_win, n_slots=8) if use_slot.any() else None
    slot_of = np.zeros(len(uniq), dtype=np.int64)  # 0 = none yet
    filled_to = np.zeros(len(uniq), dtype=np.int64)  # tokens cached per window
    stats["waves"] = int(waves.max()) + 1
    order = np.argsort(waves, kind="stable")
    bounds = np.searchsorted(waves[order], np.arange(stats["waves"] + 1))
    pos_np = prob.pos

    def targets_tensor(groups: list[list[int]], offsets: list[int]):
        n = max(len(g) for g in groups)
        at = np.zeros((len(groups), n), dtype=np.int64)
        for b, (g, off) in enumerate(zip(groups, offsets)):
            tt = prob.t[g] - off
            at[b, :len(g)] = tt
            at[b, len(g):] = tt[-1]
        return torch.from_numpy(at).to(dev)

    for w in range(stats["waves"]):
        ks = order[bounds[w]:bounds[w + 1]]
        logits_of: dict[int, Any] = {}
        groups: dict[int, list[int]] = {}
        for k in ks.tolist():  # raster order within a window = increasing t
            groups.setdefault(int(inv[k]), []).append(k)
        # ---- windows without cache: one plain causal forward from [sos] to the last target
        plain = [g for u, g in groups.items() if not use_slot[u]]
        plain.sort(key=lambda g: int(prob.t[g[-1]]))
        lens = [int(prob.t[g[-1]]) + 1 for g in plain]
        for c0, c1 in _chunks(lens, max_tokens):
            rows = plain[c0:c1]
            M = lens[c1 - 1]
            idx = np.zeros((len(rows), M), dtype=np.int64)
            for b, g in enumerate(rows):
                seq = prob.window_tokens(prob.grid, int(prob.top[g[0]]), int(prob.left[g[0]]))
                idx[b, :lens[c0 + b]] = seq[:lens[c0 + b]]
            out = model(torch.from_numpy(idx).to(dev), pos=torch.from_numpy(pos_np[:M]).to(dev),
                        logits_at=targets_tensor(rows, [0] * len(rows)))
            stats["forwards"] += 1
            stats["tokens"] += int(idx.size)
            for b, g in enumerate(rows):
                for n, k in enumerate(g):
                    logits_of[k] = out[b, n]
        # ---- windows with a cache slot: add the tokens from the cached length to the last target
        cached = [g for u, g in groups.items() if use_slot[u]]
        if cached:
            for g in cached:
                u = int(inv[g[0]])
                if slot_of[u] == 0:
                    slot_of[u] = cache.alloc()
            news = [int(prob.t[g[-1]]) + 1 - int(filled_to[int(inv[g[0]])]) for g in cached]
            srt = np.argsort(news, kind="stable")
            cached = [cached[i] for i in srt]
            news = [news[i] for i in srt]
            for c0, c1 in _chunks(news, max_tokens // 4):
                rows = cached[c0:c1]
                M = max(news[c0:c1])
                B = len(rows)
                idx = np.zeros((B, M), dtype=np.int64)
                pos = np.zeros((B, M), dtype=np.int64)
                past = np.zeros(B, dtype=np.int64)
                for b, g in enumerate(rows):
                    u = int(inv[g[0]])
                    P, m = int(filled_to[u]), news[c0 + b]
                    seq = prob.window_tokens(prob.grid, int(prob.top[g[0]]), int(prob.left[g[0]]))
                    idx[b, :m] = seq[P:P + m]
                    pos[b, :m] = pos_np[P:P + m]
                    past[b] = P
                nl = torch.tensor(news[c0:c1], device=dev)
                slots = torch.from_numpy(np.array([slot_of[int(inv[g[0]])] for g in rows])).to(dev)
                out = model.forward_slots(
                    torch.from_numpy(idx).to(dev), torch.from_numpy(pos).to(dev), cache, slots,
                    torch.from_numpy(past).to(dev), nl, targets_tensor(rows, past.tolist()))
                stats["forwards"] += 1
                stats["tokens"] += int(idx.size)
                for b, g in enumerate(rows):
                    for n, k in enumerate(g):
                        logits_of[k] = out[b, n]
                    filled_to[int(inv[g[0]])] += news[c0 + b]
        # ---- choose, guard near-ties, commit
        ks = np.array(sorted(logits_of), dtype=np.int64)
        logits = torch.stack([logits_of[k] for k in ks.tolist()])
        tok, unsafe = prob.choose(logits, ks)
        tok = tok.cpu().numpy()
        for b in np.nonzero(unsafe.cpu().numpy())[0].tolist():
            k = int(ks[b])  # too close to call: recompute exactly as the naive path does
            t1, _ = prob.choose(prob.predict_naive(k)[None], np.array([k]))
            tok[b] = int(t1[0])
            stats["recomputed"] += 1
            stats["forwards"] += 1
        prob.commit(ks, tok)
        for k in ks.tolist():
            u = int(inv[k])
            remaining[u] -= 1
            if remaining[u] == 0 and slot_of[u]:
                cache.free(int(slot_of[u]))
                slot_of[u] = 0
    return prob.out, stats


def _ar_options(window=WINDOW, sos_token=None, context="filled", rule="taming", sample=False, temperature=1.0,
                top_k=None, tie_tol=1e-4, estimate="mode"):
    return dict(window=window, sos_token=sos_token, context=context, rule=rule, sample=sample,
                temperature=temperature, top_k=top_k, tie_tol=tie_tol, estimate=estimate)


def _run_ar(index_map: IndexMap, lost: np.ndarray, model, rng, fast: bool, method: str,
            max_tokens: int = 8192, return_stats: bool = False, codebook=None, **opts):
    torch = _import_torch()
    o = _ar_options(**opts)
    dec = _Decoding.make(o["sample"], o["temperature"], o["top_k"], o["tie_tol"], index_map.codebook_size,
                         o["estimate"], codebook)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ParameterError(f"max_tokens must be a positive int, got {max_tokens!r}")
    was_training = bool(getattr(model, "training", False))
    try:
        with torch.inference_mode():
            if was_training:
                model.eval()
            prob = _ARProblem(index_map, lost, model, window=o["window"], sos_token=o["sos_token"],
                              context=o["context"], rule=o["rule"], dec=dec, rng=rng, method=method)
            out, stats = _ar_fast(prob, max_tokens) if fast else _ar_naive(prob)
    finally:
        if was_training:
            model.train()
    res = index_map.with_indices(out)
    return (res, stats) if return_stats else res


def conceal_ar(index_map: IndexMap, lost_mask: np.ndarray, model, *, rng=None, **options) -> IndexMap:
    """Fast sliding-window AR concealment (dependency waves + KV caches); equals :func:`conceal_ar_naive`.

    Options: ``window`` (16), ``sos_token`` (model.sos_token or 0),
    ``context`` ("filled" | "mask"), ``rule`` ("taming" | "tiled", see
    :func:`ar_tile_origins`), ``sample`` (False), ``temperature`` (1.0),
    ``top_k`` (None), ``tie_tol`` (1e-4), ``estimate`` ("mode": the most
    probable codeword, the paper's argmax; "mean": the codeword nearest to the
    posterior-mean codeword Σ p_k e_k, needs ``codebook``), ``max_tokens``
    (8192, tokens per batched forward), ``return_stats`` (also return a dict:
    waves, forwards, tokens, recomputed).
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    return _run_ar(index_map, lost, model, rng, True, "ar", **options)


def conceal_ar_naive(index_map: IndexMap, lost_mask: np.ndarray, model, *, rng=None, **options) -> IndexMap:
    """Reference AR concealment: one full window forward (batch 1) per lost index, raster order."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    options.pop("max_tokens", None)
    return _run_ar(index_map, lost, model, rng, False, "ar_naive", **options)


# --------------------------------------------------------------------------- bidirectional
def conceal_bidir(index_map: IndexMap, lost_mask: np.ndarray, model, *, rng=None, window: int = WINDOW,
                  steps: int = 6, sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                  max_tokens: int = 8192, estimate: str = "mode", codebook=None) -> IndexMap:
    """MaskGIT-style iterative concealment with a bidirectional model (vocab K+1, [mask] = K).

    Step s = 1 … S: predict every still-masked position (argmax, or a sample
    from softmax(logits/temperature) with top-k); confidence = log-probability
    of the chosen token; keep the most confident until only
    ⌊N·cos(π/2 · s/S)⌋ of the N lost positions remain masked (at least one
    is kept per step; ties → raster order); the rest stay [mask].
    ``estimate="mean"`` commits the codeword nearest to the posterior-mean
    codeword instead of the argmax (needs ``codebook``); confidence stays the
    log-probability of the committed codeword.
    """
    torch = _import_torch()
    lost = check_loss_mask(lost_mask, index_map.shape)
    K = index_map.codebook_size
    voc = _model_vocab(model, K, "bidir", need_mask=True, causal=False)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ParameterError(f"steps must be a positive int, got {steps!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ParameterError(f"window must be an int ≥ 2, got {window!r}")
    dec = _Decoding.make(sample, temperature, top_k, 0.0, K, estimate, codebook)
    gen = _as_torch_generator(rng)
    if dec.sample and gen is None:
        raise ParameterError("sampling (sample=True) needs rng= (a torch or numpy Generator)")
    H, W = index_map.shape
    size = int(window)
    sh, sw = min(H, size), min(W, size)
    pos_np = _pos_table(sh, sw, size)
    if int(pos_np[-1]) >= model.config.block_size:
        raise ParameterError(f"model block_size {model.config.block_size} is too small for {sh}×{sw} windows")
    grid = index_map.indices.astype(np.int64)
    grid[lost] = voc.mask
    ii_all, jj_all = np.nonzero(lost)
    N = len(ii_all)
    if N == 0:
        return index_map.with_indices(index_map.indices)
    tops_i = _nearest_tile(ii_all, _tile_starts(H, size), size)
    lefts_j = _nearest_tile(jj_all, _tile_starts(W, size), size)
    masked = np.ones(N, dtype=bool)
    dev = next(model.parameters()).device
    pos = torch.from_numpy(pos_np).to(dev)
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            for s in range(1, int(steps) + 1):
                act = np.nonzero(masked)[0]
                if len(act) == 0:
                    break
                keys = tops_i[act] * W + lefts_j[act]
                uniq, inv = np.unique(keys, return_inverse=True)
                local = (ii_all[act] - tops_i[act]) * sw + (jj_all[act] - lefts_j[act])
                per_batch = max(1, max_tokens // (sh * sw))
                logits = torch.empty(len(act), model.config.vocab_size, device=dev)
                for b0 in range(0, len(uniq), per_batch):
                    ub = uniq[b0:b0 + per_batch]
                    seqs = np.stack([grid[o // W:o // W + sh, o % W:o % W + sw].reshape(-1) for o in ub])
                    out = model(torch.from_numpy(seqs).to(dev), pos=pos)
                    sel = np.nonzero((inv >= b0) & (inv < b0 + len(ub)))[0]
                    logits[torch.from_numpy(sel).to(dev)] = out[torch.from_numpy(inv[sel] - b0).to(dev),
                                                                torch.from_numpy(local[sel]).to(dev)]
                u = torch.rand(len(act), generator=gen, dtype=torch.float64) if dec.sample else None
                tok, _ = _choose(logits, K, u, dec.temperature, dec.top_k, 0.0, dec.codebook)
                lp = torch.log_softmax(logits[:, :K].float() / (dec.temperature if dec.sample else 1.0), dim=1)
                conf = lp.gather(1, tok[:, None]).squeeze(1).cpu().numpy()
                remain = 0 if s == steps else int(math.floor(N * math.cos(math.pi / 2 * s / steps)))
                n_keep = max(1, len(act) - remain)
                pick = act[np.argsort(-conf, kind="stable")[:n_keep]]
                tok_np = tok.cpu().numpy()
                where = {int(a): b for b, a in enumerate(act.tolist())}
                vals = np.array([tok_np[where[int(a)]] for a in pick], dtype=np.int64)
                grid[ii_all[pick], jj_all[pick]] = vals
                masked[pick] = False
    finally:
        if was_training:
            model.train()
    return index_map.with_indices(grid)


# --------------------------------------------------------------------------- baselines
def conceal_mean(index_map: IndexMap, lost_mask: np.ndarray, codebook) -> IndexMap:
    """Every lost index → the codeword nearest to the mean of all K codewords."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    cb = _check_codebook(codebook, index_map.codebook_size)
    k = int(nearest_codeword(cb.mean(0, keepdims=True), cb)[0])
    out = index_map.indices.copy()
    out[lost] = k
    return index_map.with_indices(out)


def conceal_neighbor(index_map: IndexMap, lost_mask: np.ndarray, codebook=None) -> IndexMap:
    """Copy the nearest received index (Euclidean distance on the grid, EDT feature transform).

    Ties between equidistant received neighbours are broken deterministically
    by scipy's exact EDT.  With nothing received, falls back to ``mean``
    (needs ``codebook``).
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    if not lost.any():
        return index_map.with_indices(index_map.indices)
    if lost.all():
        return conceal_mean(index_map, lost, codebook)
    _, (ri, rj) = ndimage.distance_transform_edt(lost, return_distances=True, return_indices=True)
    out = index_map.indices.copy()
    out[lost] = index_map.indices[ri[lost], rj[lost]]
    return index_map.with_indices(out)


_OFFSETS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)),
}


def conceal_latent_avg(index_map: IndexMap, lost_mask: np.ndarray, codebook, connectivity: int = 4) -> IndexMap:
    """Average the known neighbours' codewords and snap to the nearest codeword, ring by ring.

    Ring r = lost positions with a known neighbour after r−1 rings (known =
    received or filled in an earlier ring); each position of the ring takes
    ``nearest_codeword(mean of its known 4-/8-neighbours' codewords)``.
    Positions thus fill in order of (4-/8-connected) distance to received data.
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    cb = _check_codebook(codebook, index_map.codebook_size)
    if connectivity not in _OFFSETS:
        raise ParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    if lost.all():
        return conceal_mean(index_map, lost, cb)
    H, W = lost.shape
    idx = index_map.indices.astype(np.int64)
    known = ~lost
    D = cb.shape[1]
    vec = np.zeros((H + 2, W + 2, D))
    vec[1:-1, 1:-1][known] = cb[idx[known]]
    kn = np.zeros((H + 2, W + 2))
    kn[1:-1, 1:-1] = known
    while not kn[1:-1, 1:-1].all():
        s = np.zeros((H, W, D))
        c = np.zeros((H, W))
        for dy, dx in _OFFSETS[connectivity]:
            s += vec[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
            c += kn[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
        ring = (kn[1:-1, 1:-1] == 0) & (c > 0)
        new = nearest_codeword(s[ring] / c[ring][:, None], cb)
        idx[ring] = new
        vec[1:-1, 1:-1][ring] = cb[new]
        kn[1:-1, 1:-1][ring] = 1
    return index_map.with_indices(idx)


def conceal_none(index_map: IndexMap, lost_mask: np.ndarray, fill_value: int | None = None) -> IndexMap:
    """No concealment: lost indices stay as they are, or become ``fill_value``."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    if fill_value is None:
        return index_map.with_indices(index_map.indices)
    if not 0 <= int(fill_value) < index_map.codebook_size:
        raise ParameterError(f"fill_value must be in [0, {index_map.codebook_size}), got {fill_value}")
    out = index_map.indices.copy()
    out[lost] = int(fill_value)
    return index_map.with_indices(out)


# --------------------------------------------------------------------------- one interface
_AR_OPTS = ("window", "sos_token", "context", "rule", "sample", "temperature", "top_k", "tie_tol", "estimate",
            "return_stats")
_OPTIONS = {
    "ar": _AR_OPTS + ("max_tokens",),
    "ar_naive": _AR_OPTS,
    "ar_mean": tuple(o for o in _AR_OPTS if o not in ("sample", "estimate")) + ("max_tokens",),
    "bidir": ("window", "steps", "sample", "temperature", "top_k", "max_tokens", "estimate"),
    "bidir_mean": ("window", "steps", "temperature", "top_k", "max_tokens"),
    "mean": (),
    "neighbor": (),
    "latent_avg": ("connectivity",),
    "none": ("fill_value",),
}


def conceal(index_map: IndexMap, lost_mask: np.ndarray, method: str = "ar", *, model=None, codebook=None,
            rng=None, **options) -> IndexMap:
    """Conceal the lost indices of ``index_map`` (``lost_mask`` True = lost) with ``method``.

    Args:
        index_map: received map; values at lost positions are ignored (except by ``none``).
        lost_mask: bool (h, w).
        method: one of ``CONCEAL_METHODS``.
        model: GPT for ``ar`` / ``ar_naive`` (causal, vocab K or K+1) and
            ``bidir`` (bidirectional, vocab K+1).
        codebook: (K, D) codewords for ``mean``, ``latent_avg`` (and the
            all-lost fallback of ``neighbor``), and for the model methods'
            ``estimate="mean"``.
        rng: torch or numpy Generator; needed only when sampling.
        options: method-specific (see the ``conceal_*`` functions); unknown
            options raise ``ValueError`` listing the allowed ones.

    Returns a new IndexMap (received indices untouched).
    """
    if not isinstance(index_map, IndexMap):
        raise TypeError(f"index_map must be an IndexMap, got {type(index_map).__name__}")
    if method not in CONCEAL_METHODS:
        raise ParameterError(f"unknown concealment method {method!r}; allowed: {', '.join(CONCEAL_METHODS)}")
    bad = sorted(set(options) - set(_OPTIONS[method]))
    if bad:
        raise ParameterError(f"unknown option(s) {bad} for method {method!r}; allowed: {list(_OPTIONS[method]) or '(no options)'}")
    if method in ("ar_mean", "bidir_mean"):
        method = method[:-5]
        options["estimate"] = "mean"
    if method in ("ar", "ar_naive", "bidir") and options.get("estimate", "mode") == "mean":
        options["codebook"] = codebook
    if method == "ar":
        return conceal_ar(index_map, lost_mask, model, rng=rng, **options)
    if method == "ar_naive":
        return conceal_ar_naive(index_map, lost_mask, model, rng=rng, **options)
    if method == "bidir":
        return conceal_bidir(index_map, lost_mask, model, rng=rng, **options)
    if method == "mean":
        return conceal_mean(index_map, lost_mask, codebook)
    if method == "neighbor":
        return conceal_neighbor(index_map, lost_mask, codebook)
    if method == "latent_avg":
        return conceal_latent_avg(index_map, lost_mask, codebook, **options)
    return conceal_none(index_map, lost_mask, **options)


# --------------------------------------------------------------------------- benchmark
def random_loss_mask(shape: tuple[int, int], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(fraction·h·w) lost positions chosen uniformly without replacement."""
    if not 0.0 <= fraction <= 1.0:
        raise ParameterError(f"fraction must be in [0, 1], got {fraction}")
    h, w = shape
    m = np.zeros(h * w, dtype=bool)
    m[rng.choice(h * w, int(round(fraction * h * w)), replace=False)] = True
    return m.reshape(h, w)


def benchmark_ar(model=None, index_map: IndexMap | None = None, fractions=(0.1, 0.2, 0.4), *, seed: int = 0,
                 shape: tuple[int, int] = (32, 48), model_kwargs: dict | None = None, repeats: int = 3,
                 threads: int | None = 1, **options) -> list[dict[str, Any]]:
    """Time ``ar_naive`` vs ``ar`` (argmax) and check they agree.

    Defaults: a random-initialised GPT (n_layer 8, n_head 8, n_embd 256,
    vocab 1025 = 1024 codewords + [mask], block 256; seed ``seed``) and a
    random 32×48 index map (a 768×512 Kodak image's latent size).  Returns
    one dict per loss fraction: ``fraction, n_lost, naive_s, fast_s, ratio,
    equal, waves, forwards_fast, tokens_fast, tokens_naive, recomputed`` and
    each path's min / max. Timing: one untimed warm-up call of each path, then
    ``repeats`` runs per fraction with the two paths interleaved (alternating
    which goes first); times are medians and ``ratio`` is the ratio of the
    medians.  ``options`` go to both AR functions (e.g. ``rule="tiled"``).
    """
    torch = _import_torch()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        if model is None:
            from .transformer import GPT

            kw = dict(vocab_size=1025, block_size=256, n_layer=8, n_head=8, n_embd=256)
            kw.update(model_kwargs or {})
            with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
                torch.manual_seed(seed)
                model = GPT(**kw)
                with torch.no_grad():  # taming leaves pos_emb at 0 at init; give it structure
                    model.pos_emb.normal_(0.0, 0.02)
        model.eval()
        rng = np.random.default_rng(seed)
        if index_map is None:
            K = model.config.vocab_size - 1 if model.config.vocab_size > 2 else 2
            index_map = IndexMap(rng.integers(0, K, size=shape), K, (shape[0] * 16, shape[1] * 16))
        masks = [random_loss_mask(index_map.shape, f, rng) for f in fractions]
        # warm-up: one untimed call of each path (allocator, kernels, caches), so the first timing is not an outlier
        conceal_ar_naive(index_map, masks[0], model, **options)
        conceal_ar(index_map, masks[0], model, **options)
        results = []
        for f, lost in zip(fractions, masks):
            tn, tf = [], []
            for r in range(repeats):
                # interleave the two paths and alternate which runs first, so load drift hits both alike
                for path in (("naive", "fast") if r % 2 == 0 else ("fast", "naive")):
                    t0 = time.perf_counter()
                    if path == "naive":
                        a = conceal_ar_naive(index_map, lost, model, **options)
                        tn.append(time.perf_counter() - t0)
                    else:
                        b, st = conceal_ar(index_map, lost, model, return_stats=True, **options)
                        tf.append(time.perf_counter() - t0)
            mn, mf = statistics.median(tn), statistics.median(tf)
            results.append(dict(fraction=float(f), n_lost=int(lost.sum()), naive_s=mn, fast_s=mf,
                                naive_min_s=min(tn), naive_max_s=max(tn), fast_min_s=min(tf), fast_max_s=max(tf),
                                repeats=repeats, ratio=mn / max(mf, 1e-12), equal=bool(a == b), waves=st["waves"],
                                forwards_fast=st["forwards"], tokens_fast=st["tokens"],
                                tokens_naive=int(lost.sum()) * min(a.shape[0], WINDOW) * min(a.shape[1], WINDOW),
                                recomputed=st["recomputed"]))
        return results
    finally:
        torch.set_num_threads(old_threads)
