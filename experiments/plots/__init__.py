"""Figures of a sweep's results folder (PNG + PDF into ``<results>/plots/``).

``make_plots(folder)`` draws every figure the data supports and skips the
others with a note (never an error); an interrupted sweep's figures carry an "incomplete: N of M trials"
banner.  ``make_plots(folder, figures=["lpips_vs_loss"], methods=[...], title=..., size=(6, 4), dpi=300)``
(``vqsim plot --figure … --methods … --title … --size … --dpi …``) draws one publication figure.
Methods keep one colour and name in every figure of every sweep (``common.METHOD_COLORS`` / ``METHOD_LABELS``):

* ``paired_vs_loss`` — the paired view (drawn first; numbers in ``paired_vs_loss.csv``): one row
  per (channel family, FEC), x = loss rate; (a) ΔLPIPS of each method vs the *loss-free
  reconstruction* of the same image (``lpips_alex_vs_lossfree``) with its 95 % t-interval;
  (b) the paired difference to a reference method (``reference=``: a method name, or
  ``"best_baseline"``, per point the best model-free method) with its unadjusted interval
  (:func:`experiments.paired.paired_differences`) and a zero line; markers filled when the
  difference is significant after the correction (``correction=``, Holm by default) over all the
  figure's (b) points, pale when only the unadjusted interval excludes 0.  Intervals take the
  image as the unit (seeds averaged within an image first; ``unit="trial"``: the old interval over
  images × seeds); the title gives n_images, n_seeds, the correction and the counts, in red with
  fewer than 5 images.  Needs ≥ 2 loss rates in a family.
* ``fec_vs_bits`` — at each packet-channel point (``fec_channel=`` picks one), LPIPS vs the
  original against total bits per pixel (headers + parity included), one line per (FEC, method)
  across codebook sizes, an arrow from a method without → with FEC (same S; points labelled S), a star for an idealised
  FEC (:func:`ideal_fec`) and a dotted loss-free level; bars: the t-interval of the loss penalty
  LPIPS − loss-free LPIPS (image effect removed; over images, seeds averaged first).  Methods: none, the best
  model-free baseline and the best method.  Numbers in ``fec_vs_bits.csv``.  Needs ≥ 2 FEC settings on a channel point.
* ``lpips_vs_loss`` — mean LPIPS vs nominal (``x="realised"``: measured) loss rate, one panel per channel
  family (e.g. Gilbert–Elliott at one mean burst length), one line per
  concealment method (colour) and FEC setting (line style), with 95 %
  confidence bands (Student t-interval over the images, each image's seeds
  averaged first: mean ± t₀.₉₇₅,ₙ₋₁ · s/√n, n = images).  Needs ≥ 2 loss rates in a family.
* ``fec_vs_concealment`` — LPIPS vs *total* bits per pixel (payload + headers
  + FEC parity + in-packet RS), one panel per channel setting, one point per
  (codebook size, FEC, method): at equal total rate, is spending bits on FEC
  or on a finer codebook (and concealing) better?  Needs ≥ 2 (size, FEC)
  settings on a packet channel.
* ``strategies`` — every (codebook size, FEC, method) on one loss axis per channel family, (a) LPIPS and
  (b) the paired difference to the reference strategy (largest S without FEC, its best baseline), with each
  strategy's measured total rate in the legend: the FEC-vs-concealment crossover
  (:mod:`experiments.plots.strategies`; numbers in ``strategies.csv``).  Needs ≥ 2 (S, FEC) settings.
* ``burst_effect`` — LPIPS vs mean burst length at a fixed loss rate (all
  packet channels with that stationary loss rate).  Needs ≥ 2 burst lengths.
* ``rate_distortion`` — loss-free LPIPS and PSNR vs source bits per pixel,
  one point per codebook size (mean ± 95 % CI over images).  Needs ≥ 2 sizes.
* ``grid_*`` — image grids: original, loss-free, lost-index map (lost
  blocks in red) and the concealed result of each method, at up to four loss
  rates (from the example PNGs a sweep stores for its first image and seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from codec.errors import ParameterError

from ..significance import mean_ci
from .common import METRIC_LABELS, PAIRED_REFERENCE_NOTE, PAIRED_STATS_NOTE, PlotReport, image_ci, stats_note
from .curves import plot_burst_effect, plot_loss_curves, plot_paired_vs_loss
from .fec import ideal_fec, plot_fec_vs_bits, plot_fec_vs_concealment
from .grids import plot_example_grids
from .rate import plot_rate_distortion
from .strategies import plot_strategies, strategy_table

__all__ = [
    "PlotReport",
    "make_plots",
    "mean_ci",
    "image_ci",
    "METRIC_LABELS",
    "ideal_fec",
    "PAIRED_REFERENCE_NOTE",
    "PAIRED_STATS_NOTE",
    "stats_note",
    "plot_paired_vs_loss",
    "plot_loss_curves",
    "plot_burst_effect",
    "plot_fec_vs_bits",
    "plot_fec_vs_concealment",
    "plot_rate_distortion",
    "plot_example_grids",
    "plot_strategies",
    "strategy_table",
    "FIGURES",
]

#: the figures ``make_plots(figures=...)`` / ``vqsim plot --figure`` can draw, in drawing order
FIGURES = (
    "paired_vs_loss",
    "lpips_vs_loss",
    "fec_vs_bits",
    "fec_vs_concealment",
    "strategies",
    "burst_effect",
    "rate_distortion",
    "grids",
)
X_AXES = ("nominal", "realised")


def make_plots(
    results: str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    log: Callable[[str], None] | None = None,
    dpi: int = 200,
    reference: str = "best_baseline",
    fec_channel: str | None = None,
    unit: str = "image",
    correction: str = "holm",
    figures: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
    size: tuple[float, float] | None = None,
    x: str = "nominal",
    out_dir: str | Path | None = None,
) -> PlotReport:
    """Draw every supported figure of a results folder into ``<results>/plots/`` (PNGs at ``dpi``).

    ``reference``: the method panel (b) of ``paired_vs_loss`` subtracts (a method name, or
    ``"best_baseline"``: per point the best model-free method); ``fec_channel``: draw ``fec_vs_bits``
    at this channel label only (default: up to six packet-channel points); ``unit``: what every
    interval treats as its independent samples, ``"image"`` (seeds averaged within an image first;
    default) or ``"trial"``; ``correction``: ``"holm"``, ``"bh"`` or ``"none"`` over the paired
    figure's comparisons (:mod:`experiments.paired`).  The numbers of the paired and FEC figures
    are returned in ``PlotReport.data`` and written as ``plots/<figure>.csv``.

    One publication figure: ``figures`` (names in :data:`FIGURES`; default all), ``methods`` (only these
    concealment methods' rows; the reference of the paired figure must be among them or best_baseline),
    ``title`` (drawn above the figure), ``size`` ((width, height) in inches; the figure is scaled to it) and
    ``dpi``; ``x="realised"`` puts ``lpips_vs_loss`` at the measured loss rate of each point (packet loss
    for packet channels, index loss for index loss) instead of the nominal one.  With ``figures`` given,
    ``plots/README.txt`` is left alone (the report keeps using the full set); ``out_dir``: write there
    instead of ``<results>/plots``.
    """
    import functools

    import matplotlib

    matplotlib.use("Agg", force=True)
    from ..significance import check_correction, check_unit
    from ..sweep import read_results

    check_unit(unit)
    check_correction(correction)
    if figures is not None:
        figures = [f.strip() for f in figures if f.strip()]
        bad = [f for f in figures if f not in FIGURES]
        if bad or not figures:
            raise ParameterError(f"unknown figure(s) {bad or figures}; allowed: {', '.join(FIGURES)}")
    if x not in X_AXES:
        raise ParameterError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if size is not None and (len(size) != 2 or not all(0.5 <= float(v) <= 40 for v in size)):
        raise ParameterError(f"size must be (width, height) in inches, each in [0.5, 40], got {size!r}")
    if not 20 <= int(dpi) <= 1200:
        raise ParameterError(f"dpi must be in [20, 1200], got {dpi}")

    results = Path(results)
    df = read_results(results)
    folder = Path(out_dir) if out_dir is not None else results / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    report = PlotReport(folder, dpi=int(dpi), title=title, size=None if size is None else tuple(map(float, size)))
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise ParameterError(f"plot formats must be png, pdf or svg, got {bad}")
    if df.empty:
        report.skipped.append("no rows")
        return report
    from ..sweep.health import incomplete_banner

    report.banner = incomplete_banner(results, df)
    if report.banner and log:
        log(report.banner)
    if reference != "best_baseline" and reference not in set(df.get("method", [])):  # issue 27: no empty panels
        methods = ", ".join(sorted(map(str, set(df.get("method", [])))))
        raise ParameterError(
            f"reference {reference!r} is not a method of these results; use best_baseline or one of: {methods}"
        )
    if methods:
        methods = [m.strip() for m in methods if m.strip()]
        have = list(dict.fromkeys(df["method"]))
        bad = [m for m in methods if m not in have]
        if bad:
            raise ParameterError(f"method(s) {bad} not in these results; they have: {', '.join(have)}")
        if reference != "best_baseline" and reference not in methods:
            methods.append(reference)
        df = df[df["method"].isin(methods)]
    part = functools.partial
    drawers = {
        "paired_vs_loss": part(plot_paired_vs_loss, reference=reference, unit=unit, correction=correction),
        "lpips_vs_loss": part(plot_loss_curves, unit=unit, x=x),
        "fec_vs_bits": part(plot_fec_vs_bits, channel=fec_channel, unit=unit, methods=methods or None),
        "fec_vs_concealment": part(plot_fec_vs_concealment, unit=unit),
        "strategies": part(plot_strategies, unit=unit),
        "burst_effect": part(plot_burst_effect, unit=unit),
        "rate_distortion": plot_rate_distortion,
        "grids": lambda d, fo, fm, r: plot_example_grids(d, results, fo, fm, r),
    }
    for name in figures or FIGURES:
        try:
            drawers[name](df, folder, formats, report)
        except Exception as e:  # a figure the data cannot support must not abort the others
            report.skipped.append(f"{name}: failed: {type(e).__name__}: {e}")
    if figures is not None:
        if log:
            for s in report.notes + report.skipped:
                log(f"plot note: {s}")
        return report
    lines = ([report.banner, ""] if report.banner else []) + [
        "Figures of this sweep (see experiments/plots/__init__.py for what each shows).",
        "",
        f"{PAIRED_REFERENCE_NOTE}{reference}",
        stats_note(unit, correction),
    ]
    lines += [f"written: {p.name}" for p in report.files]
    lines += [f"note: {s}" for s in report.notes]
    lines += [f"skipped: {s}" for s in report.skipped]
    (folder / "README.txt").write_text("\n".join(lines) + "\n")
    if log:
        for s in report.notes + report.skipped:
            log(f"plot note: {s}")
    return report
