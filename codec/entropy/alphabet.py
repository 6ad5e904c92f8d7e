"""Coder ids and alphabet checks shared by every entropy coder (numpy only, no torch).

:data:`CODERS` is the one definition of the coder names *and* of their wire
codes: a coder's position in the tuple is the id written by both containers,
the ``.vqb`` bitstream (``codec.bitstream``, flags bits 0-3) and the vqsim
packet header (``sim.packet``, byte 29).  Appending a coder keeps every
existing stream readable; reordering or removing one does not.  The tuple
lives here, in the numpy-only coder layer, so that ``sim`` (which must not
import torch) and ``experiments.config`` read it without loading any model.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..types import MAX_CODEBOOK_SIZE

__all__ = ["CODERS", "CONTEXT_CODERS", "PACKET_CODERS", "PRIOR_CODERS",
            "MAX_SYMBOLS", "check_alphabet", "check_coder", "bits_per_symbol"]

CODERS: tuple[str, ...] = ("raw", "deflate", "arith", "arith_rep")
"""Coder names; the position is the coder's id on the wire (bitstream and packet headers)."""

CONTEXT_CODERS: tuple[str, ...] = ("tf_tile",)
"""Packet coders that code a 2-D tile with a transformer (``codec.entropy.tf_ar.TileContextCoder``): the
packetizer hands them tiles instead of symbol runs, and the receiver must be given the same coder object."""

PACKET_CODERS: tuple[str, ...] = CODERS + CONTEXT_CODERS
"""Every coder a vqsim packet header can name; the position is the header's coder id (``CODERS`` first, so
every existing packet keeps its id)."""

PRIOR_CODERS: tuple[str, ...] = ("arith", "arith_rep")
"""The arithmetic coders: the ones that use a codebook prior (the others ignore it)."""

MAX_SYMBOLS = 1 << 24
"""Largest ``count`` a decoder accepts (a 4096×4096 index map)."""


def check_alphabet(alphabet_size: int) -> int:
    """``alphabet_size`` as an int K in ``[2, MAX_CODEBOOK_SIZE]``, else ``TypeError`` / ``ParameterError``."""
    if isinstance(alphabet_size, bool) or not isinstance(alphabet_size, (int, np.integer)):
        raise TypeError(f"alphabet_size must be an int, got {type(alphabet_size).__name__}")
    K = int(alphabet_size)
    if not 2 <= K <= MAX_CODEBOOK_SIZE:
        raise ParameterError(f"alphabet_size must be in [2, {MAX_CODEBOOK_SIZE}], got {K}")
    return K


def check_coder(coder: str) -> str:
    """``coder`` if it names one of :data:`CODERS`, else ``ParameterError``."""
    if coder not in CODERS:
        raise ParameterError(f"coder must be one of {CODERS}, got {coder!r}")
    return coder


def bits_per_symbol(alphabet_size: int) -> int:
    """Width ``b = max(1, ceil(log2 K))`` of one symbol in fixed-width packing."""
    K = check_alphabet(alphabet_size)
    return max(1, math.ceil(math.log2(K)))
