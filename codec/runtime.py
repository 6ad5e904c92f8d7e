"""Process-wide CPU settings for torch work (set once by the CLI, never inside library functions).

Two measured slow-downs of this codec on CPU, both with identical results when fixed:

* **Denormal floats.** The mid-block attention's softmax produces denormal
  weights (≈ 4 % of them); one ``bmm`` on them took 721 ms instead of 8.7 ms.
  ``torch.set_flush_denormal(True)`` flushes them to zero (values below
  1.2e-38 cannot change a decoded pixel).
* **glibc's mmap threshold.** Activations over the (dynamic, ≤ 32 MB) mmap
  threshold are mmap-ed and unmapped on every call: ≈ 460 k page faults and
  ≈ 1 s of system time per Kodak-size decode. A fixed ``M_MMAP_THRESHOLD`` of
  64 MB serves them from the heap instead, and a large ``M_TRIM_THRESHOLD``
  keeps freed heap for the next call. (Until issue 27 this was
  ``M_MMAP_MAX = 0``, every buffer on the heap: as fast, but the heap's
  fragmentation added up to ≈ 0.6 kB per decoded pixel to the peak — a
  2^21-pixel decode peaked at 4.1 GB; buffers above 64 MB, which only images far
  above Kodak size have, are mmap-ed again.)

``configure_cpu`` applies both (and the torch thread count) and reports what
took effect; ``VQSIM_NO_CPU_TUNING=1`` turns it off.

Library users get both without asking: :func:`cpu_fast_path` sets them around
the codec's own CPU calls (``VQGANCodec.encode_latents`` / ``decode_batch``) and
restores them afterwards, so ``load_codec(...).decode_indices`` is as fast as the
CLI's decode, with bit-identical output. Restored means: the caller's
flush-denormal setting (per thread) as it was; glibc's allocator back to its
documented defaults (mmap threshold and trim threshold 128 KiB; glibc offers no
getter, and a fixed threshold no longer adapts as the default one does). Nothing
is touched when ``configure_cpu`` was applied already or ``VQSIM_NO_CPU_TUNING=1``.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from typing import Iterator

from .errors import ParameterError

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
_FAST_MMAP_THRESHOLD = 64 << 20  # activations of a Kodak-size decode stay on the heap; huge ones are still mmap-ed
_CONFIGURED = False  # configure_cpu applied the process-wide settings (then cpu_fast_path leaves them alone)


def _mallopt(param: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)))
    except (OSError, AttributeError):  # not glibc
        return False


def configure_cpu(
    threads: int | None = None, *, flush_denormal: bool = True, heap_allocations: bool = True
) -> dict[str, object]:
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
        applied["heap_allocations"] = _mallopt(_M_MMAP_THRESHOLD, _FAST_MMAP_THRESHOLD) and _mallopt(
            _M_TRIM_THRESHOLD, 1 << 30
        )
    global _CONFIGURED
    _CONFIGURED = True
    return applied


def _denormals_flushed() -> bool:
    """Whether this thread flushes denormals now (torch has no getter: multiply one and look)."""
    import torch

    return bool((torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() == 0.0)


_heap_lock = threading.Lock()
_heap_users = 0


@contextlib.contextmanager
def cpu_fast_path(device=None) -> Iterator[None]:
    """``configure_cpu``'s two settings for the calls inside (CPU only), restored afterwards (module docstring).

    A no-op on other devices, with ``VQSIM_NO_CPU_TUNING=1``, or after ``configure_cpu``. Thread-safe:
    denormal flushing is per thread; the allocator thresholds are set by the first concurrent user and
    restored by the last.
    """
    global _heap_users
    import torch

    if (
        (device is not None and torch.device(device).type != "cpu")
        or _CONFIGURED
        or os.environ.get("VQSIM_NO_CPU_TUNING") == "1"
    ):
        yield
        return
    was_flushing = _denormals_flushed()
    if not was_flushing:
        torch.set_flush_denormal(True)
    with _heap_lock:
        _heap_users += 1
        if _heap_users == 1:
            _mallopt(_M_MMAP_THRESHOLD, _FAST_MMAP_THRESHOLD)
            _mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users -= 1
            if _heap_users == 0:
                _mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
                _mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
        if not was_flushing:
            torch.set_flush_denormal(False)
