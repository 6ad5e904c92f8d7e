"""Versioned, self-checking container for one :class:`~codec.types.IndexMap`.

Layout (integers as unsigned LEB128 varints, ≤ 5 bytes each, canonical)::

    offset  size  field
    0       2     magic b"VQ"
    2       1     version: 2 if coded with a prior (weight ``entropy.prior_weight``),
                  else 1; version-1 streams with a prior (weight
                  ``entropy.legacy_prior_weight``) are still read
    3       1     flags: bits 0-3 coder id (0 raw, 1 deflate, 2 arith,
                  3 arith_rep, 8 tf_ar), bit 4 "coded with a codebook prior",
                  bit 5 "codebook id present", bits 6-7 reserved (0)
    4       var   K (codebook size, 2 ≤ K ≤ 2^20)
            1+L   codebook id: L (1 byte) then L bytes UTF-8 (only if bit 5)
            var   h, w   (latent map, 1 ≤ h·w ≤ 2^24)
            var   H, W   (image size in pixels, 1 ≤ H, W ≤ 2^20)
            var   payload length P in bytes
            P     payload (see :mod:`codec.entropy`), h·w indices in raster order
            4     CRC-32 (zlib.crc32, big-endian) of every byte before it

``tf_ar`` (:mod:`codec.entropy.tf_ar`) codes the map with the shipped AR
transformer of the codec the codebook id names (``"default/1024"`` →
``default_ar_1024.pt``); only registered codec names are looked up.

A header is typically 12-26 bytes (e.g. 26 bytes for K = 1024, id
``"default/256"``, a 32×48 map of a 512×768 image with a 1.3 kB payload).

``h, w`` need not equal ``H/f, W/f`` (models differ in the downsampling
factor f; pass ``downsample_factor`` to require it), but every field is
range-checked, and the claimed sizes are checked against the receiver's
:class:`~codec.limits.DecodeLimits` (default 2^21 pixels, 2^15 indices),
before anything is allocated.
Every malformed input raises :class:`~codec.errors.BitstreamError` with the
reason; corruption anywhere after the version byte is reported as a CRC
mismatch unless the stream is structurally truncated or over-long first.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .entropy import CODERS, MAX_SYMBOLS, PRIOR_CODERS, decode_symbols, encode_symbols, legacy_prior_weight
from .errors import BitstreamError, ParameterError
from .limits import DecodeLimits, resolve_limits
from .types import MAX_CODEBOOK_SIZE, IndexMap

__all__ = [
    "MAGIC", "VERSION", "CODER_IDS", "BITSTREAM_CODERS", "MAX_IMAGE_SIDE",
    "BitstreamHeader", "encode_bitstream", "decode_bitstream", "parse_header", "check_latent_shape", "bits_per_pixel",
    "put_varint",
]

MAGIC = b"VQ"
VERSION = 2
"""The newest container version; streams without a prior are still written as version 1 (the formats agree)."""
_VERSIONS = (1, 2)
from .entropy.tf_ar import TF_AR, TF_AR_WIRE_ID  # noqa: E402 (numpy at import; torch only when coding)

CODER_IDS: dict[str, int] = {**{name: i for i, name in enumerate(CODERS)}, TF_AR: TF_AR_WIRE_ID}
"""Coder name -> 4-bit id stored in the flags byte (raw 0, deflate 1, arith 2, arith_rep 3, tf_ar 8)."""
BITSTREAM_CODERS: tuple[str, ...] = tuple(CODER_IDS)
"""Every coder a ``.vqb`` can use: the symbol coders (``codec.entropy.CODERS``, also in packets) and ``tf_ar``."""
_CODER_NAMES = {i: name for name, i in CODER_IDS.items()}

MAX_INDICES = MAX_SYMBOLS  # h·w ≤ 2^24
MAX_IMAGE_SIDE = 1 << 20
_MAX_VARINT_BYTES = 5
_MAX_ID_BYTES = 255
_FLAG_PRIOR = 0x10
_FLAG_ID = 0x20
_FLAG_RESERVED = 0xC0
_CRC_BYTES = 4


@dataclass(frozen=True)
class BitstreamHeader:
    """Decoded header fields.

    Attributes:
        version: container version (1, or 2 for payloads coded with the current prior weight).
        coder: coder name, one of :data:`codec.entropy.CODERS`.
        codebook_size: K.
        codebook_id: codebook name or None.
        h, w: latent index-map height and width (indices).
        H, W: image height and width (pixels).
        payload_length: payload bytes.
        has_prior: the payload was coded with a codebook prior (arith coders).
        header_length: bytes before the payload.
    """

    version: int
    coder: str
    codebook_size: int
    codebook_id: str | None
    h: int
    w: int
    H: int
    W: int
    payload_length: int
    has_prior: bool = False
    header_length: int = 0

    @property
    def total_length(self) -> int:
        """Bytes of the whole bitstream: header + payload + CRC."""
        return self.header_length + self.payload_length + _CRC_BYTES


# ----------------------------------------------------------------------------
# varints
# ----------------------------------------------------------------------------

def put_varint(out: bytearray, value: int) -> None:
    """Unsigned LEB128: 7 bits per byte, least significant group first."""
    if value < 0:
        raise ParameterError(f"varint must be non-negative, got {value}")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varint(data: bytes, pos: int, name: str) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise BitstreamError(f"truncated header (while reading {name})")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise BitstreamError(f"non-canonical varint for {name}")
            return value, pos + i + 1
    raise BitstreamError(f"varint for {name} is longer than {_MAX_VARINT_BYTES} bytes")


# ----------------------------------------------------------------------------
# header parsing
# ----------------------------------------------------------------------------

def _as_bytes(data) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"bitstream must be bytes, got {type(data).__name__}")
    return bytes(data)


def _parse_structure(data: bytes) -> tuple[dict, int]:
    """Read the header fields (no range checks beyond what parsing needs)."""
    if len(data) < 2:
        raise BitstreamError(f"truncated header ({len(data)} bytes; not a vqsim bitstream)")
    if data[:2] != MAGIC:
        raise BitstreamError(f"bad magic {data[:2]!r} (not a vqsim bitstream)")
    if len(data) < 4:
        raise BitstreamError(f"truncated header ({len(data)} bytes)")
    version = data[2]
    if version not in _VERSIONS:
        readable = ", ".join(map(str, _VERSIONS))
        raise BitstreamError(f"unsupported bitstream version {version} (this decoder reads {readable})")
    flags = data[3]
    pos = 4
    K, pos = _get_varint(data, pos, "codebook size")
    cid = None
    if flags & _FLAG_ID:
        if pos >= len(data):
            raise BitstreamError("truncated header (while reading codebook id length)")
        n = data[pos]
        pos += 1
        if pos + n > len(data):
            raise BitstreamError("truncated header (while reading codebook id)")
        cid = data[pos : pos + n]
        pos += n
    fields = {"version": version, "flags": flags, "K": K, "cid": cid}
    for name in ("h", "w", "H", "W", "payload_length"):
        fields[name], pos = _get_varint(data, pos, name)
    return fields, pos


def _validate(f: dict, header_length: int) -> BitstreamHeader:
    flags = f["flags"]
    if flags & _FLAG_RESERVED:
        raise BitstreamError(f"reserved flag bits set (flags 0x{flags:02x})")
    coder_id = flags & 0x0F
    if coder_id not in _CODER_NAMES:
        raise BitstreamError(f"unknown coder id {coder_id}")
    coder = _CODER_NAMES[coder_id]
    has_prior = bool(flags & _FLAG_PRIOR)
    if has_prior and coder not in PRIOR_CODERS:
        raise BitstreamError(f"prior flag set for coder {coder!r}, which uses no prior")
    K = f["K"]
    if not 2 <= K <= MAX_CODEBOOK_SIZE:
        raise BitstreamError(f"codebook size {K} outside [2, {MAX_CODEBOOK_SIZE}]")
    h, w, H, W = f["h"], f["w"], f["H"], f["W"]
    if h < 1 or w < 1 or h * w > MAX_INDICES:
        raise BitstreamError(f"latent size {h}x{w} invalid (need h, w >= 1 and h*w <= {MAX_INDICES})")
    if not (1 <= H <= MAX_IMAGE_SIDE and 1 <= W <= MAX_IMAGE_SIDE):
        raise BitstreamError(f"image size {H}x{W} invalid (each side in [1, {MAX_IMAGE_SIDE}])")
    cid = f["cid"]
    if cid is not None:
        try:
            cid = cid.decode("utf-8")
        except UnicodeDecodeError:
            raise BitstreamError("codebook id is not valid UTF-8") from None
    return BitstreamHeader(
        version=f["version"],
        coder=coder,
        codebook_size=K,
        codebook_id=cid,
        h=h,
        w=w,
        H=H,
        W=W,
        payload_length=f["payload_length"],
        has_prior=has_prior,
        header_length=header_length,
    )


def parse_header(data: bytes) -> BitstreamHeader:
    """Parse and range-check the header (does not need the payload; no CRC check).

    Raises:
        BitstreamError: bad magic, unsupported version, truncated header,
            malformed varint, unknown coder id, out-of-range field.
    """
    data = _as_bytes(data)
    fields, pos = _parse_structure(data)
    return _validate(fields, pos)


# ----------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------


def encode_bitstream(
    index_map: IndexMap, coder: str = "arith_rep", prior: np.ndarray | None = None, *, context_model=None
) -> bytes:
    """Serialise an index map: header + entropy-coded payload + CRC-32.

    Args:
        index_map: the map to send.
        coder: one of :data:`codec.entropy.CODERS`.
        prior: optional length-K codeword histogram for the arithmetic coders
            (the decoder must then be given the same prior; the header records
            that one was used). Ignored by ``"raw"`` and ``"deflate"``.
        context_model: ``tf_ar`` only: ``(model, fingerprint)``; default the
            shipped transformer of the codec ``index_map.codebook_id`` names.

    Raises:
        TypeError: ``index_map`` is not an IndexMap.
        ValueError: unknown coder, codebook id longer than 255 UTF-8 bytes, bad prior,
            or a map larger than 2^24 indices / an image side above 2^20.
    """
    if not isinstance(index_map, IndexMap):
        raise TypeError(f"index_map must be an IndexMap, got {type(index_map).__name__}")
    if coder not in CODER_IDS:
        raise ParameterError(f"coder must be one of {BITSTREAM_CODERS}, got {coder!r}")
    h, w = index_map.shape
    H, W = index_map.image_size
    if h * w > MAX_INDICES:
        raise ParameterError(f"index map has {h * w} indices, at most {MAX_INDICES} are supported")
    if H > MAX_IMAGE_SIDE or W > MAX_IMAGE_SIDE:
        raise ParameterError(f"image_size {index_map.image_size} exceeds {MAX_IMAGE_SIDE} per side")
    use_prior = prior is not None and coder in PRIOR_CODERS
    if coder == TF_AR:
        from .entropy.tf_ar import context_model_for, tf_ar_encode

        model, fp = context_model or context_model_for(index_map.codebook_id, index_map.codebook_size)
        payload = tf_ar_encode(index_map.indices, index_map.codebook_size, model, fp)
    else:
        payload = encode_symbols(
            index_map.indices.reshape(-1), index_map.codebook_size, coder, prior if use_prior else None
        )

    flags = CODER_IDS[coder] | (_FLAG_PRIOR if use_prior else 0)
    cid = index_map.codebook_id
    cid_bytes = b""
    if cid is not None:
        cid_bytes = str(cid).encode("utf-8")
        if len(cid_bytes) > _MAX_ID_BYTES:
            raise ParameterError(f"codebook_id must be at most {_MAX_ID_BYTES} UTF-8 bytes, got {len(cid_bytes)}")
        flags |= _FLAG_ID
    out = bytearray(MAGIC)
    out += bytes([VERSION if use_prior else 1, flags])
    put_varint(out, index_map.codebook_size)
    if cid is not None:
        out.append(len(cid_bytes))
        out += cid_bytes
    for v in (h, w, H, W, len(payload)):
        put_varint(out, v)
    out += payload
    out += zlib.crc32(out).to_bytes(_CRC_BYTES, "big")
    return bytes(out)


def check_latent_shape(hdr: BitstreamHeader, downsample_factor: int) -> None:
    """Raise BitstreamError unless ``(h, w) = (ceil(H/f), ceil(W/f))`` for ``f = downsample_factor``."""
    f = int(downsample_factor)
    want = (-(-hdr.H // f), -(-hdr.W // f))
    if (hdr.h, hdr.w) != want:
        raise BitstreamError(
            f"latent size {hdr.h}x{hdr.w} does not fit image size {hdr.H}x{hdr.W} "
            f"at downsampling factor {f} (expected {want[0]}x{want[1]})"
        )


def decode_bitstream(
    data: bytes,
    prior: np.ndarray | None = None,
    *,
    limits: DecodeLimits | None = None,
    downsample_factor: int | None = None,
    context_model=None,
) -> IndexMap:
    """Inverse of :func:`encode_bitstream`.

    Args:
        data: the complete bitstream.
        prior: the codebook prior, required iff the stream was coded with one
            (ignored otherwise).
        limits: largest image / index map to accept (default
            ``DecodeLimits.from_env()``), checked before the payload is decoded.
        downsample_factor: if given, require ``h, w = ceil(H/f), ceil(W/f)``.
        context_model: ``tf_ar`` streams: ``(model, fingerprint)``; default the
            shipped transformer of the registered codec the header names.

    Raises:
        BitstreamError: not a vqsim bitstream, unsupported version, truncated
            header or payload, trailing bytes, CRC mismatch, unknown coder,
            out-of-range field, latent size not fitting the image size,
            missing/mismatched prior, or a payload the entropy decoder rejects.
        LimitExceededError: (a BitstreamError) the header claims more pixels or
            indices than ``limits`` allow.
    """
    data = _as_bytes(data)
    limits = resolve_limits(limits)
    fields, pos = _parse_structure(data)
    expected = pos + fields["payload_length"] + _CRC_BYTES
    if len(data) < expected:
        raise BitstreamError(
            f"truncated bitstream: payload length mismatch (header says {fields['payload_length']} "
            f"payload bytes + 4 CRC bytes, {len(data) - pos} available)"
        )
    if len(data) > expected:
        raise BitstreamError(f"{len(data) - expected} trailing bytes after the CRC")
    stored = int.from_bytes(data[-_CRC_BYTES:], "big")
    computed = zlib.crc32(data[:-_CRC_BYTES])
    if stored != computed:
        raise BitstreamError(f"CRC mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")
    hdr = _validate(fields, pos)
    limits.check(hdr.h, hdr.w, hdr.H, hdr.W, what="bitstream header")
    if downsample_factor is not None:
        check_latent_shape(hdr, downsample_factor)
    if hdr.has_prior:
        if prior is None:
            raise BitstreamError("bitstream was coded with a codebook prior; pass the model's prior")
        if np.shape(prior) != (hdr.codebook_size,):
            raise BitstreamError(
                f"prior has shape {np.shape(prior)} but the bitstream's codebook size is {hdr.codebook_size}"
            )
    payload = data[pos : pos + hdr.payload_length]
    weight = legacy_prior_weight(hdr.codebook_size) if hdr.has_prior and hdr.version == 1 else None
    if hdr.coder == TF_AR:
        from .entropy.tf_ar import context_model_for, tf_ar_decode

        model, fp = context_model or context_model_for(hdr.codebook_id, hdr.codebook_size)
        symbols = tf_ar_decode(payload, hdr.h, hdr.w, hdr.codebook_size, model, fp)
    else:
        symbols = decode_symbols(
            payload, hdr.h * hdr.w, hdr.codebook_size, hdr.coder, prior if hdr.has_prior else None, prior_weight=weight
        )
    try:
        return IndexMap(symbols.reshape(hdr.h, hdr.w), hdr.codebook_size, (hdr.H, hdr.W), hdr.codebook_id)
    except (ValueError, TypeError) as e:  # defensive: decoders already range-check symbols
        raise BitstreamError(f"decoded index map is invalid: {e}") from None


def bits_per_pixel(nbytes: int, image_size: tuple[int, int]) -> float:
    """Rate ``8 · nbytes / (H · W)`` in bits per pixel.

    Pass ``len(bitstream)`` to count the header and CRC, or the payload length
    for the entropy-coded indices alone.
    """
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, np.integer)) or nbytes < 0:
        raise ParameterError(f"nbytes must be a non-negative int, got {nbytes!r}")
    try:
        H, W = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ParameterError(f"image_size must be (H, W), got {image_size!r}") from None
    if H <= 0 or W <= 0:
        raise ParameterError(f"image_size must be positive (H, W), got {image_size!r}")
    return 8.0 * int(nbytes) / (H * W)
