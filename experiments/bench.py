"""Micro-benchmarks of the vqsim pipeline on the current machine (``vqsim bench``).

Each section is a function ``bench_<name>(cfg) -> dict`` that measures one
part of the pipeline and returns plain JSON-able numbers: a ``summary`` dict
(the headline numbers, all finite and > 0 on success; these make the printed
table) plus section-specific details.  ``run_bench`` runs the selected
sections, records a failing section's error text instead of aborting, and adds
the machine description (``machine_info``).

Timing: ``time.perf_counter`` wall clock; every timed call is run once as a
warm-up, then ``repeats`` times, and the *median* is reported (CUDA results
are synchronized by copying them back to the host inside the timed call).
Machines are noisy (this one may be shared), so each section also reports
*ratios* against a baseline measured in the same run, which transfer between
machines far better than absolute times:

* ``codec``: decode / encode time, CUDA speed-up over CPU;
* ``conceal``: naive AR time / batched AR time (same output, checked), AR / neighbour;
* ``fec``: our Cauchy-RS erasure code's MB/s / zfec's MB/s (when zfec imports);
* ``channels``: loss-model sampling time / ``rng.random(n) < p`` time;
* ``simpy``: per-packet simulator cost / a bare SimPy timeout event;
* ``trial``: one sweep trial (two references; neighbour and AR concealment) with the old code
  path (no CPU tuning, float64 SSIM per comparison) / with today's, in two worker processes
  fed the same trials; decoded pixels checked identical.

Sizes: the full bench uses a Kodak-size 768×512 image (32×48 index map),
10^7 channel draws and 10^5 simulated packets; ``quick=True`` uses a 384×256
image, 10^6 draws, 10^4 packets, one loss rate, one repetition and a small
concealment transformer, so the whole bench runs in well under a minute.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from codec.errors import VQSimError

ROOT = Path(__file__).resolve().parents[1]
KODAK_DIR = ROOT.parent / "shared" / "data" / "kodak"
KODAK_IMAGE = KODAK_DIR / "kodim01.png"

PACKET_BYTES = 1240
FEC_CODES = ((12, 8), (20, 16))
CONCEAL_BASELINES = ("mean", "neighbor", "latent_avg")


class BenchError(VQSimError, ValueError):
    """Invalid benchmark configuration (bad section name, unavailable device, bad size)."""


# --------------------------------------------------------------------------- configuration
@dataclass
class BenchConfig:
    """What to measure and how big.

    Attributes:
        quick: small sizes, one repetition (see the module docstring).
        device: torch device of the codec-on-GPU, concealment and trial
            measurements ("cpu" or "cuda"); the codec is always also timed on CPU.
        repeats: timed runs per measurement after one warm-up (median reported).
        image_size: (H, W) of the benchmark image in pixels.
        n_draws: channel loss-mask length (packets).
        n_sim_packets: packets pushed through the SimPy network model.
        fractions: loss fractions of the concealment benchmark.
        ar_shape: (h, w) index map of the AR benchmark.
        ar_model: "shipped" (the default AR concealer on the bench image's real map) or
            "random" (``benchmark_ar``'s random GPT on a random map, sized by ``ar_model_kwargs``).
        ar_model_kwargs: overrides of ``codec.conceal.benchmark_ar``'s random GPT
            (None = its default, n_layer 8, n_embd 256, the paper-size window model).
        ar_repeats: runs of each AR implementation (interleaved; medians, see ``benchmark_ar``).
        fec_bytes: data bytes pushed through each erasure code.
        rs_packets: packets through in-packet RS (decoding is pure Python when
            creedsolo is absent, hence few).
        seed: seed of every random draw.
        image: path of the benchmark image (None = Kodak kodim01 if present,
            else scikit-image's astronaut photo), resized to ``image_size``.
    """

    quick: bool = False
    device: str = "cpu"
    repeats: int = 5
    image_size: tuple[int, int] = (512, 768)
    n_draws: int = 10 ** 7
    n_sim_packets: int = 10 ** 5
    fractions: tuple[float, ...] = (0.1, 0.2, 0.4)
    ar_shape: tuple[int, int] = (32, 48)
    ar_model: str = "shipped"
    ar_model_kwargs: dict[str, Any] | None = None
    ar_repeats: int = 3
    fec_bytes: int = 8 * 10 ** 6
    rs_packets: int = 100
    seed: int = 0
    image: str | None = None

    @classmethod
    def make(cls, quick: bool = False, device: str | None = None, repeats: int | None = None,
             image: str | None = None, seed: int = 0) -> "BenchConfig":
        """The full or quick configuration; ``device=None`` → CUDA when present, else CPU."""
        dev = resolve_device(device)
        if quick:
            cfg = cls(quick=True, device=dev, repeats=1, image_size=(256, 384), n_draws=10 ** 6,
                      n_sim_packets=10 ** 4, fractions=(0.2,), ar_shape=(16, 24), ar_model="random",
                      ar_model_kwargs=dict(n_layer=2, n_head=4, n_embd=128), ar_repeats=1,
                      fec_bytes=10 ** 6, rs_packets=10, seed=seed, image=image)
        else:
            cfg = cls(device=dev, seed=seed, image=image)
        if repeats is not None:
            if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
                raise BenchError(f"repeats must be an int ≥ 1, got {repeats!r}")
            cfg.repeats = repeats
        return cfg


def resolve_device(device: str | None) -> str:
    """"cpu" / "cuda" (checked available); None → "cuda" when available, else "cpu"."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise BenchError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("device 'cuda' requested but torch.cuda.is_available() is False")
    return device


# --------------------------------------------------------------------------- timing helpers
def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median_s(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall-clock seconds of ``fn`` (see :func:`time_calls`)."""
    return statistics.median(time_calls(fn, repeats, warmup, device))


def _mbps(nbytes: int, seconds: float) -> float:
    """Throughput in MB/s (10^6 bytes per second)."""
    return nbytes / max(seconds, 1e-12) / 1e6


# --------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict[str, Any]:
    """CPU model, cores, load, Python / torch / numpy versions, device, torch threads, date."""
    import torch

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info


# --------------------------------------------------------------------------- inputs
def load_bench_image(size: tuple[int, int], path: str | None = None) -> tuple[np.ndarray, str]:
    """The benchmark image as uint8 (H, W, 3) of ``size`` = (H, W), and where it came from.

    Kodak kodim01 (../shared/data/kodak relative to the repository root) when
    present, else scikit-image's bundled astronaut photo; resized (Lanczos)
    when its size differs.
    """
    from PIL import Image

    from codec.image import load_image

    if path is not None:
        img, src = load_image(path), str(path)
    elif KODAK_IMAGE.exists():
        img, src = load_image(KODAK_IMAGE), str(KODAK_IMAGE)
    else:
        from skimage import data

        img, src = np.asarray(data.astronaut())[..., :3].astype(np.uint8), "skimage.data.astronaut"
    H, W = size
    if img.shape[:2] != (H, W):
        img = np.asarray(Image.fromarray(img).resize((W, H), Image.LANCZOS))
        src += f" (resized to {W}x{H})"
    return np.ascontiguousarray(img), src


def _cpu_codec():
    from codec.zoo import load_codec

    return load_codec("default", device="cpu")


# --------------------------------------------------------------------------- sections
def bench_codec(cfg: BenchConfig) -> dict[str, Any]:
    """Codec encode / decode ms per image on CPU (and CUDA), bitstream bytes and coding ms per coder."""
    import torch

    from codec.entropy import CODERS
    from codec.metrics import bpp
    from codec.zoo import load_codec

    img, src = load_bench_image(cfg.image_size, cfg.image)
    devices = ["cpu"] + (["cuda"] if cfg.device == "cuda" else [])
    per_dev: dict[str, dict[str, float]] = {}
    imap = None
    for dev in devices:
        t0 = time.perf_counter()
        codec = load_codec("default", device=dev)
        load_s = time.perf_counter() - t0
        m = codec.encode_indices(img)
        imap = m if imap is None else imap
        per_dev[dev] = {
            "load_s": load_s,
            "encode_ms": 1e3 * median_s(lambda: codec.encode_indices(img), cfg.repeats, device=dev),
            "decode_ms": 1e3 * median_s(lambda: codec.decode_indices(m), cfg.repeats, device=dev),
        }
        if dev == "cuda":
            per_dev[dev]["indices_equal_cpu"] = bool(np.array_equal(m.indices, imap.indices))
    codec = _cpu_codec()
    coders: dict[str, dict[str, float]] = {}
    for coder in CODERS:
        data = codec.compress_indices(imap, coder)
        assert codec.decompress_indices(data) == imap, f"coder {coder} does not round-trip"
        coders[coder] = {
            "bytes": len(data),
            "bpp": bpp(len(data), imap.image_size),
            "encode_ms": 1e3 * median_s(lambda: codec.compress_indices(imap, coder), cfg.repeats),
            "decode_ms": 1e3 * median_s(lambda: codec.decompress_indices(data), cfg.repeats),
        }
    cpu = per_dev["cpu"]
    summary = {
        "encode_ms_cpu": cpu["encode_ms"],
        "decode_ms_cpu": cpu["decode_ms"],
        "decode_over_encode_cpu": cpu["decode_ms"] / cpu["encode_ms"],
        **{f"bytes_{c}": coders[c]["bytes"] for c in CODERS},
        "bpp_arith": coders["arith"]["bpp"],
        "raw_over_arith_bytes": coders["raw"]["bytes"] / coders["arith"]["bytes"],
        "arith_encode_ms": coders["arith"]["encode_ms"],
    }
    if "cuda" in per_dev:
        summary["encode_ms_cuda"] = per_dev["cuda"]["encode_ms"]
        summary["decode_ms_cuda"] = per_dev["cuda"]["decode_ms"]
        summary["cuda_speedup_encode"] = cpu["encode_ms"] / per_dev["cuda"]["encode_ms"]
        summary["cuda_speedup_decode"] = cpu["decode_ms"] / per_dev["cuda"]["decode_ms"]
    return {"summary": summary, "image": src, "image_size": list(imap.image_size),
            "index_map": list(imap.shape), "codebook_size": imap.codebook_size, "devices": per_dev,
            "coders": coders, "torch_threads": torch.get_num_threads()}


def _ar_model(cfg: BenchConfig):
    """The random GPT ``benchmark_ar`` would build, on ``cfg.device`` (None on CPU: let it build it)."""
    if cfg.device == "cpu":
        return None
    import torch

    from codec.conceal import GPT

    kw = dict(vocab_size=1025, block_size=256, n_layer=8, n_head=8, n_embd=256)  # benchmark_ar's default
    kw.update(cfg.ar_model_kwargs or {})
    torch.manual_seed(cfg.seed)
    model = GPT(**kw)
    with torch.no_grad():
        model.pos_emb.normal_(0.0, 0.02)
    return model.to(cfg.device).eval()


def bench_conceal(cfg: BenchConfig) -> dict[str, Any]:
    """Batched vs naive AR concealment (``codec.conceal.benchmark_ar``) and the baselines' time."""
    import torch

    from codec.conceal import conceal, random_loss_mask
    from codec.conceal.ar import benchmark_ar
    from codec.types import IndexMap

    model, index_map, model_src = _ar_model(cfg), None, cfg.ar_model_kwargs or "benchmark_ar default (n_layer 8, n_head 8, n_embd 256)"
    if cfg.ar_model == "shipped":
        from codec.zoo import load_concealer

        model = load_concealer("default", 1024, "ar", device=cfg.device)
        img, src = load_bench_image(cfg.image_size, cfg.image)
        index_map = _cpu_codec().encode_indices(img)
        model_src = f"shipped default_ar_1024 on the index map of {Path(src.split(' (')[0]).name}"
    rows = benchmark_ar(model, index_map, fractions=tuple(cfg.fractions), seed=cfg.seed, shape=tuple(cfg.ar_shape),
                        model_kwargs=cfg.ar_model_kwargs, repeats=cfg.ar_repeats,
                        threads=torch.get_num_threads())
    ar = [dict(r, naive_ms=1e3 * r["naive_s"], fast_ms=1e3 * r["fast_s"],
               fast_ms_per_lost=1e3 * r["fast_s"] / max(r["n_lost"], 1)) for r in rows]
    try:
        codebook = _cpu_codec().codebook
        cb_src = "codec default"
    except Exception as e:  # the baselines' cost depends only on (K, D); a random codebook will do
        codebook = np.random.default_rng(cfg.seed).normal(size=(1024, 256)).astype(np.float32)
        cb_src = f"random (1024, 256): codec unavailable ({type(e).__name__})"
    K = codebook.shape[0]
    rng = np.random.default_rng(cfg.seed)
    h, w = cfg.ar_shape
    imap = IndexMap(rng.integers(0, K, size=(h, w)), K, (16 * h, 16 * w))
    base: dict[str, dict[str, float]] = {}
    for f in cfg.fractions:
        lost = random_loss_mask((h, w), f, rng)
        base[f"{f:g}"] = {
            m: 1e3 * median_s(lambda m=m: conceal(imap, lost, method=m, codebook=codebook), cfg.repeats)
            for m in CONCEAL_BASELINES
        }
    summary: dict[str, float] = {}
    for r in ar:
        pct = f"{100 * r['fraction']:g}%"
        summary[f"ar_speedup@{pct}"] = r["ratio"]
        summary[f"ar_fast_ms@{pct}"] = r["fast_ms"]
        summary[f"ar_naive_ms@{pct}"] = r["naive_ms"]
        nb = base[f"{r['fraction']:g}"]["neighbor"]
        summary[f"neighbor_ms@{pct}"] = nb
        summary[f"ar_over_neighbor@{pct}"] = r["fast_ms"] / nb
    return {"summary": summary, "map_shape": [h, w], "device": cfg.device,
            "ar_model": model_src,
            "ar": ar, "all_equal": all(r["equal"] for r in ar), "baselines_ms": base, "codebook": cb_src}


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
    recv = [({j: b[j] for j in range(k) if j not in ls}, dict(enumerate(p))) for b, p, ls in zip(data, parity, lost)]
    out: list[dict[int, bytes]] = []

    def decode() -> None:
        out[:] = [fec.decode_block(d, p, k) for d, p in recv]

    dec_s = median_s(decode, cfg.repeats)
    ok = all(rec[j] == b[j] for rec, b, ls in zip(out, data, lost) for j in ls)
    res = {"blocks": blocks, "data_bytes": nbytes, "erased_per_block": m, "recovered_ok": ok,
           "encode_MBps": _mbps(nbytes, enc_s), "decode_MBps": _mbps(nbytes, dec_s)}
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
    for b, p, ls in zip(tdata, zpar, lost):
        keep = [j for j in range(k) if j not in ls] + list(range(k, k + len(ls)))
        zrecv.append((tuple(b[j] if j < k else p[j - k] for j in keep), tuple(keep)))
    # zfec's decode scribbles over its input buffers (even immutable bytes), so every timed call
    # gets its own fresh copies, made here outside the timer
    fresh = [[(tuple(bytes(bytearray(x)) for x in blk), nums) for blk, nums in zrecv] for _ in range(cfg.repeats + 1)]
    zout: list[list[bytes]] = []

    def z_decode() -> None:
        zout[:] = [dec.decode(blk, nums) for blk, nums in fresh.pop()]

    z_dec_s = median_s(z_decode, cfg.repeats)
    res.update(zfec_version=getattr(zfec, "__version__", "?"),
               zfec_encode_MBps=_mbps(nbytes, z_enc_s), zfec_decode_MBps=_mbps(nbytes, z_dec_s),
               zfec_ok=all(bytes(z) == bytes(x) for zo, b in zip(zout, data) for z, x in zip(zo, b)),
               ours_over_zfec_encode=z_enc_s / enc_s, ours_over_zfec_decode=z_dec_s / dec_s)
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
    inpacket = {"nsym": rs.nsym, "packets": len(pk), "creedsolo": HAVE_CREEDSOLO,
                "encode_MBps": _mbps(nbytes, rs_enc_s), "decode_MBps": _mbps(nbytes, rs_dec_s),
                "corrected_ok": all(f == p for f, p in zip(fixed, pk))}
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


def bench_channels(cfg: BenchConfig) -> dict[str, Any]:
    """Loss-mask sampling time of the channel models vs ``rng.random(n) < p`` of the same n."""
    from channels import Bernoulli, FourStateMarkov, GilbertElliott

    n = int(cfg.n_draws)
    p = 0.05
    reps = max(cfg.repeats, 3)  # cheap (≤ 0.1 s a call) and the ratio needs a stable baseline
    base_s = median_s(lambda: np.random.default_rng(cfg.seed).random(n) < p, reps)
    models = {
        "Bernoulli": Bernoulli(p),
        "GilbertElliott": GilbertElliott.from_loss_and_burst(p, 4.0),
        "FourStateMarkov": FourStateMarkov(p13=0.02, p31=0.4, p32=0.1, p23=0.5, p14=0.01),
    }
    res: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        mask: list[np.ndarray] = []

        def draw(model=model, mask=mask) -> None:
            mask[:] = [model.sample(n, np.random.default_rng(cfg.seed))[0]]

        s = median_s(draw, reps)
        res[name] = {"ms": 1e3 * s, "ns_per_packet": 1e9 * s / n, "ratio_vs_rng_random": s / base_s,
                     "stationary_loss": model.stationary_loss_rate, "empirical_loss": float(mask[0].mean())}
    summary = {"rng_random_ms": 1e3 * base_s}
    summary.update({f"{k}_ms": v["ms"] for k, v in res.items()})
    summary.update({f"{k}_ratio": v["ratio_vs_rng_random"] for k, v in res.items()})
    return {"summary": summary, "packets": n, "baseline": f"rng.random({n}) < {p}", "models": res}


def bench_simpy(cfg: BenchConfig) -> dict[str, Any]:
    """SimPy network model throughput (packets per wall-clock second) vs a bare SimPy timeout loop."""
    import simpy

    from channels import Bernoulli
    from sim import LinkConfig, NetworkSimulator

    n = int(cfg.n_sim_packets)
    link = LinkConfig(bandwidth_bps=10e6, propagation_s=0.02, jitter="uniform", jitter_s=0.002)
    pacing = 9e6
    wire = [bytes(PACKET_BYTES)] * n
    traces = []

    def run() -> None:
        sim = NetworkSimulator(link=link, channel=Bernoulli(0.01), rng=np.random.default_rng(cfg.seed))
        traces[:] = [sim.send_packets(wire, pacing_bps=pacing)]

    s = median_s(run, cfg.repeats, warmup=0)

    def bare() -> None:
        env = simpy.Environment()

        def proc(env):
            for _ in range(n):
                yield env.timeout(1e-4)

        env.process(proc(env))
        env.run()

    bare_s = median_s(bare, cfg.repeats, warmup=0)
    tr = traces[0]
    sim_s = float(tr.decode_t - tr.start_t)
    summary = {"packets_per_s": n / s, "us_per_packet": 1e6 * s / n, "bare_timeouts_per_s": n / bare_s,
               "cost_vs_bare_timeout": s / bare_s, "simulated_over_wall": sim_s / s}
    return {"summary": summary, "packets": n, "packet_bytes": PACKET_BYTES, "link": asdict(link),
            "pacing_bps": pacing, "channel": "Bernoulli(0.01)", "simulated_s": sim_s,
            "delivered": int((tr.fate == 1).sum())}


TRIAL_METHODS = ("neighbor", "ar")
"""Concealment of the trial section: a baseline and the shipped AR transformer (the sweep's realistic pair)."""


def _legacy_metrics(x, y) -> dict[str, float]:
    """The sweep's metrics of one pair as computed before 2026-12-02: LPIPS-Alex of both images per
    comparison, PSNR, and SSIM / MS-SSIM in float64 with every statistic of both images filtered per
    comparison (``experiments.legacy_metrics``)."""
    from codec import metrics as M

    from .legacy_metrics import ms_ssim64, ssim64

    return {"lpips_alex": float(M.lpips_distance(x, y, net="alex", device="cpu")[0]), "psnr": float(M.psnr(x, y)[0]),
            "ssim": float(ssim64(x, y)[0]), "ms_ssim": float(ms_ssim64(x, y)[0])}


def _trial_worker(conn, tuned: bool, image_size: tuple[int, int], image: str | None, seed: int) -> None:
    """A process that runs sweep-like trials on request: ``tuned`` = today's code path, else the old one.

    Old path ("before"): no CPU tuning (``VQSIM_NO_CPU_TUNING=1``: denormals kept, glibc's default mmap
    threshold) and the former SSIM / MS-SSIM (``_legacy_image_metrics``: float64, every statistic of both
    images filtered per comparison).
    New path ("after"): ``configure_cpu`` and the sweep's ``_batch_metrics`` (float32 SSIM and LPIPS
    features of each reference prepared once, the reconstruction's LPIPS features shared by both).
    Both use one torch thread. A request is a (method, seed) pair; the reply is
    ``(seconds, parts, sha1 of the decoded pixels, metrics)``.
    """
    import hashlib

    if not tuned:
        os.environ["VQSIM_NO_CPU_TUNING"] = "1"
    import torch

    from codec import metrics as M
    from codec.runtime import configure_cpu

    configure_cpu(1)
    from channels import GilbertElliott
    from codec.conceal import conceal
    from codec.image import to_tensor
    from codec.zoo import load_codec, load_concealer
    from sim import transmit

    img, _ = load_bench_image(image_size, image)
    codec = load_codec("default", device="cpu")
    imap = codec.encode_indices(img)
    models = {"ar": load_concealer("default", codec.codebook_size, "ar")}
    orig = to_tensor(img)
    lossfree = codec.decode_indices_tensor(imap)
    from .sweep import _batch_metrics  # the sweep's own metric code: what "after" measures

    refs = {name: (M.prepare_reference(im), {"alex": M.lpips_features(im, "alex", "cpu")})
            for name, im in (("orig", orig), ("lossfree", lossfree))} if tuned else {}
    channel = GilbertElliott.from_loss_and_burst(0.1, 3.0)
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            break
        method, trial_seed = msg
        t0 = time.perf_counter()
        rng = np.random.default_rng(trial_seed)
        rec = transmit(imap, channel=channel, rng=rng, seed=trial_seed, mtu=120, interleave="random", coder="raw")
        t1 = time.perf_counter()
        fixed = conceal(rec.received, rec.lost_mask, method=method, codebook=codec.codebook,
                        model=models.get(method), rng=np.random.default_rng(trial_seed))
        t2 = time.perf_counter()
        x = codec.decode_indices_tensor(fixed)
        t3 = time.perf_counter()
        met = {}
        feats = {"alex": M.lpips_features(x, "alex", "cpu")} if tuned else None  # shared by both references
        for name, ref_img in (("orig", orig), ("lossfree", lossfree)):
            if tuned:
                r = {k: float(v[0]) for k, v in _batch_metrics(ref_img, x, ("alex",), torch.device("cpu"), True,
                                                                refs[name][0], refs[name][1], feats).items()}
            else:
                r = _legacy_metrics(ref_img, x)
            met.update({f"{k}_{name}": v for k, v in r.items()})
        t4 = time.perf_counter()
        u8 = (x * 255.0).round().to(torch.uint8).numpy().tobytes()
        conn.send((t4 - t0, {"transmit": t1 - t0, "conceal": t2 - t1, "decode": t3 - t2, "metrics": t4 - t3},
                   hashlib.sha1(u8).hexdigest(), met))
    conn.close()


def bench_trial(cfg: BenchConfig) -> dict[str, Any]:
    """One sweep trial, old code path vs new, in one run: identical pixels, ≥ 2× target on CPU.

    A trial as a sweep runs it: the image's index map (encoded once) goes
    through ``sim.transmit`` (Gilbert–Elliott 10 % loss, mean burst 3,
    random interleaving, 120-byte MTU), lost indices are concealed
    (``TRIAL_METHODS``: ``neighbor`` and the shipped AR transformer), the map
    is decoded, and LPIPS-Alex, PSNR, low-pass PSNR, SSIM and MS-SSIM are
    computed against two references (the original and the loss-free
    reconstruction). Two worker processes (see ``_trial_worker``) hold the old
    and the new code path; every repetition sends the same (method, seed) to
    both, alternating which goes first, after one warm-up trial each.
    Reported: per method and path the median (min, max) seconds and parts,
    the speed-up of the medians, whether the decoded pixels are identical, and
    the largest metric difference between the paths.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    workers = {}
    for name, tuned in (("before", False), ("after", True)):
        a, b = ctx.Pipe()
        proc = ctx.Process(target=_trial_worker, args=(b, tuned, tuple(cfg.image_size), cfg.image, cfg.seed), daemon=True)
        proc.start()
        workers[name] = (proc, a)
    try:
        for proc, conn in workers.values():
            if conn.recv() != "ready":
                raise BenchError("trial worker failed to start")
        results: dict[str, dict[str, list]] = {m: {"before": [], "after": []} for m in TRIAL_METHODS}
        for r in range(cfg.repeats + 1):  # repetition 0 is the warm-up
            for m in TRIAL_METHODS:
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for name in order:
                    workers[name][1].send((m, cfg.seed * 1000 + r))
                    out = workers[name][1].recv()
                    if r:
                        results[m][name].append(out)
    finally:
        for proc, conn in workers.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    summary: dict[str, float] = {}
    detail: dict[str, Any] = {}
    for m, per in results.items():
        med = {k: statistics.median(o[0] for o in v) for k, v in per.items()}
        identical = all(b[2] == a[2] for b, a in zip(per["before"], per["after"]))
        diff = max(abs(b[3][k] - a[3][k]) for b, a in zip(per["before"], per["after"]) for k in b[3]
                   if math.isfinite(b[3][k]) and math.isfinite(a[3][k]))
        summary[f"{m}_trial_ms_before"] = 1e3 * med["before"]
        summary[f"{m}_trial_ms_after"] = 1e3 * med["after"]
        summary[f"{m}_speedup"] = med["before"] / med["after"]
        summary[f"{m}_pixels_identical"] = float(identical)
        detail[m] = {k: {"median_s": med[k], "min_s": min(o[0] for o in v), "max_s": max(o[0] for o in v),
                         "parts_median_s": {p: statistics.median(o[1][p] for o in v) for p in v[0][1]}}
                     for k, v in per.items()}
        detail[m]["max_metric_difference"] = diff
        detail[m]["pixels_identical"] = identical
    return {"summary": summary, "methods": detail, "repeats": cfg.repeats, "image_size": list(cfg.image_size),
            "channel": "GilbertElliott.from_loss_and_burst(0.1, 3.0), mtu 120, random interleaving",
            "paths": {"before": "no CPU tuning; former SSIM/MS-SSIM (float64, all statistics per comparison)",
                      "after": "configure_cpu (denormals flushed, heap allocations); the sweep's _batch_metrics "
                               "(float32 SSIM, reference SSIM statistics and LPIPS features prepared once)"}}


SECTIONS: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "codec": bench_codec,
    "conceal": bench_conceal,
    "fec": bench_fec,
    "channels": bench_channels,
    "simpy": bench_simpy,
    "trial": bench_trial,
}


def parse_only(text: str | None) -> list[str]:
    """``"codec,fec"`` → ["codec", "fec"] (in ``SECTIONS`` order); None/"" → all sections."""
    if not text:
        return list(SECTIONS)
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in names if s not in SECTIONS]
    if bad or not names:
        raise BenchError(f"unknown bench section(s) {bad or text!r}; choose from {','.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def run_bench(cfg: BenchConfig, only: list[str] | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the selected sections; a failing section records ``error`` (and traceback) and the rest go on.

    Returns ``{"machine", "config", "sections": {name: result}, "total_s"}``;
    every section result carries ``elapsed_s``.
    """
    names = list(SECTIONS) if only is None else only
    out: dict[str, Any] = {"machine": machine_info(cfg.device), "config": asdict(cfg), "sections": {}}
    t_all = time.perf_counter()
    for name in names:
        if progress:
            progress(name)
        t0 = time.perf_counter()
        try:
            res = SECTIONS[name](cfg)
        except Exception as e:  # noqa: BLE001 - a section failing must not abort the bench
            res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=6)}
        res["elapsed_s"] = time.perf_counter() - t0
        out["sections"][name] = res
    out["total_s"] = time.perf_counter() - t_all
    return out


# --------------------------------------------------------------------------- report
def _fmt(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1e4:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.4g}" if a < 10 else f"{v:.2f}"
    return f"{v:.3g}"


def format_table(result: dict[str, Any]) -> str:
    """The machine line and every section's summary as an aligned text table."""
    m = result["machine"]
    lines = [f"vqsim bench — {m['date']} — {m['cpu_model']} ({m['cpu_cores']} cores, load {m['load_avg_1min']:.2f}), "
             f"torch {m['torch']} ({m['torch_threads']} threads), device {m['device']}"
             + (f" [{m['gpu']}]" if m.get("gpu") else "")]
    rows: list[tuple[str, str, str]] = []
    for name, res in result["sections"].items():
        if "error" in res:
            rows.append((name, "ERROR", res["error"]))
            continue
        for key, v in res.get("summary", {}).items():
            rows.append((name, key, _fmt(v)))
        rows.append((name, "(section time s)", _fmt(res["elapsed_s"])))
    w0 = max([len(r[0]) for r in rows] + [7])
    w1 = max([len(r[1]) for r in rows] + [6])
    lines.append(f"{'section':<{w0}}  {'metric':<{w1}}  value")
    lines.append(f"{'-' * w0}  {'-' * w1}  {'-' * 12}")
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.append(f"total {result['total_s']:.1f} s")
    return "\n".join(lines)
