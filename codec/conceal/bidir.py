"""MaskGIT-style bidirectional concealment: iterative [mask] prediction over overlapping windows.

``bidir`` — MaskGIT-style: a bidirectional model (vocabulary K+1, [mask] = K)
    sees the window with all still-unknown positions as [mask] and predicts
    them all; the most confident fraction is kept (cosine schedule over
    ``steps`` steps), the rest re-predicted.  Maps up to s×s are one window;
    larger maps use overlapping s×s tiles at stride s/2, each position taking
    the prediction of the tile whose centre is nearest.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..types import IndexMap, check_loss_mask
from .decoding import Decoding, as_torch_generator, choose_tokens, import_torch, model_vocab, soft_mean
from .window import WINDOW, nearest_tile, pos_table, tile_starts


def conceal_bidir(index_map: IndexMap, lost_mask: np.ndarray, model, *, rng=None, window: int = WINDOW,
                  steps: int = 6, sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                  max_tokens: int = 8192, estimate: str = "mode", codebook=None, _soft=None) -> IndexMap:
    """MaskGIT-style iterative concealment with a bidirectional model (vocab K+1, [mask] = K).

    Step s = 1 … S: predict every still-masked position (argmax, or a sample
    from softmax(logits/temperature) with top-k); confidence = log-probability
    of the chosen token; keep the most confident until only
    ⌊N·cos(π/2 · s/S)⌋ of the N lost positions remain masked (at least one
    is kept per step; ties → raster order); the rest stay [mask].
    ``estimate="mean"`` commits the codeword nearest to the posterior-mean
    codeword instead of the argmax (needs ``codebook``); confidence stays the
    log-probability of the committed codeword.

    ``_soft`` (private, see :func:`codec.conceal.soft.conceal_bidir_soft`):
    ``(table, renorm)``; then also returns the posterior-mean codeword of each
    lost position at the step it was committed, ``(IndexMap, (N, D') float64)``
    in ``np.nonzero(lost)`` order.
    """
    torch = import_torch()
    lost = check_loss_mask(lost_mask, index_map.shape)
    K = index_map.codebook_size
    voc = model_vocab(model, K, "bidir", need_mask=True, causal=False)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ParameterError(f"steps must be a positive int, got {steps!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ParameterError(f"window must be an int ≥ 2, got {window!r}")
    dec = Decoding.make(sample, temperature, top_k, 0.0, K, estimate, codebook)
    gen = as_torch_generator(rng)
    if dec.sample and gen is None:
        raise ParameterError("sampling (sample=True) needs rng= (a torch or numpy Generator)")
    H, W = index_map.shape
    size = int(window)
    sh, sw = min(H, size), min(W, size)
    pos_np = pos_table(sh, sw, size)
    if int(pos_np[-1]) >= model.config.block_size:
        raise ParameterError(f"model block_size {model.config.block_size} is too small for {sh}×{sw} windows")
    grid = index_map.indices.astype(np.int64)
    grid[lost] = voc.mask
    ii_all, jj_all = np.nonzero(lost)
    N = len(ii_all)
    soft = None
    if _soft is not None:
        table, renorm = _soft
        soft = np.zeros((N, int(table.shape[1])))
    if N == 0:
        res = index_map.with_indices(index_map.indices)
        return res if soft is None else (res, soft)
    tops_i = nearest_tile(ii_all, tile_starts(H, size), size)
    lefts_j = nearest_tile(jj_all, tile_starts(W, size), size)
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
                tok, _ = choose_tokens(logits, K, u, dec.temperature, dec.top_k, 0.0, dec.codebook)
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
                if soft is not None:
                    rows = torch.from_numpy(np.array([where[int(a)] for a in pick], dtype=np.int64)).to(logits.device)
                    soft[pick] = soft_mean(logits[rows], K, dec.temperature, dec.top_k, table, renorm).cpu().numpy()
    finally:
        if was_training:
            model.train()
    res = index_map.with_indices(grid)
    return res if soft is None else (res, soft)
