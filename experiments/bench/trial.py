"""The ``trial`` section of ``vqsim bench``.

One sweep trial with the old and today's code path in two worker processes, pixels checked identical."""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any

import numpy as np

from .config import BenchConfig, BenchError
from .inputs import load_bench_image

TRIAL_METHODS = ("neighbor", "ar")
"""Concealment of the trial section: a baseline and the shipped AR transformer (the sweep's realistic pair)."""


def _legacy_metrics(x, y) -> dict[str, float]:
    """The sweep's metrics of one pair as computed before 2026-12-02: LPIPS-Alex of both images per
    comparison, PSNR, and SSIM / MS-SSIM in float64 with every statistic of both images filtered per
    comparison (``experiments.legacy_metrics``)."""
    from codec import metrics as M

    from ..legacy_metrics import ms_ssim64, ssim64

    return {
        "lpips_alex": float(M.lpips_distance(x, y, net="alex", device="cpu")[0]),
        "psnr": float(M.psnr(x, y)[0]),
        "ssim": float(ssim64(x, y)[0]),
        "ms_ssim": float(ms_ssim64(x, y)[0]),
    }


def _trial_worker(conn, tuned: bool, image_size: tuple[int, int], image: str | None, seed: int) -> None:
    """A process that runs sweep-like trials on request: ``tuned`` = today's code path, else the old one.

    Old path ("before"): no CPU tuning (``VQSIM_NO_CPU_TUNING=1``: denormals kept, glibc's default mmap
    threshold) and the former SSIM / MS-SSIM (``_legacy_image_metrics``: float64, every statistic of both
    images filtered per comparison).
    New path ("after"): ``configure_cpu`` and the sweep's ``_batch_metrics`` (float32 SSIM and LPIPS
    features of each reference prepared once, the reconstruction's LPIPS features shared by both).
    Both use one torch thread. A request is a (method, seed) pair; the reply is
    ``(seconds, parts, sha1 of the decoded pixels, metrics)``.
    """
    if not tuned:
        os.environ["VQSIM_NO_CPU_TUNING"] = "1"
    from codec import metrics as M
    from codec.runtime import configure_cpu

    configure_cpu(1)
    from channels import GilbertElliott
    from codec.image import to_tensor
    from codec.zoo import load_codec, load_concealer

    img, _ = load_bench_image(image_size, image)
    codec = load_codec("default", device="cpu")
    imap = codec.encode_indices(img)
    models = {"ar": load_concealer("default", codec.codebook_size, "ar")}
    orig = to_tensor(img)
    lossfree = codec.decode_indices_tensor(imap)
    refs = (
        {
            name: (M.prepare_reference(im), {"alex": M.lpips_features(im, "alex", "cpu")})
            for name, im in (("orig", orig), ("lossfree", lossfree))
        }
        if tuned
        else {}
    )
    channel = GilbertElliott.from_loss_and_burst(0.1, 3.0)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            break
        method, trial_seed = msg
        conn.send(_one_trial(codec, models, imap, orig, lossfree, refs, channel, tuned, method, trial_seed))
    conn.close()


def _one_trial(codec, models, imap, orig, lossfree, refs, channel, tuned: bool, method: str, trial_seed: int):
    """One trial in a worker (see ``_trial_worker``): ``(seconds, parts, sha1 of the decoded pixels, metrics)``."""
    import hashlib

    import torch

    from codec.conceal import conceal
    from sim import transmit

    t0 = time.perf_counter()
    rng = np.random.default_rng(trial_seed)
    rec = transmit(imap, channel=channel, rng=rng, seed=trial_seed, mtu=120, interleave="random", coder="raw")
    t1 = time.perf_counter()
    fixed = conceal(
        rec.received, rec.lost_mask, method=method, codebook=codec.codebook, model=models.get(method),
        rng=np.random.default_rng(trial_seed),
    ).index_map
    t2 = time.perf_counter()
    x = codec.decode_indices_tensor(fixed)
    t3 = time.perf_counter()
    met = _trial_metrics(x, orig, lossfree, refs, tuned)
    t4 = time.perf_counter()
    u8 = (x * 255.0).round().to(torch.uint8).numpy().tobytes()
    parts = {"transmit": t1 - t0, "conceal": t2 - t1, "decode": t3 - t2, "metrics": t4 - t3}
    return (t4 - t0, parts, hashlib.sha1(u8).hexdigest(), met)


def _trial_metrics(x, orig, lossfree, refs, tuned: bool) -> dict[str, float]:
    """The metrics of one decoded trial against both references: the sweep's code if ``tuned``, else the old."""
    import torch

    from codec import metrics as M

    from ..sweep.scoring import batch_metrics as _batch_metrics  # the sweep's own metric code: what "after" measures

    met = {}
    feats = {"alex": M.lpips_features(x, "alex", "cpu")} if tuned else None  # shared by both references
    for name, ref_img in (("orig", orig), ("lossfree", lossfree)):
        if tuned:
            r = {
                k: float(v[0])
                for k, v in _batch_metrics(
                    ref_img, x, ("alex",), torch.device("cpu"), True, refs[name][0], refs[name][1], feats
                ).items()
            }
        else:
            r = _legacy_metrics(ref_img, x)
        met.update({f"{k}_{name}": v for k, v in r.items()})
    return met


def bench_trial(cfg: BenchConfig) -> dict[str, Any]:
    """One sweep trial, old code path vs new, in one run: identical pixels, ≥ 2× target on CPU.

    A trial as a sweep runs it: the image's index map (encoded once) goes
    through ``sim.transmit`` (Gilbert–Elliott 10 % loss, mean burst 3,
    random interleaving, 120-byte MTU), lost indices are concealed
    (``TRIAL_METHODS``: ``neighbor`` and the shipped AR transformer), the map
    is decoded, and LPIPS-Alex, PSNR, low-pass PSNR, SSIM and MS-SSIM are
    computed against two references (the original and the loss-free
    reconstruction). Two worker processes (see ``_trial_worker``) hold the old
    and the new code path; every repetition sends the same (method, seed) to
    both, alternating which goes first, after one warm-up trial each.
    Reported: per method and path the median (min, max) seconds and parts,
    the speed-up of the medians, whether the decoded pixels are identical, and
    the largest metric difference between the paths.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = {}
    for name, tuned in (("before", False), ("after", True)):
        a, b = ctx.Pipe()
        proc = ctx.Process(
            target=_trial_worker, args=(b, tuned, tuple(cfg.image_size), cfg.image, cfg.seed), daemon=True
        )
        proc.start()
        workers[name] = (proc, a)
    try:
        results = _run_trials(cfg, workers)
    finally:
        for proc, conn in workers.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    summary, detail = _summarise_trials(results)
    return {
        "summary": summary,
        "methods": detail,
        "repeats": cfg.repeats,
        "image_size": list(cfg.image_size),
        "channel": "GilbertElliott.from_loss_and_burst(0.1, 3.0), mtu 120, random interleaving",
        "paths": {
            "before": "no CPU tuning; former SSIM/MS-SSIM (float64, all statistics per comparison)",
            "after": "configure_cpu (denormals flushed, heap allocations); the sweep's _batch_metrics "
            "(float32 SSIM, reference SSIM statistics and LPIPS features prepared once)",
        },
    }


def _run_trials(cfg: BenchConfig, workers: dict) -> dict[str, dict[str, list]]:
    """Wait for both workers, then send every repetition's (method, seed) to both in alternating order;
    the replies per method and path, the warm-up (repetition 0) left out."""
    for _proc, conn in workers.values():
        if conn.recv() != "ready":
            raise BenchError("trial worker failed to start")
    results: dict[str, dict[str, list]] = {m: {"before": [], "after": []} for m in TRIAL_METHODS}
    for r in range(cfg.repeats + 1):  # repetition 0 is the warm-up
        for m in TRIAL_METHODS:
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                workers[name][1].send((m, cfg.seed * 1000 + r))
                out = workers[name][1].recv()
                if r:
                    results[m][name].append(out)
    return results


def _summarise_trials(results: dict[str, dict[str, list]]) -> tuple[dict[str, float], dict[str, Any]]:
    """The summary numbers and per-method detail of ``bench_trial`` from the workers' replies."""
    summary: dict[str, float] = {}
    detail: dict[str, Any] = {}
    for m, per in results.items():
        med = {k: statistics.median(o[0] for o in v) for k, v in per.items()}
        identical = all(b[2] == a[2] for b, a in zip(per["before"], per["after"], strict=False))
        diff = max(
            abs(b[3][k] - a[3][k])
            for b, a in zip(per["before"], per["after"], strict=False)
            for k in b[3]
            if math.isfinite(b[3][k]) and math.isfinite(a[3][k])
        )
        summary[f"{m}_trial_ms_before"] = 1e3 * med["before"]
        summary[f"{m}_trial_ms_after"] = 1e3 * med["after"]
        summary[f"{m}_speedup"] = med["before"] / med["after"]
        summary[f"{m}_pixels_identical"] = float(identical)
        detail[m] = {
            k: {
                "median_s": med[k],
                "min_s": min(o[0] for o in v),
                "max_s": max(o[0] for o in v),
                "parts_median_s": {p: statistics.median(o[1][p] for o in v) for p in v[0][1]},
            }
            for k, v in per.items()
        }
        detail[m]["max_metric_difference"] = diff
        detail[m]["pixels_identical"] = identical
    return summary, detail
