"""Compact packet header (sim.packet.CompactSession): round trip, CRC sizing and detection rate, sessions, FEC."""
import binascii
import zlib

import numpy as np
import pytest

from codec.errors import ParameterError
from codec.types import IndexMap
from sim import ErasureFEC, depacketize, packetize
from sim.links import LinkConfig
from sim.network import NetworkSimulator
from sim.packet import CompactSession, Packet, PacketError, compact_crc_size, crc8, parse_packet


def _map(h=12, w=16, K=1024, seed=0):
    rng = np.random.default_rng(seed)
    return IndexMap(rng.integers(0, K, size=(h, w)), K, (16 * h, 16 * w))


def _reason(fn):
    try:
        fn()
    except PacketError as e:
        return e.reason
    return "ok"


def test_crc8_and_crc_sizes():
    assert crc8(b"123456789") == 0xF4  # CRC-8 (poly 0x07, init 0) check value
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1  # CRC-16/CCITT-FALSE check value
    assert [compact_crc_size(n) for n in (5, 64, 65, 1024, 1025)] == [1, 1, 2, 2, 4]


@pytest.mark.parametrize("mtu, crc", [(20, 1), (59, 1), (60, 2), (400, 2), (1100, 4)])
def test_round_trip_and_crc_sized_to_the_packet(mtu, crc):
    m = _map(40, 42)  # 2100 bytes of raw 10-bit indices
    pk = packetize(m, mtu=mtu, header="compact", coder="raw")
    sess = pk[0].session
    wire = [sess.encode(p) for p in pk]
    for p, b in zip(pk, wire, strict=True):
        assert len(b) == 4 + len(p.payload) + compact_crc_size(len(b))
        q = sess.decode(b)
        assert q == p and q.to_bytes("compact") == b
    assert compact_crc_size(max(len(b) for b in wire)) == crc
    r = depacketize(wire[::-1], header="compact", session=sess, codebook_size=m.codebook_size, shape=m.shape)
    assert r.num_lost == 0 and np.array_equal(r.index_map.indices, m.indices)
    assert r.counts_by_reason["reordered"] > 0 or len(wire) == 1


def test_default_header_is_unchanged():
    m = _map()
    a, b = packetize(m, mtu=64), packetize(m, mtu=64, header="full")
    assert [p.to_bytes() for p in a] == [p.to_bytes("full") for p in b]
    assert all(len(p.to_bytes()) == p.size == 40 + len(p.payload) for p in a)


def test_wide_header_beyond_255_packets_and_image_ids():
    m = _map(48, 48, K=256)
    pk = packetize(m, mtu=8, header="compact", coder="raw", image_id=0x1234)
    assert len(pk) > 255
    sess = pk[0].session
    wire = [p.to_bytes("compact") for p in pk]
    assert {len(b) - len(p.payload) for p, b in zip(pk, wire, strict=True)} == {6 + 1}
    assert sess.decode(wire[0]).image_id == 0x34  # only the low byte is on the wire
    assert sess.decode(wire[0], image_id=0x1234).image_id == 0x1234
    r = depacketize(wire, header="compact", session=sess, expected_image_id=0x1234)
    assert r.num_lost == 0 and r.image_id == 0x1234
    r = depacketize(wire, header="compact", session=sess, expected_image_id=0x1235,
                    codebook_size=256, shape=(48, 48))
    assert r.counts_by_reason["foreign"] == len(wire) and r.num_lost == m.num_indices


def test_session_descriptor_round_trip_and_checks():
    sess = packetize(_map(), mtu=64, header="compact", fec=ErasureFEC(6, 4, "vandermonde"), seed=7,
                     interleave="random")[0].session
    d = sess.to_bytes()
    assert len(d) == 28 and CompactSession.from_bytes(d) == sess
    assert (sess.fec_n, sess.fec_k, sess.fec_code, sess.seed, sess.scheme) == (6, 4, "vandermonde", 7, "random")
    bad = bytearray(d)
    bad[5] ^= 1
    assert _reason(lambda: CompactSession.from_bytes(bytes(bad))) == "bad_crc"
    assert _reason(lambda: CompactSession.from_bytes(d[:-1])) == "truncated"
    assert _reason(lambda: CompactSession.from_bytes(b"XX" + d[2:])) == "bad_magic"
    with pytest.raises(PacketError, match="codebook_size"):
        CompactSession(1, 4, 4, (64, 64), "raster", "raw", 0)


def test_single_bit_flips_are_all_detected():
    sess_pk = packetize(_map(), mtu=40, header="compact")
    b = sess_pk[0].to_bytes("compact")
    sess = sess_pk[0].session
    for bit in range(8 * len(b)):
        c = bytearray(b)
        c[bit // 8] ^= 1 << (bit % 8)
        assert _reason(lambda c=c: sess.decode(bytes(c))) in ("bad_magic", "bad_crc"), bit


@pytest.mark.parametrize("mtu, c", [(16, 1), (100, 2)])
def test_random_corruption_passes_the_crc_at_rate_2_pow_minus_8c(mtu, c):
    """Uniformly random bytes after an intact first byte pass a c-byte CRC with probability 2^-8c."""
    sess_pk = packetize(_map(), mtu=mtu, header="compact", coder="raw")
    b = sess_pk[0].to_bytes("compact")
    assert compact_crc_size(len(b)) == c
    sess = sess_pk[0].session
    rng = np.random.default_rng(3)
    trials = 40_000
    junk = rng.integers(0, 256, size=(trials, len(b) - 1), dtype=np.uint8)
    passed = 0
    for row in junk:
        passed += _reason(lambda row=row: sess.decode(b[:1] + row.tobytes())) != "bad_crc"
    expect = trials * 2.0 ** (-8 * c)
    assert abs(passed - expect) <= 5 * np.sqrt(expect) + 2, (passed, expect)


def test_corrupt_packets_are_rejected_and_counted_by_reason():
    m = _map()
    pk = packetize(m, mtu=30, header="compact")
    sess = pk[0].session
    wire = [p.to_bytes("compact") for p in pk]
    bad = [bytearray(w) for w in wire[:3]]
    bad[0][3] ^= 0x10                       # payload bit → CRC
    bad[1] = bytearray(b"\x56") + bad[1][1:]  # not a compact header
    bad[2] = bad[2][:3]                     # shorter than header + CRC
    r = depacketize([bytes(x) for x in bad] + wire[3:], header="compact", session=sess)
    c = r.counts_by_reason
    assert (c["bad_crc"], c["bad_magic"], c["truncated"]) == (1, 1, 1)
    assert r.lost_packets.sum() == 3
    # a length no sender produces (CRC-16 region, 63-byte body) is a bad field once its CRC is right
    body = bytes([0xA8, 0, 0, 1]) + bytes(59)
    odd = body + binascii.crc_hqx(body, binascii.crc_hqx(sess.salt, 0xFFFF)).to_bytes(2, "big")
    assert len(odd) == 65 and _reason(lambda: sess.decode(odd)) == "bad_field"


def test_mixed_session_packets_are_rejected():
    m = _map()
    a = packetize(m, mtu=40, header="compact", seed=1, interleave="random")
    b = packetize(m, mtu=40, header="compact", seed=2, interleave="random")   # same ids, another session
    k = packetize(_map(K=512), mtu=40, header="compact", seed=1, interleave="random")  # other K
    sa = a[0].session
    assert sa != b[0].session and sa.salt != b[0].session.salt
    foreign = [p.to_bytes("compact") for p in b + k]
    r = depacketize([p.to_bytes("compact") for p in a] + foreign, header="compact", session=sa)
    assert r.counts_by_reason["bad_crc"] == len(foreign)
    assert r.num_lost == 0 and np.array_equal(r.index_map.indices, m.indices)
    # full-header packets at a compact receiver and the other way round
    full = [p.to_bytes() for p in a]
    assert depacketize(full, header="compact", session=sa, codebook_size=1024, shape=m.shape
                       ).counts_by_reason["bad_magic"] == len(full)
    assert depacketize([p.to_bytes("compact") for p in a], codebook_size=1024, shape=m.shape
                       ).counts_by_reason["bad_magic"] == len(a)


def test_compact_fec_recovers_lost_packets():
    m = _map(16, 16)
    for code in ("cauchy", "vandermonde"):
        fec = ErasureFEC(6, 4, code, "numpy")
        pk = packetize(m, mtu=24, header="compact", fec=fec)
        sess = pk[0].session
        wire = [p.to_bytes("compact") for p in pk]
        par = [p for p in pk if p.parity]
        assert par and all(len(w) <= 24 + 2 + 5 + 4 + 1 for w in wire)
        assert sess.decode(wire[4]) == pk[4] and pk[4].parity  # parity: block·(n−k) + index
        keep = [w for i, w in enumerate(wire) if i % 6 not in (0, 2)]  # two of six lost per block
        r = depacketize(keep, header="compact", session=sess, fec_backend="numpy")
        assert r.num_lost == 0 and r.recovered_fec > 0 and np.array_equal(r.index_map.indices, m.indices)


def test_compact_needs_a_session_and_known_header_names():
    with pytest.raises(ParameterError, match="needs session"):
        depacketize([], header="compact")
    with pytest.raises(ParameterError, match="header must be one of"):
        packetize(_map(), header="tiny")
    with pytest.raises(PacketError):
        parse_packet(b"\xa8", "compact", None)


def test_network_send_with_compact_header_and_bit_errors():
    from channels import make_channel

    m = _map(16, 16)
    kw = dict(mtu=48, coder="raw")
    full = NetworkSimulator(link=LinkConfig(), rng=np.random.default_rng(0)).send(m, **kw)
    comp = NetworkSimulator(link=LinkConfig(), rng=np.random.default_rng(0)).send(m, header="compact", **kw)
    assert comp.packets_sent == full.packets_sent and comp.payload_bits == full.payload_bits
    assert comp.header_bits == 8 * 5 * comp.data_packets and full.header_bits == 8 * 40 * full.data_packets
    assert comp.loss_ratio == 0.0
    sim = NetworkSimulator(link=LinkConfig(), bit_channel=make_channel("bsc", ber=3e-3), rng=np.random.default_rng(1))
    rec = sim.send(m, header="compact", **kw)
    assert rec.corrupted > 0 and rec.delivered + rec.corrupted == rec.packets_sent
    assert rec.counts_by_reason["bad_crc"] == 0  # the simulator drops failing packets before depacketize
    got = ~rec.lost_mask
    assert np.array_equal(rec.received.indices[got], m.indices[got])
    # zlib CRC-32 is the large-packet check
    big = packetize(_map(40, 42), mtu=1100, header="compact", coder="raw")[0]
    b = big.to_bytes("compact")
    assert len(b) > 1024 and int.from_bytes(b[-4:], "big") == zlib.crc32(b[:-4], zlib.crc32(big.session.salt))
    assert isinstance(big, Packet)
