"""AR concealment timing: the naive reference vs the batched implementation on one map, outputs checked equal."""
from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from codec.types import IndexMap

from .config import BenchConfig


def benchmark_ar(model=None, index_map: IndexMap | None = None, fractions=(0.1, 0.2, 0.4), *, seed: int = 0,
                 shape: tuple[int, int] = (32, 48), model_kwargs: dict | None = None, repeats: int = 3,
                 **options) -> list[dict[str, Any]]:
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
    Runs with the torch threads in force (``vqsim bench --threads`` sets them).
    """
    import torch

    from codec.conceal import GPT, conceal_ar, conceal_ar_naive, random_loss_mask
    from codec.conceal.window import WINDOW

    if model is None:
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
    for f, lost in zip(fractions, masks, strict=False):
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


def bench_ar_model(cfg: BenchConfig):
    """The random GPT ``benchmark_ar`` would build, on ``cfg.device`` (None on CPU: let it build it)."""
    if cfg.device == "cpu":
        return None
    import torch

    from codec.conceal import GPT

    kw = dict(vocab_size=1025, block_size=256, n_layer=8, n_head=8, n_embd=256)  # benchmark_ar's default
    kw.update(cfg.ar_model_kwargs or {})
    torch.manual_seed(cfg.seed)
    model = GPT(**kw)
    with torch.no_grad():
        model.pos_emb.normal_(0.0, 0.02)
    return model.to(cfg.device).eval()
