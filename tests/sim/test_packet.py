"""Packet header: round trips, every rejection reason, and fuzzing of from_bytes."""
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.errors import VQSimError
from sim.packet import CRC_SIZE, HEADER_FORMAT, HEADER_SIZE, MAGIC, OVERHEAD, REASONS, VERSION, Packet, PacketError


def make(**kw):
    base = dict(image_id=7, seq=2, count=5, codebook_size=1024, h=4, w=6, image_size=(64, 96), scheme="block",
                coder="raw", seed=99, payload=b"\x01\x02\x03")
    base.update(kw)
    return Packet(**base)


def raw_header(**kw):
    """Header bytes with valid CRC from explicit field values (to craft out-of-range fields)."""
    f = dict(magic=MAGIC, version=VERSION, flags=0, image_id=1, seq=0, count=2, block=0, fec_n=0, fec_k=0, K=16,
             h=2, w=2, ih=32, iw=32, scheme=0, coder=0, seed=0, payload=b"\x00")
    f.update(kw)
    payload = f.pop("payload")
    head = struct.pack(HEADER_FORMAT, *f.values(), len(payload))
    body = head + payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def test_sizes():
    assert HEADER_SIZE == 36 and OVERHEAD == HEADER_SIZE + CRC_SIZE
    p = make()
    assert len(p.to_bytes()) == p.size == OVERHEAD + 3


def test_coder_byte_is_the_one_wire_id_of_codec_entropy():
    """Packets and .vqb bitstreams write the same coder id: the coder's position in codec.entropy.CODERS."""
    from codec.bitstream import CODER_IDS
    from codec.entropy import CODERS

    for i, coder in enumerate(CODERS):
        assert make(coder=coder).to_bytes()[29] == i == CODER_IDS[coder]
        assert Packet.from_bytes(make(coder=coder).to_bytes()).coder == coder


@pytest.mark.parametrize("kw", [{}, dict(parity=True, seq=1, block=0, fec_n=6, fec_k=4),
                                dict(seq=4, block=2, fec_n=3, fec_k=2), dict(payload=b"")])
def test_round_trip(kw):
    p = make(**kw)
    q = Packet.from_bytes(p.to_bytes())
    assert q == p
    assert Packet.from_bytes(bytearray(p.to_bytes())) == p
    assert Packet.from_bytes(memoryview(p.to_bytes())) == p


def test_error_type_and_reason():
    with pytest.raises(PacketError) as e:
        Packet.from_bytes(b"XX" + bytes(60))
    assert e.value.reason == "bad_magic"
    assert isinstance(e.value, VQSimError) and isinstance(e.value, ValueError)
    assert e.value.reason in REASONS


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b"", "truncated"),
    (lambda b: b[:1], "truncated"),
    (lambda b: b[:HEADER_SIZE], "truncated"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "oversized"),
    (lambda b: b"PK" + b[2:], "bad_magic"),
    (lambda b: b[:HEADER_SIZE] + bytes([b[HEADER_SIZE] ^ 1]) + b[HEADER_SIZE + 1:], "bad_crc"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 0x80]), "bad_crc"),
])
def test_rejections(mutate, reason):
    with pytest.raises(PacketError) as e:
        Packet.from_bytes(mutate(make().to_bytes()))
    assert e.value.reason == reason


def test_max_size_is_oversized():
    b = make().to_bytes()
    assert Packet.from_bytes(b, max_size=len(b)) == make()
    with pytest.raises(PacketError) as e:
        Packet.from_bytes(b, max_size=len(b) - 1)
    assert e.value.reason == "oversized"


@pytest.mark.parametrize("fields", [
    dict(version=2), dict(flags=0x80), dict(seq=2, count=2), dict(count=0), dict(count=5, h=2, w=2),
    dict(K=1), dict(K=(1 << 20) + 1), dict(h=0), dict(w=0), dict(ih=0), dict(scheme=9), dict(coder=200),
    dict(fec_n=4, fec_k=0), dict(fec_n=3, fec_k=3), dict(fec_n=4, fec_k=2, seq=1, block=1),
    dict(flags=1), dict(flags=1, fec_n=4, fec_k=2, seq=2), dict(flags=1, fec_n=4, fec_k=2, block=1),
])
def test_out_of_range_fields_are_bad_field(fields):
    with pytest.raises(PacketError) as e:
        Packet.from_bytes(raw_header(**fields))
    assert e.value.reason == "bad_field"


def test_valid_crafted_header_parses():
    p = Packet.from_bytes(raw_header(flags=1, fec_n=4, fec_k=2, seq=1, block=0))
    assert p.parity and p.seq == 1 and p.send_index == 3


@pytest.mark.parametrize("kw", [dict(seq=5), dict(codebook_size=1), dict(scheme="zigzag"), dict(coder="lz4"),
                                dict(image_id=-1), dict(seed=2**32), dict(image_size=(0, 4)), dict(h=0),
                                dict(fec_n=3), dict(parity=True), dict(seq=1.5), dict(block=1)])
def test_constructor_validates(kw):
    with pytest.raises(PacketError) as e:
        make(**kw)
    assert e.value.reason == "bad_field"


def test_send_index_orders_blocks():
    """Per block: its k data packets, then its n − k parity packets; blocks in order."""
    n, k, count = 5, 3, 7
    order = []
    for b in range(3):
        order += [make(seq=j, count=count, block=b, fec_n=n, fec_k=k) for j in range(b * k, min(count, (b + 1) * k))]
        order += [make(seq=i, count=count, block=b, fec_n=n, fec_k=k, parity=True) for i in range(n - k)]
    idx = [p.send_index for p in order]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    assert [p.send_index for p in order[:n]] == list(range(n))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_only_packet_error(data):
    try:
        Packet.from_bytes(data)
    except PacketError as e:
        assert e.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_packets(data):
    """Mutations of a valid packet (with or without fixing the CRC) give a valid Packet or a PacketError."""
    b = bytearray(make(parity=data.draw(st.booleans()), seq=0, block=0, fec_n=4, fec_k=2).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(b) + 3))
    b = b[:cut] + bytes(max(0, cut - len(b)))
    if data.draw(st.booleans()) and len(b) >= OVERHEAD:
        b[-4:] = zlib.crc32(bytes(b[:-4])).to_bytes(4, "big")
    try:
        p = Packet.from_bytes(bytes(b))
    except PacketError as e:
        assert e.reason in REASONS
    else:
        assert p.to_bytes() == bytes(b)  # anything accepted re-serializes identically


# ---------------------------------------------------------------------- the FEC code flag (bit 1)
def test_fec_code_flag_round_trip():
    """fec_code "vandermonde" is flag bit 1 in data and parity packets; "cauchy" leaves the flags as they were."""
    from sim.packet import FLAG_VANDERMONDE

    for parity in (False, True):
        kw = dict(parity=parity, seq=1, block=0, fec_n=6, fec_k=4) if parity else dict(seq=4, block=1, fec_n=6, fec_k=4)
        old = make(**kw)
        new = make(**kw, fec_code="vandermonde")
        assert old.fec_code == "cauchy" and old.to_bytes()[3] == int(parity)
        assert new.to_bytes()[3] == int(parity) | FLAG_VANDERMONDE == int(parity) | 0x02
        assert len(new.to_bytes()) == len(old.to_bytes()) and new.to_bytes()[4:-4] == old.to_bytes()[4:-4]
        q = Packet.from_bytes(new.to_bytes())
        assert q == new and q.fec_code == "vandermonde" and Packet.from_bytes(old.to_bytes()).fec_code == "cauchy"
        assert q.stream_key != old.stream_key and q.stream_key[:-1] == old.stream_key[:-1]


def test_pre_flag_header_parses_as_cauchy():
    """A header from before the flag existed (bit 1 clear) is the Cauchy code, byte for byte."""
    raw = raw_header(flags=1, fec_n=4, fec_k=2, seq=1, block=0)
    p = Packet.from_bytes(raw)
    assert p.fec_code == "cauchy" and p.to_bytes() == raw


@pytest.mark.parametrize("fields", [dict(flags=0x02), dict(flags=0x03), dict(flags=0x04, fec_n=4, fec_k=2),
                                    dict(flags=0x06, fec_n=4, fec_k=2), dict(flags=0xFE, fec_n=4, fec_k=2)])
def test_fec_code_flag_rejected(fields):
    """Bit 1 without FEC parameters, and any other unknown bit, is bad_field (as old receivers treat bit 1)."""
    with pytest.raises(PacketError) as e:
        Packet.from_bytes(raw_header(**fields))
    assert e.value.reason == "bad_field"


def test_crafted_vandermonde_header_parses():
    p = Packet.from_bytes(raw_header(flags=0x03, fec_n=4, fec_k=2, seq=1, block=0))
    assert p.parity and p.fec_code == "vandermonde" and p.send_index == 3
    assert Packet.from_bytes(raw_header(flags=0x02, fec_n=4, fec_k=2)).fec_code == "vandermonde"


@pytest.mark.parametrize("kw", [dict(fec_code="vandermonde"), dict(fec_code="reed"), dict(fec_code=None)])
def test_constructor_validates_fec_code(kw):
    """An unknown code, or a named code without FEC parameters, is bad_field."""
    with pytest.raises(PacketError) as e:
        make(**kw)
    assert e.value.reason == "bad_field"
