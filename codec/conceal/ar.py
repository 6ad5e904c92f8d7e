"""Sliding-window autoregressive concealment: the naive reference and the wave-batched exact equivalent.

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
    (:class:`codec.conceal.model.SlotKVCache`) so its tokens are computed
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
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ..types import IndexMap, check_loss_mask
from .decoding import Decoding, as_torch_generator, choose_tokens, import_torch, model_vocab, soft_mean
from .window import AR_WINDOW_RULES, WINDOW, ar_tile_origins, pos_table, window_origins


# --------------------------------------------------------------------------- AR problem
class _ARProblem:
    """Everything both AR implementations share: windows, targets, context rules, draws."""

    def __init__(self, index_map: IndexMap, lost: np.ndarray, model, *, window: int, sos_token: int | None,
                 context: str, rule: str, dec: Decoding, rng, method: str, soft=None) -> None:
        torch = import_torch()
        K = index_map.codebook_size
        self.vocab = model_vocab(model, K, method, need_mask=(context == "mask"), causal=True)
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
        self.pos = pos_table(self.sh, self.sw, self.size)
        if int(self.pos[-1]) >= model.config.block_size:
            raise ParameterError(
                f"model block_size {model.config.block_size} is too small for {self.sh}×{self.sw} windows "
                f"(needs ≥ {int(self.pos[-1]) + 1}); use a smaller window="
            )
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
            li = window_origins(self.ii, H, self.size)
            lj = window_origins(self.jj, W, self.size)
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
        # soft estimates (codec.conceal.soft): (table, renorm) -> posterior-mean codeword per lost index
        self.soft_spec = soft
        self.soft = None if soft is None else np.zeros((self.n, int(soft[0].shape[1])))
        # one uniform draw per lost index, raster order (independent of compute order)
        if dec.sample:
            gen = as_torch_generator(rng)
            if gen is None:
                raise ParameterError("sampling (sample=True) needs rng= (a torch or numpy Generator)")
            self.u = torch.rand(self.n, generator=gen, dtype=torch.float64)
        else:
            self.u = None

    # the window input sequence of origin (top, left) read from a grid: [sos] + w[:-1]
    def window_tokens(self, grid: np.ndarray, top: int, left: int) -> np.ndarray:
        w = grid[top : top + self.sh, left : left + self.sw].reshape(-1)
        seq = np.empty(self.n_win, dtype=np.int64)
        seq[0] = self.sos
        seq[1:] = w[:-1]
        return seq

    def naive_context(self, k: int) -> np.ndarray:
        """The window input the naive implementation feeds for lost index k (raster rank k)."""
        top, left = int(self.top[k]), int(self.left[k])
        if self.context == "mask":
            return self.window_tokens(self.grid, top, left)
        w = self.grid[top : top + self.sh, left : left + self.sw].copy()
        r = self.rank[top : top + self.sh, left : left + self.sw]
        w[r >= k] = self.placeholder  # not yet filled in raster order
        return self.window_tokens(w, 0, 0)

    def predict_naive(self, k: int):
        """One full forward of lost index k's window (batch 1); logits at the target. (V,)"""
        torch = import_torch()
        seq = torch.from_numpy(self.naive_context(k)).to(self.device)[None]
        pos = torch.from_numpy(self.pos).to(self.device)
        logits = self.model(seq, pos=pos)  # full window, every position, default causal mask
        return logits[0, int(self.t[k])]

    def choose(self, logits, ks: np.ndarray):
        u = None if self.u is None else self.u[_torch_index(ks)]
        return choose_tokens(
            logits, self.vocab.K, u, self.dec.temperature, self.dec.top_k, self.dec.tie_tol, self.dec.codebook
        )

    def record_soft(self, logits, ks: np.ndarray) -> None:
        """Store the posterior-mean codeword of lost indices ``ks`` (no-op without soft estimates)."""
        if self.soft_spec is not None:
            table, renorm = self.soft_spec
            self.soft[ks] = (
                soft_mean(logits, self.vocab.K, self.dec.temperature, self.dec.top_k, table, renorm).cpu().numpy()
            )

    def commit(self, ks: np.ndarray, toks: np.ndarray) -> None:
        self.out[self.ii[ks], self.jj[ks]] = toks
        if self.context == "filled":
            self.grid[self.ii[ks], self.jj[ks]] = toks


def _torch_index(ks: np.ndarray):
    torch = import_torch()
    return torch.from_numpy(np.asarray(ks, dtype=np.int64))


def _ar_naive(prob: _ARProblem) -> tuple[np.ndarray, dict]:
    for k in range(prob.n):
        logits = prob.predict_naive(k)[None]
        tok, _ = prob.choose(logits, np.array([k]))
        prob.record_soft(logits, np.array([k]))
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
            m = int(wave[top:i, left : left + sw].max())
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
    torch = import_torch()
    from .model import SlotKVCache

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
        for b, (g, off) in enumerate(zip(groups, offsets, strict=False)):
            tt = prob.t[g] - off
            at[b, : len(g)] = tt
            at[b, len(g) :] = tt[-1]
        return torch.from_numpy(at).to(dev)

    for w in range(stats["waves"]):
        ks = order[bounds[w] : bounds[w + 1]]
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
                idx[b, : lens[c0 + b]] = seq[: lens[c0 + b]]
            out = model(
                torch.from_numpy(idx).to(dev),
                pos=torch.from_numpy(pos_np[:M]).to(dev),
                logits_at=targets_tensor(rows, [0] * len(rows)),
            )
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
                    idx[b, :m] = seq[P : P + m]
                    pos[b, :m] = pos_np[P : P + m]
                    past[b] = P
                nl = torch.tensor(news[c0:c1], device=dev)
                slots = torch.from_numpy(np.array([slot_of[int(inv[g[0]])] for g in rows])).to(dev)
                out = model.forward_slots(
                    torch.from_numpy(idx).to(dev),
                    torch.from_numpy(pos).to(dev),
                    cache,
                    slots,
                    torch.from_numpy(past).to(dev),
                    nl,
                    targets_tensor(rows, past.tolist()),
                )
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
        prob.record_soft(logits, ks)
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


def _ar_options(
    window=WINDOW,
    sos_token=None,
    context="filled",
    rule="taming",
    sample=False,
    temperature=1.0,
    top_k=None,
    tie_tol=1e-4,
    estimate="mode",
):
    return dict(
        window=window,
        sos_token=sos_token,
        context=context,
        rule=rule,
        sample=sample,
        temperature=temperature,
        top_k=top_k,
        tie_tol=tie_tol,
        estimate=estimate,
    )


def run_ar(
    index_map: IndexMap,
    lost: np.ndarray,
    model,
    rng,
    fast: bool,
    method: str,
    max_tokens: int = 8192,
    return_stats: bool = False,
    codebook=None,
    _soft=None,
    **opts,
):
    torch = import_torch()
    o = _ar_options(**opts)
    dec = Decoding.make(
        o["sample"], o["temperature"], o["top_k"], o["tie_tol"], index_map.codebook_size, o["estimate"], codebook
    )
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ParameterError(f"max_tokens must be a positive int, got {max_tokens!r}")
    was_training = bool(getattr(model, "training", False))
    try:
        with torch.inference_mode():
            if was_training:
                model.eval()
            prob = _ARProblem(
                index_map,
                lost,
                model,
                window=o["window"],
                sos_token=o["sos_token"],
                context=o["context"],
                rule=o["rule"],
                dec=dec,
                rng=rng,
                method=method,
                soft=_soft,
            )
            out, stats = _ar_fast(prob, max_tokens) if fast else _ar_naive(prob)
    finally:
        if was_training:
            model.train()
    res = index_map.with_indices(out)
    if _soft is not None:
        return res, stats, prob.soft
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
    return run_ar(index_map, lost, model, rng, True, "ar", **options)


def conceal_ar_naive(index_map: IndexMap, lost_mask: np.ndarray, model, *, rng=None, **options) -> IndexMap:
    """Reference AR concealment: one full window forward (batch 1) per lost index, raster order."""
    lost = check_loss_mask(lost_mask, index_map.shape)
    options.pop("max_tokens", None)
    return run_ar(index_map, lost, model, rng, False, "ar_naive", **options)
