"""Token decoding shared by the model methods: argmax / inverse-CDF sampling / posterior-mean, and model checks.

Also ``nearest_codeword`` (argmin_k ‖v − e_k‖², used by the baselines too)
and the lazy torch import that keeps ``import codec.conceal`` torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError

ESTIMATES = ("mode", "mean")  # model methods: most probable codeword | nearest to the posterior-mean codeword


def import_torch():
    import torch

    return torch


def as_torch_generator(rng):
    """torch.Generator as is; numpy Generator → a torch.Generator seeded from it; None → None."""
    torch = import_torch()
    if rng is None or isinstance(rng, torch.Generator):
        return rng
    if isinstance(rng, np.random.Generator):
        return torch.Generator().manual_seed(int(rng.integers(0, 2 ** 63 - 1)))
    raise TypeError(f"rng must be a torch.Generator, numpy.random.Generator or None, got {type(rng).__name__}")


def check_codebook(codebook, K: int) -> np.ndarray:
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


def model_vocab(model, K: int, method: str, need_mask: bool = False, causal: bool | None = None) -> _Vocab:
    """Check that ``model`` fits a codebook of size K: vocab K (no [mask]) or K+1 ([mask] = K)."""
    if model is None:
        raise ParameterError(f"method {method!r} needs model= (a codec.conceal.GPT)")
    cfg = getattr(model, "config", None)
    V = getattr(cfg, "vocab_size", None)
    if V is None:
        raise TypeError(f"model must be a codec.conceal.GPT, got {type(model).__name__}")
    if V not in (K, K + 1):
        raise ParameterError(
            f"model vocab_size {V} does not fit codebook size {K} (expected {K} or {K + 1} with [mask])"
        )
    mask = K if V == K + 1 else None
    if need_mask and mask is None:
        raise ParameterError(f"method {method!r} needs a model with a [mask] token (vocab_size {K + 1}), got {V}")
    if causal is not None and bool(cfg.causal) != causal:
        kind = "causal (autoregressive)" if causal else "bidirectional (causal=False)"
        raise ParameterError(f"method {method!r} needs a {kind} model")
    return _Vocab(K, mask)


def choose_tokens(logits, K: int, u, temperature: float, top_k: int | None, tie_tol: float, codebook=None):
    """Pick tokens from logits (n, V) restricted to the K codewords.

    Argmax when ``u`` is None (ties → lowest index); otherwise inverse-CDF
    sampling of softmax(logits / temperature) (top-k filtered) with the
    uniform numbers ``u`` (n,) float64.  With ``codebook`` (K, D) float64 and
    ``u`` None: the posterior-mean estimate, the codeword nearest (L2) to
    m = Σ_k p_k e_k with p = softmax(logits / temperature) (top-k filtered).
    Also returns ``unsafe`` (n,) bool: choices that a perturbation of the
    logits of order ``tie_tol`` could flip.
    """
    torch = import_torch()
    lg = logits[:, :K].float()
    if codebook is not None and u is None:
        lg = lg / temperature
        if top_k is not None and top_k < K:
            kth = torch.topk(lg, top_k, dim=1).values[:, -1:]
            lg = lg.masked_fill(lg < kth, float("-inf"))
        cb = codebook.to(lg.device)
        m = torch.softmax(lg.double(), dim=1) @ cb  # (n, D) expected codeword
        score = 2.0 * (m @ cb.t()) - (cb * cb).sum(dim=1)[None, :]  # −‖m − e_k‖² + ‖m‖²
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


def check_table(table, K: int) -> np.ndarray:
    """The decoder's codeword table (K, D') for soft estimates (float64)."""
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != K:
        raise ParameterError(f"decoder_codebook must have shape ({K}, D) for codebook_size {K}, got {t.shape}")
    if not np.isfinite(t).all():
        raise ParameterError("decoder_codebook contains non-finite values")
    return t


def soft_mean(logits, K: int, temperature: float, top_k: int | None, table, renorm: bool):
    """Posterior-mean codeword m = Σ_k p_k d_k of each row of ``logits`` (n, V) → float64 torch (n, D').

    p = softmax(logits[:, :K] / temperature) (top-k filtered), ``table`` the
    (K, D') float64 torch table the decoder looks indices up in.  ``renorm``
    rescales m to the posterior-mean norm Σ_k p_k ‖d_k‖ (1 for unit codewords:
    back onto the sphere the decoder was trained on).
    """
    torch = import_torch()
    lg = logits[:, :K].double() / temperature
    if top_k is not None and top_k < K:
        kth = torch.topk(lg, top_k, dim=1).values[:, -1:]
        lg = lg.masked_fill(lg < kth, float("-inf"))
    p = torch.softmax(lg, dim=1)
    tb = table.to(p.device)
    m = p @ tb
    if renorm:
        target = p @ tb.norm(dim=1)
        m = m * (target / m.norm(dim=1).clamp_min(1e-12))[:, None]
    return m


@dataclass
class Decoding:
    sample: bool
    temperature: float
    top_k: int | None
    tie_tol: float
    codebook: Any = None  # float64 torch (K, D) for estimate="mean", else None

    @classmethod
    def make(
        cls,
        sample: bool,
        temperature: float,
        top_k: int | None,
        tie_tol: float,
        K: int,
        estimate: str = "mode",
        codebook=None,
    ) -> "Decoding":
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
                raise ParameterError(
                    "estimate='mean' is a deterministic estimate; it cannot be combined with sample=True"
                )
            torch = import_torch()
            cb = torch.as_tensor(check_codebook(codebook, K), dtype=torch.float64)
        return cls(bool(sample), float(temperature), None if top_k is None else min(int(top_k), K), float(tie_tol), cb)
