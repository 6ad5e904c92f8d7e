"""The ``fec`` section: packet-level erasure FEC MB/s (ours and zfec) and in-packet RS MB/s."""
from __future__ import annotations

from typing import Any

import numpy as np

from .config import PACKET_BYTES, BenchConfig
from .timing import mbps, median_s

FEC_CODES = ((12, 8), (20, 16))


def _packets(rng: np.random.Generator, n: int, size: int = PACKET_BYTES) -> list[bytes]:
    buf = rng.integers(0, 256, size=n * size, dtype=np.uint8).tobytes()
    return [buf[i * size:(i + 1) * size] for i in range(n)]


def _bench_erasure(cfg: BenchConfig, n: int, k: int, rng: np.random.Generator) -> dict[str, Any]:
    """Encode every block; decode each with n−k of its data packets erased (worst case: all parity used)."""
    from sim.fec import ErasureFEC

    fec = ErasureFEC(n, k)
    blocks = max(1, cfg.fec_bytes // (k * PACKET_BYTES))
    data = [_packets(rng, k) for _ in range(blocks)]
    nbytes = blocks * k * PACKET_BYTES
    parity: list[list[bytes]] = []

    def encode() -> None:
        parity[:] = [fec.encode_block(b) for b in data]

    enc_s = median_s(encode, cfg.repeats)
    m = min(n - k, k)
    lost = [set(rng.choice(k, m, replace=False).tolist()) for _ in range(blocks)]
    recv = [
        ({j: b[j] for j in range(k) if j not in ls}, dict(enumerate(p)))
        for b, p, ls in zip(data, parity, lost, strict=False)
    ]
    out: list[dict[int, bytes]] = []

    def decode() -> None:
        out[:] = [fec.decode_block(d, p, k) for d, p in recv]

    dec_s = median_s(decode, cfg.repeats)
    ok = all(rec[j] == b[j] for rec, b, ls in zip(out, data, lost, strict=False) for j in ls)
    res = {
        "blocks": blocks,
        "data_bytes": nbytes,
        "erased_per_block": m,
        "recovered_ok": ok,
        "encode_MBps": mbps(nbytes, enc_s),
        "decode_MBps": mbps(nbytes, dec_s),
    }
    try:
        import zfec
    except ImportError:
        res["zfec"] = "not installed"
        return res
    enc, dec = zfec.Encoder(k, n), zfec.Decoder(k, n)
    want = tuple(range(k, n))
    tdata = [tuple(b) for b in data]
    zpar: list[list[bytes]] = []

    def z_encode() -> None:
        zpar[:] = [enc.encode(b, want) for b in tdata]

    z_enc_s = median_s(z_encode, cfg.repeats)
    zrecv = []
    for b, p, ls in zip(tdata, zpar, lost, strict=False):
        keep = [j for j in range(k) if j not in ls] + list(range(k, k + len(ls)))
        zrecv.append((tuple(b[j] if j < k else p[j - k] for j in keep), tuple(keep)))
    # zfec's decode scribbles over its input buffers (even immutable bytes), so every timed call
    # gets its own fresh copies, made here outside the timer
    fresh = [[(tuple(bytes(bytearray(x)) for x in blk), nums) for blk, nums in zrecv] for _ in range(cfg.repeats + 1)]
    zout: list[list[bytes]] = []

    def z_decode() -> None:
        zout[:] = [dec.decode(blk, nums) for blk, nums in fresh.pop()]

    z_dec_s = median_s(z_decode, cfg.repeats)
    res.update(
        zfec_version=getattr(zfec, "__version__", "?"),
        zfec_encode_MBps=mbps(nbytes, z_enc_s),
        zfec_decode_MBps=mbps(nbytes, z_dec_s),
        zfec_ok=all(
            bytes(z) == bytes(x) for zo, b in zip(zout, data, strict=False) for z, x in zip(zo, b, strict=False)
        ),
        ours_over_zfec_encode=z_enc_s / enc_s,
        ours_over_zfec_decode=z_dec_s / dec_s,
    )
    return res


def bench_fec(cfg: BenchConfig) -> dict[str, Any]:
    """Packet-level erasure FEC MB/s (ours and zfec) and in-packet RS MB/s, 1240-byte packets."""
    from sim.fec import HAVE_CREEDSOLO, InPacketRS

    rng = np.random.default_rng(cfg.seed)
    codes = {f"({n},{k})": _bench_erasure(cfg, n, k, rng) for n, k in FEC_CODES}
    rs = InPacketRS(16)
    pk = _packets(rng, max(1, cfg.rs_packets))
    nbytes = len(pk) * PACKET_BYTES
    wire: list[bytes] = []

    def rs_encode() -> None:
        wire[:] = rs.encode_many(pk)

    rs_enc_s = median_s(rs_encode, cfg.repeats)
    bad = []
    for w in wire:  # 4 corrupted bytes per packet, all correctable (≤ nsym/2 per 255-byte chunk)
        b = bytearray(w)
        for pos in rng.choice(len(b), 4, replace=False):
            b[pos] ^= int(rng.integers(1, 256))
        bad.append(bytes(b))
    fixed: list[bytes | None] = []

    def rs_decode() -> None:
        fixed[:] = [rs.decode(b) for b in bad]

    rs_dec_s = median_s(rs_decode, cfg.repeats)
    inpacket = {
        "nsym": rs.nsym,
        "packets": len(pk),
        "creedsolo": HAVE_CREEDSOLO,
        "encode_MBps": mbps(nbytes, rs_enc_s),
        "decode_MBps": mbps(nbytes, rs_dec_s),
        "corrected_ok": all(f == p for f, p in zip(fixed, pk, strict=False)),
    }
    summary: dict[str, float] = {}
    for name, r in codes.items():
        summary[f"erasure{name}_encode_MBps"] = r["encode_MBps"]
        summary[f"erasure{name}_decode_MBps"] = r["decode_MBps"]
        if "zfec_encode_MBps" in r:
            summary[f"zfec{name}_encode_MBps"] = r["zfec_encode_MBps"]
            summary[f"zfec{name}_decode_MBps"] = r["zfec_decode_MBps"]
            summary[f"ours_over_zfec{name}_encode"] = r["ours_over_zfec_encode"]
            summary[f"ours_over_zfec{name}_decode"] = r["ours_over_zfec_decode"]
    summary["inpacket_rs_encode_MBps"] = inpacket["encode_MBps"]
    summary["inpacket_rs_decode_MBps"] = inpacket["decode_MBps"]
    return {"summary": summary, "packet_bytes": PACKET_BYTES, "erasure": codes, "inpacket_rs": inpacket}
