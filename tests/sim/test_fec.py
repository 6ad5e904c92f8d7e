"""sim.fec: the packet erasure code (exhaustive erasure patterns, wire-format parity) and the in-packet RS code."""
import itertools

import numpy as np
import pytest
import reedsolo

from codec.errors import ParameterError, VQSimError
from sim.fec import ErasureFEC, FECError, InPacketRS

try:
    import zfec  # noqa: F401  (optional: the vqsim[fec] extra)

    HAVE_ZFEC = True
except ImportError:  # pragma: no cover - depends on the install
    HAVE_ZFEC = False
NEEDS_ZFEC = pytest.mark.skipif(not HAVE_ZFEC, reason="zfec not installed")


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


def test_bad_received_data_is_not_a_parameter_error():
    # FECError: bad received data (a VQSimError, exit 2 in the CLI), not the caller's bad parameter
    assert issubclass(FECError, VQSimError) and not issubclass(FECError, ParameterError)
    fec = ErasureFEC(4, 2)
    with pytest.raises(ParameterError, match="too long for the FEC length prefix"):  # the sender's own packets
        fec.encode_block([bytes(0x10000)])
    with pytest.raises(ParameterError, match="too long for the FEC length prefix"):
        ErasureFEC(4, 2, "vandermonde", "numpy").encode_block([bytes(0x10000)])


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
    for _trial in range(5):
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


def test_parity_bytes_are_the_wire_format():
    """The parity bytes are pinned: a receiver rebuilds the code from the header's fec_n, fec_k alone, so the
    generator [I; C] (Cauchy, x_i = i, y_j = m + j) must never change. (zfec, for one, computes another MDS
    code, a systematic Vandermonde one, whose parity differs from these bytes for every k ≥ 2.)"""
    import hashlib

    from sim import gf256

    assert gf256.cauchy_matrix(2, 4).tolist() == [[142, 244, 71, 167], [244, 142, 167, 71]]
    data = [bytes(range(j, j + 10 + 7 * j)) for j in range(5)]
    want = {(6, 4): "1ae6f93bf46072cd", (12, 8): "bac6c699c5e5f52d", (48, 32): "45d25b04d1b5e98e"}
    for (n, k), digest in want.items():
        par = ErasureFEC(n, k).encode_block(data[: min(k, 5)])
        assert hashlib.sha256(b"".join(par)).hexdigest()[:16] == digest, (n, k)


@pytest.mark.parametrize("n,k", [(6, 4), (12, 8), (48, 32)])
def test_random_erasure_patterns_round_trip(n, k):
    """Random patterns of up to n − k lost rows (data and parity), 100–1500-byte packets, full and shortened blocks."""
    rng = np.random.default_rng(n)
    fec = ErasureFEC(n, k)
    for _ in range(20):
        kk = int(rng.integers(1, k + 1))
        data = random_packets(rng, kk, 100, 1500)
        parity = fec.encode_block(data)
        rows = kk + n - k
        lost = set(rng.choice(rows, int(rng.integers(0, n - k + 1)), replace=False).tolist())
        got_d = {j: data[j] for j in range(kk) if j not in lost}
        got_p = {i: parity[i] for i in range(n - k) if kk + i not in lost}
        assert fec.decode_block(got_d, got_p, kk) == {j: data[j] for j in range(kk) if j in lost}


def test_inpacket_rs_decodes_the_same_with_creedsolo():
    """With creedsolo importable (reedsolo ≥ 2 wheels ship it) InPacketRS decodes through it, and every result —
    corrected, given up (None) or miscorrected beyond ⌊nsym/2⌋ errors — equals the pure-Python reedsolo one."""
    pytest.importorskip("creedsolo")
    from sim import fec as F

    assert F.HAVE_CREEDSOLO and F._RSCodec.__module__.startswith("creedsolo")

    def pure(codec, wire):
        try:
            return bytes(codec.decode(bytearray(wire))[0])
        except (reedsolo.ReedSolomonError, ValueError, IndexError, ZeroDivisionError):
            return None

    rng = np.random.default_rng(5)
    for nsym in (4, 16):
        rs, ref = InPacketRS(nsym), reedsolo.RSCodec(nsym)
        for _ in range(40):
            wire = bytearray(rs.encode(rng.integers(0, 256, int(rng.integers(1, 1500)), dtype=np.uint8).tobytes()))
            for pos in rng.choice(len(wire), min(len(wire), int(rng.integers(0, 3 * nsym))), replace=False):
                wire[pos] ^= int(rng.integers(1, 256))
            assert rs.decode(bytes(wire)) == pure(ref, wire)


# ---------------------------------------------------------------------- the two codes, the two backends
CODE_BACKENDS = [("cauchy", "numpy"), ("vandermonde", "numpy"), pytest.param("vandermonde", "zfec", marks=NEEDS_ZFEC)]
VANDERMONDE_BACKENDS = ["numpy", pytest.param("zfec", marks=NEEDS_ZFEC)]


def test_vandermonde_parity_pinned_from_zfec():
    """zfec 1.6's parity bytes, pinned (checked with and without zfec installed): the "vandermonde" code is
    zfec's systematic Vandermonde code G = V·V_top⁻¹, so a numpy-only receiver decodes a zfec sender."""
    import hashlib

    from sim import gf256

    assert gf256.vandermonde_parity_matrix(2, 4).tolist() == [[119, 64, 56, 14], [199, 167, 13, 108]]
    data = [bytes(range(j, j + 10 + 7 * j)) for j in range(5)]
    want = {(6, 4): "8bb9bf8a7ef40e3f", (12, 8): "1ab25d228a01d0c0", (48, 32): "08eb206f95e8ae8a"}
    backends = ["numpy", "auto"] + (["zfec"] if HAVE_ZFEC else [])
    for (n, k), digest in want.items():
        for backend in backends:
            par = ErasureFEC(n, k, "vandermonde", backend).encode_block(data[: min(k, 5)])
            assert hashlib.sha256(b"".join(par)).hexdigest()[:16] == digest, (n, k, backend)


def test_vandermonde_numpy_equals_zfec_parity():
    """The numpy "vandermonde" parity equals zfec's own Encoder output byte for byte, for many (n, k), packet
    sizes and shortened blocks (zfec given the shortened block's rows as zeros)."""
    pytest.importorskip("zfec")
    rng = np.random.default_rng(11)
    pairs = [(k + m, k) for k in (1, 2, 3, 4, 5, 8, 13, 32) for m in (1, 2, 3, 7, 16)]
    pairs += [(255, 223), (255, 1), (200, 199)]
    for n, k in pairs:
        fec = ErasureFEC(n, k, "vandermonde", "numpy")
        for L in (1, 37, 200):
            kk = int(rng.integers(1, k + 1))
            data = random_packets(rng, kk, 0, L)
            S = fec.data_symbols(data, rows=k)
            want = [bytes(b) for b in zfec.Encoder(k, n).encode(tuple(r.tobytes() for r in S), tuple(range(k, n)))]
            assert fec.encode_block(data) == want, (n, k, L, kk)
            assert ErasureFEC(n, k, "vandermonde", "zfec").encode_block(data) == want


def test_codes_differ_and_cauchy_unchanged():
    """The two codes give different parity (k ≥ 2); "cauchy" is the default and computes today's bytes."""
    data = [bytes(range(j, j + 10 + 7 * j)) for j in range(4)]
    assert ErasureFEC(6, 4) == ErasureFEC(6, 4, "cauchy") == ErasureFEC(6, 4, "cauchy", "numpy")
    assert ErasureFEC(6, 4).encode_block(data) == ErasureFEC(6, 4, code="cauchy", backend="numpy").encode_block(data)
    assert ErasureFEC(6, 4).encode_block(data) != ErasureFEC(6, 4, "vandermonde").encode_block(data)
    assert ErasureFEC(6, 4) != ErasureFEC(6, 4, "vandermonde")
    assert ErasureFEC(6, 4).code == "cauchy" and ErasureFEC(6, 4).engine == "numpy"
    assert repr(ErasureFEC(6, 4)) == "ErasureFEC(n=6, k=4)"  # printed by `vqsim sim`; unchanged
    assert "vandermonde" in repr(ErasureFEC(6, 4, "vandermonde"))


@pytest.mark.parametrize("code,backend", CODE_BACKENDS)
@pytest.mark.parametrize("n,k", [(6, 4), (12, 8), (48, 32), (3, 1)])
def test_random_erasures_both_codes_and_backends(code, backend, n, k):
    """Random patterns of up to n − k lost rows, full and shortened blocks, 0–1500-byte packets; parity from
    one backend is decoded by every backend of the same code (numpy receivers decode zfec senders)."""
    rng = np.random.default_rng(n * 7 + k)
    fec = ErasureFEC(n, k, code, backend)
    others = [
        ErasureFEC(n, k, code, b) for b in ("numpy", "auto") + (("zfec",) if HAVE_ZFEC and code != "cauchy" else ())
    ]
    for _ in range(15):
        kk = int(rng.integers(1, k + 1))
        data = random_packets(rng, kk, 0, 1500)
        parity = fec.encode_block(data)
        assert len(parity) == n - k and {len(p) for p in parity} == {max(map(len, data)) + 2}
        rows = kk + n - k
        lost = set(rng.choice(rows, int(rng.integers(0, n - k + 1)), replace=False).tolist())
        got_d = {j: data[j] for j in range(kk) if j not in lost}
        got_p = {i: parity[i] for i in range(n - k) if kk + i not in lost}
        want = {j: data[j] for j in range(kk) if j in lost}
        for dec in others:
            assert dec.decode_block(got_d, got_p, kk) == want, (dec, kk, sorted(lost))


@pytest.mark.parametrize("backend", VANDERMONDE_BACKENDS)
@pytest.mark.parametrize("n,k", [(4, 3), (6, 4), (7, 3)])
def test_vandermonde_every_erasure_pattern(backend, n, k):
    """Exhaustive for the Vandermonde code: ≤ n−k lost rows are recovered exactly, more recover nothing."""
    rng = np.random.default_rng(n + k)
    fec = ErasureFEC(n, k, "vandermonde", backend)
    for kk in (k, k - 1):
        data = random_packets(rng, kk)
        parity = fec.encode_block(data)
        rows = kk + n - k
        for r in range(rows + 1):
            for lost in itertools.combinations(range(rows), r):
                got_d = {j: data[j] for j in range(kk) if j not in lost}
                got_p = {i: parity[i] for i in range(n - k) if kk + i not in lost}
                out = fec.decode_block(got_d, got_p, kk)
                assert out == ({j: data[j] for j in range(kk) if j in lost} if r <= n - k else {})


@pytest.mark.parametrize("backend", VANDERMONDE_BACKENDS)
def test_vandermonde_inconsistent_blocks_raise_fec_error(backend):
    fec = ErasureFEC(4, 2, "vandermonde", backend)
    par = fec.encode_block([b"abc", b"defgh"])
    with pytest.raises(FECError):
        fec.decode_block({0: b"abc"}, {0: par[0], 1: par[1][:-1]}, 2)
    with pytest.raises(FECError):
        fec.decode_block({0: b"abc" * 10}, {0: par[0]}, 2)


@pytest.mark.parametrize(
    "kw",
    [dict(code="rs"), dict(code=None), dict(backend="cuda"), dict(backend=None), dict(code="cauchy", backend="zfec")],
)
def test_bad_code_or_backend_raise_at_construction(kw):
    from codec.errors import ParameterError

    with pytest.raises(ParameterError):
        ErasureFEC(6, 4, **kw)


def test_zfec_backend_without_zfec(monkeypatch):
    """Without zfec: backend "zfec" fails at construction with a clear message, "auto" falls back to numpy and
    computes the same bytes."""
    from codec.errors import ParameterError
    from sim import fec as F

    data = [b"abcd", b"efghij", b"k"]
    want = ErasureFEC(6, 4, "vandermonde", "numpy").encode_block(data)
    monkeypatch.setattr(F, "_zfec_module", lambda: None)
    with pytest.raises(ParameterError, match="zfec"):
        ErasureFEC(6, 4, "vandermonde", "zfec")
    auto = ErasureFEC(6, 4, "vandermonde")
    assert auto.engine == "numpy" and auto.encode_block(data) == want
    assert auto.decode_block({1: data[1]}, dict(enumerate(want)), 3) == {0: data[0], 2: data[2]}


def test_auto_uses_zfec_when_installed():
    pytest.importorskip("zfec")
    assert ErasureFEC(6, 4, "vandermonde").engine == "zfec"
    assert ErasureFEC(6, 4, "vandermonde", "numpy").engine == "numpy"
    assert ErasureFEC(6, 4).engine == "numpy"  # zfec does not compute the Cauchy code


@pytest.mark.parametrize("nsym", [1, 4, 32])
def test_inpacket_rs_empty_and_short_packets_match_reedsolo(nsym):
    """Issue 27: InPacketRS(4).encode(b"") gave 4 zero bytes (reedsolo: b"") while overhead(0) said 0."""
    from sim.fec import InPacketRS

    rs, ref = InPacketRS(nsym), reedsolo.RSCodec(nsym)
    for msg in (b"", b"a", bytes(range(255 - nsym)), bytes(300)):
        enc = rs.encode(msg)
        assert enc == bytes(ref.encode(msg))
        assert len(enc) - len(msg) == rs.overhead(len(msg))
        assert rs.decode(enc) == msg
    assert rs.encode_many([b"", b"xy", b""]) == [b"", bytes(ref.encode(b"xy")), b""]
