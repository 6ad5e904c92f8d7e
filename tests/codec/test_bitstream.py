"""Tests of codec.bitstream: container round trips, header, every error path."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec.bitstream import (
    CODER_IDS,
    MAGIC,
    VERSION,
    BitstreamHeader,
    bits_per_pixel,
    decode_bitstream,
    encode_bitstream,
    parse_header,
)
from codec.entropy import CODERS
from codec.errors import BitstreamError
from codec.types import IndexMap

SHAPES = ((1, 1), (1, 7), (7, 1), (32, 48), (13, 17))


def leb128(v: int) -> bytes:
    """Unsigned LEB128 from its definition (7-bit groups, LSB first, high bit = more)."""
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v >> 7 else 0))
        v >>= 7
        if not v:
            return bytes(out)


def build(flags: int, K: int, cid: bytes | None, h: int, w: int, H: int, W: int,
          payload: bytes, version: int = VERSION, crc: bool = True) -> bytes:
    """Assemble a bitstream by hand from the documented layout (valid CRC)."""
    out = bytearray(MAGIC) + bytes([version, flags]) + leb128(K)
    if cid is not None:
        out += bytes([len(cid)]) + cid
    for v in (h, w, H, W, len(payload)):
        out += leb128(v)
    out += payload
    if crc:
        out += zlib.crc32(out).to_bytes(4, "big")
    return bytes(out)


def make_map(rng, K=1024, shape=(32, 48), cid="default/256", image_size=None) -> IndexMap:
    h, w = shape
    return IndexMap(rng.integers(0, K, shape), K, image_size or (16 * h, 16 * w), cid)


# ----------------------------------------------------------------------------
# round trips and header
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("K", (2, 3, 8, 1000, 1024, 16384))
def test_round_trip(coder, K):
    rng = np.random.default_rng(K)
    for shape in SHAPES:
        for cid in (None, "", "default/256"):
            im = make_map(rng, K, shape, cid, image_size=(16 * shape[0] - 5, 16 * shape[1] + 3))
            for prior in (None, rng.random(K) + 0.01):
                data = encode_bitstream(im, coder, prior)
                assert decode_bitstream(data, prior) == im


def test_header_fields_and_layout():
    rng = np.random.default_rng(0)
    im = make_map(rng, 1024, (32, 48), "default/256", image_size=(512, 768))
    data = encode_bitstream(im, "arith")
    hdr = parse_header(data)
    assert hdr == BitstreamHeader(
        version=1, coder="arith", codebook_size=1024, codebook_id="default/256", h=32, w=48,
        H=512, W=768, payload_length=len(data) - hdr.header_length - 4, has_prior=False,
        header_length=hdr.header_length)
    assert hdr.total_length == len(data)
    # header built independently from the documented layout
    payload = data[hdr.header_length:-4]
    assert data == build(CODER_IDS["arith"] | 0x20, 1024, b"default/256", 32, 48, 512, 768, payload, version=1)
    # magic + version + flags + K(2) + id(1+11) + h, w (1 each) + H, W (2 each) + P (2)
    assert hdr.header_length == 2 + 1 + 1 + 2 + 12 + 1 + 1 + 2 + 2 + 2 <= 26
    hdr0 = parse_header(encode_bitstream(IndexMap(np.zeros((32, 48), int), 1024, (512, 768))))
    assert hdr0.codebook_id is None  # no id: no length byte
    assert hdr0.header_length == 2 + 1 + 1 + 2 + 1 + 1 + 2 + 2 + len(leb128(hdr0.payload_length))


def test_leb128_reference_values():
    assert leb128(300) == b"\xac\x02" and leb128(127) == b"\x7f" and leb128(128) == b"\x80\x01"
    rng = np.random.default_rng(1)
    for K, H in ((127, 127), (128, 128), (16383, 16384), (1 << 20, 1 << 20)):
        im = IndexMap(rng.integers(0, K, (2, 3)), K, (H, 1))
        hdr = parse_header(encode_bitstream(im, "raw"))
        assert (hdr.codebook_size, hdr.H, hdr.W) == (K, H, 1)


def test_prior_flag():
    rng = np.random.default_rng(2)
    im = make_map(rng, 64, (8, 8))
    prior = rng.random(64)
    for coder in ("arith", "arith_rep"):
        data = encode_bitstream(im, coder, prior)
        assert parse_header(data).has_prior
        with pytest.raises(BitstreamError, match="pass the model's prior"):
            decode_bitstream(data)
        with pytest.raises(BitstreamError, match="codebook size is 64"):
            decode_bitstream(data, np.ones(32))
        assert decode_bitstream(data, prior) == im
    for coder in ("raw", "deflate"):  # prior ignored: not flagged, decodes without it
        data = encode_bitstream(im, coder, prior)
        assert not parse_header(data).has_prior
        assert decode_bitstream(data) == im


def test_bits_per_pixel():
    assert bits_per_pixel(1000, (100, 80)) == 1.0
    rng = np.random.default_rng(3)
    im = make_map(rng, 1024, (32, 48), image_size=(512, 768))
    data = encode_bitstream(im, "raw")
    # raw payload = 1536 * 10 bits; the container adds header + CRC bytes
    assert bits_per_pixel(len(data), im.image_size) == pytest.approx(
        (1536 * 10 + 8 * (parse_header(data).header_length + 4)) / (512 * 768))
    for bad in ((-1, (4, 4)), (10, (0, 4)), (10, (4,)), (1.5, (4, 4))):
        with pytest.raises(ValueError):
            bits_per_pixel(*bad)


def test_encoder_validation():
    rng = np.random.default_rng(4)
    im = make_map(rng, 16, (2, 2))
    with pytest.raises(TypeError, match="IndexMap"):
        encode_bitstream(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="coder"):
        encode_bitstream(im, "zip")
    with pytest.raises(ValueError, match="255"):
        encode_bitstream(IndexMap(im.indices, 16, (32, 32), "x" * 256))
    unicode_id = IndexMap(im.indices, 16, (32, 32), "é" * 127)  # 254 UTF-8 bytes
    assert decode_bitstream(encode_bitstream(unicode_id)) == unicode_id


# ----------------------------------------------------------------------------
# error paths
# ----------------------------------------------------------------------------

def test_error_messages():
    rng = np.random.default_rng(5)
    im = make_map(rng, 1024, (4, 6), "m")
    data = encode_bitstream(im, "raw")
    hdr = parse_header(data)
    payload = data[hdr.header_length:-4]
    cases = [
        (b"", "truncated header"),
        (b"PK\x03\x04" + data[4:], "not a vqsim bitstream"),
        (data[:3], "truncated header"),
        (data[:2] + bytes([3]) + data[3:], "unsupported bitstream version 3"),
        (data[:hdr.header_length - 1], "truncated header"),
        (data[:-1], "payload length mismatch"),
        (data + b"\x00", "1 trailing bytes"),
        (data[:-1] + bytes([data[-1] ^ 1]), "CRC mismatch"),
        (data[:hdr.header_length] + bytes([payload[0] ^ 0x80]) + data[hdr.header_length + 1:], "CRC mismatch"),
        (build(0x2F, 1024, b"m", 4, 6, 64, 96, payload), "unknown coder id 15"),
        (build(0x60, 1024, b"m", 4, 6, 64, 96, payload), "reserved flag"),
        (build(0x30, 1024, b"m", 4, 6, 64, 96, payload), "prior flag set"),
        (build(0x20, 1, b"m", 4, 6, 64, 96, payload), "codebook size 1"),
        (build(0x20, (1 << 20) + 1, b"m", 4, 6, 64, 96, payload), "codebook size"),
        (build(0x20, 1024, b"m", 0, 6, 64, 96, payload), "latent size"),
        (build(0x20, 1024, b"m", 1 << 13, 1 << 12, 64, 96, payload), "latent size"),
        (build(0x20, 1024, b"m", 4, 6, 0, 96, payload), "image size"),
        (build(0x20, 1024, b"\xff\xfe", 4, 6, 64, 96, payload), "UTF-8"),
        (build(0x20, 1024, b"m", 4, 6, 64, 96, payload[:-1]), "raw payload"),
        (build(0x20, 1024, b"m", 5, 6, 64, 96, payload), "raw payload"),
        (build(0x00, 1024, None, 4, 6, 64, 96, payload, version=VERSION)[:5] + b"\x80\x80\x80\x80\x80\x01",
         "longer than 5 bytes"),
        (MAGIC + bytes([VERSION, 0]) + b"\x80\x00", "non-canonical"),
        (MAGIC + bytes([VERSION, 0x20]) + leb128(16) + b"\x05ab", "truncated header"),
    ]
    for bad, reason in cases:
        with pytest.raises(BitstreamError, match=reason):
            decode_bitstream(bad)


def test_payload_decoder_failures_with_valid_crc():
    rng = np.random.default_rng(6)
    im = make_map(rng, 1024, (8, 8))
    for coder in ("deflate", "arith", "arith_rep"):
        data = encode_bitstream(im, coder)
        hdr = parse_header(data)
        payload = data[hdr.header_length:-4]
        half = payload[: len(payload) // 2]
        bad = build(CODER_IDS[coder] | 0x20, 1024, b"default/256", 8, 8, 128, 128, half)
        with pytest.raises(BitstreamError):
            decode_bitstream(bad)


def test_zip_bomb_in_container():
    """h*w = 4 indices but a deflate payload that would inflate to 32 MiB."""
    bomb = bytes([1]) + zlib.compress(bytes(32 << 20), 9)
    data = build(CODER_IDS["deflate"], 1024, None, 2, 2, 32, 32, bomb)
    with pytest.raises(BitstreamError, match="expands beyond"):
        decode_bitstream(data)


def test_huge_claimed_map_is_rejected_before_allocation():
    """A tiny stream claiming 2^24 indices: refused by the decode limits, and without them on the length check."""
    from codec.limits import DecodeLimits, LimitExceededError

    data = build(CODER_IDS["raw"], 1 << 20, None, 1 << 12, 1 << 12, 1 << 16, 1 << 16, b"\x00" * 8)
    with pytest.raises(LimitExceededError, match="16777216 indices"):
        decode_bitstream(data)
    with pytest.raises(BitstreamError, match="raw payload is 8 bytes"):
        decode_bitstream(data, limits=DecodeLimits.unlimited())


# ----------------------------------------------------------------------------
# property tests
# ----------------------------------------------------------------------------

def _decodes_or_bitstream_error(data: bytes) -> None:
    try:
        im = decode_bitstream(data)
    except BitstreamError:
        return
    assert isinstance(im, IndexMap)


def _valid_stream(seed: int, coder: str) -> bytes:
    rng = np.random.default_rng(seed)
    K = int(rng.choice([2, 3, 8, 1000, 1024, 16384]))
    h, w = (int(v) for v in rng.integers(1, 20, 2))
    cid = None if rng.random() < 0.5 else "default/256"
    return encode_bitstream(IndexMap(rng.integers(0, K, (h, w)), K, (16 * h, 16 * w), cid), coder)


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=300), prefix=st.sampled_from((b"", MAGIC, MAGIC + bytes([VERSION]))))
def test_random_bytes_decode_or_raise(body, prefix):
    _decodes_or_bitstream_error(prefix + body)


@settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), coder=st.sampled_from(CODERS),
       op=st.sampled_from(("flip", "truncate", "insert", "delete")), where=st.floats(0, 1),
       extra=st.binary(min_size=1, max_size=8), fix_crc=st.booleans())
def test_mutated_bitstreams_decode_or_raise(seed, coder, op, where, extra, fix_crc):
    data = bytearray(_valid_stream(seed, coder))
    body = data[:-4]
    i = int(where * len(body))
    if op == "flip":
        body[min(i, len(body) - 1)] ^= 1 << (seed % 8)
    elif op == "truncate":
        del body[i:]
    elif op == "insert":
        body[i:i] = extra
    else:
        del body[i:i + len(extra)]
    # with fix_crc the corruption reaches the header parser / payload decoders
    tail = zlib.crc32(body).to_bytes(4, "big") if fix_crc else data[-4:]
    mutated = bytes(body + tail)
    _decodes_or_bitstream_error(mutated)
    if not fix_crc and mutated != bytes(data):
        with pytest.raises(BitstreamError):
            decode_bitstream(mutated)


def test_version_1_prior_streams_still_decode_with_their_weight():
    """Container version 1 coded priors with weight max_total − 2K; version 2 with K/4 symbols' worth.
    Streams without a prior stay version 1 (old readers can read them)."""
    from codec.entropy import encode_symbols, legacy_prior_weight, prior_weight

    rng = np.random.default_rng(5)
    K = 256
    prior = rng.integers(0, 500, K)
    idx = np.minimum(rng.geometric(0.03, (12, 20)) - 1, K - 1)
    m = IndexMap(idx, K, (192, 320), "default/256")
    new = encode_bitstream(m, "arith", prior=prior)
    assert new[2] == 2 and encode_bitstream(m, "arith")[2] == 1
    assert prior_weight(K) != legacy_prior_weight(K)
    payload = encode_symbols(idx.reshape(-1), K, "arith", prior, prior_weight=legacy_prior_weight(K))
    old = build(CODER_IDS["arith"] | 0x30, K, b"default/256", 12, 20, 192, 320, payload, version=1)
    assert decode_bitstream(old, prior=prior) == m == decode_bitstream(new, prior=prior)
    # the same payload read as version 2 (the other weight) does not give the map back
    wrong = build(CODER_IDS["arith"] | 0x30, K, b"default/256", 12, 20, 192, 320, payload, version=2)
    try:
        assert decode_bitstream(wrong, prior=prior) != m
    except BitstreamError:
        pass
