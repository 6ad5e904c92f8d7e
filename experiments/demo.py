"""``vqsim demo``: the story of vqsim in a few minutes on two CPU cores, written up as a one-page report.

Runs ``experiments/configs/demo.yaml`` into ``results/demo``: six of
scikit-image's bundled photos at 256×256, the default codec, the paper's
random index loss (10–50 %), Bernoulli and Gilbert–Elliott packet loss on a
LoRa SF12 link with the compact header, S = 1024 without FEC against S = 128
with RS(10, 7) at the same bits per index, transformer vs model-free
concealment, two seeds. Then it draws the plots and writes ``report.html`` /
``report.md`` (``experiments.report``): intervals over the 6 images, Holm's
correction over each table and figure, and how many images a difference of
``--detect`` (default :data:`DEMO_DETECT` LPIPS) would need. The transformer methods are used
only when their weights are shipped for every codebook size the demo uses
(``codec.zoo.load_concealer("default", S, kind)``); otherwise the demo falls
back to the baselines and says so.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
#: the ΔLPIPS whose required number of images the demo's report states (an example; `vqsim demo --detect`)
DEMO_DETECT = 0.01


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run a small sweep on bundled sample photos and draw its plots (a few minutes on CPU)",
        description="Default model, 6 bundled photos at 256x256, index loss and Bernoulli / Gilbert-Elliott "
        "packet loss on a LoRa SF12 link (compact header), S=1024 vs S=128 + RS(10,7) at "
        "equal bits, transformer (if shipped) vs baseline concealment; then `vqsim plot` "
        "and `vqsim report`.",
    )
    p.add_argument("--out", default="results/demo", help="results folder (default: results/demo)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker threads (default: 1)")
    p.add_argument("--keep", action="store_true", help="resume an earlier demo in --out instead of starting afresh")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--detect",
        type=float,
        default=DEMO_DETECT,
        metavar="DELTA",
        help=f"the report states how many images detect this LPIPS difference with 80%% power (default: {DEMO_DETECT})",
    )
    p.set_defaults(func=cmd_demo)


def shipped_concealer_sizes(codec_name: str = "default") -> dict[str, list[int]]:
    """Codebook sizes with a shipped transformer, per kind ("ar", "bidir")."""
    from codec.zoo import WEIGHTS_DIR

    out: dict[str, list[int]] = {}
    for kind in ("ar", "bidir"):
        sizes = []
        for p in WEIGHTS_DIR.glob(f"{codec_name}_{kind}_*.pt"):
            m = re.fullmatch(rf"{re.escape(codec_name)}_{kind}_(\d+)\.pt", p.name)
            if m:
                sizes.append(int(m.group(1)))
        out[kind] = sorted(sizes)
    return out


def demo_config(notes: list[str]) -> dict:
    """The demo config with the concealment methods fitted to the shipped models.

    A transformer method stays when its model kind is shipped for every codebook size the demo
    uses (its ``pairs``, or ``codec.codebook_sizes``); otherwise it is left out and a note says so.
    """
    from codec.conceal import MODEL_KIND

    from .config import load_config

    raw = load_config(DEMO_CONFIG)
    sizes = (
        [int(p["codebook_size"]) for p in raw["pairs"]]
        if raw.get("pairs")
        else [int(S) for S in raw["codec"]["codebook_sizes"]]
    )
    have = shipped_concealer_sizes(raw["codec"].get("model", "default"))
    methods = []
    for m in raw["concealment"]["methods"]:
        kind = MODEL_KIND.get(m)
        missing = [S for S in sizes if kind and S not in have[kind]]
        if missing:
            notes.append(
                f"no {kind!r} concealment transformer shipped for default/{missing[0]} "
                f"(codec/weights/default_{kind}_{missing[0]}.pt): {m!r} left out, baselines only"
            )
        else:
            methods.append(m)
    raw["concealment"]["methods"] = methods
    return raw


def cmd_demo(args) -> int:
    from .plots import make_plots
    from .report import write_report
    from .significance import units_needed
    from .sweep import run_sweep, summary_table

    units_needed(args.detect, 1.0)  # a bad --detect fails now, not after the sweep
    t0 = time.perf_counter()
    notes: list[str] = []
    cfg = demo_config(notes)
    for n in notes:
        print(f"demo: {n}", file=sys.stderr)
    res = run_sweep(
        cfg,
        args.out,
        workers=args.workers,
        overwrite=not args.keep,
        progress=not args.quiet,
        command="vqsim demo " + " ".join(sys.argv[2:]),
    )
    print(summary_table(res.results))
    rep = make_plots(res.out)
    for s in rep.notes + rep.skipped:
        print(f"note: {s}")
    report = write_report(res.out, detect=args.detect)
    wall = time.perf_counter() - t0
    print(
        f"\ndemo: {res.n_run} trials ({len(cfg['concealment']['methods'])} concealment methods: "
        f"{', '.join(cfg['concealment']['methods'])}) in {wall:.1f} s"
    )
    print(f"results: {res.out / 'results.csv'}")
    print(f"plots:   {rep.folder}/ ({', '.join(sorted({p.stem for p in rep.files}))})")
    print(f"report:  {report.html}")
    return 0
