"""Wall-clock timing of benchmark calls: warm-up, repeats, median; CUDA synchronized."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median_s(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall-clock seconds of ``fn`` (see :func:`time_calls`)."""
    return statistics.median(time_calls(fn, repeats, warmup, device))


def mbps(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes per second)."""
    return nbytes / max(seconds, 1e-12) / 1e6
