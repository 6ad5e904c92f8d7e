"""Packetize → depacketize: round trips, exact loss of a packet's indices, malformed-packet accounting."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from indexmaps import session, skewed_map

from codec.entropy import CODERS
from codec.errors import ParameterError
from codec.types import DEFAULT_DOWNSAMPLING, IndexMap
from sim.fec import ErasureFEC
from sim.interleave import SCHEMES, interleave
from sim.packet import OVERHEAD, REASONS, Packet, PacketError
from sim.packetizer import PacketizeOptions, depacketize, packetize


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("coder", CODERS)
def test_round_trip_no_loss(scheme, coder):
    m = skewed_map()
    pk = packetize(m, mtu=40, interleave=scheme, coder=coder, seed=3, image_id=9)
    assert len(pk) > 3
    assert all(len(p.payload) <= 40 for p in pk)
    res = depacketize([p.to_bytes() for p in pk], codebook_id=m.codebook_id)
    assert res.index_map == m
    assert not res.lost_mask.any() and res.num_data_packets == len(pk)
    assert res.image_id == 9 and sum(v for k, v in res.counts_by_reason.items()) == 0


def test_raw_packet_count_is_minimal():
    """raw: b bits per index, so ⌊8·mtu/b⌋ indices fit a packet and P = ⌈N / that⌉."""
    m = IndexMap(np.arange(1536).reshape(32, 48) % 1024, 1024, (512, 768))
    for mtu in (50, 120, 1200):
        per = (8 * mtu) // 10
        pk = packetize(m, mtu=mtu)
        assert len(pk) == -(-1536 // per)
        assert max(len(p.payload) for p in pk) <= mtu


def test_variable_length_coders_respect_mtu_and_use_fewer_packets():
    m = skewed_map(24, 32)
    raw = packetize(m, mtu=60, coder="raw")
    for coder in ("deflate", "arith", "arith_rep"):
        pk = packetize(m, mtu=60, coder=coder)
        assert max(len(p.payload) for p in pk) <= 60
        assert 0 < len(pk) - 1 and max(len(p.payload) for p in pk) > 40  # fills packets reasonably
    # with the codebook histogram as prior the range coder needs ~5.8 instead of 8 bits per index
    prior = np.bincount(m.indices.ravel(), minlength=m.codebook_size).astype(float)
    pk = packetize(m, mtu=60, coder="arith", prior=prior)
    assert len(pk) < len(raw) and max(len(p.payload) for p in pk) <= 60
    res = depacketize([p.to_bytes() for p in pk], prior=prior)
    assert np.array_equal(res.index_map.indices, m.indices)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_losing_one_packet_loses_exactly_its_indices(scheme):
    m = skewed_map(16, 24, seed=1)
    pk = packetize(m, mtu=30, interleave=scheme, seed=11)
    P = len(pk)
    il = interleave(scheme, 16, 24, P, pk[0].seed)  # the tile scheme writes its tile shape there
    for j in (0, P // 2, P - 1):
        res = depacketize([p.to_bytes() for i, p in enumerate(pk) if i != j])
        expect = np.zeros(16 * 24, bool)
        expect[il.positions(j)] = True
        assert np.array_equal(res.lost_mask.ravel(), expect)
        assert np.array_equal(res.index_map.indices[~res.lost_mask], m.indices[~res.lost_mask])
        assert np.all(res.index_map.indices[res.lost_mask] == 0)
        assert res.lost_packets.tolist() == [i == j for i in range(P)]


def test_nothing_arrives_needs_session_parameters():
    m = skewed_map()
    with pytest.raises(PacketError) as e:
        depacketize([])
    assert e.value.reason == "no_packets"
    res = depacketize([b"garbage"], **session(m))
    assert res.lost_mask.all() and res.index_map.shape == m.shape and res.counts_by_reason["bad_magic"] == 1
    assert res.index_map.image_size == m.image_size


def test_counts_every_malformed_case():
    m = skewed_map()
    pk = packetize(m, mtu=40, image_id=1)
    b = [p.to_bytes() for p in pk]
    other = packetize(skewed_map(seed=5), mtu=40, image_id=2)[0].to_bytes()
    otherK = packetize(IndexMap(m.indices, 512, m.image_size), mtu=40, image_id=1)[0].to_bytes()
    bad_crc = bytearray(b[1])
    bad_crc[OVERHEAD] ^= 0x10
    p3 = pk[3]
    bad_payload = Packet(p3.image_id, 3, p3.count, p3.codebook_size, p3.h, p3.w, p3.image_size, p3.scheme,
                         p3.coder, p3.seed, p3.payload[:-2]).to_bytes()
    out_of_range = bytearray(b[4])
    out_of_range[8:10] = (len(pk) + 3).to_bytes(2, "big")  # seq ≥ count
    out_of_range[-4:] = zlib.crc32(bytes(out_of_range[:-4])).to_bytes(4, "big")
    stream = (b[5:] + [b[0], b[0], other, otherK, bytes(bad_crc), b[2][:-3], b[2] + b"\x00", bad_payload,
                       bytes(out_of_range), b"XY" + b[2][2:], 12345])
    res = depacketize(stream, expected_image_id=1)
    c = res.counts_by_reason
    assert c == {**{r: 0 for r in REASONS}, "duplicate": 1, "foreign": 2, "bad_crc": 1, "truncated": 1,
                 "oversized": 1, "bad_payload": 1, "bad_field": 1, "bad_magic": 1, "bad_type": 1,
                 "reordered": 2}  # packets 0 and 3 (the bad-payload one) arrive after packet 5
    lost = {1, 2, 3, 4}
    assert res.lost_packets.tolist() == [j in lost for j in range(len(pk))]
    ok = ~res.lost_mask
    assert np.array_equal(res.index_map.indices[ok], m.indices[ok])


def test_reordering_is_harmless_and_counted():
    m = skewed_map()
    b = [p.to_bytes() for p in packetize(m, mtu=40, interleave="random", seed=4)]
    perm = np.random.default_rng(0).permutation(len(b))
    res = depacketize([b[i] for i in perm])
    assert res.index_map == IndexMap(m.indices, m.codebook_size, m.image_size)
    expected = sum(perm[i] < perm[:i].max() for i in range(1, len(perm)))
    assert res.counts_by_reason["reordered"] == expected


def test_majority_stream_wins_without_expectations():
    m = skewed_map()
    mine = [p.to_bytes() for p in packetize(m, mtu=40, image_id=3)]
    theirs = [p.to_bytes() for p in packetize(m, mtu=40, image_id=4)][:2]
    res = depacketize(theirs + mine)
    assert res.image_id == 3 and res.counts_by_reason["foreign"] == 2 and not res.lost_mask.any()


def test_fec_packets_in_stream_and_recovery():
    m = skewed_map(16, 24)
    fec = ErasureFEC(6, 4)
    pk = packetize(m, mtu=30, fec=fec, interleave="block")
    data = [p for p in pk if not p.parity]
    P = len(data)
    assert sum(p.parity for p in pk) == fec.m * fec.num_blocks(P)
    assert [p.seq for p in data] == list(range(P))
    # drop two data packets of block 0 and one of the last block → all recovered
    drop = {0, 2, P - 1}
    res = depacketize([p.to_bytes() for p in pk if p.parity or p.seq not in drop])
    assert res.recovered_fec == 3 and not res.lost_mask.any()
    assert np.array_equal(res.index_map.indices, m.indices)
    # three data packets of one block lost → the block's parity (2) cannot rebuild them
    drop = {4, 5, 6}
    res = depacketize([p.to_bytes() for p in pk if p.parity or p.seq not in drop])
    assert res.recovered_fec == 0 and res.lost_packets.sum() == 3


@pytest.mark.parametrize("kw", [dict(mtu=3), dict(mtu=10**6), dict(interleave="zig"), dict(coder="lz4"),
                                dict(seed=-1), dict(image_id=2**32)])
def test_packetize_rejects_bad_options(kw):
    with pytest.raises(ValueError):
        packetize(skewed_map(), **kw)


def test_mtu_too_small_for_one_index():
    from codec.entropy import encode_symbols

    m = IndexMap(np.full((2, 2), 5), 2**20, (32, 32))
    one = len(encode_symbols(np.array([5]), 2**20, "deflate"))  # zlib framing alone is > 8 bytes
    with pytest.raises(ValueError, match="too small"):
        packetize(m, mtu=one - 1, coder="deflate")
    assert len(packetize(m, mtu=one, coder="deflate")) == 4
    assert len(packetize(m, mtu=8)) == 2  # raw: 20 bits per index, 3 fit in 8 bytes


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_depacketize_never_crashes(data):
    m = skewed_map(6, 8)
    fec = data.draw(st.sampled_from([None, ErasureFEC(5, 3)]))
    b = [p.to_bytes() for p in packetize(m, mtu=12, fec=fec, image_id=1)]
    stream, forged = [], False
    for _ in range(data.draw(st.integers(0, 12))):
        x = bytearray(data.draw(st.sampled_from(b)))
        op = data.draw(st.integers(0, 4))
        if op == 1 and x:
            x[data.draw(st.integers(0, len(x) - 1))] ^= data.draw(st.integers(1, 255))
        elif op == 2:
            x = x[: data.draw(st.integers(0, len(x)))]
        elif op == 3:
            x[data.draw(st.integers(0, len(x) - 5))] = data.draw(st.integers(0, 255))
            x[-4:] = zlib.crc32(bytes(x[:-4])).to_bytes(4, "big")  # valid CRC, mangled field or payload
            forged = True
        elif op == 4:
            x = bytearray(data.draw(st.binary(max_size=80)))
            forged = True
        stream.append(bytes(x))
    res = depacketize(stream, **session(m))
    assert res.index_map.shape == m.shape and res.lost_mask.dtype == bool
    ok = ~res.lost_mask
    # an index the receiver claims to have must be right unless a CRC-valid forgery replaced it
    if not forged:
        assert np.array_equal(res.index_map.indices[ok], m.indices[ok])
    if not any(len(x) > 4 for x in stream):
        assert res.lost_mask.all()
    assert res.index_map.indices[ok].max(initial=0) < m.codebook_size


def _huge_packet(h: int, w: int, seed: int = 0, image_size=(65535, 65535)) -> bytes:
    """A CRC-valid 56-byte packet claiming an h×w map (the allocation bomb of the hardening issue)."""
    return Packet(image_id=1, seq=0, count=1, codebook_size=8, h=h, w=w, image_size=image_size, scheme="random",
                  coder="arith", seed=seed, payload=bytes(16)).to_bytes()


@pytest.mark.parametrize("hw", [(65535, 65535), (4096, 4096), (200, 200)])
def test_packet_claiming_huge_map_dropped_before_allocation(hw):
    import time

    raw = _huge_packet(*hw, image_size=(16 * hw[0] if 16 * hw[0] < 65536 else 65535,) * 2)
    assert len(raw) == 56
    t = time.perf_counter()
    # without session parameters nothing valid arrived: the documented typed error, not MemoryError
    with pytest.raises(PacketError, match="no valid packet") as e:
        depacketize([raw])
    assert e.value.reason == "no_packets"
    # with them: an all-lost map of the session's shape, the packet counted as over_limit
    res = depacketize([raw], codebook_size=8, shape=(4, 4))
    assert time.perf_counter() - t < 1.0
    assert res.counts_by_reason["over_limit"] == 1 and res.lost_mask.all()


def test_packet_limits_are_the_receivers_choice():
    from codec.limits import DecodeLimits

    m = skewed_map(40, 60)  # 2,400 indices
    pkts = packetize(m, mtu=200)
    assert depacketize(pkts, **session(m)).index_map == m
    res = depacketize(pkts, **session(m), limits=DecodeLimits(max_indices=2000))
    assert res.counts_by_reason["over_limit"] == len(pkts) and res.lost_mask.all()


# ---------------------------------------------------------------------- the erasure code named in the header
def test_cauchy_streams_byte_identical_to_before():
    """Packetized streams with the default (Cauchy) code are pinned: the same bytes as before the header could
    name a code (flag bit 1 clear, same parity)."""
    import hashlib

    m = skewed_map(16, 24)
    want = {
        (6, 4, 30, "block", "raw"): (21, "47276c0a420cef35"),
        (12, 8, 50, "random", "deflate"): (18, "ae5240788f3ee5bf"),
        (48, 32, 20, "raster", "raw"): (36, "75567c116c8283f7"),
    }
    for (n, k, mtu, il, cd), (count, digest) in want.items():
        for fec in (ErasureFEC(n, k), ErasureFEC(n, k, "cauchy", "numpy")):
            pk = packetize(m, mtu=mtu, fec=fec, interleave=il, coder=cd, seed=5, image_id=3)
            assert len(pk) == count and all(p.fec_code == "cauchy" for p in pk)
            assert hashlib.sha256(b"".join(p.to_bytes() for p in pk)).hexdigest()[:16] == digest


@pytest.mark.parametrize("send_backend", ["numpy", "auto"])
@pytest.mark.parametrize("recv_backend", ["numpy", "auto"])
def test_vandermonde_stream_through_lossy_channel(send_backend, recv_backend):
    """A Gilbert–Elliott channel drops packets of a code=vandermonde stream; the receiver learns the code from the
    headers (any backend), rebuilds every block with ≤ n − k losses, and recovers exactly what the Cauchy code
    recovers under the same losses (both are MDS)."""
    from channels import GilbertElliott

    m = skewed_map(16, 24)
    fec = ErasureFEC(6, 4, "vandermonde", send_backend)
    ch = GilbertElliott(p=0.15, r=0.5, h=0.1, k=0.99)
    recovered = 0
    for trial in range(8):
        pk = packetize(m, mtu=30, fec=fec, interleave="random", seed=trial, image_id=2)
        ref = packetize(m, mtu=30, fec=ErasureFEC(6, 4), interleave="random", seed=trial, image_id=2)
        assert all(p.fec_code == "vandermonde" for p in pk) and len(pk) == len(ref)
        assert [p.payload for p in pk if not p.parity] == [p.payload for p in ref if not p.parity]
        assert [p.payload for p in pk if p.parity] != [p.payload for p in ref if p.parity]
        lost, _ = ch.sample(len(pk), np.random.default_rng(trial))
        lost = np.asarray(lost, dtype=bool)
        kept = [p.to_bytes() for p, x in zip(pk, lost, strict=True) if not x]
        res = depacketize(kept, fec_backend=recv_backend, **session(m))
        base = depacketize([p.to_bytes() for p, x in zip(ref, lost, strict=True) if not x], **session(m))
        assert res.recovered_fec == base.recovered_fec and np.array_equal(res.lost_packets, base.lost_packets)
        assert np.array_equal(res.lost_mask, base.lost_mask) and res.counts_by_reason == base.counts_by_reason
        ok = ~res.lost_mask
        assert np.array_equal(res.index_map.indices[ok], m.indices[ok])
        # every block that lost at most n − k of its n packets is complete
        per_block = {}
        for p, x in zip(pk, lost, strict=True):
            per_block.setdefault(p.block, []).append(bool(x))
        for blk, fates in per_block.items():
            if sum(fates) <= fec.m:
                assert not res.lost_packets[blk * 4 : (blk + 1) * 4].any()
        recovered += res.recovered_fec
    assert recovered > 0  # the channel did lose packets that the code rebuilt


def test_streams_of_different_codes_are_foreign():
    """The code is part of the stream key: packets of the same image under the other code are foreign."""
    m = skewed_map(16, 24)
    van = packetize(m, mtu=30, fec=ErasureFEC(6, 4, "vandermonde"), image_id=5)
    cau = packetize(m, mtu=30, fec=ErasureFEC(6, 4), image_id=5)
    res = depacketize([p.to_bytes() for p in van] + [p.to_bytes() for p in cau[:3]], **session(m))
    assert res.counts_by_reason["foreign"] == 3 and not res.lost_mask.any()


def test_depacketize_rejects_bad_fec_backend():
    m = skewed_map()
    with pytest.raises(ValueError, match="fec_backend"):
        depacketize([p.to_bytes() for p in packetize(m, mtu=40)], fec_backend="gpu")
    # "zfec" names the Vandermonde decoder only: a Cauchy stream still decodes (with numpy)
    pk = packetize(m, mtu=40, fec=ErasureFEC(5, 3))
    for backend in ("numpy", "zfec"):
        res = depacketize([p.to_bytes() for p in pk[1:]], fec_backend=backend, **session(m))
        assert res.recovered_fec == 1 and res.index_map == m


def _alphabet_flood(K, P=200, header="compact"):
    """P one-index arith packets of one stream claiming codebook size K (issue 27, item 1)."""
    from sim.packet import CompactSession

    s = CompactSession(K, 1, P, (16, 16 * P), "raster", "arith", 0)
    pk = [Packet(0, j, P, K, 1, P, (16, 16 * P), "raster", "arith", 0, b"\x00", False, 0, 0, 0) for j in range(P)]
    return s, [s.encode(p) if header == "compact" else p.to_bytes() for p in pk]


@pytest.mark.parametrize("header", ["compact", "full"])
def test_alphabet_claim_over_the_limit_is_dropped_before_any_model(header):
    import time

    from codec.limits import DecodeLimits

    s, pk = _alphabet_flood(1 << 20, header=header)
    t = time.perf_counter()
    res = depacketize(pk, header=header, session=s, codebook_size=1 << 20, shape=(1, 200))
    assert time.perf_counter() - t < 0.5  # was 60 ms per packet (a model of 2^20 counts each)
    assert res.counts_by_reason["over_limit"] == 200 and res.lost_mask.all()
    # the limit is the receiver's to raise; at the default cap (2^16) a packet's model is a template copy
    s, pk = _alphabet_flood(1 << 16, header=header)
    t = time.perf_counter()
    res = depacketize(pk, header=header, session=s, limits=DecodeLimits(max_codebook_size=1 << 16))
    assert res.counts_by_reason["bad_payload"] == 200
    assert time.perf_counter() - t < 2.0  # ≈ 0.4 ms per packet here; was ≈ 4 ms


def test_alphabet_limit_is_a_decode_limit():
    from codec.limits import DecodeLimits, LimitExceededError

    assert DecodeLimits().max_codebook_size == 1 << 16
    assert DecodeLimits.from_env({"VQSIM_MAX_CODEBOOK_SIZE": "16384"}).max_codebook_size == 16384
    with pytest.raises(LimitExceededError, match="max_codebook_size"):
        DecodeLimits().check(1, 1, codebook_size=(1 << 16) + 1)


def test_bad_payload_with_valid_crc_is_rebuilt_by_fec():
    """Issue 27: a data packet that passes the compact header's CRC-8 (~1/256 random corruptions do) but
    whose payload does not decode blocked FEC from rebuilding its slot; now it counts as missing."""
    from codec.entropy import decode_symbols
    from sim.packet import PacketError

    m = skewed_map(8, 8)
    pk = packetize(m, mtu=30, coder="arith", fec=ErasureFEC(3, 2), header="compact")
    s = pk[0].session
    wire = [s.encode(p) for p in pk]
    rng = np.random.default_rng(0)
    victim = 0  # data packet 0, block 0
    hdr = len(wire[victim]) - len(pk[victim].payload) - 1  # header bytes before the payload, CRC-8 after it
    for _ in range(20000):
        forged = bytearray(wire[victim])
        forged[hdr + int(rng.integers(0, len(pk[victim].payload)))] ^= int(rng.integers(1, 256))
        forged[-1] = int(rng.integers(0, 256))
        try:
            p = s.decode(bytes(forged))
        except PacketError:
            continue
        try:
            from sim.interleave import interleave as _il

            n = _il("raster", 8, 8, pk[0].count, 0).positions(victim).size
            decode_symbols(p.payload, n, m.codebook_size, "arith")
        except ValueError:
            break  # CRC-valid, undecodable
    else:  # pragma: no cover
        pytest.fail("no CRC-valid undecodable corruption found")
    stream = list(wire)
    stream[victim] = bytes(forged)
    res = depacketize(stream, header="compact", session=s)
    assert res.counts_by_reason["bad_payload"] == 1
    assert res.recovered_fec == 1 and res.data_received == pk[0].count - 1
    assert not res.lost_mask.any() and np.array_equal(res.index_map.indices, m.indices)  # was: slot 0 lost


def test_packetize_options_object_equals_the_keywords():
    m = IndexMap(np.random.default_rng(4).integers(0, 256, (6, 10)), 256, (96, 160))
    kw = dict(mtu=24, interleave="random", seed=5, coder="arith", fec=ErasureFEC(5, 3), header="compact")
    opts = PacketizeOptions(**kw)
    by_kw, by_opts = packetize(m, image_id=7, **kw), packetize(m, opts, image_id=7)
    assert [p.to_bytes() for p in by_kw] == [p.to_bytes() for p in by_opts]
    # keywords override the options object's fields
    wire = [p.to_bytes() for p in packetize(m, opts, mtu=40)]
    assert wire == [p.to_bytes() for p in packetize(m, **{**kw, "mtu": 40})]
    with pytest.raises(TypeError, match="unexpected keyword"):
        packetize(m, mtu=24, mtu_bytes=3)
    with pytest.raises(ParameterError, match="mtu must be in"):
        PacketizeOptions(mtu=2)
    with pytest.raises(ParameterError, match="interleave must be one of"):
        PacketizeOptions(interleave="zigzag")


def test_all_lost_map_uses_the_default_downsampling():
    res = depacketize([], codebook_size=16, shape=(3, 5))
    assert res.index_map.image_size == (DEFAULT_DOWNSAMPLING * 3, DEFAULT_DOWNSAMPLING * 5) == (48, 80)
    assert res.lost_mask.all()
