"""``vqsim sweep | plot | report``.

Run a config's trial grid into a results folder, draw its figures, write its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    _register_sweep(sub)
    _register_plot(sub)
    _register_report(sub)


def _register_sweep(sub: argparse._SubParsersAction) -> None:
    """The ``sweep`` command's parser."""
    p = sub.add_parser(
        "sweep",
        help="run a sweep config (images × codec × channel × FEC × concealment × seeds) into results/NAME",
        description="Plan every trial of CONFIG, run the ones not yet stored in the results folder, and write one "
        "row per trial (Parquet + CSV) with config.yaml and provenance.json. Rerunning resumes. "
        "CONFIG is a YAML file or the name of a bundled config "
        "(paper_index_loss, bernoulli, gilbert_elliott, fec_vs_concealment, demo).",
    )
    p.add_argument(
        "config", metavar="CONFIG", help="sweep config YAML (schema: the experiments.config package docstring)"
    )
    p.add_argument("--out", default=None, help="results folder (default: results/<config name>)")
    p.add_argument("--workers", type=int, default=1, help="parallel workers (default: 1)")
    p.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask"],
        help="local: worker threads in this process sharing the models and the GPU; dask: a "
        "dask.distributed cluster of worker processes (default: local)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask scheduler address, e.g. tcp://host:8786 (default: a LocalCluster with --workers)",
    )
    p.add_argument(
        "--max-trials", type=int, default=None, help="stop after about this many new trials (rerun to continue)"
    )
    p.add_argument("--overwrite", action="store_true", help="delete the folder's earlier results first")
    p.add_argument("--plot", action="store_true", help="draw the figures afterwards (same as `vqsim plot`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the plan and run nothing: trials, methods per codebook size, data packets per image, "
        "bits on the link per strategy, and an estimated time from a short calibration (encodings "
        "are cached in the results folder for the real run)",
    )
    p.add_argument("--no-calibrate", action="store_true", help="with --plan: skip the timing calibration")
    p.set_defaults(func=cmd_sweep)


def _register_plot(sub: argparse._SubParsersAction) -> None:
    """The ``plot`` command's parser."""
    p = sub.add_parser(
        "plot",
        help="draw the figures of a sweep's results folder into RESULTS/plots (PNG + PDF)",
        description="Paired differences vs loss rate (per method and to a reference, 95% t-intervals "
        "over images, verdicts corrected for many comparisons), "
        "FEC vs bits at each channel point, LPIPS vs loss rate per concealment and FEC "
        "(95% CI bands), FEC vs concealment at equal total rate, burst-length effect, "
        "rate-distortion, strategies (S x FEC x method on one loss axis), and image grids. "
        "--figure NAME with --methods, --title, --size and --dpi draws one figure for a paper. "
        "Figures the data cannot support are skipped with a note.",
    )
    p.add_argument("results", metavar="RESULTS", help="results folder written by `vqsim sweep`")
    p.add_argument("--formats", default="png,pdf", help="comma-separated: png, pdf, svg (default: png,pdf)")
    p.add_argument(
        "--reference",
        default="best_baseline",
        help="method the paired figure subtracts: a method name (e.g. none) or best_baseline (default)",
    )
    p.add_argument(
        "--figure",
        default=None,
        metavar="NAME[,NAME]",
        help="draw only these figures: paired_vs_loss, lpips_vs_loss, fec_vs_bits, fec_vs_concealment, "
        "strategies, burst_effect, rate_distortion, grids (default: all, and plots/README.txt)",
    )
    p.add_argument(
        "--methods",
        default=None,
        metavar="M[,M]",
        help="only these concealment methods (e.g. bidir,latent_avg,none; default: all in the results)",
    )
    p.add_argument("--title", default=None, help="a title above the figure(s)")
    p.add_argument("--size", default=None, metavar="W,H", help="figure size in inches, e.g. 6,4 (default: per figure)")
    p.add_argument("--dpi", type=int, default=200, help="PNG resolution (default: 200)")
    p.add_argument(
        "--x",
        default="nominal",
        choices=["nominal", "realised"],
        help="lpips_vs_loss x axis: the nominal loss rate of each point (default) or the realised one "
        "(measured packet / index loss, mean over its trials)",
    )
    p.add_argument("--out-dir", default=None, metavar="DIR", help="write the figures here (default: RESULTS/plots)")
    _stats_args(p)
    p.set_defaults(func=cmd_plot)


def _register_report(sub: argparse._SubParsersAction) -> None:
    """The ``report`` command's parser."""
    p = sub.add_parser(
        "report",
        help="write RESULTS/report.html (self-contained) and RESULTS/report.md",
        description="One-page report of a results folder: the paired figure first, FEC vs bits, the "
        "other figures (drawn first if plots/ lacks them), which paired differences are "
        "significant (95% t-intervals with the image as the unit, Holm or "
        "Benjamini-Hochberg over the table), how much data a claim needs (80% power), "
        "mean metrics, the config and the provenance (git commit, date, versions, machine).",
    )
    p.add_argument("results", metavar="RESULTS", help="results folder written by `vqsim sweep`")
    p.add_argument(
        "--reference",
        default="best_baseline",
        help="method the paired differences subtract: a method name (e.g. none) or best_baseline "
        "(per point the best model-free method; default)",
    )
    _stats_args(p)
    p.add_argument(
        "--detect",
        type=float,
        default=None,
        metavar="DELTA",
        help="a difference in the paired metric (e.g. 0.01 LPIPS): the report states how many images "
        "detect it with 80%% power at the observed spread",
    )
    p.set_defaults(func=cmd_report)


def _stats_args(p: argparse.ArgumentParser) -> None:
    """--unit and --correction (experiments.paired) of `vqsim plot` and `vqsim report`."""
    from .significance import CORRECTIONS, UNITS

    p.add_argument(
        "--unit",
        default="image",
        choices=UNITS,
        help="what an interval treats as independent samples: image (seeds averaged within each image "
        "first; default) or trial (images x seeds as if independent: the old, too narrow interval)",
    )
    p.add_argument(
        "--correction",
        default="holm",
        choices=CORRECTIONS,
        help="correction for the many paired comparisons of a table or figure: holm (family-wise "
        "error; default), bh (Benjamini-Hochberg false discovery rate) or none",
    )


def cmd_sweep(args) -> int:
    from .sweep import run_sweep, summary_table

    if args.plan:
        from .sweep.preview import describe_plan

        describe_plan(args.config, args.out, calibrate=not args.no_calibrate, log=print)
        return 0
    res = run_sweep(
        args.config,
        args.out,
        workers=args.workers,
        executor=args.executor,
        scheduler=args.scheduler,
        max_trials=args.max_trials,
        overwrite=args.overwrite,
        progress=not args.quiet,
        command="vqsim " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    print(summary_table(res.results, notes=res.notes))
    state = "complete" if res.complete else "partial (rerun the same command to continue)"
    print(
        f"\n{res.n_run} trials run, {res.n_skipped} already done, {res.n_planned} planned: {state}; {res.wall_s:.1f} s"
    )
    print(f"results: {res.out / 'results.parquet'} and {res.out / 'results.csv'}")
    if args.plot:
        _plot(res.out, ("png", "pdf"))
    return 0


def _plot(
    folder: Path, formats, reference: str = "best_baseline", unit: str = "image", correction: str = "holm", **kw
) -> None:
    from .plots import make_plots

    rep = make_plots(folder, formats=formats, reference=reference, unit=unit, correction=correction, **kw)
    for s in rep.notes + rep.skipped:
        print(f"note: {s}")
    print(f"{len(rep.files)} plot files in {rep.folder}")


def cmd_plot(args) -> int:
    formats = tuple(f.strip().lower() for f in args.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad or not formats:
        from .config import ConfigError

        raise ConfigError(f"--formats: unknown format(s) {bad or formats}; allowed: png, pdf, svg")
    from .config import ConfigError

    size = None
    if args.size is not None:
        try:
            size = tuple(float(v) for v in args.size.split(","))
            if len(size) != 2:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--size must be W,H in inches (e.g. 6,4), got {args.size!r}") from None

    def split(t):
        return [v.strip() for v in t.split(",") if v.strip()] if t is not None else None

    _plot(
        Path(args.results),
        formats,
        args.reference,
        args.unit,
        args.correction,
        figures=split(args.figure),
        methods=split(args.methods),
        title=args.title,
        size=size,
        dpi=args.dpi,
        x=args.x,
        out_dir=args.out_dir,
    )
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    rep = write_report(
        Path(args.results),
        reference=args.reference,
        unit=args.unit,
        correction=args.correction,
        detect=args.detect,
        log=lambda s: print(s, file=sys.stderr),
    )
    for s in rep.notes:
        print(f"note: {s}")
    print(f"report: {rep.html}")
    print(f"        {rep.markdown}")
    return 0
