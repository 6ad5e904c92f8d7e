"""Figures of a sweep's results folder (PNG + PDF into ``<results>/plots/``).

``make_plots(folder)`` draws every figure the data supports and skips the
others with a note (never an error):

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
  across codebook sizes, a thin line joining a method without → with FEC, a star for an idealised
  FEC (:func:`ideal_fec`) and a dotted loss-free level; bars: the t-interval of the loss penalty
  LPIPS − loss-free LPIPS (image effect removed; over images, seeds averaged first).  Methods: none, the best model-free baseline and
  the best method.  Numbers in ``fec_vs_bits.csv``.  Needs ≥ 2 FEC settings on a channel point.
* ``lpips_vs_loss`` — mean LPIPS vs nominal loss rate, one panel per channel
  family (e.g. Gilbert–Elliott at one mean burst length), one line per
  concealment method (colour) and FEC setting (line style), with 95 %
  confidence bands (Student t-interval over the images, each image's seeds
  averaged first: mean ± t₀.₉₇₅,ₙ₋₁ · s/√n, n = images).  Needs ≥ 2 loss rates in a family.
* ``fec_vs_concealment`` — LPIPS vs *total* bits per pixel (payload + headers
  + FEC parity + in-packet RS), one panel per channel setting, one point per
  (codebook size, FEC, method): at equal total rate, is spending bits on FEC
  or on a finer codebook (and concealing) better?  Needs ≥ 2 (size, FEC)
  settings on a packet channel.
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

from .common import METRIC_LABELS, PAIRED_REFERENCE_NOTE, PAIRED_STATS_NOTE, PlotReport, image_ci, mean_ci, stats_note
from .curves import plot_burst_effect, plot_loss_curves, plot_paired_vs_loss
from .fec import ideal_fec, plot_fec_vs_bits, plot_fec_vs_concealment
from .grids import plot_example_grids
from .rate import plot_rate_distortion

__all__ = ["PlotReport", "make_plots", "mean_ci", "image_ci", "METRIC_LABELS", "ideal_fec", "PAIRED_REFERENCE_NOTE",
           "PAIRED_STATS_NOTE", "stats_note",
           "plot_paired_vs_loss", "plot_loss_curves", "plot_burst_effect", "plot_fec_vs_bits",
           "plot_fec_vs_concealment", "plot_rate_distortion", "plot_example_grids"]


def make_plots(results: str | Path, formats: Sequence[str] = ("png", "pdf"),
               log: Callable[[str], None] | None = None, dpi: int = 200, reference: str = "best_baseline",
               fec_channel: str | None = None, unit: str = "image", correction: str = "holm") -> PlotReport:
    """Draw every supported figure of a results folder into ``<results>/plots/`` (PNGs at ``dpi``).

    ``reference``: the method panel (b) of ``paired_vs_loss`` subtracts (a method name, or
    ``"best_baseline"``: per point the best model-free method); ``fec_channel``: draw ``fec_vs_bits``
    at this channel label only (default: up to six packet-channel points); ``unit``: what every
    interval treats as its independent samples, ``"image"`` (seeds averaged within an image first;
    default) or ``"trial"``; ``correction``: ``"holm"``, ``"bh"`` or ``"none"`` over the paired
    figure's comparisons (:mod:`experiments.paired`).  The numbers of the paired and FEC figures
    are returned in ``PlotReport.data`` and written as ``plots/<figure>.csv``.
    """
    import functools

    import matplotlib

    matplotlib.use("Agg", force=True)
    from ..significance import check_correction, check_unit
    from ..sweep import read_results

    check_unit(unit)
    check_correction(correction)

    results = Path(results)
    df = read_results(results)
    folder = results / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    report = PlotReport(folder, dpi=int(dpi))
    bad = [f for f in formats if f not in ("png", "pdf", "svg")]
    if bad:
        raise ParameterError(f"plot formats must be png, pdf or svg, got {bad}")
    if df.empty:
        report.skipped.append("no rows")
        return report
    if reference != "best_baseline" and reference not in set(df.get("method", [])):  # issue 27: no empty panels
        methods = ", ".join(sorted(map(str, set(df.get("method", [])))))
        raise ParameterError(f"reference {reference!r} is not a method of these results; use best_baseline or "
                             f"one of: {methods}")
    part = functools.partial
    figures = (part(plot_paired_vs_loss, reference=reference, unit=unit, correction=correction),
               part(plot_loss_curves, unit=unit), part(plot_fec_vs_bits, channel=fec_channel, unit=unit),
               part(plot_fec_vs_concealment, unit=unit), part(plot_burst_effect, unit=unit), plot_rate_distortion)
    for fn in figures:
        try:
            fn(df, folder, formats, report)
        except Exception as e:  # a figure the data cannot support must not abort the others
            name = getattr(fn, "func", fn).__name__
            report.skipped.append(f"{name}: failed: {type(e).__name__}: {e}")
    try:
        plot_example_grids(df, results, folder, formats, report)
    except Exception as e:
        report.skipped.append(f"image grids: failed: {type(e).__name__}: {e}")
    lines = ["Figures of this sweep (see experiments/plots/__init__.py for what each shows).", "",
             f"{PAIRED_REFERENCE_NOTE}{reference}", stats_note(unit, correction)]
    lines += [f"written: {p.name}" for p in report.files]
    lines += [f"skipped: {s}" for s in report.skipped]
    (folder / "README.txt").write_text("\n".join(lines) + "\n")
    if log:
        for s in report.skipped:
            log(f"plot note: {s}")
    return report
