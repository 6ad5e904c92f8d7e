"""``vqsim demo``: a small end-to-end sweep on the bundled sample photos, then its figures.

Runs ``experiments/configs/demo.yaml`` (default model, scikit-image's
astronaut / coffee / chelsea / rocket scaled and cropped to 256×256,
Bernoulli and Gilbert–Elliott channels at a few loss rates, FEC off / on,
transformer vs baseline concealment) into ``results/demo``, draws the
plots and writes ``report.html`` / ``report.md`` (``experiments.report``).
The transformer methods are used only when their weights are shipped (``codec.zoo.load_concealer("default", S, kind)``); otherwise the demo
falls back to the baselines and says so.  Sized to finish in a few minutes
on two CPU cores.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a small sweep on bundled sample photos and draw its plots (a few minutes on CPU)",
                       description="Default model, 4 bundled photos at 256x256, Bernoulli + Gilbert-Elliott channels, "
                                   "FEC off/on, transformer (if shipped) vs baseline concealment; then `vqsim plot` and "
                                   "`vqsim report`.")
    p.add_argument("--out", default="results/demo", help="results folder (default: results/demo)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker threads (default: 1)")
    p.add_argument("--keep", action="store_true", help="resume an earlier demo in --out instead of starting afresh")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
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

    Codebook size: the config's, unless a transformer is shipped only for
    other sizes — then the largest size with an "ar" (else "bidir") model.
    """
    from codec.conceal import MODEL_KIND

    from .config import load_config

    raw = load_config(DEMO_CONFIG)
    S = int(raw["codec"]["codebook_sizes"][0])
    have = shipped_concealer_sizes(raw["codec"].get("model", "default"))
    for kind in ("ar", "bidir"):
        if have[kind] and S not in have[kind]:
            S_new = max(have[kind])
            notes.append(f"using codebook size {S_new} (the size with a shipped {kind!r} transformer) instead of {S}")
            S = S_new
            break
    raw["codec"]["codebook_sizes"] = [S]
    methods = []
    for m in raw["concealment"]["methods"]:
        if m in MODEL_KIND:
            kind = MODEL_KIND[m]
            if S in have[kind]:
                methods.append(m)
            else:
                notes.append(f"no {kind!r} concealment transformer shipped for default/{S} "
                             f"(codec/weights/default_{kind}_{S}.pt): {m!r} left out, baselines only")
        else:
            methods.append(m)
    raw["concealment"]["methods"] = methods
    return raw


def cmd_demo(args) -> int:
    from .plots import make_plots
    from .report import write_report
    from .sweep import run_sweep, summary_table

    t0 = time.perf_counter()
    notes: list[str] = []
    cfg = demo_config(notes)
    for n in notes:
        print(f"demo: {n}", file=sys.stderr)
    res = run_sweep(cfg, args.out, workers=args.workers, overwrite=not args.keep, progress=not args.quiet,
                    command="vqsim demo " + " ".join(sys.argv[2:]))
    print(summary_table(res.results))
    rep = make_plots(res.out)
    for s in rep.skipped:
        print(f"note: {s}")
    report = write_report(res.out)
    wall = time.perf_counter() - t0
    print(f"\ndemo: {res.n_run} trials ({len(cfg['concealment']['methods'])} concealment methods: "
          f"{', '.join(cfg['concealment']['methods'])}) in {wall:.1f} s")
    print(f"results: {res.out / 'results.csv'}")
    print(f"plots:   {rep.folder}/ ({', '.join(sorted({p.stem for p in rep.files}))})")
    print(f"report:  {report.html}")
    return 0
