"""Lossless entropy coding of VQ index sequences: the public encode / decode API (numpy only, no torch).

A *symbol sequence* is a 1-D array of ``count`` integers in ``[0, K)`` (an
:class:`~codec.types.IndexMap` flattened in raster order). Coders
(:data:`CODERS`, whose positions are the wire ids, see
:mod:`codec.entropy.alphabet`):

``"raw"`` / ``"deflate"``
    fixed-width bit packing / zlib over the better of two byte layouts
    (:mod:`codec.entropy.packing`);
``"arith"`` / ``"arith_rep"``
    adaptive multi-symbol range coder, optionally with a "same as the left
    neighbour" flag (:mod:`codec.entropy.arith`, which also documents the
    prior weight and the model's constants).

Decoders validate ``count`` and ``alphabet_size`` before allocating anything,
refuse a ``count`` the payload cannot hold (the arithmetic coders:
:func:`max_symbols`, the most symbols ``n`` bytes can code at the coder's
least possible cost per symbol),
always produce exactly ``count`` symbols or raise
:class:`~codec.errors.BitstreamError` naming the reason (wrong length,
out-of-range symbol, non-zero padding, unused or missing data, ...), and never
loop unboundedly: the arithmetic decoder runs exactly ``count`` iterations and
fails as soon as it would read more than 4 bytes past the end of the data.

``prior`` is used only by the arithmetic coders (:data:`PRIOR_CODERS`); the
others ignore it. Encoder and decoder must be given the same prior (the
container records whether one was used, see :mod:`codec.bitstream`).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import BitstreamError, ParameterError
from .alphabet import (
    CODERS,
    CONTEXT_CODERS,
    MAX_SYMBOLS,
    PACKET_CODERS,
    PRIOR_CODERS,
    bits_per_symbol,
    check_alphabet,
    check_coder,
)
from .arith import BIT_MODEL_LIMIT, arith_decode, arith_encode, increment, legacy_prior_weight, max_total, prior_weight
from .packing import DEFLATE_MAX_RATIO, deflate_decode, deflate_encode, raw_decode, raw_encode

__all__ = [
    "CODERS", "CONTEXT_CODERS", "PACKET_CODERS",
    "PRIOR_CODERS", "MAX_SYMBOLS", "bits_per_symbol", "increment", "max_total", "prior_weight",
    "legacy_prior_weight", "encode_symbols", "decode_symbols", "max_symbols",
]


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------

def _check_symbols(symbols: np.ndarray, K: int) -> np.ndarray:
    s = np.asarray(symbols)
    if s.ndim != 1:
        s = s.reshape(-1)
    if s.size > MAX_SYMBOLS:
        raise ParameterError(f"at most {MAX_SYMBOLS} symbols can be coded, got {s.size}")
    if s.size == 0:
        return s.astype(np.int64)
    if not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"symbols must be integers, got dtype {s.dtype}")
    lo, hi = int(s.min()), int(s.max())
    if lo < 0 or hi >= K:
        raise ParameterError(f"symbols must lie in [0, {K}), got range [{lo}, {hi}]")
    return s.astype(np.int64)


def _check_prior(prior: np.ndarray | None, K: int) -> np.ndarray | None:
    if prior is None:
        return None
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (K,):
        raise ParameterError(f"prior must have shape ({K},) (one count per codeword), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ParameterError("prior must be finite and non-negative")
    if not p.sum() > 0:
        raise ParameterError("prior must have a positive sum")
    return p


def _check_weight(weight: int | None, K: int) -> int | None:
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, (int, np.integer)) or not 1 <= weight <= max_total(K) - 2 * K:
        raise ParameterError(f"prior_weight must be an int in [1, {max_total(K) - 2 * K}] for K = {K}, got {weight!r}")
    return int(weight)


def _check_count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    n = int(count)
    if not 0 <= n <= MAX_SYMBOLS:
        raise BitstreamError(f"symbol count {n} outside [0, {MAX_SYMBOLS}]")
    return n


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------

def encode_symbols(symbols: np.ndarray, alphabet_size: int, coder: str,
                   prior: np.ndarray | None = None, *, prior_weight: int | None = None) -> bytes:
    """Losslessly code a sequence of symbols in ``[0, alphabet_size)``.

    Args:
        symbols: integer array (flattened in C order if not 1-D), at most
            ``MAX_SYMBOLS`` values, each in ``[0, K)``.
        alphabet_size: K, 2 ≤ K ≤ 2^20.
        coder: one of :data:`CODERS`.
        prior: optional length-K non-negative histogram (e.g. codebook usage
            counts) that initialises the ``"arith"`` model; ignored otherwise.
        prior_weight: counts the prior is spread over (default
            :func:`prior_weight`); the decoder must use the same.

    Returns:
        The payload bytes (no header; ``count`` and ``K`` must be stored
        elsewhere, see :mod:`codec.bitstream`).

    Raises:
        ValueError: unknown coder, K out of range, symbols out of range, bad prior.
    """
    K = check_alphabet(alphabet_size)
    check_coder(coder)
    s = _check_symbols(symbols, K)
    if coder == "raw":
        return raw_encode(s, K)
    if coder == "deflate":
        return deflate_encode(s, K)
    return arith_encode(s, K, _check_prior(prior, K), rep=coder == "arith_rep", weight=_check_weight(prior_weight, K))


def max_symbols(nbytes: int, alphabet_size: int, coder: str) -> int:
    """An upper bound on the symbols a payload of ``nbytes`` bytes can code.

    From each coder's least possible cost per symbol:

    * ``raw``: ``b = max(1, ceil(log2 K))`` bits exactly: ``floor(8 n / b)``;
    * ``deflate``: the layout byte plus a zlib stream that expands at most
      1032× (RFC 1951), i.e. ``8 · 1032 · n`` bits of packed symbols;
    * ``arith``: every count stays ≥ 1 and the total ≤ ``max_total(K)``, so a
      symbol's probability is at most ``1 - (K-1)/max_total(K)`` and it costs
      at least ``c = -log2`` of that; the decoder reads at most ``n + 4``
      bytes of which the first 4 set the 32-bit range, so
      ``count · c ≤ 8 n + 8``;
    * ``arith_rep``: each symbol after the first costs at least the flag's
      ``-log2(1023/1024)`` bits (its counts sum to ≤ 1024, each ≥ 1).

    ``decode_symbols`` refuses a ``count`` above this before running the
    arithmetic decoders' per-symbol loop (raw and deflate payloads are checked
    against their exact and bounded sizes instead).
    """
    K = check_alphabet(alphabet_size)
    check_coder(coder)
    n = int(nbytes)
    if n < 0:
        raise ParameterError(f"nbytes must be ≥ 0, got {nbytes}")
    if coder == "raw":
        return 8 * n // bits_per_symbol(K)
    if coder == "deflate":
        return (8 * DEFLATE_MAX_RATIO * max(n - 1, 0) + 8 * 64) // bits_per_symbol(K)
    if coder == "arith":
        cost = -math.log2(1.0 - (K - 1) / max_total(K))
    else:
        cost = -math.log2(1.0 - 1.0 / BIT_MODEL_LIMIT)
    return 1 + int((8 * n + 8) / cost * 1.001)


def decode_symbols(data: bytes, count: int, alphabet_size: int, coder: str,
                   prior: np.ndarray | None = None, *, prior_weight: int | None = None) -> np.ndarray:
    """Inverse of :func:`encode_symbols`: exactly ``count`` int32 symbols.

    Raises:
        BitstreamError: the payload is corrupt, truncated, too long, decodes to
            out-of-range symbols, ``count`` is outside ``[0, MAX_SYMBOLS]``, or
            ``count`` exceeds what the payload can hold (:func:`max_symbols`).
        ValueError: unknown coder, K out of range, bad prior (caller errors).
    """
    K = check_alphabet(alphabet_size)
    check_coder(coder)
    n = _check_count(count)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if coder in PRIOR_CODERS:  # raw and deflate check their exact / bounded sizes themselves
        most = max_symbols(len(data), K, coder)
        if n > most:
            raise BitstreamError(f"{coder} payload of {len(data)} bytes cannot hold {n} symbols "
                                 f"(at most {most} for codebook size {K})")
    if coder == "raw":
        return raw_decode(data, n, K)
    if coder == "deflate":
        return deflate_decode(data, n, K)
    return arith_decode(data, n, K, _check_prior(prior, K), rep=coder == "arith_rep",
                        weight=_check_weight(prior_weight, K))
