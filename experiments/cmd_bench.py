"""``vqsim bench``: time the pipeline's parts on this machine and print / save the numbers.

    vqsim bench [--quick] [--out FILE.json] [--device cpu|cuda] [--only codec,fec,...]
                [--repeats N] [--threads N] [--image PATH] [--seed S]
    vqsim bench fuzz [--inputs N] [--full-decodes N] [--seed S] [--out FILE.json]

See ``experiments.bench`` for what each section measures, ``experiments.fuzz``
for the fuzz benchmark of the receive path (exit status 1 if any input
crashed, raised an untyped error or took over a second).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codec.errors import VQSimError  # numpy-only, cheap

SECTION_NAMES = "codec,conceal,fec,channels,simpy,trial,train"


class BenchArgumentError(VQSimError, ValueError):
    """A ``vqsim bench`` option is invalid (printed as one line by the CLI)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark codec, concealment, FEC, channels, SimPy and a sweep trial on this machine",
        description="Time every part of the pipeline in one run (median of N runs after a warm-up) and print a "
                    "table with ratios against in-run baselines; --out writes the full results with the machine "
                    "description as JSON.  Sections: " + SECTION_NAMES + ".")
    p.add_argument("what", nargs="?", choices=["fuzz"], default=None,
                   help="'fuzz': feed hostile bitstreams and packets to the decoders instead of timing")
    p.add_argument("--inputs", type=int, default=100_000,
                   help="fuzz: bitstreams and packets per target (default 100000)")
    p.add_argument("--full-decodes", type=int, default=200,
                   help="fuzz: accepted codec streams also decoded to an image (default 200)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, one repetition, one loss rate (well under a minute)")
    p.add_argument("--out", metavar="FILE.json", default=None, help="write the results as JSON")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="device of the GPU codec timing, concealment and trial (default: cuda when present)")
    p.add_argument(
        "--only", metavar="LIST", default=None, help=f"comma-separated sections (default: all of {SECTION_NAMES})"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default: 5, quick: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own setting)")
    p.add_argument("--image", default=None, help="benchmark image (default: Kodak kodim01 or a bundled photo)")
    p.add_argument("--seed", type=int, default=0, help="seed of all random inputs (default: 0)")
    p.set_defaults(func=cmd_bench)


def _write_json(path: str | None, obj: dict) -> None:
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(obj, indent=2, default=str) + "\n")
        print(f"wrote {out}")


def cmd_fuzz(args: argparse.Namespace) -> int:
    import torch

    from . import fuzz

    if args.threads is not None and args.threads < 1:
        raise BenchArgumentError(f"--threads must be ≥ 1, got {args.threads}")
    torch.set_num_threads(args.threads or 1)  # the 1 s budget per input is measured on one thread by default
    if args.inputs < 1 or args.full_decodes < 0:
        raise BenchArgumentError(f"--inputs must be ≥ 1 and --full-decodes ≥ 0, got {args.inputs}, {args.full_decodes}")
    report = fuzz.run_fuzz(
        args.inputs,
        seed=args.seed,
        full_decodes=args.full_decodes,
        progress=lambda line: print(f"[fuzz] {line}", file=sys.stderr, flush=True),
    )
    print(fuzz.format_fuzz(report))
    _write_json(args.out, report)
    return 1 if report["untyped_total"] or report["over_1s_total"] else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    if args.what == "fuzz":
        return cmd_fuzz(args)
    from . import bench

    if args.threads is not None:
        if args.threads < 1:
            raise BenchArgumentError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.image is not None and not Path(args.image).is_file():
        raise FileNotFoundError(f"image not found: {args.image}")
    try:
        only = bench.parse_only(args.only)
        cfg = bench.BenchConfig.make(
            quick=args.quick, device=args.device, repeats=args.repeats, image=args.image, seed=args.seed
        )
    except bench.BenchError as e:
        raise BenchArgumentError(str(e)) from None
    result = bench.run_bench(cfg, only, progress=lambda name: print(f"[bench] {name} ...", file=sys.stderr, flush=True))
    print(bench.format_table(result))
    _write_json(args.out, result)
    failed = [n for n, r in result["sections"].items() if "error" in r]
    return 1 if failed else 0
