"""The vqsim packet: a fixed 36-byte binary header, a payload and a CRC-32.

Wire layout (big-endian, ``struct`` format ``HEADER_FORMAT``)::

    off size field          meaning
      0   2  magic          b"VQ"
      2   1  version        1
      3   1  flags          bit 0: parity (FEC) packet; bit 1: FEC code "vandermonde"
                            (clear: "cauchy"; only with FEC); other bits 0
      4   4  image_id       uint32, identifies the image within a session
      8   2  seq            data: packet number in [0, count); parity: parity index in [0, n−k)
     10   2  count          number of *data* packets of the image, P ≥ 1
     12   2  block          FEC block of the packet (data: seq // k); 0 without FEC
     14   1  fec_n          FEC block length n (0 = no FEC)
     15   1  fec_k          FEC data packets per block k (0 = no FEC)
     16   4  codebook_size  K, 2 ≤ K ≤ 2^20
     20   2  h              index-map height, ≥ 1
     22   2  w              index-map width, ≥ 1
     24   2  image_h        image height in pixels, ≥ 1
     26   2  image_w        image width in pixels, ≥ 1
     28   1  scheme         interleaver code, index into ``interleave.SCHEMES``
     29   1  coder          payload coder code, index into ``codec.entropy.PACKET_CODERS``
     30   4  seed           interleaver seed
     34   2  payload_len    payload bytes that follow the header
     36   …  payload
      …   4  crc32          zlib CRC-32 over header + payload

So a packet is ``HEADER_SIZE + payload_len + CRC_SIZE`` = 40 + payload_len
bytes.  Data packets carry the entropy-coded indices of their positions (see
``sim.packetizer``); parity packets carry one FEC parity symbol (see
``sim.fec``).

The FEC code (``sim.fec.CODES``) is named by flag bit 1 in every packet of a
stream, data and parity alike, so a receiver builds the decoder from the
header alone and the code is part of the stream key.  A stream with the bit
clear (every stream written before the bit existed) is the Cauchy code;
receivers that predate the bit reject it as an unknown flag (``"bad_field"``)
instead of decoding it with the wrong code.

Compact header (``header="compact"``, for links with tiny frames)
-----------------------------------------------------------------

The fields every packet of a session shares (K, h, w, image size, scheme,
coder, seed, FEC n / k / code) are *session parameters*: the receiver knows
them from a ``CompactSession`` (sent once, as its own 28-byte descriptor
``CompactSession.to_bytes``, or agreed out of band) and each packet carries
only::

    off size field      meaning
      0   1  magic      bits 7…3 = 10101 (compact version 1), bit 2 reserved (0),
                        bit 1: wide (seq and count 2 bytes each), bit 0: parity
      1   1  image_id   image id mod 256
      2 1|2  seq        data: packet number; parity: block·(n−k) + parity index
    3|4 1|2  count      number of data packets of the image (1 … 255 narrow)
    4|6   …  payload    (its length follows from the frame length)
      …   c  CRC        c = 1, 2 or 4 bytes, by the packet's total length L

so a packet costs 4 + c bytes (6 + c with more than 255 packets) besides its
payload, instead of 40.  CRC size, by L = header + payload + CRC: L ≤ 64 →
CRC-8 (polynomial 0x07, init 0); L ≤ 1024 → CRC-16/CCITT-FALSE (0x1021, init
0xFFFF, ``binascii.crc_hqx``); longer → CRC-32 (zlib).  For a corrupted packet
whose error pattern is not a multiple of the generator polynomial (every
single-bit error, every burst ≤ c·8 bits) detection is certain; for random
corruption a c-byte CRC lets a fraction 2^-8c through (2^-8 ≈ 0.4 %, 2^-16 ≈
1.5·10^-5, 2^-32 ≈ 2.3·10^-10), which is why the CRC grows with the packet.
The CRC is computed over the session's 4-byte *salt* (CRC-32 of its
descriptor) followed by header and payload, so a packet of another session is
rejected (``"bad_crc"``: a receiver cannot tell it from a corrupt one) except
with the same probability 2^-8c.  Lengths no sender produces (65, 1025, 1026)
are ``"bad_field"``.

``Packet.from_bytes`` validates in this order and raises ``PacketError`` with
``reason``: ``"bad_magic"`` (not a vqsim packet), ``"truncated"`` (shorter than
the header or the declared payload), ``"oversized"`` (longer than declared, or
longer than ``max_size``), ``"bad_crc"`` (checksum mismatch), ``"bad_field"``
(a header field out of range or inconsistent).  The depacketizer adds
``"foreign"``, ``"duplicate"`` and ``"bad_payload"``.
"""
from __future__ import annotations

import binascii
import dataclasses
import functools
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from codec.entropy import PACKET_CODERS
from codec.errors import VQSimError
from codec.types import MAX_CODEBOOK_SIZE

from .fec import CODES, DEFAULT_CODE
from .interleave import SCHEMES

MAGIC = b"VQ"
VERSION = 1
HEADER_FORMAT = "!2sBBIHHHBBIHHHHBBIH"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)  # 36
CRC_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC_SIZE  # 40 bytes per packet besides the payload
MAX_PAYLOAD = 0xFFFF
FLAG_PARITY = 0x01
FLAG_VANDERMONDE = 0x02
CODE_FLAGS: dict[str, int] = {"cauchy": 0, "vandermonde": FLAG_VANDERMONDE}
"""Flag bits naming each FEC code of ``sim.fec.CODES`` (the default, Cauchy, is all bits clear)."""
KNOWN_FLAGS = FLAG_PARITY | FLAG_VANDERMONDE
assert tuple(CODE_FLAGS) == CODES and CODE_FLAGS[DEFAULT_CODE] == 0

REASONS: tuple[str, ...] = (
    "bad_magic", "truncated", "oversized", "bad_crc", "bad_field",
    "foreign", "duplicate", "bad_payload", "bad_type", "fec_failed", "over_limit",
)
"""Reasons a received packet is dropped (``PacketError.reason`` and depacketizer counts)."""

HEADER_STRUCT = struct.Struct(HEADER_FORMAT)
"""The full header as a ``struct.Struct`` (packing and parsing; the fuzzer forges headers with it)."""
assert HEADER_SIZE == 36

HEADERS: tuple[str, ...] = ("full", "compact")
"""Packet header formats: the 36-byte self-describing header (default) and the compact one."""
COMPACT_MAGIC, COMPACT_MAGIC_MASK = 0xA8, 0xF8
COMPACT_WIDE = 0x02
COMPACT_NARROW_MAX = 0xFF
SESSION_MAGIC = b"VS"
_SESSION = struct.Struct("!2sBIHHHHBBIBBB")
SESSION_SIZE = _SESSION.size + 4  # 28 bytes with its CRC-32


class PacketError(VQSimError, ValueError):
    """A packet is malformed, corrupt or foreign.

    Attributes:
        reason: one of ``REASONS``.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}" if message else reason)


@dataclass(frozen=True)
class Packet:
    """One packet of one image (data or FEC parity); immutable.

    Construction validates every field (``PacketError("bad_field")``), so a
    ``Packet`` instance always serializes to a packet ``from_bytes`` accepts.
    ``fec_code`` (one of ``sim.fec.CODES``, flag bit 1 on the wire) names the
    stream's erasure code; a non-default code needs ``fec_n`` / ``fec_k`` set.
    """

    image_id: int
    seq: int
    count: int
    codebook_size: int
    h: int
    w: int
    image_size: tuple[int, int]
    scheme: str
    coder: str
    seed: int
    payload: bytes
    parity: bool = False
    block: int = 0
    fec_n: int = 0
    fec_k: int = 0
    fec_code: str = DEFAULT_CODE

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", bytes(self.payload))
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        _validate(self)

    # ------------------------------------------------------------ properties
    @property
    def size(self) -> int:
        """Bytes on the wire (header + payload + CRC)."""
        return OVERHEAD + len(self.payload)

    @property
    def stream_key(self) -> tuple[Any, ...]:
        """Fields every packet of the same image shares (used to spot foreign packets)."""
        return (self.image_id, self.count, self.codebook_size, self.h, self.w, self.image_size,
                self.scheme, self.coder, self.seed, self.fec_n, self.fec_k, self.fec_code)

    @property
    def send_index(self) -> int:
        """Position of this packet in the sender's order (per block: k data, then n−k parity)."""
        if not self.fec_n:
            return self.seq
        if self.parity:
            return self.block * self.fec_n + self.fec_k + self.seq
        return self.block * self.fec_n + self.seq - self.block * self.fec_k

    # --------------------------------------------------------- serialization
    @property
    def session(self) -> "CompactSession":
        """The session parameters of this packet's stream (what a compact header leaves out)."""
        return CompactSession(self.codebook_size, self.h, self.w, self.image_size, self.scheme, self.coder,
                              self.seed, self.fec_n, self.fec_k, self.fec_code)

    def to_bytes(self, header: str = "full") -> bytes:
        """The packet on the wire, with the 36-byte header (default) or the compact one."""
        if header != "full":
            if header != "compact":
                raise PacketError("bad_field", f"header must be one of {HEADERS}, got {header!r}")
            return self.session.encode(self)
        head = HEADER_STRUCT.pack(
            MAGIC, VERSION, (FLAG_PARITY if self.parity else 0) | CODE_FLAGS[self.fec_code], self.image_id,
            self.seq, self.count,
            self.block, self.fec_n, self.fec_k, self.codebook_size, self.h, self.w,
            self.image_size[0], self.image_size[1], SCHEMES.index(self.scheme),
            PACKET_CODERS.index(self.coder), self.seed, len(self.payload),
        )
        body = head + self.payload
        return body + zlib.crc32(body).to_bytes(CRC_SIZE, "big")

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, *, max_size: int | None = None) -> "Packet":
        """Parse and verify one packet.

        Args:
            data: the received bytes.
            max_size: optional largest acceptable packet (bytes); longer → "oversized".

        Raises:
            PacketError: with ``reason`` as listed in the module docstring.
            TypeError: ``data`` is not bytes-like.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"packet data must be bytes, got {type(data).__name__}")
        b = bytes(data)
        n = len(b)
        if b[:2] != MAGIC[: min(n, 2)] or n == 0:
            raise PacketError("bad_magic" if n else "truncated", f"starts with {b[:2]!r}, not {MAGIC!r}")
        if max_size is not None and n > max_size:
            raise PacketError("oversized", f"{n} bytes > limit {max_size}")
        if n < OVERHEAD:
            raise PacketError("truncated", f"{n} bytes < minimal packet of {OVERHEAD}")
        (magic, version, flags, image_id, seq, count, block, fec_n, fec_k, K, h, w,
         ih, iw, scheme, coder, seed, plen) = HEADER_STRUCT.unpack_from(b)
        want = OVERHEAD + plen
        if n < want:
            raise PacketError("truncated", f"{n} bytes < {want} declared")
        if n > want:
            raise PacketError("oversized", f"{n} bytes > {want} declared")
        crc = int.from_bytes(b[-CRC_SIZE:], "big")
        if zlib.crc32(b[:-CRC_SIZE]) != crc:
            raise PacketError("bad_crc", "CRC-32 mismatch")
        if version != VERSION:
            raise PacketError("bad_field", f"version {version} != {VERSION}")
        if flags & ~KNOWN_FLAGS:
            raise PacketError("bad_field", f"unknown flags {flags:#x}")
        if scheme >= len(SCHEMES):
            raise PacketError("bad_field", f"interleave code {scheme} unknown")
        if coder >= len(PACKET_CODERS):
            raise PacketError("bad_field", f"coder code {coder} unknown")
        parity = bool(flags & FLAG_PARITY)
        fec_code = "vandermonde" if flags & FLAG_VANDERMONDE else DEFAULT_CODE
        msg = _check_fields(seq, count, block, fec_n, fec_k, K, h, w, ih, iw, plen, parity, fec_code)
        if msg:
            raise PacketError("bad_field", msg)
        return cls._trusted(image_id, seq, count, K, h, w, (ih, iw), SCHEMES[scheme], PACKET_CODERS[coder], seed,
                            b[HEADER_SIZE:-CRC_SIZE], parity, block, fec_n, fec_k, fec_code)

    @classmethod
    def _trusted(cls, *values: object) -> "Packet":
        """Build without validation (fields already checked); positional in field order."""
        obj = object.__new__(cls)
        obj.__dict__.update(zip(_FIELD_NAMES, values, strict=True))
        return obj

    def replace(self, **changes: Any) -> Packet:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


_INT_FIELDS = (("image_id", 0xFFFFFFFF), ("seed", 0xFFFFFFFF), ("seq", 0xFFFF), ("count", 0xFFFF),
               ("block", 0xFFFF), ("h", 0xFFFF), ("w", 0xFFFF), ("fec_n", 255), ("fec_k", 255))


def _validate(p: Packet) -> None:
    """Type and range checks of a constructed Packet (raises PacketError("bad_field"))."""
    for name, hi in _INT_FIELDS:
        v = getattr(p, name)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v <= hi:
            raise PacketError("bad_field", f"{name} must be an int in [0, {hi}], got {v!r}")
        if type(v) is not int:
            object.__setattr__(p, name, int(v))
    if not isinstance(p.codebook_size, (int, np.integer)) or isinstance(p.codebook_size, bool):
        raise PacketError("bad_field", f"codebook_size must be an int, got {p.codebook_size!r}")
    object.__setattr__(p, "codebook_size", int(p.codebook_size))
    if len(p.image_size) != 2:
        raise PacketError("bad_field", f"image_size must be (H, W), got {p.image_size}")
    if p.scheme not in SCHEMES:
        raise PacketError("bad_field", f"scheme must be one of {SCHEMES}, got {p.scheme!r}")
    if p.coder not in PACKET_CODERS:
        raise PacketError("bad_field", f"coder must be one of {PACKET_CODERS}, got {p.coder!r}")
    if p.fec_code not in CODES:
        raise PacketError("bad_field", f"fec_code must be one of {CODES}, got {p.fec_code!r}")
    msg = _check_fields(p.seq, p.count, p.block, p.fec_n, p.fec_k, p.codebook_size, p.h, p.w,
                        p.image_size[0], p.image_size[1], len(p.payload), bool(p.parity), p.fec_code)
    if msg:
        raise PacketError("bad_field", msg)


def _check_fields(seq: int, count: int, block: int, fec_n: int, fec_k: int, K: int, h: int, w: int,
                  ih: int, iw: int, plen: int, parity: bool, fec_code: str = DEFAULT_CODE) -> str | None:
    """Consistency of the header fields (ints already within their wire widths); message or None."""
    if not 2 <= K <= MAX_CODEBOOK_SIZE:
        return f"codebook_size must be in [2, {MAX_CODEBOOK_SIZE}], got {K}"
    if h < 1 or w < 1:
        return f"h and w must be ≥ 1, got {h}×{w}"
    if not (1 <= ih <= 0xFFFF and 1 <= iw <= 0xFFFF):
        return f"image_size must be two ints in [1, 65535], got ({ih}, {iw})"
    if not 1 <= count <= h * w:
        return f"count must be in [1, h·w = {h * w}], got {count}"
    if plen > MAX_PAYLOAD:
        return f"payload of {plen} bytes exceeds {MAX_PAYLOAD}"
    if (fec_n == 0) != (fec_k == 0):
        return f"fec_n and fec_k must both be 0 (no FEC) or both set, got n={fec_n}, k={fec_k}"
    if fec_n and not 1 <= fec_k < fec_n:
        return f"FEC needs 1 ≤ k < n ≤ 255, got n={fec_n}, k={fec_k}"
    if fec_code != DEFAULT_CODE and not fec_n:
        return f"FEC code {fec_code!r} named without FEC parameters (fec_n = fec_k = 0)"
    if parity:
        if not fec_n:
            return "parity packet without FEC parameters"
        if seq >= fec_n - fec_k:
            return f"parity index {seq} ≥ n−k = {fec_n - fec_k}"
        if block >= -(-count // fec_k):
            return f"parity block {block} ≥ number of blocks {-(-count // fec_k)}"
    else:
        if seq >= count:
            return f"seq {seq} ≥ count {count}"
        expect_block = seq // fec_k if fec_k else 0
        if block != expect_block:
            return f"block {block} != {expect_block} for data packet {seq}"
    return None


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Packet))


# ----------------------------------------------------------------------------- compact header
def _crc8_table() -> bytes:
    table = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return bytes(table)


_CRC8_TABLE = _crc8_table()


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8 (polynomial x^8 + x^2 + x + 1 = 0x07, no reflection, no final xor), continuing from ``crc``."""
    t = _CRC8_TABLE
    for byte in data:
        crc = t[crc ^ byte]
    return crc


def compact_crc_size(total_len: int) -> int:
    """CRC bytes of a compact packet of ``total_len`` bytes (header + payload + CRC): 1, 2 or 4."""
    return 1 if total_len <= 64 else 2 if total_len <= 1024 else 4


def compact_crc_for_body(body_len: int) -> int:
    """CRC bytes a compact packet of ``body_len`` bytes before its CRC (header + payload) gets: the
    smallest c with ``compact_crc_size(body_len + c) == c``."""
    return 1 if body_len + 1 <= 64 else 2 if body_len + 2 <= 1024 else 4


@functools.lru_cache(maxsize=64)
def _crc8_of_salt(salt: bytes) -> int:
    return crc8(salt)


def _compact_crc(salt: bytes, body: bytes, c: int) -> bytes:
    if c == 1:
        return bytes([crc8(body, _crc8_of_salt(salt))])
    if c == 2:
        return binascii.crc_hqx(body, binascii.crc_hqx(salt, 0xFFFF)).to_bytes(2, "big")
    return zlib.crc32(body, zlib.crc32(salt)).to_bytes(4, "big")


@dataclass(frozen=True)
class CompactSession:
    """Session parameters of compact-header packets (every field of ``Packet`` a compact header leaves out).

    ``to_bytes`` / ``from_bytes`` are its once-sent 28-byte descriptor (magic
    ``b"VS"``, version, the fields, CRC-32); ``salt`` (CRC-32 of the descriptor
    body) seeds every packet's CRC so packets of another session fail the check.
    """

    codebook_size: int
    h: int
    w: int
    image_size: tuple[int, int]
    scheme: str
    coder: str
    seed: int
    fec_n: int = 0
    fec_k: int = 0
    fec_code: str = DEFAULT_CODE

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        # a probe packet checks every field with the full header's rules
        Packet(0, 0, 1, self.codebook_size, self.h, self.w, self.image_size, self.scheme, self.coder, self.seed,
               b"", False, 0, self.fec_n, self.fec_k, self.fec_code)

    def _body(self) -> bytes:
        return _SESSION.pack(SESSION_MAGIC, VERSION, self.codebook_size, self.h, self.w, *self.image_size,
                             SCHEMES.index(self.scheme), PACKET_CODERS.index(self.coder), self.seed, self.fec_n,
                             self.fec_k, CODES.index(self.fec_code))

    @cached_property
    def salt(self) -> bytes:
        """4 bytes: CRC-32 of the descriptor body."""
        return zlib.crc32(self._body()).to_bytes(4, "big")

    def to_bytes(self) -> bytes:
        """The session descriptor (sent once, reliably, before the compact packets)."""
        body = self._body()
        return body + zlib.crc32(body).to_bytes(4, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> "CompactSession":
        """Parse a session descriptor; PacketError ("truncated", "bad_magic", "bad_crc", "bad_field")."""
        b = bytes(data)
        if len(b) != SESSION_SIZE:
            raise PacketError("truncated" if len(b) < SESSION_SIZE else "oversized",
                              f"a session descriptor has {SESSION_SIZE} bytes, got {len(b)}")
        if b[:2] != SESSION_MAGIC:
            raise PacketError("bad_magic", f"starts with {b[:2]!r}, not {SESSION_MAGIC!r}")
        if zlib.crc32(b[:-4]) != int.from_bytes(b[-4:], "big"):
            raise PacketError("bad_crc", "session descriptor CRC-32 mismatch")
        _, version, K, h, w, ih, iw, scheme, coder, seed, n, k, code = _SESSION.unpack(b[:-4])
        if version != VERSION or scheme >= len(SCHEMES) or coder >= len(PACKET_CODERS) or code >= len(CODES):
            raise PacketError("bad_field", "unknown version, scheme, coder or FEC code in session descriptor")
        return cls(K, h, w, (ih, iw), SCHEMES[scheme], PACKET_CODERS[coder], seed, n, k, CODES[code])

    def encode(self, p: Packet) -> bytes:
        """Packet ``p`` (of this session) with the compact header."""
        seq = p.block * (p.fec_n - p.fec_k) + p.seq if p.parity else p.seq
        wide = p.count > COMPACT_NARROW_MAX or seq > COMPACT_NARROW_MAX
        fmt = "!BBHH" if wide else "!BBBB"
        head = struct.pack(fmt, COMPACT_MAGIC | (COMPACT_WIDE if wide else 0) | (FLAG_PARITY if p.parity else 0),
                           p.image_id & 0xFF, seq, p.count)
        body = head + p.payload
        return body + _compact_crc(self.salt, body, compact_crc_for_body(len(body)))

    def decode(self, data: bytes | bytearray | memoryview, *, image_id: int | None = None,
               max_size: int | None = None) -> Packet:
        """Parse and verify one compact packet of this session.

        Args:
            data: the received frame.
            image_id: the full image id the receiver expects; used when its low byte matches
                the header's (else the packet's id is the header byte, and it reads as foreign).
            max_size: largest acceptable packet; longer → "oversized".

        Raises:
            PacketError: "bad_magic", "oversized", "truncated", "bad_crc", "bad_field".
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"packet data must be bytes, got {type(data).__name__}")
        b = bytes(data)
        n = len(b)
        if n == 0:
            raise PacketError("truncated", "empty packet")
        b0 = b[0]
        if b0 & COMPACT_MAGIC_MASK != COMPACT_MAGIC:
            raise PacketError("bad_magic", f"first byte {b0:#04x} is not a compact vqsim header")
        if max_size is not None and n > max_size:
            raise PacketError("oversized", f"{n} bytes > limit {max_size}")
        wide = bool(b0 & COMPACT_WIDE)
        hsize = 6 if wide else 4
        c = compact_crc_size(n)
        if n < hsize + c:
            raise PacketError("truncated", f"{n} bytes < minimal compact packet of {hsize + c}")
        if _compact_crc(self.salt, b[:-c], c) != b[-c:]:
            raise PacketError("bad_crc", f"CRC-{8 * c} mismatch (corrupt, or another session's packet)")
        if compact_crc_for_body(n - c) != c:
            raise PacketError("bad_field", f"length {n} is not one a sender produces")
        if b0 & ~(COMPACT_MAGIC_MASK | COMPACT_WIDE | FLAG_PARITY) & 0xFF:
            raise PacketError("bad_field", f"reserved flag bit set in {b0:#04x}")
        _, iid, seq, count = struct.unpack_from("!BBHH" if wide else "!BBBB", b)
        parity = bool(b0 & FLAG_PARITY)
        fn, fk = self.fec_n, self.fec_k
        if parity:
            if not fn:
                raise PacketError("bad_field", "parity packet in a session without FEC")
            block, seq = divmod(seq, fn - fk)
        else:
            block = seq // fk if fk else 0
        plen = n - hsize - c
        msg = _check_fields(seq, count, block, fn, fk, self.codebook_size, self.h, self.w, *self.image_size,
                            plen, parity, self.fec_code)
        if msg:
            raise PacketError("bad_field", msg)
        if image_id is not None and int(image_id) & 0xFF == iid:
            iid = int(image_id)
        return Packet._trusted(iid, seq, count, self.codebook_size, self.h, self.w, self.image_size, self.scheme,
                               self.coder, self.seed, b[hsize:n - c], parity, block, fn, fk, self.fec_code)


def parse_packet(data: bytes | bytearray | memoryview, header: str = "full", session: CompactSession | None = None,
                 *, image_id: int | None = None, max_size: int | None = None) -> Packet:
    """``Packet.from_bytes`` (header "full") or ``session.decode`` (header "compact")."""
    if header == "full":
        return Packet.from_bytes(data, max_size=max_size)
    if header != "compact" or session is None:
        raise PacketError("bad_field", f"header must be one of {HEADERS} (compact needs a session), got {header!r}")
    return session.decode(data, image_id=image_id, max_size=max_size)
