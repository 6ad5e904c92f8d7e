"""Run the selected ``vqsim bench`` sections: a failing section records its error and the rest go on."""
from __future__ import annotations

import time
import traceback
from dataclasses import asdict
from typing import Any, Callable

from .concealment import bench_conceal
from .config import BenchConfig, BenchError
from .fec import bench_fec
from .image_codec import bench_codec
from .machine import machine_info
from .network import bench_channels, bench_simpy
from .training import bench_training
from .trial import bench_trial

SECTIONS: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "codec": bench_codec,
    "conceal": bench_conceal,
    "fec": bench_fec,
    "channels": bench_channels,
    "simpy": bench_simpy,
    "trial": bench_trial,
    "train": bench_training,
}


def parse_only(text: str | None) -> list[str]:
    """``"codec,fec"`` → ["codec", "fec"] (in ``SECTIONS`` order); None/"" → all sections."""
    if not text:
        return list(SECTIONS)
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise BenchError(f"unknown bench section(s) {bad or text!r}; choose from {','.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def run_bench(cfg: BenchConfig, only: list[str] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the selected sections; a failing section records ``error`` (and traceback) and the rest go on.

    Returns ``{"machine", "config", "sections": {name: result}, "total_s"}``;
    every section result carries ``elapsed_s``.
    """
    names = list(SECTIONS) if only is None else only
    out: dict[str, Any] = {"machine": machine_info(cfg.device), "config": asdict(cfg), "sections": {}}
    t_all = time.perf_counter()
    for name in names:
        if progress:
            progress(name)
        t0 = time.perf_counter()
        try:
            res = SECTIONS[name](cfg)
        except Exception as e:  # noqa: BLE001 - a section failing must not abort the bench
            res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}
        res["elapsed_s"] = time.perf_counter() - t0
        out["sections"][name] = res
    out["total_s"] = time.perf_counter() - t_all
    return out
