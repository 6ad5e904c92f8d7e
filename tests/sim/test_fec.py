"""GF(256) arithmetic, the packet erasure code (exhaustive erasure patterns) and the in-packet RS code."""
import itertools

import numpy as np
import pytest
import reedsolo

from sim import gf256
from sim.fec import ErasureFEC, FECError, InPacketRS


def test_field_tables_agree_with_reedsolo():
    reedsolo.init_tables(0x11D)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, 500), rng.integers(0, 256, 500)
    assert [reedsolo.gf_mul(int(x), int(y)) for x, y in zip(a, b)] == gf256.gf_mul(a, b).tolist()
    nz = np.arange(1, 256)
    assert np.all(gf256.MUL[nz, gf256.INV[nz]] == 1)


def test_matrix_inverse():
    rng = np.random.default_rng(1)
    for k in (1, 2, 5, 17):
        a = gf256.cauchy_matrix(k, k)  # Cauchy: always invertible
        assert np.array_equal(gf256.gf_matmul(a, gf256.gf_inv_matrix(a)), np.eye(k, dtype=np.uint8))
    sing = rng.integers(0, 256, (4, 4)).astype(np.uint8)
    sing[3] = sing[0]
    with pytest.raises(np.linalg.LinAlgError):
        gf256.gf_inv_matrix(sing)


@pytest.mark.parametrize("nsym", [1, 2, 7, 16, 32])
def test_vectorized_rs_parity_equals_reedsolo(nsym):
    rng = np.random.default_rng(nsym)
    codec = reedsolo.RSCodec(nsym)
    for c in (1, 17, 255 - nsym):
        msgs = rng.integers(0, 256, (3, c), dtype=np.uint8)
        par = gf256.rs_encode_chunks(msgs, nsym)
        for m, p in zip(msgs, par):
            assert bytes(codec.encode(m.tobytes())) == m.tobytes() + p.tobytes()


def random_packets(rng, count, lo=1, hi=60):
    return [rng.integers(0, 256, rng.integers(lo, hi + 1), dtype=np.uint8).tobytes() for _ in range(count)]


@pytest.mark.parametrize("n,k", [(2, 1), (4, 3), (5, 2), (6, 4), (7, 3)])
@pytest.mark.parametrize("kk_short", [0, 1])
def test_every_erasure_pattern(n, k, kk_short):
    """Exhaustive: every pattern of ≤ n−k lost rows is recovered exactly; > n−k recovers nothing."""
    rng = np.random.default_rng(n * 10 + k)
    fec = ErasureFEC(n, k)
    kk = max(1, k - kk_short)  # also the shortened last block
    data = random_packets(rng, kk)
    parity = fec.encode_block(data)
    assert len(parity) == n - k and len({len(p) for p in parity}) == 1
    rows = kk + (n - k)
    for r in range(rows + 1):
        for lost in itertools.combinations(range(rows), r):
            got_d = {j: data[j] for j in range(kk) if j not in lost}
            got_p = {i: parity[i] for i in range(n - k) if kk + i not in lost}
            out = fec.decode_block(got_d, got_p, kk)
            missing = [j for j in range(kk) if j in lost]
            if r <= n - k:
                assert out == {j: data[j] for j in missing}
            else:
                assert out == {}


def test_systematic_and_large_code():
    rng = np.random.default_rng(3)
    fec = ErasureFEC(255, 223)
    data = random_packets(rng, 223, 100, 300)
    parity = fec.encode_block(data)
    assert len(parity) == 32 and len(parity[0]) == max(map(len, data)) + 2
    for _ in range(3):
        lost = rng.choice(255, 32, replace=False)
        got_d = {j: data[j] for j in range(223) if j not in lost}
        got_p = {i: parity[i] for i in range(32) if 223 + i not in lost}
        out = fec.decode_block(got_d, got_p, 223)
        assert out == {j: data[j] for j in range(223) if j in lost}


def test_inconsistent_blocks_raise_fec_error():
    fec = ErasureFEC(4, 2)
    data = [b"abc", b"defgh"]
    par = fec.encode_block(data)
    with pytest.raises(FECError):
        fec.decode_block({0: b"abc"}, {0: par[0], 1: par[1][:-1]}, 2)
    with pytest.raises(FECError):
        fec.decode_block({0: b"abc" * 10}, {0: par[0]}, 2)


@pytest.mark.parametrize("n,k", [(1, 1), (256, 200), (3, 0), (5, 5)])
def test_bad_parameters(n, k):
    with pytest.raises(ValueError):
        ErasureFEC(n, k)


@pytest.mark.parametrize("nsym", [2, 8, 16])
def test_inpacket_rs_corrects_up_to_half_nsym_errors_per_chunk(nsym):
    rng = np.random.default_rng(nsym)
    rs = InPacketRS(nsym)
    pkt = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
    wire = rs.encode(pkt)
    assert len(wire) == 600 + rs.overhead(600) == 600 + nsym * -(-600 // (255 - nsym))
    assert rs.strip(wire) == pkt and rs.decode(wire) == pkt
    for trial in range(5):
        bad = bytearray(wire)
        for s in range(0, len(wire), 255):  # ⌊nsym/2⌋ byte errors in every 255-byte codeword
            chunk_len = min(255, len(wire) - s)
            for pos in rng.choice(chunk_len, nsym // 2, replace=False):
                bad[s + pos] ^= int(rng.integers(1, 256))
        assert rs.decode(bytes(bad)) == pkt


def test_inpacket_rs_beyond_capacity_is_detected_by_crc():
    """With more errors than RS can fix the decoder gives up or miscorrects; the packet CRC catches it."""
    from sim.packet import Packet, PacketError

    rs = InPacketRS(4)
    p = Packet(1, 0, 1, 16, 2, 2, (32, 32), "raster", "raw", 0, bytes(range(40)))
    wire = rs.encode(p.to_bytes())
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(wire)
        for pos in rng.choice(len(wire), 12, replace=False):
            bad[pos] ^= int(rng.integers(1, 256))
        fixed = rs.decode(bytes(bad))
        if fixed is not None and fixed != p.to_bytes():
            with pytest.raises(PacketError):
                Packet.from_bytes(fixed)


def test_inpacket_rs_parameters():
    for nsym in (0, 255):
        with pytest.raises(ValueError):
            InPacketRS(nsym)
