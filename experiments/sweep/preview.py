"""``vqsim sweep --plan``: what a sweep will do and roughly how long it takes, before it runs.

:func:`describe_plan` prints (as lines) the trials and units, the methods that run at each codebook size
(a transformer method runs only where its model exists), the data packets each image travels in per
packetization setting (with the few-packets warning), the bits each (codebook size, FEC) strategy puts on
the link per image (loss-free send: payload + headers + parity), and an estimated run time from a short
calibration: per codebook size and channel kind, units drawn at random (seeded) are run until 8 are done
or about a minute is spent in all (after loading every model and one warm-up unit), and their mean time
is multiplied by the number of units like them.  Encodings go to the results folder's cache, so the real
run reuses them.  Nothing is written to the results table.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..config import fec_label
from .run import SweepPlan, packet_lines, plan_sweep

__all__ = ["describe_plan", "methods_by_size", "strategy_bits", "CALIBRATION_UNITS"]

CALIBRATION_UNITS = 8
"""At most this many units are timed per (codebook size, channel kind) for the estimate ..."""
CALIBRATION_BUDGET_S = 60.0
"""... or fewer (at least 2) once the calibration has spent about this many seconds in all."""


def methods_by_size(plan: SweepPlan) -> list[str]:
    """'S=1024: ar, bidir, latent_avg' — the methods that run at each codebook size (:meth:`SweepPlan.method_lines`)."""
    return plan.method_lines()


def strategy_bits(plan: SweepPlan, ctx) -> list[str]:
    """Mean bits per pixel on the link (payload + headers + parity) per (codebook size, FEC, mtu, interleaver,
    coder), from one loss-free send of every image (each image once per setting)."""
    from codec.types import IndexMap

    from .transmit import transmit

    seen: dict[tuple, dict[str, float]] = {}
    for u in plan.units:
        if u.info["channel_kind"] == "index":
            continue
        p = u.params
        key = (p["codebook_size"], fec_label(p["fec"]), p["mtu"], p["interleave"], p["coder"],
               p.get("header", "full"))
        done = seen.setdefault(key, {})
        if p["image_hash"] in done:
            continue
        clean = dataclasses.replace(u, params={**p, "channel": {"model": "bernoulli", "p": 0.0}})
        enc = ctx.encoded[f"{p['codebook_size']}/{p['image_hash']}"]

        sent = IndexMap(enc.indices, p["codebook_size"], enc.image_size, ctx.codec(p["codebook_size"]).codebook_id)
        row = transmit(ctx, clean, sent).to_row(enc)
        done[p["image_hash"]] = row["total_bpp"]
    out = []
    for (S, fec, mtu, il, coder, header), d in seen.items():
        v = list(d.values())
        hdr = "" if header == "full" else f", {header} header"
        out.append(f"S={S}, FEC {fec}, mtu {mtu}, {il}, {coder}{hdr}: {np.mean(v):.4f} bpp on the link "
                   f"({min(v):.4f}–{max(v):.4f} over {len(v)} images)")
    return out


def _calibrate(plan: SweepPlan, ctx, log: Callable[[str], None], per_kind: int = CALIBRATION_UNITS,
               budget_s: float = CALIBRATION_BUDGET_S) -> tuple[float, int]:
    """(estimated seconds for every unit, calibration units run).

    Units differ a lot: a realization without a residual loss (no packet lost, or FEC repaired all) skips
    concealment and scoring, a lossy one conceals, decodes and scores every method.  So per (codebook size,
    channel kind) units are drawn at random (seeded: the same plan gives the same sample) and timed until
    ``per_kind`` are done or the kind's share of ``budget_s`` is spent (at least 2); their mean times the
    number of such units is the estimate.  Every model is loaded and one unit run first (not a unit's cost).
    """
    from codec.conceal import MODEL_KIND
    from codec.conceal.decoder_variant import split_variant_label

    from .trial import run_checked

    kinds: dict[tuple, list] = {}
    for u in plan.units:
        kinds.setdefault((u.params["codebook_size"], u.info["channel_kind"]), []).append(u)
    for u in plan.units:  # model loads are not a unit's steady cost: every codec and concealer first
        S = u.params["codebook_size"]
        ctx.codec(S)
        for label, _ in u.trials:
            m, dec = split_variant_label(label)
            ctx.codec(S, dec)
            if MODEL_KIND.get(m):
                ctx.concealer(MODEL_KIND[m], S)
    lossy = [u for u in plan.units if u.info["channel_kind"] != "index"] or plan.units
    run_checked(max(lossy, key=_loss), ctx)  # warm-up: LPIPS and the first kernels
    rng = np.random.default_rng(0)
    total, n = 0.0, 0
    share = budget_s / max(1, len(kinds))
    for (S, kind), units in kinds.items():
        times: list[float] = []
        for i in rng.permutation(len(units))[:per_kind]:
            t0 = time.perf_counter()
            run_checked(units[int(i)], ctx)
            times.append(time.perf_counter() - t0)
            if len(times) >= 2 and sum(times) > share:
                break
        n += len(times)
        total += float(np.mean(times)) * len(units)
        log(f"calibration: S={S}, {kind} channel: {np.mean(times):.2f} s per unit (mean of {len(times)} drawn at "
            f"random, {min(times):.2f}–{max(times):.2f} s; {len(units[0].trials)} trials each) × {len(units)} units")
    return total, n


def _loss(u) -> float:
    L = u.info.get("loss_rate_nominal")
    return float(L) if L is not None and np.isfinite(L) else 0.0


def describe_plan(config: str | Path | Mapping[str, Any], out: str | Path | None = None, *, calibrate: bool = True,
                  log: Callable[[str], None] = print) -> SweepPlan:
    """Print the plan of a sweep (see the module docstring) through ``log``; returns the plan."""
    from .encode_cache import prepare_encodings
    from .executors import torch_threads

    plan = plan_sweep(config, out)
    cfg = plan.cfg
    for note in plan.notes:
        log(f"note: {note}")
    log(plan.headline())
    for line in methods_by_size(plan):
        log(f"methods: {line}")
    with torch_threads(cfg["execution"]["torch_threads"]):
        t0 = time.perf_counter()
        encoded = prepare_encodings(cfg, plan.images, plan.out / "cache" / "encode", log)
        t_enc = time.perf_counter() - t0
        for line in packet_lines(plan, plan.images, encoded):
            log(line)
        from .context import TrialContext

        ctx = TrialContext(cfg, {im.hash: im.pixels for im in plan.images}, encoded)
        for line in strategy_bits(plan, ctx):
            log(f"bits: {line}")
        if calibrate and plan.units:
            est, n = _calibrate(plan, ctx, log)
            log(f"estimated time: {_fmt_s(est)} for {plan.n_trials} trials on 1 worker (from {n} calibration "
                f"unit(s); encoding took {t_enc:.1f} s and is cached in {plan.out / 'cache' / 'encode'})")
    return plan


def _fmt_s(t: float) -> str:
    return f"{t:.0f} s" if t < 120 else f"{t / 60:.1f} min" if t < 7200 else f"{t / 3600:.1f} h"
