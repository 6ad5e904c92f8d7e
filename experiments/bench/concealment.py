"""The ``conceal`` section: batched vs naive AR concealment (same output, checked) and the baselines' time."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .ar import bench_ar_model, benchmark_ar
from .config import BenchConfig
from .inputs import cpu_codec, load_bench_image
from .timing import median_s

CONCEAL_BASELINES = ("mean", "neighbor", "latent_avg")


def bench_conceal(cfg: BenchConfig) -> dict[str, Any]:
    """Batched vs naive AR concealment (:func:`.ar.benchmark_ar`) and the baselines' time."""
    from codec.conceal import conceal, random_loss_mask
    from codec.errors import VQSimError
    from codec.types import DEFAULT_DOWNSAMPLING, IndexMap

    model, index_map, model_src = (
        bench_ar_model(cfg),
        None,
        cfg.ar_model_kwargs or "benchmark_ar default (n_layer 8, n_head 8, n_embd 256)",
    )
    if cfg.ar_model == "shipped":
        from codec.zoo import load_concealer

        model = load_concealer("default", 1024, "ar", device=cfg.device)
        img, src = load_bench_image(cfg.image_size, cfg.image)
        index_map = cpu_codec().encode_indices(img)
        model_src = f"shipped default_ar_1024 on the index map of {Path(src.split(' (')[0]).name}"
    rows = benchmark_ar(
        model,
        index_map,
        fractions=tuple(cfg.fractions),
        seed=cfg.seed,
        shape=tuple(cfg.ar_shape),
        model_kwargs=cfg.ar_model_kwargs,
        repeats=cfg.ar_repeats,
    )
    ar = [
        dict(
            r,
            naive_ms=1e3 * r["naive_s"],
            fast_ms=1e3 * r["fast_s"],
            fast_ms_per_lost=1e3 * r["fast_s"] / max(r["n_lost"], 1),
        )
        for r in rows
    ]
    try:
        codebook = cpu_codec().codebook
        cb_src = "codec default"
    except (VQSimError, OSError) as e:  # the baselines' cost depends only on (K, D); a random codebook will do
        codebook = np.random.default_rng(cfg.seed).normal(size=(1024, 256)).astype(np.float32)
        cb_src = f"random (1024, 256): codec unavailable ({type(e).__name__})"
    K = codebook.shape[0]
    rng = np.random.default_rng(cfg.seed)
    h, w = cfg.ar_shape
    imap = IndexMap(rng.integers(0, K, size=(h, w)), K, (DEFAULT_DOWNSAMPLING * h, DEFAULT_DOWNSAMPLING * w))
    base: dict[str, dict[str, float]] = {}
    for f in cfg.fractions:
        lost = random_loss_mask((h, w), f, rng)
        base[f"{f:g}"] = {
            m: 1e3 * median_s(lambda m=m, lost=lost: conceal(imap, lost, method=m, codebook=codebook), cfg.repeats)
            for m in CONCEAL_BASELINES
        }
    summary: dict[str, float] = {}
    for r in ar:
        pct = f"{100 * r['fraction']:g}%"
        summary[f"ar_speedup@{pct}"] = r["ratio"]
        summary[f"ar_fast_ms@{pct}"] = r["fast_ms"]
        summary[f"ar_naive_ms@{pct}"] = r["naive_ms"]
        nb = base[f"{r['fraction']:g}"]["neighbor"]
        summary[f"neighbor_ms@{pct}"] = nb
        summary[f"ar_over_neighbor@{pct}"] = r["fast_ms"] / nb
    return {
        "summary": summary,
        "map_shape": [h, w],
        "device": cfg.device,
        "ar_model": model_src,
        "ar": ar,
        "all_equal": all(r["equal"] for r in ar),
        "baselines_ms": base,
        "codebook": cb_src,
    }
