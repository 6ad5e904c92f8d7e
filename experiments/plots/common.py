"""Shared pieces of the plots package: styles, labels, PlotReport, mean_ci / image_ci and panel/legend helpers.

Every figure module (:mod:`.curves`, :mod:`.fec`, :mod:`.rate`, :mod:`.grids`) draws with these;
matplotlib is imported lazily (``make_plots`` selects the Agg backend first).
"""
from __future__ import annotations

import math
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
    """Files written and figures skipped (with the reason)."""

    folder: Path
    dpi: int = 200
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: the numbers a figure draws, by figure stem (also written as ``plots/<stem>.csv``)
    data: dict[str, Any] = field(default_factory=dict)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of the Student t confidence interval of the mean.

    half-width = t_{(1+level)/2, n−1} · s / √n with the sample std s (ddof 1);
    n = 1 gives a zero-width interval.  NaN / inf values are dropped.
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, m, m, 1
    h = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return m, m - h, m + h, n


def image_ci(g, col: str, level: float = 0.95, unit: str = "image") -> tuple[float, float, float, int]:
    """:func:`mean_ci` of ``g[col]`` with the image as the unit: the trials of one image (its seeds,
    channel realizations) are averaged first, then the t-interval runs over the images
    (:func:`experiments.paired.image_mean_ci`); ``unit="trial"`` gives :func:`mean_ci` over the rows."""
    from ..paired import image_column, image_mean_ci

    return image_mean_ci(g[col].to_numpy(dtype=np.float64), g[image_column(g)].to_numpy(), level, unit)


def _style() -> dict[str, Any]:
    return {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
            "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 3.5, "axes.grid": True,
            "grid.alpha": 0.3, "savefig.bbox": "tight", "savefig.dpi": 200, "pdf.fonttype": 42}


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", s).strip("_")[:80] or "x"


def _save(fig, folder: Path, stem: str, formats: Sequence[str], report: PlotReport) -> None:
    import matplotlib.pyplot as plt

    for ext in formats:
        p = folder / f"{stem}.{ext}"
        fig.savefig(p, dpi=report.dpi)
        report.files.append(p)
    plt.close(fig)


def _panels(n: int, w: float = 2.6, h: float = 2.1):
    import matplotlib.pyplot as plt

    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _metric(df) -> str | None:
    return next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns and df[m].notna().any()), None)


def _methods(df) -> list[str]:
    return list(dict.fromkeys(df["method"]))


def _fecs(df) -> list[str]:
    return sorted(dict.fromkeys(df["fec"]), key=lambda f: (f != "none", f))


def _legend(fig, methods: list[str], fecs: list[str], colors: dict[str, Any]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in methods]
    if len(fecs) > 1:
        handles += [Line2D([], [], color="0.3", ls=LINESTYLES[i % len(LINESTYLES)], label=f"FEC {f}")
                    for i, f in enumerate(fecs)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * ((len(handles) - 1) // 6)))
    fig.tight_layout(rect=(0, 0.06 + 0.035 * ((len(handles) - 1) // 6), 1, 1))


def _colors(methods: list[str]) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _pk_key(df) -> list[str]:
    """Extra columns that split panels when the sweep varies them (packetization: among packet rows only)."""
    keys = ["codebook_size"] if df["codebook_size"].nunique() > 1 else []
    pk = df[df["channel_kind"] != "index"]
    return keys + [c for c in ("mtu", "interleave", "coder") if pk[c].nunique() > 1]


_SHORT = {"codebook_size": "S", "mtu": "MTU", "interleave": "il.", "coder": "coder"}


def _title(first: str, keys: Sequence[str], values: Sequence[Any], kind: str | None = None) -> str:
    import textwrap

    extra = [f"{_SHORT.get(c, c)}={v}" for c, v in zip(keys, values)
             if not (kind == "index" and c in ("mtu", "interleave", "coder"))]
    return "\n".join(textwrap.wrap(", ".join([str(first).replace(",", ", ")] + extra), 44))


def _pick(items: list, k: int) -> list:
    """Up to k items, evenly spaced, always keeping the first and the last."""
    if len(items) <= k:
        return items
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, k)).astype(int))
    return [items[i] for i in idx]
