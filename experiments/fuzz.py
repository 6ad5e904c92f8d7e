"""Fuzz benchmark of the receive path: hostile bitstreams and packets, counted by outcome.

``vqsim bench fuzz`` feeds ``--inputs`` (default 10^5) bitstreams to
``codec.bitstream.decode_bitstream`` (and the codec-level
``VQGANCodec.decompress_indices`` of the default model at K = 64, with its
checks against the model, on a tenth as many; the first ``full_decodes``
accepted ones are also decoded to an image) and as many packets
to ``sim.packetizer.depacketize``, and prints, per target, how many inputs
were accepted, refused with each typed error, or crashed (any exception that
is not a ``codec.errors.VQSimError``), the slowest input and the process's
peak memory. The pass criteria of the hardening issue: 0 crashes, 0 untyped
errors, every input under 1 s.

Inputs (all from one seeded generator, so a run is reproducible):

* **valid** streams / packets of random index maps (every coder, K from 2 to
  2^14, shapes 1×1 … 64×64, every interleaver, FEC on and off);
* **mutated** ones: 1–8 flipped bits, a replaced, inserted or deleted byte,
  truncation, appended bytes; half of them get their CRC recomputed so they
  reach the parsers behind it;
* **crafted** headers with extreme fields (sizes 0 … 2^20, K 0 … 2^21, every
  coder and flag, wrong latent shapes, payload lengths that lie), CRC-valid;
* **random** bytes, with and without the magic;
* **hostile resources** (issue 27; ``--inputs`` / 1000 of each, at least 8): packet streams whose
  header or compact session claims a large codebook (alphabet claims, K up to 2^20: each
  arithmetic-coded packet builds a model of K counts); bitstreams with a tiny map of a huge image
  (sizes around the pixel limit, refused or checked against the limits); checkpoint files whose
  config describes a huge model (``ch`` up to 4096, windows up to 2^16) with an empty or mismatched
  state dict; and encode inputs of huge size (PNG headers claiming up to 30000², zero-copy arrays of
  up to 10^8 pixels). Each must be refused with a typed error well under a second, allocating
  nothing model- or image-sized (the report's peak RSS shows it).
"""
from __future__ import annotations

import resource
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from codec.errors import VQSimError

__all__ = ["FuzzResult", "run_fuzz", "format_fuzz", "alphabet_claims", "huge_image_claims", "config_bombs",
           "huge_encode_inputs"]

SLOW_S = 1.0
_EXTREME = (
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    17,
    255,
    256,
    4095,
    4096,
    65535,
    65536,
    1 << 20,
    (1 << 20) + 1,
    (1 << 24),
    (1 << 35) - 1,
)


@dataclass
class FuzzResult:
    """Outcome counts of one target.

    Attributes:
        target: what was fed ("bitstream", "codec", "packet", ...).
        inputs: number of inputs.
        outcomes: "ok" or the exception class name → count.
        crashes: the first few untyped exceptions, as "Type: message (input kind)".
        slowest_s, slowest_kind: the slowest input's time and kind.
        over_limit_s: inputs slower than ``SLOW_S``.
    """

    target: str
    inputs: int = 0
    outcomes: Counter = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    untyped: int = 0
    slowest_s: float = 0.0
    slowest_kind: str = ""
    over_limit_s: int = 0
    seconds: float = 0.0

    def feed(self, fn: Callable[[], Any], kind: str) -> Any:
        t = time.perf_counter()
        out = None
        try:
            out = fn()
            self.outcomes["ok"] += 1
        except VQSimError as e:
            self.outcomes[type(e).__name__] += 1
        except Exception as e:  # noqa: BLE001 — this is what the fuzzer looks for
            self.untyped += 1
            self.outcomes[f"UNTYPED {type(e).__name__}"] += 1
            if len(self.crashes) < 10:
                self.crashes.append(f"{type(e).__name__}: {str(e)[:160]} ({kind})")
        dt = time.perf_counter() - t
        self.inputs += 1
        self.seconds += dt
        if dt > self.slowest_s:
            self.slowest_s, self.slowest_kind = dt, kind
        if dt > SLOW_S:
            self.over_limit_s += 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "inputs": self.inputs,
            "outcomes": dict(self.outcomes),
            "untyped": self.untyped,
            "crashes": self.crashes,
            "slowest_s": self.slowest_s,
            "slowest_kind": self.slowest_kind,
            "over_1s": self.over_limit_s,
            "seconds": self.seconds,
        }


# ----------------------------------------------------------------------------- input generators


def _random_map(rng: np.random.Generator, max_side: int = 64):
    from codec.types import IndexMap

    K = int(rng.choice([2, 3, 8, 16, 256, 1024, 16384]))
    h, w = (int(v) for v in rng.integers(1, max_side + 1, 2))
    if rng.random() < 0.5:  # skewed, with repeats, like real maps
        idx = np.minimum(rng.geometric(0.05, (h, w)) - 1, K - 1)
    else:
        idx = rng.integers(0, K, (h, w))
    f = int(rng.choice([1, 2, 8, 16]))
    return IndexMap(idx, K, (h * f, w * f), str(rng.choice(["default", "x", "a" * 40])) + f"/{K}")


def _mutate(rng: np.random.Generator, data: bytes, crc_tail: int = 4) -> tuple[bytes, str]:
    b = bytearray(data)
    op = int(rng.integers(0, 6))
    if op == 0 and b:
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
        kind = "bitflip"
    elif op == 1 and b:
        b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        kind = "byte"
    elif op == 2:
        b.insert(int(rng.integers(0, len(b) + 1)), int(rng.integers(0, 256)))
        kind = "insert"
    elif op == 3 and b:
        del b[int(rng.integers(0, len(b)))]
        kind = "delete"
    elif op == 4:
        b = b[: int(rng.integers(0, len(b) + 1))]
        kind = "truncate"
    else:
        b += rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        kind = "append"
    return bytes(b), kind


def _recrc(data: bytes) -> bytes:
    if len(data) < 5:
        return data
    body = data[:-4]
    return body + zlib.crc32(body).to_bytes(4, "big")


def _crafted_bitstream(rng: np.random.Generator) -> bytes:
    from codec.bitstream import MAGIC, VERSION, put_varint

    def pick() -> int:
        return int(rng.choice(_EXTREME)) if rng.random() < 0.7 else int(rng.integers(0, 1 << 16))

    flags = (
        int(rng.integers(0, 256)) if rng.random() < 0.3 else int(rng.integers(0, 4)) | (0x10 * int(rng.integers(0, 2)))
    )
    out = bytearray(MAGIC) + bytes([VERSION, flags])
    put_varint(out, pick())
    if flags & 0x20:
        n = int(rng.integers(0, 256))
        out += bytes([n]) + bytes(rng.integers(32, 127, min(n, int(rng.integers(0, 300))), dtype=np.uint8))
    h, w = pick(), pick()
    if rng.random() < 0.3:
        H, W = h * 16, w * 16
    else:
        H, W = pick(), pick()
    plen = int(rng.integers(0, 2000))
    claimed = plen if rng.random() < 0.8 else pick()
    for v in (h, w, H, W, claimed):
        put_varint(out, v)
    out += rng.integers(0, 256, plen, dtype=np.uint8).tobytes()
    return bytes(out + zlib.crc32(out).to_bytes(4, "big"))


def _mixed_inputs(
    rng: np.random.Generator,
    n: int,
    valid_pool: list[bytes],
    crafted: Callable[[], bytes],
    random_input: Callable[[], tuple[bytes, str]],
    p_crafted: float,
) -> Iterator[tuple[bytes, str]]:
    """``n`` inputs: 5 % valid, 50 % mutated (half of them with the CRC recomputed), ``p_crafted`` crafted,
    the rest from ``random_input``."""
    for _ in range(n):
        u = rng.random()
        if u < 0.05:
            yield valid_pool[int(rng.integers(0, len(valid_pool)))], "valid"
        elif u < 0.55:
            data, kind = _mutate(rng, valid_pool[int(rng.integers(0, len(valid_pool)))])
            if rng.random() < 0.5:
                data, kind = _recrc(data), kind + "+crc"
            yield data, "mutated:" + kind
        elif u < 0.55 + p_crafted:
            yield crafted(), "crafted"
        else:
            yield random_input()


def bitstream_inputs(rng: np.random.Generator, n: int, valid_pool: list[bytes]) -> Iterator[tuple[bytes, str]]:
    """``n`` (bytes, kind) inputs for a bitstream decoder, mutating streams of ``valid_pool``."""
    from codec.bitstream import MAGIC

    def random_input() -> tuple[bytes, str]:
        raw = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        return (_recrc(MAGIC + raw), "random+magic") if rng.random() < 0.5 else (raw, "random")

    return _mixed_inputs(rng, n, valid_pool, lambda: _crafted_bitstream(rng), random_input, 0.35)


_PACKET_FIELD_BITS = (8, 8, 32, 16, 16, 16, 8, 8, 32, 16, 16, 16, 16, 8, 8, 32)
"""Widths of the header fields after the magic, up to (not including) payload_len (``sim.packet.HEADER_FORMAT``)."""


def _crafted_packet(rng: np.random.Generator) -> bytes:
    """A CRC-valid packet whose header fields are extreme or random (version 1 kept half the time)."""
    from sim.packet import HEADER_STRUCT, MAGIC, VERSION

    def pick(bits: int) -> int:
        top = (1 << bits) - 1
        if rng.random() < 0.7:
            return int(rng.choice([0, 1, 2, 3, 16, 255, 256, 4096, top - 1, top])) & top
        return int(rng.integers(0, top + 1))

    fields = [pick(b) for b in _PACKET_FIELD_BITS]
    if rng.random() < 0.5:
        fields[0] = VERSION
    if rng.random() < 0.5:
        fields[1] &= 1  # only the parity flag
    plen = int(rng.integers(0, 300))
    head = HEADER_STRUCT.pack(MAGIC, *fields, plen if rng.random() < 0.8 else pick(16))
    body = head + rng.integers(0, 256, plen, dtype=np.uint8).tobytes()
    return body + zlib.crc32(body).to_bytes(4, "big")


def packet_inputs(rng: np.random.Generator, n: int, valid_pool: list[bytes]) -> Iterator[tuple[bytes, str]]:
    """``n`` (packet bytes, kind) inputs, mutating packets of ``valid_pool``."""

    def random_input() -> tuple[bytes, str]:
        return rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8).tobytes(), "random"

    return _mixed_inputs(rng, n, valid_pool, lambda: _crafted_packet(rng), random_input, 0.40)


# ----------------------------------------------------------------------------- hostile resources (issue 27)


def alphabet_claims(rng: np.random.Generator, n: int) -> Iterator[tuple[Callable[[], Any], str]]:
    """Streams of one-index arith packets (full or compact header) claiming codebook sizes up to 2^20."""
    from sim.packet import CompactSession, Packet
    from sim.packetizer import depacketize

    for _ in range(n):
        K = int(rng.choice([1 << 14, 1 << 16, (1 << 16) + 1, 1 << 18, 1 << 20]))
        P = int(rng.integers(16, 65))
        coder = str(rng.choice(["arith", "arith_rep"]))
        session = CompactSession(K, 1, P, (16, 16 * P), "raster", coder, 0)
        payload = rng.integers(0, 256, int(rng.integers(1, 4)), dtype=np.uint8).tobytes()
        pk = [Packet(0, j, P, K, 1, P, (16, 16 * P), "raster", coder, 0, payload, False, 0, 0, 0) for j in range(P)]
        if rng.random() < 0.5:
            wire = [session.encode(p) for p in pk]
            yield (
                (lambda wire=wire, session=session, K=K, P=P: depacketize(
                    wire, header="compact", session=session, codebook_size=K, shape=(1, P))),
                f"compact stream, K={K}, {P} packets",
            )
        else:
            wire = [p.to_bytes() for p in pk]
            yield (
                (lambda wire=wire, K=K, P=P: depacketize(wire, codebook_size=K, shape=(1, P))),
                f"full-header stream, K={K}, {P} packets",
            )


def huge_image_claims(rng: np.random.Generator, n: int) -> Iterator[tuple[bytes, str]]:
    """Valid bitstreams of an all-zero map whose image size is near or over the pixel limit (f = 16)."""
    from codec.bitstream import encode_bitstream
    from codec.types import IndexMap

    for _ in range(n):
        side = int(rng.choice([1024, 1448, 1449, 2048, 4096, 16384]))
        h = -(-side // 16)
        if h * h > 1 << 15:
            side, h = 2896, 181  # the most indices the default limit lets a claim carry
        imap = IndexMap(np.zeros((h, h), np.int32), 64, (side, side), "default/64")
        yield (
            encode_bitstream(imap, coder=str(rng.choice(["arith", "arith_rep", "deflate"]))),
            f"tiny map of a {side}x{side} image",
        )


def config_bombs(rng: np.random.Generator, n: int, folder) -> Iterator[tuple[Callable[[], Any], str]]:
    """Checkpoint files whose config describes a huge model, with an empty or a tiny mismatched state dict."""
    import torch

    from codec.checkpoint import load_vqgan
    from codec.conceal import load_transformer
    from codec.vqgan import VQGANConfig

    for i in range(n):
        sd = {} if rng.random() < 0.5 else {"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}
        path = folder / f"bomb{i}.pt"
        if rng.random() < 0.5:
            ch = int(rng.choice([256, 1024, 4096]))
            torch.save(
                {"format": "vqsim-vqgan", "version": 1, "config": VQGANConfig(ch=ch).to_dict(), "state_dict": sd}, path
            )
            yield (lambda p=path: load_vqgan(p)), f"VQGAN config bomb ch={ch}"
        else:
            block = int(rng.choice([1 << 12, 1 << 14, 1 << 16]))
            torch.save(
                {
                    "format": "vqsim-transformer-1",
                    "meta": {},
                    "state_dict": sd,
                    "config": dict(vocab_size=1025, block_size=block, n_layer=4, n_head=4, n_embd=128),
                },
                path,
            )
            yield (lambda p=path: load_transformer(p)), f"transformer config bomb block={block}"


def huge_encode_inputs(rng: np.random.Generator, n: int, codec, folder) -> Iterator[tuple[Callable[[], Any], str]]:
    """PNG headers claiming huge images (to ``load_image``) and zero-copy huge arrays (to ``encode_indices``)."""
    import struct

    from codec.image import load_image

    def png(w: int, h: int) -> bytes:
        def chunk(t: bytes, d: bytes) -> bytes:
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(1 + 3 * min(w, 4096))))
            + chunk(b"IEND", b"")
        )

    for i in range(n):
        side = int(rng.choice([1449, 4096, 10000, 30000]))
        if rng.random() < 0.5:
            path = folder / f"claim{i}.png"
            path.write_bytes(png(side, side))
            yield (lambda p=path: load_image(p)), f"PNG header claiming {side}x{side}"
        else:
            arr = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (side, side, 3))  # no pixel memory
            yield (lambda a=arr: codec.encode_indices(a)), f"{side}x{side} array to encode"


# ----------------------------------------------------------------------------- the run


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _packet_pool(rng: np.random.Generator, n_maps: int) -> tuple[list[bytes], list[list[bytes]]]:
    """Packets of ``n_maps`` random maps (every interleaver and coder, FEC on half): all of them, and per map."""
    from codec.entropy import CODERS
    from sim.fec import ErasureFEC
    from sim.interleave import SCHEMES
    from sim.packetizer import packetize

    singles: list[bytes] = []
    streams: list[list[bytes]] = []
    for _ in range(n_maps):
        m = _random_map(rng, 40)
        n = int(rng.integers(3, 9))
        fec = ErasureFEC(n, int(rng.integers(1, n))) if rng.random() < 0.5 else None
        pk = packetize(
            m,
            mtu=int(rng.choice([64, 200, 1200])),
            interleave=str(rng.choice(SCHEMES)),
            coder=str(rng.choice(CODERS)),
            seed=int(rng.integers(0, 1 << 32)),
            fec=fec,
        )
        raw = [p.to_bytes() for p in pk]
        streams.append(raw)
        singles.extend(raw)
    return singles, streams


def _fuzz_packets(rng: np.random.Generator, inputs: int) -> tuple[FuzzResult, FuzzResult]:
    """The depacketizer fed single packets (half the inputs) and packets mixed into real streams (the rest)."""
    from sim.packetizer import depacketize

    singles, streams = _packet_pool(rng, 120)
    pk = FuzzResult("packet")
    half = inputs // 2
    for data, kind in packet_inputs(rng, half, singles):
        pk.feed(lambda data=data: depacketize([data]), kind)
    mixed = FuzzResult("packet stream")
    for data, kind in packet_inputs(rng, inputs - half, singles):
        stream = list(streams[int(rng.integers(0, len(streams)))])
        stream.insert(int(rng.integers(0, len(stream) + 1)), data)
        if rng.random() < 0.5 and len(stream) > 1:
            del stream[int(rng.integers(0, len(stream)))]
        session = {"codebook_size": 8, "shape": (4, 4)} if rng.random() < 0.2 else {}
        mixed.feed(lambda stream=stream, session=session: depacketize(stream, **session), kind + " in a stream")
    return pk, mixed


def run_fuzz(
    inputs: int = 100_000, seed: int = 0, full_decodes: int = 200, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Fuzz the bitstream decoder, the codec's index decoder and the depacketizer; returns a report dict.

    Args:
        inputs: inputs per target (bitstream and packet targets get this many each).
        seed: seed of every generated input.
        full_decodes: accepted streams also decoded to an image with the codec (VQGAN forward).
    """
    import torch

    from codec.limits import DecodeLimits

    threads = torch.get_num_threads()  # the caller's choice (`vqsim bench fuzz` uses 1 unless --threads says otherwise)
    limits = DecodeLimits.from_env()
    rng = np.random.default_rng(seed)
    rss0 = _peak_rss_mb()
    t_start = time.perf_counter()
    say = progress or (lambda s: None)

    bs = _fuzz_bitstreams(rng, inputs)
    say(f"bitstream: {bs.inputs} inputs, {bs.untyped} untyped")
    codec = _fuzz_codec()
    cd, full = _fuzz_codec_receive(rng, codec, inputs, full_decodes)
    say(f"codec: {cd.inputs} + {full.inputs} inputs, {cd.untyped + full.untyped} untyped")
    pk, mixed = _fuzz_packets(rng, inputs)
    say(f"packets: {pk.inputs + mixed.inputs} inputs, {pk.untyped + mixed.untyped} untyped")
    n_res = max(8, inputs // 1000)
    alpha, tiny, bombs, enc = _fuzz_resources(rng, codec, n_res)
    say(f"resources: {4 * n_res} inputs, {alpha.untyped + tiny.untyped + bombs.untyped + enc.untyped} untyped")

    results = [bs, cd, full, pk, mixed, alpha, tiny, bombs, enc]
    return {
        "seed": seed,
        "inputs_per_target": inputs,
        "torch_threads": threads,
        "limits": {
            "max_pixels": limits.max_pixels,
            "max_indices": limits.max_indices,
            "max_codebook_size": limits.max_codebook_size,
        },
        "targets": [r.as_dict() for r in results],
        "untyped_total": sum(r.untyped for r in results),
        "over_1s_total": sum(r.over_limit_s for r in results),
        "peak_rss_mb": _peak_rss_mb(),
        "rss_before_mb": rss0,
        "wall_s": time.perf_counter() - t_start,
    }


def _fuzz_bitstreams(rng: np.random.Generator, inputs: int) -> FuzzResult:
    """Bitstreams (container level): ``inputs`` mutations of 300 valid streams through ``decode_bitstream``."""
    from codec.bitstream import decode_bitstream, encode_bitstream
    from codec.entropy import CODERS

    pool = [encode_bitstream(_random_map(rng), coder=str(rng.choice(CODERS))) for _ in range(300)]
    bs = FuzzResult("bitstream")
    for data, kind in bitstream_inputs(rng, inputs, pool):
        bs.feed(lambda data=data: decode_bitstream(data), kind)
    return bs


def _fuzz_codec_receive(
    rng: np.random.Generator, codec, inputs: int, full_decodes: int
) -> tuple[FuzzResult, FuzzResult]:
    """The codec's receive path: header checks against a real model, then (up to ``full_decodes``) a full decode."""
    from codec.entropy import CODERS

    cpool = [codec.compress_indices(_codec_map(rng, codec), coder=str(rng.choice(CODERS))) for _ in range(100)]
    cd = FuzzResult("codec indices")
    full = FuzzResult("codec image")
    for data, kind in bitstream_inputs(rng, max(1, inputs // 10), cpool):
        imap = cd.feed(lambda data=data: codec.decompress_indices(data), kind)
        if imap is not None and full.inputs < full_decodes:
            full.feed(lambda imap=imap: codec.decode_indices(imap), kind)
    return cd, full


def _fuzz_resources(rng: np.random.Generator, codec, n_res: int) -> tuple[FuzzResult, ...]:
    """Hostile resources (issue 27): alphabet claims, tiny maps of huge images, config bombs, huge encode inputs;
    ``n_res`` of each."""
    import tempfile
    from pathlib import Path

    alpha = FuzzResult("alphabet claims")
    for fn, kind in alphabet_claims(rng, n_res):
        alpha.feed(fn, kind)
    tiny = FuzzResult("huge-image claims")
    for data, kind in huge_image_claims(rng, n_res):
        tiny.feed(lambda data=data: codec.decompress_indices(data), kind)
    bombs = FuzzResult("config bombs")
    enc = FuzzResult("encode inputs")
    with tempfile.TemporaryDirectory(prefix="vqsim-fuzz-") as tmp:
        import torch as _torch

        with _torch.device("meta"):  # warm torch's meta kernels once, so the first bomb is timed like the rest
            _torch.nn.Embedding(2, 2)
        for fn, kind in config_bombs(rng, n_res, Path(tmp)):
            bombs.feed(fn, kind)
        for fn, kind in huge_encode_inputs(rng, n_res, codec, Path(tmp)):
            enc.feed(fn, kind)
    return alpha, tiny, bombs, enc


def _fuzz_codec():
    """The default model when shipped (its real receive path), else a tiny random VQGAN."""
    from codec.errors import ModelNotFoundError
    from codec.zoo import load_codec

    try:
        return load_codec("default", 64, device="cpu")
    except ModelNotFoundError:  # pragma: no cover - weights always ship
        from codec.api import VQGANCodec
        from codec.vqgan import VQGANConfig, VQModel

        cfg = VQGANConfig.from_dict(
            dict(
                ch=8,
                ch_mult=[1, 2],
                num_res_blocks=1,
                attn_resolutions=[],
                n_embed=16,
                embed_dim=4,
                z_channels=4,
                resolution=32,
            )
        )
        return VQGANCodec(VQModel(cfg).eval(), name="fuzz", device="cpu")


def _codec_map(rng: np.random.Generator, codec):
    from codec.types import IndexMap

    H, W = (int(v) for v in rng.integers(1, 65, 2))
    h, w = codec.latent_shape((H, W))
    return IndexMap(rng.integers(0, codec.codebook_size, (h, w)), codec.codebook_size, (H, W), codec.codebook_id)


def format_fuzz(report: dict[str, Any]) -> str:
    """A plain-text table of a ``run_fuzz`` report."""
    lines = [
        f"fuzz: seed {report['seed']}, {report['inputs_per_target']} inputs per target, limits "
        f"{report['limits']['max_pixels']} px / {report['limits']['max_indices']} indices / codebook "
        f"{report['limits'].get('max_codebook_size', '-')}",
        f"{'target':18s} {'inputs':>8s} {'ok':>8s} {'refused':>8s} {'untyped':>8s} {'slowest':>10s} {'>1 s':>5s}",
    ]
    for t in report["targets"]:
        ok = t["outcomes"].get("ok", 0)
        lines.append(
            f"{t['target']:18s} {t['inputs']:8d} {ok:8d} {t['inputs'] - ok - t['untyped']:8d} {t['untyped']:8d} "
            f"{1000 * t['slowest_s']:8.1f}ms {t['over_1s']:5d}   (slowest: {t['slowest_kind']})"
        )
    lines.append(
        "refusals by type: "
        + ", ".join(
            f"{k} {v}"
            for k, v in sorted(sum((Counter(t["outcomes"]) for t in report["targets"]), Counter()).items())
            if k != "ok"
        )
    )
    for t in report["targets"]:
        for c in t["crashes"]:
            lines.append(f"CRASH {t['target']}: {c}")
    lines.append(
        f"untyped errors {report['untyped_total']}, inputs over 1 s {report['over_1s_total']}, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB (before: {report['rss_before_mb']:.0f} MB), "
        f"wall {report['wall_s']:.0f} s"
    )
    return "\n".join(lines)
