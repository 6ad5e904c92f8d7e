"""Shared pieces of the plots package: styles, labels, PlotReport, mean_ci / image_ci and panel/legend helpers.

Every figure module (:mod:`.curves`, :mod:`.fec`, :mod:`.rate`, :mod:`.grids`) draws with these;
matplotlib is imported lazily (``make_plots`` selects the Agg backend first).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

METRIC_LABELS = {
    "lpips_alex": "LPIPS (AlexNet) vs original ↓",
    "lpips_vgg": "LPIPS (VGG) vs original ↓",
    "psnr": "PSNR vs original (dB) ↑",
    "ssim": "SSIM vs original ↑",
    "lpips_alex_vs_lossfree": "ΔLPIPS (AlexNet) vs loss-free ↓",
    "lpips_vgg_vs_lossfree": "ΔLPIPS (VGG) vs loss-free ↓",
    "psnr_vs_lossfree": "PSNR vs loss-free (dB) ↑",
}
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 2))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
MAX_PANELS = 9
#: README.txt line naming paired_vs_loss' reference (experiments.report redraws when it differs)
PAIRED_REFERENCE_NOTE = "paired_vs_loss reference: "
#: README.txt line naming the figures' interval unit and correction (experiments.report redraws when they differ)
PAIRED_STATS_NOTE = "paired statistics: "


def stats_note(unit: str, correction: str) -> str:
    """The README.txt line that records the statistics the figures were drawn with."""
    return f"{PAIRED_STATS_NOTE}unit={unit} correction={correction}"


@dataclass
class PlotReport:
    """Files written, figures skipped (with the reason) and notes on figures drawn in part ("showing 6 of 9")."""

    folder: Path
    dpi: int = 200
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the numbers a figure draws, by figure stem (also written as ``plots/<stem>.csv``)
    data: dict[str, Any] = field(default_factory=dict)
    #: drawn in red above every figure (e.g. "incomplete: 378 of 1,728 trials")
    banner: str | None = None
    #: a title drawn above every figure, and a (width, height) in inches every figure is scaled to
    title: str | None = None
    size: tuple[float, float] | None = None


def image_ci(g, col: str, level: float = 0.95, unit: str = "image") -> tuple[float, float, float, int]:
    """:func:`mean_ci` of ``g[col]`` with the image as the unit: the trials of one image (its seeds,
    channel realizations) are averaged first, then the t-interval runs over the images
    (:func:`experiments.paired.image_mean_ci`); ``unit="trial"`` gives :func:`mean_ci` over the rows."""
    from ..paired import image_column, image_mean_ci

    return image_mean_ci(g[col].to_numpy(dtype=np.float64), g[image_column(g)].to_numpy(), level, unit)


def plot_style() -> dict[str, Any]:
    return {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 3.5, "axes.grid": True,
            "grid.alpha": 0.3, "savefig.bbox": "tight", "savefig.dpi": 200, "pdf.fonttype": 42}


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", s).strip("_")[:80] or "x"


def _relayout(fig) -> None:
    """Lay a resized figure out again: the axes fill what the figure legend (bottom) and the suptitle (top)
    leave, so a figure drawn at its natural size and then set to a user's ``size`` does not overlap."""
    import warnings

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    h = fig.get_size_inches()[1] * fig.dpi
    bottom = max((lg.get_window_extent(r).y1 for lg in fig.legends), default=0.0) / h
    sup = getattr(fig, "_suptitle", None)
    top = (sup.get_window_extent(r).y0 / h) if sup is not None and sup.get_text() else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # a too-small size: matplotlib's best effort, no warning spam
        fig.tight_layout(rect=(0, min(max(bottom, 0.0) + 0.01, 0.45), 1, max(min(top, 1.0) - 0.01, 0.55)))


def save_figure(fig, folder: Path, stem: str, formats: Sequence[str], report: PlotReport) -> None:
    import textwrap

    import matplotlib.pyplot as plt

    if report.size:
        fig.set_size_inches(*report.size)
        _relayout(fig)
    top = []
    if report.title:
        top.append((report.title, "k", 10))
    if report.banner:
        top.append(("\n".join(textwrap.wrap(report.banner, 110)), "firebrick", 7.5))
    y = 1.0
    for text, color, size in reversed(top):   # stacked upwards from the figure's top edge (bbox tight keeps them)
        t = fig.text(0.5, y, text, ha="center", va="bottom", color=color, fontsize=size, fontweight="bold")
        y += (text.count("\n") + 1) * size * 1.35 / 72 / fig.get_size_inches()[1]
        del t
    for ext in formats:
        p = folder / f"{stem}.{ext}"
        fig.savefig(p, dpi=report.dpi)
        report.files.append(p)
    plt.close(fig)


def make_panels(n: int, w: float = 2.6, h: float = 2.1):
    import matplotlib.pyplot as plt

    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def metric_column(df) -> str | None:
    return next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns and df[m].notna().any()), None)


def method_names(df) -> list[str]:
    return list(dict.fromkeys(df["method"]))


def fec_names(df) -> list[str]:
    return sorted(dict.fromkeys(df["fec"]), key=lambda f: (f != "none", f))


def add_legend(fig, methods: list[str], fecs: list[str], colors: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], marker="o", label=method_label(m)) for m in methods]
    if len(fecs) > 1:
        handles += [Line2D([], [], color="0.3", ls=LINESTYLES[i % len(LINESTYLES)], label=f"FEC {f}")
                    for i, f in enumerate(fecs)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * ((len(handles) - 1) // 6)))
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(handles) - 1) // 6), 1, 1))


#: one colour per concealment method in every figure of every sweep (tab10 / tab20 entries); others: grey shades
METHOD_COLORS = {"none": "#7f7f7f", "mean": "#bcbd22", "neighbor": "#2ca02c", "latent_avg": "#1f77b4",
                 "latent_avg_soft": "#aec7e8", "ar": "#d62728", "ar_naive": "#ff9896", "ar_mean": "#e377c2",
                 "ar_soft": "#f7b6d2", "bidir": "#9467bd", "bidir_mean": "#8c564b", "bidir_soft": "#c5b0d5",
                 "bidir_soft_l2": "#c49c94"}
#: the names figures show for the methods (their config names in brackets where they differ much)
METHOD_LABELS = {
    "none": "none (lost = index 0)",
    "mean": "mean codeword",
    "neighbor": "nearest neighbour",
    "latent_avg": "latent average",
    "latent_avg_soft": "latent average (soft)",
    "ar": "AR transformer",
    "ar_naive": "AR transformer (naive)",
    "ar_mean": "AR transformer (mean)",
    "ar_soft": "AR transformer (soft)",
    "bidir": "bidir. transformer",
    "bidir_mean": "bidir. transformer (mean)",
    "bidir_soft": "bidir. transformer (soft)",
    "bidir_soft_l2": "bidir. transformer (soft, L2)",
}


def method_label(m: str) -> str:
    """The name a figure shows for method label ``m`` (:data:`METHOD_LABELS`, else ``m``; a decoder variant,
    ``bidir_soft@robust``, adds ``+ robust decoder``)."""
    from codec.conceal.decoder_variant import split_variant_label

    base, dec = split_variant_label(m)
    name = METHOD_LABELS.get(base, base)
    return name if dec == "plain" else f"{name} + {dec} decoder"


def method_colors(methods: list[str]) -> dict[str, Any]:
    """Stable colours: :data:`METHOD_COLORS`, the same for a method in every sweep (a decoder variant of a
    method, ``m@robust``: the method's hue, saturated and darkened, so variants of pale colours stay apart);
    unknown methods get greys."""
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv, to_rgb

    from codec.conceal.decoder_variant import split_variant_label

    def known(m: str) -> Any:
        base, dec = split_variant_label(m)
        if base not in METHOD_COLORS:
            return None
        if dec == "plain":
            return METHOD_COLORS[base]
        h, sat, v = rgb_to_hsv(to_rgb(METHOD_COLORS[base]))
        return tuple(float(c) for c in hsv_to_rgb((h, max(sat, 0.75), 0.55 * v)))

    other = [m for m in methods if known(m) is None]
    greys = {m: str(0.15 + 0.5 * i / max(1, len(other))) for i, m in enumerate(other)}
    return {m: known(m) or greys.get(m) for m in methods}


def pk_columns(df) -> list[str]:
    """Extra columns that split panels when the sweep varies them (packetization: among packet rows only)."""
    keys = ["codebook_size"] if df["codebook_size"].nunique() > 1 else []
    pk = df[df["channel_kind"] != "index"]
    return keys + [c for c in ("mtu", "interleave", "coder") if pk[c].nunique() > 1]


_SHORT = {"codebook_size": "S", "mtu": "MTU", "interleave": "il.", "coder": "coder"}


def panel_title(first: str, keys: Sequence[str], values: Sequence[Any], kind: str | None = None) -> str:
    import textwrap

    extra = [
        f"{_SHORT.get(c, c)}={v}"
        for c, v in zip(keys, values, strict=False)
        if not (kind == "index" and c in ("mtu", "interleave", "coder"))
    ]
    return "\n".join(textwrap.wrap(", ".join([str(first).replace(",", ", ")] + extra), 44))


def pick_even(items: list, k: int) -> list:
    """Up to k items, evenly spaced, always keeping the first and the last."""
    if len(items) <= k:
        return items
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in idx]
