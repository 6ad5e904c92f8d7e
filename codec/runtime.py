"""Process-wide CPU settings for torch work (set once by the CLI, never inside library functions).

Two measured slow-downs of this codec on CPU, both with identical results when fixed:

* **Denormal floats.** The mid-block attention's softmax produces denormal
  weights (≈ 4 % of them); one ``bmm`` on them took 721 ms instead of 8.7 ms.
  ``torch.set_flush_denormal(True)`` flushes them to zero (values below
  1.2e-38 cannot change a decoded pixel).
* **glibc's mmap threshold.** Activations over the (dynamic, ≤ 32 MB) mmap
  threshold are mmap-ed and unmapped on every call: ≈ 460 k page faults and
  ≈ 1 s of system time per Kodak-size decode. ``mallopt(M_MMAP_MAX, 0)``
  serves them from the heap instead, and a large ``M_TRIM_THRESHOLD`` keeps
  freed heap for the next call.

``configure_cpu`` applies both (and the torch thread count) and reports what
took effect; ``VQSIM_NO_CPU_TUNING=1`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

from .errors import ParameterError

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _mallopt(param: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)))
    except (OSError, AttributeError):  # not glibc
        return False


def configure_cpu(threads: int | None = None, *, flush_denormal: bool = True, heap_allocations: bool = True) -> dict[str, object]:
    """Set torch's thread count, flush denormals, keep large buffers on the heap; returns what was applied."""
    import torch

    applied: dict[str, object] = {}
    if threads is not None:
        if int(threads) < 1:
            raise ParameterError(f"threads must be ≥ 1, got {threads}")
        torch.set_num_threads(int(threads))
        applied["threads"] = int(threads)
    if os.environ.get("VQSIM_NO_CPU_TUNING") == "1":
        applied["tuning"] = "off (VQSIM_NO_CPU_TUNING=1)"
        return applied
    if flush_denormal:
        applied["flush_denormal"] = bool(torch.set_flush_denormal(True))
    if heap_allocations:
        applied["heap_allocations"] = _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    return applied
