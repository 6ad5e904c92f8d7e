"""``vqsim transmit | channels | links``: the network simulator from the command line (no torch)."""
from __future__ import annotations

import argparse
import importlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codec.entropy.alphabet import CONTEXT_CODERS, PACKET_CODERS  # numpy-only, cheap
from codec.errors import ParameterError, VQSimError  # numpy-only, cheap


class SimArgumentError(VQSimError, ValueError):
    """A ``vqsim transmit`` option is invalid (printed as one line by the CLI)."""


class _LazyChoices(Sequence[str]):
    """Argparse choices read from their one source on first use: importing ``sim`` costs ~1 s at CLI start-up,
    and only ``vqsim transmit`` (parsing or its help) needs the list."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def _values(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self._module), self._name))

    def __getitem__(self, i):
        return self._values()[i]

    def __len__(self) -> int:
        return len(self._values())


def register(sub: argparse._SubParsersAction) -> None:
    _register_transmit(sub)
    _register_channels_and_links(sub)


def _register_transmit(sub: argparse._SubParsersAction) -> None:
    """The ``transmit`` command's parser."""
    p = sub.add_parser("transmit", help="send an index map through a simulated network and print the record",
                       description="Packetize an index map (random, or from a .vqb bitstream), send it through a "
                                   "link + loss channel (+ optional FEC), and print the transmission record.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--random", metavar="HxW", default=None,
                     help="send a uniformly random h×w index map (default: 32x48)")
    src.add_argument("--bitstream", metavar="FILE", default=None,
                     help="send the index map of a .vqb bitstream (from `vqsim encode`; a stream coded with the "
                          "model's prior is read with the prior of the model it names, or of --model)")
    p.add_argument("--model", default=None,
                   help="with --bitstream: the receiver's model (name or checkpoint) whose coder prior reads the "
                        "stream and codes the packets (default: the registered model the stream names)")
    p.add_argument("--codebook-size", type=int, default=1024, help="K of the random map (default: 1024)")
    ch = p.add_mutually_exclusive_group()
    ch.add_argument("--channel", default=None,
                    help="loss channel NAME[:k=v,...], e.g. bernoulli:p=0.1 or gilbert_elliott:p=0.01,r=0.3")
    ch.add_argument("--netem", default=None, help='netem loss string, e.g. "loss gemodel 1%% 30%%"')
    ch.add_argument("--preset", default=None, help="channel preset name (see `vqsim channels`)")
    p.add_argument("--bit-channel", default=None, help="bit-error channel NAME[:k=v,...], e.g. bsc:ber=1e-5")
    p.add_argument("--fec", default=None, metavar="N,K[,CODE]",
                   help="packet-level erasure code, e.g. 12,8 (Cauchy) or 12,8,vandermonde (zfec's code)")
    p.add_argument("--inpacket-nsym", type=int, default=0, help="in-packet RS parity bytes per 255-byte chunk")
    p.add_argument("--mtu", type=int, default=128,
                   help="max payload bytes per data packet (default: 128, the sweep default: a random 32x48 "
                        "map of K=1024 travels in 15 packets, a Kodak image coded with arith in 11-15; with 1200 "
                        "it would be 2, and loss could only hit 0, 50 or 100 %% of it)")
    p.add_argument("--interleave", default=None, choices=_LazyChoices("sim.interleave", "SCHEMES"),
                   help="which indices share a packet (default: random, the sweep default: a lost packet's "
                        "indices are spread over the image; tile, and only tile, with --coder tf_tile)")
    p.add_argument("--coder", default="raw", choices=PACKET_CODERS,
                   help="payload coder (default raw); tf_tile codes each packet's tile with the shipped AR "
                        "transformer (context inside the packet only, ~20 %% fewer bits than arith on Kodak; "
                        "needs --bitstream)")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="link rate in bit/s (default: 1e7, or the link preset's)")
    p.add_argument("--propagation-ms", type=float, default=None,
                   help="one-way propagation delay (default: 20, or the link preset's)")
    p.add_argument("--link", default=None, metavar="PRESET",
                   help="named link (see `vqsim links`): its airtime, payload limit, overhead and duty cycle")
    p.add_argument("--duty-cycle", type=float, default=None,
                   help="duty-cycle limit in (0, 1]: silence of airtime·(1/dc − 1) after each packet")
    p.add_argument("--header", default="full", choices=["full", "compact"],
                   help="packet header: full (36 B, default) or compact (4-6 B + CRC-8/16/32, session known)")
    p.add_argument("--jitter", default="none", metavar="KIND[:MS]",
                   help="jitter: none | uniform:MS | normal:MS | exponential:MS (default: none)")
    p.add_argument("--queue-packets", type=int, default=None, help="drop-tail queue capacity in packets")
    p.add_argument("--queue-bytes", type=int, default=None, help="drop-tail queue capacity in bytes")
    p.add_argument("--pacing", type=float, default=None, help="sender rate in bit/s (default: send as a burst)")
    p.add_argument("--deadline-ms", type=float, default=None, help="playout deadline after the first packet")
    p.add_argument("--images", type=int, default=1, help="send the map this many times through one session")
    p.add_argument("--interval-ms", type=float, default=0.0, help="time between image starts (default: back to back)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random map, the channel and the interleaver")
    p.add_argument("--json", action="store_true", help="print each record's to_row() as one JSON line")
    p.set_defaults(func=cmd_transmit)


def _register_channels_and_links(sub: argparse._SubParsersAction) -> None:
    """The ``channels`` (with ``channels fit``) and ``links`` commands' parsers."""
    p = sub.add_parser(
        "channels",
        help="list the channel presets (or: channels fit TRACE, fit models to a trace)",
        description="List the channel presets with their stationary loss and mean burst length; "
        "`vqsim channels fit TRACE` fits loss models to a measured trace.",
    )
    p.set_defaults(func=cmd_channels)
    from experiments.cmd_channels import register_subcommands

    register_subcommands(p)

    p = sub.add_parser("links", help="list the link presets with their payload limit, rate, duty cycle and airtime")
    p.add_argument(
        "--image-bytes", type=int, default=1536, help="coded image size for the airtime column (default: 1536 = 1.5 KB)"
    )
    p.add_argument("--sources", action="store_true", help="print each preset's description and citation")
    p.set_defaults(func=cmd_links)


def _parse_value(text: str) -> float | int | str:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_channel_arg(spec: str):
    """``NAME[:k=v,k=v]`` → ``channels.make_channel(NAME, k=v, ...)`` (values parsed as numbers)."""
    from channels import make_channel

    name, _, rest = spec.partition(":")
    if not name.strip():
        raise ParameterError(f"channel spec {spec!r} names no channel model (NAME[:k=v,...], e.g. bernoulli:p=0.1)")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise ParameterError(f"channel parameter {item!r} is not KEY=VALUE (in {spec!r})")
        if k.strip() in params:
            raise ParameterError(f"channel parameter {k.strip()!r} is given twice (in {spec!r})")
        params[k.strip()] = _parse_value(v.strip())
    return make_channel(name.strip(), **params)


def _parse_shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ParameterError(f"--random must look like HxW (e.g. 32x48), got {text!r}") from None
    if h < 1 or w < 1:
        raise ParameterError(f"--random needs positive h and w, got {text!r}")
    return h, w


def _parse_fec(text: str | None):
    from sim.fec import ErasureFEC

    if text is None:
        return None
    parts = text.split(",")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        n, k = int(parts[0]), int(parts[1])
    except ValueError:
        raise ParameterError(
            f"--fec must look like N,K or N,K,CODE (e.g. 12,8 or 12,8,vandermonde), got {text!r}"
        ) from None
    return ErasureFEC(n, k, parts[2] if len(parts) == 3 else "cauchy")


def _parse_jitter(text: str) -> tuple[str, float]:
    kind, _, ms = text.partition(":")
    kind = kind.strip().lower()
    if kind == "none":
        return "none", 0.0
    try:
        scale = float(ms) / 1e3
    except ValueError:
        raise ParameterError(f"--jitter must be none or KIND:MS (e.g. normal:5), got {text!r}") from None
    return kind, scale


def cmd_transmit(args) -> int:
    """Send the map ``args`` describe and print each record.

    Bad option values raise the project's errors (``VQSimError``: one line, exit 2); anything else is a bug (exit 1).
    """
    import numpy as np

    from sim.network import NetworkSimulator

    rng = np.random.default_rng(args.seed)
    if args.interleave is None:
        args.interleave = "tile" if args.coder in CONTEXT_CODERS else "random"
    index_map, prior = _source_map(args, rng)
    tiles = _tile_coder(args, index_map)
    channel, bit_channel = _channels(args)
    link = _link(args)
    if args.images < 1:
        raise ParameterError(f"--images must be ≥ 1, got {args.images}")
    if not (args.interval_ms >= 0 and math.isfinite(args.interval_ms)):
        raise ParameterError(f"--interval-ms must be ≥ 0, got {args.interval_ms}")
    sim = NetworkSimulator(link=link, channel=channel, bit_channel=bit_channel, rng=rng)
    fec = _parse_fec(args.fec)
    print(
        f"map {index_map.shape[0]}x{index_map.shape[1]}, K={index_map.codebook_size}; "
        f"channel: {_describe(channel)}; bit channel: {_describe(bit_channel)}; fec: {fec}; mtu {args.mtu}, "
        f"{args.interleave}, coder {args.coder}"
    )
    for i in range(args.images):
        at = max(sim.env.now, i * args.interval_ms / 1e3)
        rec = sim.send(
            index_map,
            mtu=args.mtu,
            interleave=args.interleave,
            seed=args.seed % 2**32,
            coder=args.coder,
            fec=fec,
            inpacket_nsym=args.inpacket_nsym,
            pacing_bps=args.pacing,
            deadline_s=None if args.deadline_ms is None else args.deadline_ms / 1e3,
            at=at,
            header=args.header,
            prior=prior if args.coder.startswith("arith") else None,
            context_coder=tiles,
        )
        print(json.dumps(rec.to_row()) if args.json else _summary(rec))
        if i == 0 and 0 < rec.data_packets < MIN_PACKETS:
            import sys

            print(
                f"vqsim transmit: warning: the map travels in {rec.data_packets} data packets (< {MIN_PACKETS}): "
                f"its loss can only be 0, 1/{rec.data_packets}, … of the indices; lower --mtu (default 128)",
                file=sys.stderr,
            )
    return 0


def _tile_coder(args, index_map):
    """The context coder ``--coder tf_tile`` needs (the shipped AR transformer of the stream's model), else None."""
    if args.coder not in CONTEXT_CODERS:
        return None
    if not args.bitstream:
        raise ParameterError(f"--coder {args.coder} codes a real index map with its model's transformer: give "
                             "--bitstream FILE.vqb (a random map has no model)")
    from codec.entropy.tf_ar import TileContextCoder
    from codec.zoo import model_for_bitstream

    name = model_for_bitstream(index_map.codebook_id, args.model)
    return TileContextCoder.for_codebook(f"{name}/{index_map.codebook_size}", index_map.codebook_size)


def _source_map(args, rng):
    """The index map to send (a .vqb bitstream's, or a random one drawn from ``rng``) and the coder prior."""
    from codec.types import DEFAULT_DOWNSAMPLING, IndexMap

    prior = None
    if args.bitstream:
        from codec.bitstream import decode_bitstream, parse_header

        data = Path(args.bitstream).read_bytes()
        head = parse_header(data)
        if head.has_prior or (args.coder.startswith("arith") and (args.model or head.codebook_id)):
            prior = _model_prior(head, args.model)
        index_map = decode_bitstream(data, prior=prior if head.has_prior else None)
    else:
        if args.model is not None:
            raise ParameterError("--model applies to --bitstream only (a random map has no model)")
        h, w = _parse_shape(args.random or "32x48")
        K = args.codebook_size
        if not 2 <= K <= 1 << 20:
            raise ParameterError(f"--codebook-size must be in [2, 2^20], got {K}")
        f = DEFAULT_DOWNSAMPLING
        index_map = IndexMap(rng.integers(0, K, size=(h, w)), K, (f * h, f * w))
    return index_map, prior


def _channels(args):
    """The packet-loss channel and the bit-error channel the options name (either may be None)."""
    from channels import BitErrorModel, get_preset, parse_netem

    channel = bit_channel = None
    if args.channel is not None:  # an empty value is refused by the parsers, not read as "no loss"
        channel = parse_channel_arg(args.channel)
    elif args.netem is not None:
        channel = parse_netem(args.netem)
    elif args.preset is not None:
        channel = get_preset(args.preset).model
    if isinstance(channel, BitErrorModel):
        channel, bit_channel = None, channel
    if args.bit_channel is not None:
        if bit_channel is not None:
            raise ParameterError("give the bit-error channel either as a bit preset or with --bit-channel, not both")
        bit_channel = parse_channel_arg(args.bit_channel)
        if not isinstance(bit_channel, BitErrorModel):
            raise ParameterError(f"--bit-channel {args.bit_channel!r} is a packet-loss model, not a bit-error model")
    return channel, bit_channel


def _link(args):
    """The link the options describe (a preset's, or 10 Mbit/s and 20 ms by default)."""
    from sim.links import LinkConfig

    jitter, jitter_s = _parse_jitter(args.jitter)
    kw = {"jitter": jitter, "jitter_s": jitter_s, "queue_packets": args.queue_packets, "queue_bytes": args.queue_bytes}
    if args.bandwidth is not None:
        kw["bandwidth_bps"] = args.bandwidth
    if args.propagation_ms is not None:
        kw["propagation_s"] = args.propagation_ms / 1e3
    if args.duty_cycle is not None:
        kw["duty_cycle"] = args.duty_cycle
    if args.link:
        link = LinkConfig.from_preset(args.link, **kw)
    else:
        link = LinkConfig(**{"bandwidth_bps": 10e6, "propagation_s": 0.02, **kw})
    return link


MIN_PACKETS = 8
"""Fewer data packets than this per image draw a warning (the sweep's ``MIN_PACKETS_PER_IMAGE``)."""


def _model_prior(head, model: str | None):
    """The coder prior of the receiver's model for the stream's codebook size: the model the stream names
    (``codec.zoo.model_for_bitstream``), or ``model``; None when the model ships no prior for that size."""
    from codec.errors import BitstreamError
    from codec.zoo import load_codec, model_for_bitstream

    name = model_for_bitstream(head.codebook_id, model)
    prior = load_codec(name, head.codebook_size, device="cpu").prior
    if prior is None and head.has_prior:
        raise BitstreamError(
            f"the bitstream was coded with a codebook prior, but model {str(name)!r} has none for "
            f"codebook size {head.codebook_size}; pass --model with the encoder's model"
        )
    return prior


def _describe(obj) -> str:
    """``repr(obj)`` with float noise rounded (``h=0.30000000000000004`` -> ``h=0.3``)."""
    import re

    return re.sub(r"-?\d+\.\d{7,}(?:e-?\d+)?", lambda m: f"{float(m.group()):.6g}", repr(obj))


def _duration(s: float) -> str:
    """Seconds as ms below 10 s, else s / min / h."""
    if not math.isfinite(s):
        return "-"
    return f"{1e3 * s:.2f} ms" if s < 10 else _seconds(s)


def _summary(rec) -> str:
    """``TransmissionRecord.summary()`` with latencies in a readable unit (a LoRa image takes minutes)."""
    lines = rec.summary().splitlines()
    out = []
    for line in lines:
        if line.lstrip().startswith("latency p50"):
            line = (
                f"  latency p50 {_duration(rec.latency_p50)}, p95 {_duration(rec.latency_p95)}, p99 "
                f"{_duration(rec.latency_p99)}, max {_duration(rec.latency_max)}; completion "
                f"{_duration(rec.completion_s)}"
            )
        out.append(line)
    return "\n".join(out)


def cmd_channels(args) -> int:
    from channels import PRESETS

    print(f"{'name':<15} {'kind':<5} {'stationary loss / BER':>22} {'mean burst':>11}  description")
    for name, preset in PRESETS.items():
        m: Any = preset.model  # a LossModel when preset.kind == "loss", else a BitErrorModel
        if preset.kind == "loss":
            rate, burst = f"{m.stationary_loss_rate:.4%}", f"{m.mean_burst_length:.2f}"
        else:
            rate, burst = f"{m.stationary_bit_error_rate:.2e}", "-"
        desc = preset.description.split(". ")[0]
        desc = desc if len(desc) <= 60 else desc[:57] + "..."
        print(f"{name:<15} {preset.kind:<5} {rate:>22} {burst:>11}  {desc}")
    return 0


def cmd_links(args) -> int:
    """One line per link preset: limits, rate, duty cycle, airtime of one full frame and of an image."""
    from sim.links import LINK_PRESETS
    from sim.packet import OVERHEAD, compact_crc_size

    if args.image_bytes < 1:
        raise SimArgumentError(f"--image-bytes must be ≥ 1, got {args.image_bytes}")
    kb = args.image_bytes / 1024
    print(
        f"{'name':<12} {'max B':>6} {'bit/s':>9} {'ovh B':>5} {'prop ms':>8} {'duty':>5} {'frame s':>8} "
        f"{f'{kb:g} KB full hdr':>18} {f'{kb:g} KB compact':>17}  source"
    )
    for name, p in LINK_PRESETS.items():
        cols = []
        # compact: the 4-byte header and the CRC a full frame of this link gets
        for hdr in (OVERHEAD, 4 + compact_crc_size(p.max_payload_bytes)):
            if p.max_payload_bytes - hdr < 1:
                cols.append("no room")
                continue
            n, t = p.image_airtime_s(args.image_bytes, hdr)
            cols.append(f"{n} pkt {_seconds(t)}")
        duty = "-" if p.duty_cycle is None else f"{p.duty_cycle:.0%}"
        src = ("illustrative; " if p.illustrative else "") + p.source.split(",")[0]
        print(
            f"{name:<12} {p.max_payload_bytes:>6} {p.bitrate_bps:>9.0f} {p.per_packet_overhead_bytes:>5} "
            f"{1e3 * p.propagation_s:>8.2f} {duty:>5} {p.airtime_s(p.max_payload_bytes):>8.3f} "
            f"{cols[0]:>18} {cols[1]:>17}  {src if len(src) <= 48 else src[:45] + '...'}"
        )
        if args.sources:
            print(f"    {p.description}\n    source: {p.source}")
    print(
        "image time = airtime of the frames at the link's payload limit + duty-cycle silences between them "
        "(no loss, no FEC)"
    )
    return 0


def _seconds(t: float) -> str:
    return f"{t:.2f} s" if t < 120 else f"{t / 60:.1f} min" if t < 7200 else f"{t / 3600:.1f} h"
