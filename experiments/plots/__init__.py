"""Figures of a sweep's results folder (PNG + PDF into ``<results>/plots/``).

``make_plots(folder)`` draws every figure the data supports and skips the
others with a note (never an error):

* ``paired_vs_loss`` — the paired view (drawn first; numbers in ``paired_vs_loss.csv``): one row
  per (channel family, FEC), x = loss rate; (a) ΔLPIPS of each method vs the *loss-free
  reconstruction* of the same image (``lpips_alex_vs_lossfree``) with its 95 % t-interval over
  images × seeds; (b) the paired difference to a reference method (``reference=``: a method name,
  or ``"best_baseline"``, per point the best model-free method) with its interval
  (:func:`experiments.paired.paired_differences`), a zero line, markers filled when the interval
  excludes 0.  Needs ≥ 2 loss rates in a family.
* ``fec_vs_bits`` — at each packet-channel point (``fec_channel=`` picks one), LPIPS vs the
  original against total bits per pixel (headers + parity included), one line per (FEC, method)
  across codebook sizes, a thin line joining a method without → with FEC, a star for an idealised
  FEC (:func:`ideal_fec`) and a dotted loss-free level; bars: the t-interval of the loss penalty
  LPIPS − loss-free LPIPS (image effect removed).  Methods: none, the best model-free baseline and
  the best method.  Numbers in ``fec_vs_bits.csv``.  Needs ≥ 2 FEC settings on a channel point.
* ``lpips_vs_loss`` — mean LPIPS vs nominal loss rate, one panel per channel
  family (e.g. Gilbert–Elliott at one mean burst length), one line per
  concealment method (colour) and FEC setting (line style), with 95 %
  confidence bands (Student t-interval over images × seeds:
  mean ± t₀.₉₇₅,ₙ₋₁ · s/√n).  Needs ≥ 2 loss rates in a family.
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

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from codec.errors import ParameterError

__all__ = ["PlotReport", "make_plots", "mean_ci", "METRIC_LABELS", "ideal_fec"]

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


def _curves(ax, d, x: str, metric: str, methods: list[str], fecs: list[str], colors, xscale: float = 1.0) -> None:
    for m in methods:
        for j, f in enumerate(fecs):
            s = d[(d["method"] == m) & (d["fec"] == f)]
            if s.empty:
                continue
            pts = []
            for xv, g in s.groupby(x, sort=True):
                mu, lo, hi, _ = mean_ci(g[metric])
                pts.append((float(xv) * xscale, mu, lo, hi))
            if not pts:
                continue
            a = np.array(pts)
            ls = LINESTYLES[j % len(LINESTYLES)]
            ax.plot(a[:, 0], a[:, 1], color=colors[m], ls=ls, marker="o")
            if np.isfinite(a[:, 2:]).all() and (a[:, 3] > a[:, 2]).any():
                ax.fill_between(a[:, 0], a[:, 2], a[:, 3], color=colors[m], alpha=0.13, lw=0)


# --------------------------------------------------------------------------- figures
def plot_loss_curves(df, folder: Path, formats, report: PlotReport) -> None:
    metric = _metric(df)
    d = df[df["channel_kind"].isin(["index", "loss"])] if metric else df.iloc[:0]
    if d.empty:
        report.skipped.append("lpips_vs_loss: no loss-channel rows with a metric")
        return
    keys = ["channel_family"] + _pk_key(d)
    panels = [(k, g) for k, g in d.groupby(keys, sort=False) if g["loss_rate_nominal"].round(6).nunique() >= 2]
    if not panels:
        report.skipped.append("lpips_vs_loss: every channel family has a single loss rate (needs ≥ 2)")
        return
    if len(panels) > MAX_PANELS:
        report.skipped.append(f"lpips_vs_loss: showing {MAX_PANELS} of {len(panels)} panels")
        panels = panels[:MAX_PANELS]
    import matplotlib.pyplot as plt

    methods, fecs = _methods(d), _fecs(d)
    colors = _colors(methods)
    with plt.rc_context(_style()):
        fig, axes = _panels(len(panels))
        for ax, (k, g) in zip(axes, panels):
            k = k if isinstance(k, tuple) else (k,)
            g = g.assign(_x=g["loss_rate_nominal"].round(6))
            _curves(ax, g, "_x", metric, methods, fecs, colors, xscale=100.0)
            kind = g["channel_kind"].iloc[0]
            ax.set_title(_title(k[0], keys[1:], k[1:], kind))
            ax.set_xlabel("index loss rate (%)" if kind == "index" else "packet loss rate, stationary (%)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        _legend(fig, methods, fecs, colors)
        _save(fig, folder, "lpips_vs_loss", formats, report)


def plot_fec_vs_concealment(df, folder: Path, formats, report: PlotReport) -> None:
    metric = _metric(df)
    d = df[df["channel_kind"].isin(["loss", "bit"])] if metric else df.iloc[:0]
    if d.empty:
        report.skipped.append("fec_vs_concealment: no packet-channel rows")
        return
    extra = [c for c in ("mtu", "interleave", "coder") if d[c].nunique() > 1]
    keys = ["channel_label"] + extra
    panels = []
    for k, g in d.groupby(keys, sort=False):
        if g.groupby(["codebook_size", "fec"]).ngroups >= 2:
            panels.append((k, g))
    if not panels:
        report.skipped.append("fec_vs_concealment: needs ≥ 2 (codebook size, FEC) settings on one packet channel")
        return
    panels.sort(key=lambda kg: (kg[1]["channel_family"].iloc[0], float(kg[1]["loss_rate_nominal"].iloc[0])
                                if np.isfinite(kg[1]["loss_rate_nominal"].iloc[0]) else 0.0))
    if len(panels) > 6:
        report.skipped.append(f"fec_vs_concealment: showing 6 of {len(panels)} channel settings")
        panels = _pick(panels, 6)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = _methods(d)
    settings = sorted(dict.fromkeys(zip(d["codebook_size"], d["fec"])), key=lambda t: (-t[0], t[1] != "none", t[1]))
    cmap = plt.get_cmap("tab10")
    scol = {s: cmap(i % 10) for i, s in enumerate(settings)}
    with plt.rc_context(_style()):
        fig, axes = _panels(len(panels), w=2.8)
        for ax, (k, g) in zip(axes, panels):
            k = k if isinstance(k, tuple) else (k,)
            for mi, m in enumerate(methods):
                line = []
                for s in settings:
                    sg = g[(g["method"] == m) & (g["codebook_size"] == s[0]) & (g["fec"] == s[1])]
                    if sg.empty:
                        continue
                    x = float(sg["total_bpp"].mean())
                    mu, lo, hi, _ = mean_ci(sg[metric])
                    ax.errorbar(x, mu, yerr=[[mu - lo], [hi - mu]] if np.isfinite(lo) else None, fmt=MARKERS[mi % len(MARKERS)],
                                color=scol[s], ms=4, capsize=1.5, lw=0.8)
                    line.append((x, mu))
                if len(line) > 1:
                    a = np.array(sorted(line))
                    ax.plot(a[:, 0], a[:, 1], color="0.6", lw=0.6, zorder=0)
            ax.set_title(_title(k[0], extra, k[1:]))
            ax.set_xlabel("total rate incl. headers + FEC (bits/pixel)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        handles = [Line2D([], [], ls="", marker="s", color=scol[s], label=f"S={s[0]}, FEC {s[1]}") for s in settings]
        handles += [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="0.3", label=m) for i, m in enumerate(methods)]
        rows = (len(handles) - 1) // 5
        fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.035 * rows))
        fig.tight_layout(rect=(0, 0.07 + 0.035 * rows, 1, 1))
        _save(fig, folder, "fec_vs_concealment", formats, report)


def plot_burst_effect(df, folder: Path, formats, report: PlotReport) -> None:
    metric = _metric(df)
    d = df[(df["channel_kind"] == "loss") & np.isfinite(df["burst_nominal"])] if metric else df.iloc[:0]
    if d.empty:
        report.skipped.append("burst_effect: no packet-loss rows with a mean burst length")
        return
    d = d.assign(_L=d["loss_rate_nominal"].round(6), _B=d["burst_nominal"].round(3))
    keys = ["_L"] + _pk_key(d)
    panels = [(k, g) for k, g in d.groupby(keys, sort=True) if g["_B"].nunique() >= 2]
    if not panels:
        report.skipped.append("burst_effect: no loss rate with ≥ 2 mean burst lengths")
        return
    if len(panels) > MAX_PANELS:
        report.skipped.append(f"burst_effect: showing {MAX_PANELS} of {len(panels)} panels")
        panels = _pick(panels, MAX_PANELS)
    import matplotlib.pyplot as plt

    methods, fecs = _methods(d), _fecs(d)
    colors = _colors(methods)
    with plt.rc_context(_style()):
        fig, axes = _panels(len(panels))
        for ax, (k, g) in zip(axes, panels):
            k = k if isinstance(k, tuple) else (k,)
            _curves(ax, g, "_B", metric, methods, fecs, colors)
            ax.set_title(_title(f"stationary loss {100 * k[0]:g} %", keys[1:], k[1:]))
            ax.set_xlabel("mean burst length (packets)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if g["_B"].max() / max(g["_B"].min(), 1e-9) >= 8:
                ax.set_xscale("log")
        _legend(fig, methods, fecs, colors)
        _save(fig, folder, "burst_effect", formats, report)


def plot_rate_distortion(df, folder: Path, formats, report: PlotReport) -> None:
    lcol = next((c for c in ("lossfree_lpips_alex", "lossfree_lpips_vgg") if c in df.columns), None)
    if df["codebook_size"].nunique() < 2:
        report.skipped.append("rate_distortion: needs ≥ 2 codebook sizes")
        return
    u = df.drop_duplicates(["image_hash", "codebook_size"])
    cols = [c for c in (lcol, "lossfree_psnr") if c and c in u.columns]
    import matplotlib.pyplot as plt

    labels = {lcol: "loss-free LPIPS " + ("(AlexNet)" if lcol and "alex" in lcol else "(VGG)") + " ↓",
              "lossfree_psnr": "loss-free PSNR (dB) ↑"}
    with plt.rc_context(_style()):
        fig, axes = _panels(len(cols), w=2.8)
        for ax, c in zip(axes, cols):
            pts = []
            for S, g in u.groupby("codebook_size", sort=True):
                mu, lo, hi, _ = mean_ci(g[c])
                pts.append((float(g["bpp"].mean()), mu, lo, hi, int(S)))
            for img, g in u.groupby("image", sort=False):
                gg = g.sort_values("bpp")
                ax.plot(gg["bpp"], gg[c], color="0.75", lw=0.6, zorder=0)
            a = np.array([p[:4] for p in pts])
            ax.errorbar(a[:, 0], a[:, 1], yerr=[a[:, 1] - a[:, 2], a[:, 3] - a[:, 1]], fmt="o-", color="C0", capsize=2)
            for x, y, _, _, S in pts:
                ax.annotate(f"S={S}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
            ax.set_xlabel("source rate (bits/pixel)")
            ax.set_ylabel(labels[c])
            ax.set_title("rate–distortion (mean over images; grey: per image)")
        fig.tight_layout()
        _save(fig, folder, "rate_distortion", formats, report)


def _paired_metric(df) -> str | None:
    return next((m for m in ("lpips_alex_vs_lossfree", "lpips_vgg_vs_lossfree", "psnr_vs_lossfree")
                 if m in df.columns and df[m].notna().any()), None)


def _ref_title(refs: Sequence[str], reference: str) -> str:
    names = "/".join(dict.fromkeys(refs))
    return f"best baseline ({names})" if reference == "best_baseline" else names or reference


def plot_paired_vs_loss(df, folder: Path, formats, report: PlotReport, reference: str = "best_baseline") -> None:
    from .paired import paired_curves

    metric = _paired_metric(df)
    d = df[df["channel_kind"].isin(["index", "loss"])] if metric and "unit_id" in df.columns else df.iloc[:0]
    if d.empty:
        report.skipped.append("paired_vs_loss: no loss-channel rows with a *_vs_lossfree metric")
        return
    pts = paired_curves(d, metric, reference)
    pts["_x"] = 100.0 * pts["loss_rate_nominal"].round(6)
    keys = [c for c in pts.columns if c not in ("channel_label", "loss_rate_nominal", "panel", "method", "reference",
                                               "n", "value", "lo", "hi", "significant", "_x")]
    rows = [(k, g) for k, g in pts.groupby(keys, sort=False, dropna=False) if g["_x"].nunique() >= 2]
    fam_order = list(dict.fromkeys(d["channel_family"]))
    rows.sort(key=lambda kg: (fam_order.index(kg[0][0]), kg[0][1] != "none", str(kg[0][1:])))
    if not rows:
        report.skipped.append("paired_vs_loss: every channel family has a single loss rate (needs ≥ 2)")
        return
    if len(rows) > 6:
        report.skipped.append(f"paired_vs_loss: showing 6 of {len(rows)} (family, FEC) rows")
        rows = rows[:6]
    pts.drop(columns="_x").to_csv(folder / "paired_vs_loss.csv", index=False)
    report.data["paired_vs_loss"] = pts.drop(columns="_x")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = _methods(d)
    colors = _colors(methods)
    kind = {f: k for f, k in zip(d["channel_family"], d["channel_kind"])}
    with plt.rc_context(_style()):
        fig, axes = plt.subplots(len(rows), 2, figsize=(7.2, 2.05 * len(rows)), squeeze=False)
        for (k, g), (ax_a, ax_b) in zip(rows, axes):
            span = max(g["_x"].max() - g["_x"].min(), 1e-9)
            dx = 0.022 * span
            for i, m in enumerate(methods):
                off = (i - (len(methods) - 1) / 2) * dx
                for ax, panel in ((ax_a, "a"), (ax_b, "b")):
                    s = g[(g["panel"] == panel) & (g["method"] == m)].sort_values("_x")
                    if s.empty:
                        continue
                    x = s["_x"].to_numpy() + off
                    y, lo, hi = (s[c].to_numpy(dtype=float) for c in ("value", "lo", "hi"))
                    ok = np.isfinite(lo)
                    ax.plot(x, y, color=colors[m], lw=1.0)
                    ax.errorbar(x[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="none", ecolor=colors[m],
                                elinewidth=0.9, capsize=1.8)
                    filled = s["significant"].to_numpy(bool) if panel == "b" else np.ones(len(s), bool)
                    ax.scatter(x[filled], y[filled], color=colors[m], s=14, zorder=3)
                    ax.scatter(x[~filled], y[~filled], facecolors="white", edgecolors=colors[m], s=14, zorder=3,
                               linewidths=0.9)
            ax_b.axhline(0.0, color="k", lw=0.8, zorder=1)
            fam, fec = k[0], k[1]
            title = _title(fam, [c for c in keys[2:]], list(k[2:]), kind.get(fam))
            ax_a.set_title(f"(a) {title} · FEC {fec}")
            refs = g.loc[g["panel"] == "b", "reference"]
            ax_b.set_title(f"(b) difference to {_ref_title(refs, reference)}")
            xl = "index loss rate (%)" if kind.get(fam) == "index" else "packet loss rate, stationary (%)"
            for ax in (ax_a, ax_b):
                ax.set_xlabel(xl)
                ax.set_xticks(sorted(g["_x"].unique()))
            ax_a.set_ylabel(METRIC_LABELS.get(metric, metric))
            ax_b.set_ylabel("paired difference " + ("↓" if "lpips" in metric else "↑"))
        handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in methods]
        handles += [Line2D([], [], ls="", marker="o", color="0.3", label="(b) 95 % CI excludes 0"),
                    Line2D([], [], ls="", marker="o", mfc="white", color="0.3", label="(b) not significant")]
        nrow = (len(handles) - 1) // 5 + 1
        h = fig.get_size_inches()[1]
        fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("paired over images × seeds (n per point: paired_vs_loss.csv); bars: 95 % t-interval; "
                     "(b) reference = zero line", fontsize=8)
        fig.tight_layout(rect=(0, (0.12 + 0.17 * nrow) / h, 1, 1 - 0.05 / h))
        _save(fig, folder, "paired_vs_loss", formats, report)


_MATCH = ("image_hash", "seed", "codebook_size", "channel_label", "mtu", "interleave", "coder", "method")


def ideal_fec(df, metric: str = "lpips_alex"):
    """Per FEC trial, the quality an *idealised* FEC would give: (rows with column ``ideal``, note).

    ideal = the loss-free quality (``lossfree_<metric>``) when every FEC block's losses ≤ its
    parity (the trial's ``data_lost`` = 0 after decoding), else the metric of the same unit's
    no-FEC trial (matched on image, seed, codebook size, channel point, packetization, method).
    Without ``data_lost`` or a matching no-FEC trial the ideal is the loss-free quality (say so in note).
    """
    lf = f"lossfree_{metric}"
    f = df[df["fec"] != "none"].copy()
    if lf not in df.columns:
        f["ideal"] = np.nan
        return f, f"column {lf!r} missing: no ideal FEC"
    if "data_lost" not in df.columns:
        f["ideal"] = f[lf]
        return f, "column 'data_lost' missing: ideal FEC drawn as loss-free quality at the FEC rate"
    keys = [c for c in _MATCH if c in df.columns]
    nofec = df[df["fec"] == "none"].groupby(keys, dropna=False)[metric].mean().rename("_nofec")
    f = f.join(nofec, on=keys)
    ok = f["data_lost"].to_numpy() == 0
    f["ideal"] = np.where(ok, f[lf], f["_nofec"])
    missing = ~ok & f["_nofec"].isna().to_numpy()
    note = ""
    if missing.any():
        f.loc[missing, "ideal"] = f.loc[missing, lf]
        note = f"{int(missing.sum())} FEC trials without a matching no-FEC trial: ideal = loss-free"
    return f.drop(columns="_nofec"), note


def _show_methods(d, metric: str, higher: bool) -> list[str]:
    from .paired import BASELINES

    means = d.groupby("method")[metric].mean()
    means = means[means.notna()]
    if means.empty:
        return []
    best = means.idxmax() if higher else means.idxmin()
    base = means[[m for m in means.index if m in BASELINES and m != "none"]]
    picks = ["none"] if "none" in means.index else []
    if len(base):
        picks.append(base.idxmax() if higher else base.idxmin())
    picks.append(best)
    return [m for m in _methods(d) if m in set(picks)]


def plot_fec_vs_bits(df, folder: Path, formats, report: PlotReport, channel: str | None = None,
                     methods: Sequence[str] | None = None) -> None:
    metric = _metric(df)
    d = df[df["channel_kind"].isin(["loss", "bit"])] if metric else df.iloc[:0]
    if channel is not None:
        d = d[d["channel_label"] == channel]
    if d.empty:
        report.skipped.append("fec_vs_bits: no packet-channel rows" + (f" for channel {channel!r}" if channel else ""))
        return
    extra = [c for c in ("mtu", "interleave", "coder") if d[c].nunique() > 1]
    keys = ["channel_label"] + extra
    panels = [(k, g) for k, g in d.groupby(keys, sort=False) if g["fec"].nunique() >= 2]
    if not panels:
        report.skipped.append("fec_vs_bits: one FEC setting per channel point (needs ≥ 2 to compare)")
        return
    panels.sort(key=lambda kg: (kg[1]["channel_family"].iloc[0], float(np.nan_to_num(kg[1]["loss_rate_nominal"].iloc[0]))))
    if len(panels) > 6:
        report.skipped.append(f"fec_vs_bits: showing 6 of {len(panels)} channel points")
        panels = _pick(panels, 6)
    higher = metric in ("psnr", "ssim")
    shown = list(methods) if methods else _show_methods(d, metric, higher)
    ideal, note = ideal_fec(d[d["method"].isin(shown)], metric)
    if note:
        report.skipped.append(f"fec_vs_bits: {note}")
    lf = f"lossfree_{metric}"
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fecs = _fecs(d)
    colors = _colors(_methods(d))
    rows = []
    with plt.rc_context(_style()):
        fig, axes = _panels(len(panels), w=2.9, h=2.3)
        for ax, (k, g) in zip(axes, panels):
            k = k if isinstance(k, tuple) else (k,)
            ig = ideal[ideal["channel_label"] == k[0]]
            for c, v in zip(extra, k[1:]):
                ig = ig[ig[c] == v]
            xr = max(float(g["total_bpp"].max() - g["total_bpp"].min()), 1e-9)
            for mi, m in enumerate(shown):
                off = (mi - (len(shown) - 1) / 2) * 0.02 * xr
                for j, f in enumerate(fecs):
                    line = []
                    for S, sg in g[(g["method"] == m) & (g["fec"] == f)].groupby("codebook_size"):
                        pen = (sg[metric] - sg[lf]).to_numpy() if lf in sg.columns else sg[metric].to_numpy()
                        mu_p, lo_p, hi_p, n = mean_ci(pen)
                        mu = float(sg[metric].mean())
                        x = float(sg["total_bpp"].mean())
                        line.append((x, mu, mu + lo_p - mu_p, mu + hi_p - mu_p))
                        row = {"channel": k[0], **dict(zip(extra, k[1:])), "codebook_size": int(S), "fec": f,
                               "method": m, "total_bpp": x, metric: mu, "lo": line[-1][2], "hi": line[-1][3], "n": n}
                        if f != "none":
                            ii = ig[(ig["method"] == m) & (ig["fec"] == f) & (ig["codebook_size"] == S)]["ideal"]
                            row["ideal"] = float(ii.mean()) if len(ii) else math.nan
                        rows.append(row)
                    if not line:
                        continue
                    a = np.array(sorted(line))
                    mk = MARKERS[j % len(MARKERS)]
                    ax.errorbar(a[:, 0] + off, a[:, 1], yerr=[a[:, 1] - a[:, 2], a[:, 3] - a[:, 1]], color=colors[m],
                                ls=LINESTYLES[j % len(LINESTYLES)], marker=mk, ms=4.5, capsize=1.5, lw=1.0,
                                elinewidth=0.6, zorder=3)
                # the same method without / with FEC, per codebook size: the trade the reader compares
                for S, sg in g[g["method"] == m].groupby("codebook_size"):
                    a = sg.groupby("fec").agg(x=("total_bpp", "mean"), y=(metric, "mean")).sort_values("x")
                    ax.plot(a["x"] + off, a["y"], color=colors[m], lw=1.1, alpha=0.85, zorder=2)
            for f in fecs[1:]:
                for S, sg in ig[ig["fec"] == f].groupby("codebook_size"):
                    ax.scatter([float(sg["total_bpp"].mean())], [float(sg["ideal"].mean())], marker="*", s=45,
                               facecolors="none", edgecolors="k", linewidths=0.8, zorder=4)
            if lf in g.columns:
                for S, sg in g.groupby("codebook_size"):
                    ax.axhline(float(sg.drop_duplicates("image_hash")[lf].mean()), color="0.5", ls=":", lw=0.8)
            ax.set_title(_title(k[0], extra, k[1:]))
            ax.set_xlabel("total rate incl. headers + parity (bits/pixel)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        handles = [Line2D([], [], color=colors[m], marker="o", label=m) for m in shown]
        handles += [Line2D([], [], color="0.3", ls=LINESTYLES[j % len(LINESTYLES)], marker=MARKERS[j % len(MARKERS)],
                           label=f"FEC {f}") for j, f in enumerate(fecs)]
        handles += [Line2D([], [], ls="", marker="*", mfc="none", color="k", ms=7, label="ideal FEC"),
                    Line2D([], [], color="0.5", ls=":", label="loss-free")]
        nrow = (len(handles) - 1) // 5
        fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False,
                   bbox_to_anchor=(0.5, -0.02 - 0.035 * nrow))
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(
            "mean over images × seeds; bars: 95 % t-interval of the loss penalty (LPIPS − loss-free LPIPS of the "
            "same image); thin line: same method without → with FEC", 60 * min(3, len(panels)))), fontsize=8)
        fig.tight_layout(rect=(0, 0.07 + 0.035 * nrow, 1, 0.97))
        _save(fig, folder, "fec_vs_bits", formats, report)
    import pandas as pd

    table = pd.DataFrame(rows)
    table.to_csv(folder / "fec_vs_bits.csv", index=False)
    report.data["fec_vs_bits"] = table


def plot_example_grids(df, results: Path, folder: Path, formats, report: PlotReport, max_grids: int = 12) -> None:
    if "example_dir" not in df.columns:
        report.skipped.append("image grids: no example_dir column")
        return
    d = df[df["example_dir"].fillna("") != ""]
    if d.empty:
        report.skipped.append("image grids: the sweep stored no examples (examples.enabled false?)")
        return
    import matplotlib.pyplot as plt
    from PIL import Image

    keys = ["channel_family", "codebook_size", "fec", "mtu", "interleave", "coder"]
    groups = list(d.groupby(keys, sort=False))
    if len(groups) > max_grids:
        report.skipped.append(f"image grids: drew {max_grids} of {len(groups)}")
        groups = groups[:max_grids]
    methods = _methods(d)
    for k, g in groups:
        pts = g.drop_duplicates("unit_id").sort_values(["loss_rate_nominal", "channel_label"])
        pts = pts.iloc[_pick(list(range(len(pts))), 4)]
        cols = ["original", "loss-free", "lost indices"] + methods
        first = Path(results) / pts["example_dir"].iloc[0]
        base = first.parent
        try:
            h0, w0 = np.asarray(Image.open(base / "original.png")).shape[:2]
        except OSError:
            report.skipped.append(f"image grid {k}: example files missing under {base}")
            continue
        cw = 1.25
        chh = cw * h0 / w0
        with plt.rc_context(_style()):
            fig, axes = plt.subplots(len(pts), len(cols), figsize=(cw * len(cols), chh * len(pts) + 0.35), squeeze=False)
            for r, (_, row) in enumerate(pts.iterrows()):
                ex = Path(results) / row["example_dir"]
                files = [base / "original.png", base / "lossfree.png", ex / "lost.png"] + [ex / f"{m}.png" for m in methods]
                urows = g[g["unit_id"] == row["unit_id"]].set_index("method")
                for c, (f, name) in enumerate(zip(files, cols)):
                    ax = axes[r][c]
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.grid(False)
                    if f.exists():
                        im = np.asarray(Image.open(f).convert("RGB"))
                        ax.imshow(im, interpolation="nearest" if max(im.shape[:2]) < 128 else "antialiased")
                    else:
                        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                    if r == 0:
                        ax.set_title(name, fontsize=7)
                    if c >= 3 and name in urows.index and "lpips_alex" in urows.columns:
                        ax.text(0.02, 0.03, f"LPIPS {urows.loc[name, 'lpips_alex']:.3f}", transform=ax.transAxes,
                                fontsize=5.5, va="bottom", ha="left",
                                bbox={"boxstyle": "square,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
                    if c == 0:
                        lab = (f"{100 * row['loss_rate_nominal']:.3g} % loss" if np.isfinite(row["loss_rate_nominal"])
                               else str(row["channel_label"]))
                        ax.set_ylabel(f"{lab}\n{100 * row['loss_ratio']:.1f} % idx lost", fontsize=6)
            fig.suptitle(f"{k[0]} · S={k[1]} · FEC {k[2]}" + (f" · MTU {k[3]} · {k[4]}" if k[3] else ""), fontsize=8)
            fig.tight_layout(pad=0.3, w_pad=0.2, h_pad=0.3)
            _save(fig, folder, f"grid_{_slug(k[0])}_S{k[1]}_{_slug(k[2])}" + (f"_mtu{k[3]}_{k[4]}_{k[5]}" if k[3] else ""),
                  formats, report)


def make_plots(results: str | Path, formats: Sequence[str] = ("png", "pdf"),
               log: Callable[[str], None] | None = None, dpi: int = 200, reference: str = "best_baseline",
               fec_channel: str | None = None) -> PlotReport:
    """Draw every supported figure of a results folder into ``<results>/plots/`` (PNGs at ``dpi``).

    ``reference``: the method panel (b) of ``paired_vs_loss`` subtracts (a method name, or
    ``"best_baseline"``: per point the best model-free method); ``fec_channel``: draw ``fec_vs_bits``
    at this channel label only (default: up to six packet-channel points).  The numbers of the
    paired and FEC figures are returned in ``PlotReport.data`` and written as ``plots/<figure>.csv``.
    """
    import functools

    import matplotlib

    matplotlib.use("Agg", force=True)
    from .sweep import read_results

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
    figures = (functools.partial(plot_paired_vs_loss, reference=reference), plot_loss_curves,
               functools.partial(plot_fec_vs_bits, channel=fec_channel), plot_fec_vs_concealment, plot_burst_effect,
               plot_rate_distortion)
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
    lines = ["Figures of this sweep (see experiments/plots.py for what each shows).", "",
             f"{PAIRED_REFERENCE_NOTE}{reference}"]
    lines += [f"written: {p.name}" for p in report.files]
    lines += [f"skipped: {s}" for s in report.skipped]
    (folder / "README.txt").write_text("\n".join(lines) + "\n")
    if log:
        for s in report.skipped:
            log(f"plot note: {s}")
    return report
