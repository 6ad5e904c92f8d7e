"""Forward error correction: a packet-level erasure code (two codes, numpy or zfec) and an in-packet RS code.

Packet-level erasure code (``ErasureFEC``)
------------------------------------------
A systematic (n, k) Reed–Solomon erasure code over GF(256) (``sim.gf256``,
polynomial 0x11d), applied byte-wise *across* the packets of a block.  Each
block holds up to k data packets (the last block of an image may hold fewer:
the missing rows are treated as known all-zero packets, i.e. the code is
shortened) and n − k parity packets.

Every data packet d_j (bytes) becomes a symbol row of length L + 2:

    s_j = be16(len(d_j)) ‖ d_j ‖ 0 … 0,    L = max_j len(d_j),

so the original lengths are protected together with the contents.  The
parity rows are p = P · S over GF(256) for the generator G = [I_k; P] of the
chosen ``code`` (``CODES``):

* ``"cauchy"`` (default): P = C, the (n−k)×k Cauchy matrix
  C[i, j] = 1/(x_i + y_j), x_i = i, y_j = (n−k) + j.
* ``"vandermonde"`` (zfec's code): V[r, c] = a_r^c, r = 0 … n−1, at the points
  a_0 = 0, a_r = α^(r−1); G = V · V_top⁻¹ (V_top: rows 0 … k−1), so
  P = V_bot · V_top⁻¹.  Byte-identical to ``zfec.Encoder(k, n)`` (pinned by
  tests; zfec's fec.c builds the same matrix).

Both generators are MDS (every k×k submatrix of C, and of V, is non-singular),
so any k of the n rows determine the block: any ≤ n − k lost packets are
recovered.  The two codes give different parity bytes (k ≥ 2).

Decoding (numpy backend) picks k received rows (generator submatrix A),
inverts A once (Gauss–Jordan, cached per code and erasure pattern) and applies
the rows of A⁻¹ belonging to the missing data packets to all L + 2 byte
columns at once with table gathers — no per-byte Python loop.  The
``"vandermonde"`` code can instead be computed by zfec (compiled; ``backend``
"zfec", or "auto" when zfec is importable), fed the shortened block's zero
rows explicitly.  Backends give identical bytes, so a receiver without zfec
decodes a zfec sender.

The code is part of the wire format: a receiver rebuilds it from the header
(``fec_n``, ``fec_k`` and the code flag, see ``sim.packet``) alone.

Measured (2 shared CPU cores, timeit medians; encode + decode of one image's
96 data packets, every block losing n − k data packets; ms per image):

    (n, k)   bytes   cauchy-numpy   vandermonde-numpy   vandermonde-zfec
    (6, 4)    200       1.39             1.36                0.27
    (6, 4)   1500       2.92             2.93                0.57
    (12, 8)   200       1.46             1.47                0.24
    (12, 8)  1500       4.19             4.30                0.79
    (48, 32)  200       2.60             2.58                0.42
    (48, 32) 1500      12.8             12.7                 2.46

i.e. zfec is 5–6× faster end to end (6–24× for the bare kernels); the numpy
codes cost the same.  Either way the FEC of a 768×512 image (~0.1–0.2 ms
with numpy at typical sizes) is small next to a ~1 s sweep trial.

In-packet Reed–Solomon (``InPacketRS``)
---------------------------------------
Protects one packet's bytes against bit errors: the packet is split into
chunks of 255 − nsym bytes and each chunk gets nsym RS parity bytes
(``reedsolo.RSCodec(nsym)`` layout, byte-compatible), so up to ⌊nsym/2⌋
byte errors *per chunk* are corrected.  Encoding is vectorized here
(``gf256.rs_encode_chunks``); decoding uses ``creedsolo`` (compiled) when it is
installed, else the pure-Python ``reedsolo``, and is only attempted for
packets whose CRC fails.  ``creedsolo`` ships in the reedsolo ≥ 2 wheels (the
pre-release 2.1.1b1; PyPI's 1.7.0 is pure Python); it decodes ~8× faster and
gives the same result for every packet, corrected, given up or miscorrected
(``HAVE_CREEDSOLO`` says which one is in use).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from codec.errors import ParameterError, VQSimError

from . import gf256

try:  # compiled extension shipped by some reedsolo builds
    from creedsolo import ReedSolomonError as _RSError
    from creedsolo import RSCodec as _RSCodec

    HAVE_CREEDSOLO = True
except ImportError:  # pragma: no cover - depends on the install
    from reedsolo import ReedSolomonError as _RSError
    from reedsolo import RSCodec as _RSCodec

    HAVE_CREEDSOLO = False

CODES: tuple[str, ...] = ("cauchy", "vandermonde")
"""Packet erasure codes (generators); the packet header names the one a stream uses."""
DEFAULT_CODE = "cauchy"
BACKENDS: tuple[str, ...] = ("auto", "zfec", "numpy")
"""Who computes the erasure code: zfec when importable ("auto"), zfec or numpy by name."""
LENGTH_PREFIX = 2  # bytes of the big-endian length in front of each data symbol
MAX_SYMBOL_LEN = 0xFFFF


class FECError(VQSimError, ValueError):
    """A received FEC block is inconsistent (wrong symbol lengths, impossible indices, a bad recovered length).

    Bad *received data*, like ``sim.packet.PacketError`` (not a bad parameter: the
    sender's own mistakes raise ``ParameterError``); the depacketizer counts the
    block's missing packets as lost (``"fec_failed"``).
    """


def _zfec_module() -> ModuleType | None:
    """The ``zfec`` module, or None when it is not installed (looked up at each construction, never cached)."""
    try:
        import zfec
    except ImportError:
        return None
    module: ModuleType = zfec
    return module


HAVE_ZFEC = _zfec_module() is not None
"""Whether ``zfec`` was importable when this module was imported (informational)."""


@dataclass(frozen=True, repr=False)
class ErasureFEC:
    """Systematic (n, k) packet-level erasure code over GF(256) (see the module docstring).

    Attributes:
        n: packets per block, data + parity, k < n ≤ 255.
        k: data packets per block, 1 ≤ k < n.
        code: the generator, one of ``CODES``: "cauchy" (default, [I; C]) or
            "vandermonde" (zfec's V·V_top⁻¹).  Part of the wire format (the
            packet header names it); the two give different parity bytes.
        backend: who computes it, one of ``BACKENDS``: "numpy" (always
            available, both codes), "zfec" (vandermonde only, needs zfec
            installed) or "auto" (zfec for vandermonde when importable, else
            numpy).  Not part of the code's identity: backends give identical
            bytes, so two instances differing only in ``backend`` compare equal.
        engine: the backend in use after resolving "auto": "numpy" or "zfec".

    Raises:
        ParameterError: bad n / k, unknown code or backend, "zfec" with the
            Cauchy code, or "zfec" when zfec is not installed.
    """

    n: int
    k: int
    code: str = DEFAULT_CODE
    backend: str = field(default="auto", compare=False)
    engine: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        n, k = int(self.n), int(self.k)
        if not 1 <= k < n <= 255:
            raise ParameterError(f"ErasureFEC needs 1 ≤ k < n ≤ 255, got n={self.n}, k={self.k}")
        if self.code not in CODES:
            raise ParameterError(f"ErasureFEC code must be one of {CODES}, got {self.code!r}")
        if self.backend not in BACKENDS:
            raise ParameterError(f"ErasureFEC backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "zfec" and self.code != "vandermonde":
            raise ParameterError(f"backend 'zfec' computes only the 'vandermonde' code, not {self.code!r}")
        have_zfec = self.code == "vandermonde" and self.backend != "numpy" and _zfec_module() is not None
        if self.backend == "zfec" and not have_zfec:
            raise ParameterError("backend 'zfec' needs the zfec package (pip install 'vqsim[fec]'); "
                                 "backend 'auto' or 'numpy' computes the same code without it")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "engine", "zfec" if have_zfec else "numpy")

    def __repr__(self) -> str:
        extra = "" if self.code == DEFAULT_CODE else f", code={self.code!r}, backend={self.backend!r}"
        return f"ErasureFEC(n={self.n}, k={self.k}{extra})"

    @property
    def m(self) -> int:
        """Parity packets per block, n − k."""
        return self.n - self.k

    @property
    def rate(self) -> float:
        return self.k / self.n

    def num_blocks(self, num_data: int) -> int:
        return -(-int(num_data) // self.k)

    def parity_matrix(self) -> np.ndarray:
        """The (n − k, k) parity part P of the generator [I_k; P] (read-only)."""
        return _parity_matrix(self.code, self.m, self.k)

    # ------------------------------------------------------------------ encode
    @staticmethod
    def data_symbols(packets: Sequence[bytes], length: int | None = None, rows: int | None = None) -> np.ndarray:
        """Rows s_j = be16(len) ‖ d_j ‖ zero padding, as a (rows, L+2) uint8 array.

        The one definition of the symbol layout (both backends use it).  ``rows``
        (default ``len(packets)``) may add all-zero rows after the packets (the
        known rows of a shortened block).

        Raises:
            FECError: a packet longer than ``length`` or than the length prefix allows.
        """
        lens = [len(p) for p in packets]
        L = max(lens) if length is None else int(length)
        if L > MAX_SYMBOL_LEN - LENGTH_PREFIX:
            raise FECError(f"packet of {L} bytes is too long for the FEC length prefix")
        out = np.zeros((len(packets) if rows is None else int(rows), L + LENGTH_PREFIX), dtype=np.uint8)
        for j, p in enumerate(packets):  # one memcpy per packet
            if len(p) > L:
                raise FECError(f"data packet of {len(p)} bytes exceeds symbol length {L}")
            out[j, 0] = len(p) >> 8
            out[j, 1] = len(p) & 0xFF
            out[j, LENGTH_PREFIX:LENGTH_PREFIX + len(p)] = np.frombuffer(p, dtype=np.uint8)
        return out

    def encode_block(self, packets: Sequence[bytes]) -> list[bytes]:
        """Parity symbols of one block of 1 … k data packets (n − k byte strings of length L + 2).

        Raises:
            ParameterError: not 1 … k packets, or a packet too long for the length prefix.
        """
        if not 1 <= len(packets) <= self.k:
            raise ParameterError(f"a block holds 1 … k={self.k} data packets, got {len(packets)}")
        L = max(len(p) for p in packets)
        if L > MAX_SYMBOL_LEN - LENGTH_PREFIX:
            raise ParameterError(f"packet of {L} bytes is too long for the FEC length prefix "
                                 f"(at most {MAX_SYMBOL_LEN - LENGTH_PREFIX})")
        if self.engine == "zfec":
            # rows len(packets) … k−1 of a shortened block are zero
            syms = [row.tobytes() for row in self.data_symbols(packets, L, rows=self.k)]
            return list(_zfec_encoder(self.k, self.n).encode(syms, tuple(range(self.k, self.n))))
        S = self.data_symbols(packets, L)
        P = gf256.gf_matmul(self.parity_matrix()[:, : len(packets)], S)
        return [row.tobytes() for row in P]

    # ------------------------------------------------------------------ decode
    def decode_block(
        self,
        data: Mapping[int, bytes],
        parity: Mapping[int, bytes],
        num_data: int,
    ) -> dict[int, bytes]:
        """Recover the missing data packets of one block.

        Args:
            data: received data packets, row j ∈ [0, num_data) -> packet bytes.
            parity: received parity symbols, parity index i ∈ [0, n−k) -> bytes
                (all of the same length L + 2).
            num_data: data packets in this block (k, or fewer in the last block).

        Returns:
            {j: packet bytes} for every missing data row j that could be
            recovered: all of them if at least ``num_data`` rows were received
            in total, none otherwise.

        Raises:
            FECError: inconsistent symbol lengths or indices (the caller treats
                the block's missing packets as lost).
        """
        kk = int(num_data)
        if not 1 <= kk <= self.k:
            raise FECError(f"num_data must be in [1, {self.k}], got {num_data}")
        missing = [j for j in range(kk) if j not in data]
        if not missing or not parity:
            return {}
        if any(not 0 <= j < kk for j in data) or any(not 0 <= i < self.m for i in parity):
            raise FECError("row index out of range")
        if len(data) + len(parity) < kk:
            return {}
        Ls = self._symbol_length(data, parity)
        rows_d = sorted(data)
        rows_p = sorted(parity)[: len(missing)]
        solve = self._solve_zfec if self.engine == "zfec" else self._solve_numpy
        rec = solve(data, parity, kk, rows_d, rows_p, missing, Ls)
        out: dict[int, bytes] = {}
        for j, row in zip(missing, rec, strict=True):
            n = (row[0] << 8) | row[1]
            if n > Ls - LENGTH_PREFIX:
                raise FECError(f"recovered length {n} exceeds the symbol length")
            out[j] = row[LENGTH_PREFIX:LENGTH_PREFIX + n]
        return out

    @staticmethod
    def _symbol_length(data: Mapping[int, bytes], parity: Mapping[int, bytes]) -> int:
        """The block's symbol length L + 2, from the parity symbols (checked against the data packets)."""
        lens = {len(p) for p in parity.values()}
        if len(lens) != 1:
            raise FECError(f"parity symbols of different lengths {sorted(lens)}")
        Ls = lens.pop()
        if Ls < LENGTH_PREFIX:
            raise FECError(f"parity symbol of {Ls} bytes is shorter than the length prefix")
        if any(len(p) + LENGTH_PREFIX > Ls for p in data.values()):
            raise FECError("a received data packet is longer than the parity symbols")
        return Ls

    def _solve_zfec(self, data: Mapping[int, bytes], parity: Mapping[int, bytes], kk: int, rows_d: list[int],
                    rows_p: list[int], missing: list[int], Ls: int) -> list[bytes]:
        """The missing symbol rows, by zfec: it takes k blocks (received data rows, the known zero rows
        kk … k−1 of a shortened block, then parity rows) with their row numbers."""
        syms = self.data_symbols([data[j] for j in rows_d], Ls - LENGTH_PREFIX)
        zero = bytes(Ls)
        blocks = [*(row.tobytes() for row in syms), *(zero for _ in range(self.k - kk)),
                  *(bytes(parity[i]) for i in rows_p)]
        nums = [*rows_d, *range(kk, self.k), *(self.k + i for i in rows_p)]
        dec = _zfec_decoder(self.k, self.n).decode(blocks, nums)
        return [bytes(dec[j]) for j in missing]

    def _solve_numpy(self, data: Mapping[int, bytes], parity: Mapping[int, bytes], kk: int, rows_d: list[int],
                     rows_p: list[int], missing: list[int], Ls: int) -> list[bytes]:
        """The missing symbol rows, by numpy: the cached recovery matrix applied to the known rows."""
        coef = _recovery_matrix(self.code, self.m, self.k, kk, tuple(rows_d), tuple(rows_p))
        # known symbols, in the column order of coef: received data rows, then parity rows
        known_data = self.data_symbols([data[j] for j in rows_d], Ls - LENGTH_PREFIX)
        known_parity = np.stack([np.frombuffer(parity[i], dtype=np.uint8) for i in rows_p])
        Y = np.concatenate([known_data, known_parity])
        return [row.tobytes() for row in gf256.gf_matmul(coef, Y)]


def _parity_matrix(code: str, m: int, k: int) -> np.ndarray:
    """P of the generator [I_k; P]: Cauchy C (m, k) or systematic-Vandermonde V_bot · V_top⁻¹."""
    return gf256.cauchy_matrix(m, k) if code == "cauchy" else gf256.vandermonde_parity_matrix(m, k)


@lru_cache(maxsize=4096)
def _recovery_matrix(
    code: str, m: int, k: int, kk: int, rows_d: tuple[int, ...], rows_p: tuple[int, ...]
) -> np.ndarray:
    """Coefficients expressing the missing data rows in terms of the received ones.

    The block's data rows are x_0 … x_{kk−1} (rows kk … k−1 of the shortened
    code are zero and drop out).  Received data rows give x_j directly,
    received parity rows give Σ_j P[i, j] x_j.  Stacking those len(rows_d) +
    len(rows_p) = kk equations as A x = y and inverting A yields
    x_missing = (A⁻¹)[missing] · y.  Cached per code and erasure pattern.
    """
    P = _parity_matrix(code, m, k)[:, :kk]
    A = np.zeros((len(rows_d) + len(rows_p), kk), dtype=np.uint8)
    for r, j in enumerate(rows_d):
        A[r, j] = 1
    A[len(rows_d):] = P[list(rows_p)]
    Ainv = gf256.gf_inv_matrix(A)
    missing = [j for j in range(kk) if j not in set(rows_d)]
    coef: np.ndarray = Ainv[missing].copy()
    coef.setflags(write=False)
    return coef


def _require_zfec() -> ModuleType:
    zfec = _zfec_module()
    if zfec is None:  # pragma: no cover - ErasureFEC checks this when it is built
        raise ParameterError("backend 'zfec' needs the zfec package (pip install 'vqsim[fec]')")
    return zfec


@lru_cache(maxsize=64)
def _zfec_encoder(k: int, n: int) -> Any:  # zfec.Encoder (zfec ships no type information)
    """zfec's encoder of the (n, k) systematic Vandermonde code (cached per (k, n); stateless once built)."""
    return _require_zfec().Encoder(k, n)


@lru_cache(maxsize=64)
def _zfec_decoder(k: int, n: int) -> Any:  # zfec.Decoder
    """zfec's decoder of the (n, k) systematic Vandermonde code (cached per (k, n); stateless once built)."""
    return _require_zfec().Decoder(k, n)


class InPacketRS:
    """Reed–Solomon protection of one packet against byte errors.

    The packet is cut into chunks of 255 − nsym bytes; each chunk is followed
    by its nsym parity bytes (``reedsolo.RSCodec(nsym)`` wire layout).  Up to
    ⌊nsym/2⌋ corrupted bytes per chunk are corrected.

    Args:
        nsym: parity bytes per chunk, 1 ≤ nsym ≤ 254.
    """

    def __init__(self, nsym: int) -> None:
        nsym = int(nsym)
        if not 1 <= nsym <= 254:
            raise ParameterError(f"inpacket_nsym must be in [1, 254] (or 0 to disable), got {nsym}")
        self.nsym = nsym
        self.chunk = 255 - nsym
        self._codec = _RSCodec(nsym)

    def overhead(self, length: int) -> int:
        """Parity bytes added to a packet of ``length`` bytes: nsym · ⌈length / (255 − nsym)⌉ (0 for an empty one,
        which ``encode`` leaves empty, as ``reedsolo`` does)."""
        return self.nsym * (-(-int(length) // self.chunk))

    def encode(self, packet: bytes) -> bytes:
        return self.encode_many([packet])[0]

    def encode_many(self, packets: Sequence[bytes]) -> list[bytes]:
        """Encode many packets with one vectorized parity computation."""
        if not packets:
            return []
        c = self.chunk
        pieces: list[bytes] = []
        owner: list[int] = []
        for i, p in enumerate(packets):
            for s in range(0, len(p), c):  # an empty packet has no chunk and no parity (as reedsolo encodes b"")
                pieces.append(p[s:s + c])
                owner.append(i)
        if not pieces:
            return [b"" for _ in packets]
        mat = np.zeros((len(pieces), c), dtype=np.uint8)
        for r, piece in enumerate(pieces):  # left-pad: leading zeros do not change RS parity
            if piece:
                mat[r, c - len(piece):] = np.frombuffer(piece, dtype=np.uint8)
        par = gf256.rs_encode_chunks(mat, self.nsym)
        out: list[list[bytes]] = [[] for _ in packets]
        for r, (i, piece) in enumerate(zip(owner, pieces, strict=True)):
            out[i].append(piece)
            out[i].append(par[r].tobytes())
        return [b"".join(parts) for parts in out]

    def strip(self, wire: bytes) -> bytes:
        """The message bytes of an encoded packet, without checking or correcting anything."""
        n = 255
        return b"".join(wire[s:s + n][: max(0, min(n, len(wire) - s) - self.nsym)] for s in range(0, len(wire), n))

    def decode(self, wire: bytes) -> bytes | None:
        """Correct and return the message, or None if the RS decoder gives up."""
        try:
            msg = self._codec.decode(bytearray(wire))[0]
        except (_RSError, ValueError, IndexError, ZeroDivisionError):
            return None
        return bytes(msg)
