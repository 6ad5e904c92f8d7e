"""Loss-rate and burst-length figures: ``lpips_vs_loss``, ``paired_vs_loss`` and ``burst_effect``.

See :mod:`experiments.plots` for what each figure shows and when it is skipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .common import (
    LINESTYLES,
    MAX_PANELS,
    METRIC_LABELS,
    PlotReport,
    add_legend,
    fec_names,
    image_ci,
    make_panels,
    method_colors,
    method_label,
    method_names,
    metric_column,
    panel_title,
    pick_even,
    pk_columns,
    plot_style,
    save_figure,
)


def _curves(ax, d, x: str, metric: str, methods: list[str], fecs: list[str], colors, xscale: float = 1.0,
            unit: str = "image") -> None:
    for m in methods:
        for j, f in enumerate(fecs):
            s = d[(d["method"] == m) & (d["fec"] == f)]
            if s.empty:
                continue
            pts = []
            for xv, g in s.groupby(x, sort=True):
                mu, lo, hi, _ = image_ci(g, metric, unit=unit)
                pts.append((float(xv) * xscale, mu, lo, hi))
            if not pts:
                continue
            a = np.array(pts)
            ls = LINESTYLES[j % len(LINESTYLES)]
            ax.plot(a[:, 0], a[:, 1], color=colors[m], ls=ls, marker="o")
            if np.isfinite(a[:, 2:]).all() and (a[:, 3] > a[:, 2]).any():
                ax.fill_between(a[:, 0], a[:, 2], a[:, 3], color=colors[m], alpha=0.13, lw=0)



def _realised(g):
    """The measured loss rate of each row: undelivered / sent packets on packet channels, lost / all indices
    on index loss (``loss_ratio``)."""
    if g["channel_kind"].iloc[0] == "index" or "packet_loss_ratio" not in g.columns:
        return g["loss_ratio"]
    return g["packet_loss_ratio"]


def plot_loss_curves(df, folder: Path, formats, report: PlotReport, unit: str = "image", x: str = "nominal") -> None:
    """``x="realised"``: each point at the mean measured loss rate of its trials (horizontal bar: their
    range over images and seeds), not at the nominal rate it was run at."""
    metric = metric_column(df)
    d = df[df["channel_kind"].isin(["index", "loss"])] if metric else df.iloc[:0]
    if d.empty:
        report.skipped.append("lpips_vs_loss: no loss-channel rows with a metric")
        return
    keys = ["channel_family"] + pk_columns(d)
    panels = [(k, g) for k, g in d.groupby(keys, sort=False) if g["loss_rate_nominal"].round(6).nunique() >= 2]
    if not panels:
        report.skipped.append("lpips_vs_loss: every channel family has a single loss rate (needs ≥ 2)")
        return
    if len(panels) > MAX_PANELS:
        report.notes.append(f"lpips_vs_loss: showing {MAX_PANELS} of {len(panels)} panels")
        panels = panels[:MAX_PANELS]
    import matplotlib.pyplot as plt

    methods, fecs = method_names(d), fec_names(d)
    colors = method_colors(methods)
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(panels))
        for ax, (k, g) in zip(axes, panels, strict=False):
            k = k if isinstance(k, tuple) else (k,)
            g = g.assign(_x=g["loss_rate_nominal"].round(6))
            kind = g["channel_kind"].iloc[0]
            if x == "realised":   # the nominal point's mean realised rate, the same for every method / FEC
                real = _realised(g).astype(float)
                g = g.assign(_x=g.assign(_r=real).groupby("_x")["_r"].transform("mean").round(6))
                span = g.assign(_r=real).groupby("_x")["_r"].agg(["min", "max"])
                for _xv, r in span.iterrows():
                    ax.plot([100 * r["min"], 100 * r["max"]], [0.03, 0.03], transform=ax.get_xaxis_transform(),
                            color="0.4", lw=3, solid_capstyle="butt", alpha=0.6)  # just above the axis line
            _curves(ax, g, "_x", metric, methods, fecs, colors, xscale=100.0, unit=unit)
            ax.set_title(panel_title(k[0], keys[1:], k[1:], kind))
            # on its own line: side-by-side panels' labels must not run into each other
            what = ("realised: mean, grey bar: range" if x == "realised"
                    else "nominal" if kind == "index" else "stationary")
            ax.set_xlabel(f"{'index' if kind == 'index' else 'packet'} loss rate (%)\n{what}")
            if ax.get_subplotspec().is_first_col():  # one y label per row: neighbouring panels do not collide
                ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        add_legend(fig, methods, fecs, colors)
        save_figure(fig, folder, "lpips_vs_loss", formats, report)


def plot_burst_effect(df, folder: Path, formats, report: PlotReport, unit: str = "image") -> None:
    metric = metric_column(df)
    d = df[(df["channel_kind"] == "loss") & np.isfinite(df["burst_nominal"])] if metric else df.iloc[:0]
    if d.empty:
        report.skipped.append("burst_effect: no packet-loss rows with a mean burst length")
        return
    d = d.assign(_L=d["loss_rate_nominal"].round(6), _B=d["burst_nominal"].round(3))
    keys = ["_L"] + pk_columns(d)
    panels = [(k, g) for k, g in d.groupby(keys, sort=True) if g["_B"].nunique() >= 2]
    if not panels:
        report.skipped.append("burst_effect: no loss rate with ≥ 2 mean burst lengths")
        return
    if len(panels) > MAX_PANELS:
        report.notes.append(f"burst_effect: showing {MAX_PANELS} of {len(panels)} panels")
        panels = pick_even(panels, MAX_PANELS)
    import matplotlib.pyplot as plt

    methods, fecs = method_names(d), fec_names(d)
    colors = method_colors(methods)
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(panels))
        for ax, (k, g) in zip(axes, panels, strict=False):
            k = k if isinstance(k, tuple) else (k,)
            _curves(ax, g, "_B", metric, methods, fecs, colors, unit=unit)
            ax.set_title(panel_title(f"stationary loss {100 * k[0]:g} %", keys[1:], k[1:]))
            ax.set_xlabel("mean burst length (packets)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
            if g["_B"].max() / max(g["_B"].min(), 1e-9) >= 8:
                ax.set_xscale("log")
        add_legend(fig, methods, fecs, colors)
        save_figure(fig, folder, "burst_effect", formats, report)


def _paired_metric(df) -> str | None:
    from ..paired import default_paired_metric

    return default_paired_metric(df)


def _ref_title(refs: Sequence[str], reference: str) -> str:
    names = "/".join(dict.fromkeys(refs))
    return f"best baseline ({names})" if reference == "best_baseline" else names or reference


def _span(a, b) -> str:
    return f"{a}" if a == b else f"{a}–{b}"


def plot_paired_vs_loss(
    df, folder: Path, formats, report: PlotReport, reference: str = "best_baseline", unit: str = "image",
    correction: str = "holm",
) -> None:
    from ..paired import CORRECTION_NAMES, CURVE_COLUMNS, few_images_warning, paired_curves

    metric = _paired_metric(df)
    d = df[df["channel_kind"].isin(["index", "loss"])] if metric and "unit_id" in df.columns else df.iloc[:0]
    if d.empty:
        report.skipped.append("paired_vs_loss: no loss-channel rows with a *_vs_lossfree metric")
        return
    pts = paired_curves(d, metric, reference, unit=unit, correction=correction)
    fam_stats = pts.attrs["family"]
    pts["_x"] = 100.0 * pts["loss_rate_nominal"].round(6)
    keys = [c for c in pts.columns if c not in ("channel_label", "loss_rate_nominal", "_x", *CURVE_COLUMNS)]
    rows = [(k, g) for k, g in pts.groupby(keys, sort=False, dropna=False) if g["_x"].nunique() >= 2]
    fam_order = list(dict.fromkeys(d["channel_family"]))
    rows.sort(key=lambda kg: (fam_order.index(kg[0][0]), kg[0][1] != "none", str(kg[0][1:])))
    if not rows:
        report.skipped.append("paired_vs_loss: every channel family has a single loss rate (needs ≥ 2)")
        return
    if len(rows) > 6:
        report.notes.append(f"paired_vs_loss: showing 6 of {len(rows)} (family, FEC) rows")
        rows = rows[:6]
    pts.drop(columns="_x").to_csv(folder / "paired_vs_loss.csv", index=False)
    report.data["paired_vs_loss"] = pts.drop(columns="_x")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = method_names(d)
    colors = method_colors(methods)
    kind = {f: k for f, k in zip(d["channel_family"], d["channel_kind"], strict=False)}
    with plt.rc_context(plot_style()):
        fig, axes = plt.subplots(len(rows), 2, figsize=(7.4, 2.3 * len(rows) + 0.8), squeeze=False)
        for (k, g), (ax_a, ax_b) in zip(rows, axes, strict=False):
            _paired_row(ax_a, ax_b, k, g, methods, colors, keys, kind, reference, metric)
        handles = [Line2D([], [], color=colors[m], marker="o", label=method_label(m)) for m in methods]
        corr = "no correction" if correction == "none" else correction.replace("bh", "BH").replace("holm", "Holm")
        handles += [
            Line2D([], [], ls="", marker="o", color="0.3", label=f"(b) significant ({corr})"),
            Line2D([], [], ls="", marker="o", fillstyle="left", markerfacecoloralt="white", color="0.3",
                   label="(b) CI excludes 0, not after correction"),
            Line2D([], [], ls="", marker="o", mfc="white", color="0.3", label="(b) not significant"),
        ]
        if correction == "none":
            handles.pop(-2)
        nrow = (len(handles) - 1) // 5 + 1
        h = fig.get_size_inches()[1]
        fig.legend(
            handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False, bbox_to_anchor=(0.5, 0.0)
        )
        who = (
            f"unit: image (seeds averaged first), n_images = {_span(fam_stats['min_images'], fam_stats['max_images'])}"
            if unit == "image"
            else "unit: trial (images × seeds as if independent)"
        )
        lines = [
            f"{who}, n_seeds = {_span(fam_stats['min_seeds'], fam_stats['max_seeds'])} per point; bars: 95 % "
            f"t-interval (unadjusted); (b) zero line = reference",
            f"(b) verdicts: {CORRECTION_NAMES[correction]} over the figure's {fam_stats['m']} comparisons: "
            f"{fam_stats['n_adjusted']} significant, {fam_stats['n_unadjusted']} before correction",
        ]
        warn = few_images_warning(fam_stats)
        if warn:
            lines.append(f"only {fam_stats['min_images']} images per point: intervals unreliable, add images")
        fig.suptitle("\n".join(lines), fontsize=7.5, color="firebrick" if warn else "k")
        top = 0.12 + 0.14 * len(lines)
        fig.tight_layout(rect=(0, (0.12 + 0.17 * nrow) / h, 1, 1 - top / h))
        fig.align_ylabels(axes[:, 0])
        save_figure(fig, folder, "paired_vs_loss", formats, report)


def _paired_row(ax_a, ax_b, k, g, methods, colors, keys, kind, reference: str, metric: str) -> None:
    """One (family, FEC) row of ``plot_paired_vs_loss``: (a) each method's metric, (b) its paired difference."""
    import textwrap

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
            ax.errorbar(
                x[ok], y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="none", ecolor=colors[m],
                elinewidth=0.9, capsize=1.8,
            )
            filled = s["significant"].to_numpy(bool) if panel == "b" else np.ones(len(s), bool)
            raw = s["significant_unadjusted"].to_numpy(bool) & ~filled if panel == "b" else ~filled
            ax.scatter(x[filled], y[filled], color=colors[m], s=14, zorder=3)
            ax.plot(
                x[raw], y[raw], ls="", marker="o", ms=4.3, fillstyle="left", color=colors[m],
                markerfacecoloralt="white", mew=0.9, zorder=3,
            )  # half filled: nominal only
            rest = ~filled & ~raw
            ax.scatter(
                x[rest], y[rest], facecolors="white", edgecolors=colors[m], s=14, zorder=3, linewidths=0.9
            )
    ax_b.axhline(0.0, color="k", lw=0.8, zorder=1)
    fam, fec = k[0], k[1]
    title = panel_title(fam, [c for c in keys[2:]], list(k[2:]), kind.get(fam))
    ax_a.set_title(f"(a) {title} · FEC {fec}")
    refs = g.loc[g["panel"] == "b", "reference"]
    ax_b.set_title(f"(b) difference to {_ref_title(refs, reference)}")
    xl = "index loss rate (%)" if kind.get(fam) == "index" else "packet loss rate, stationary (%)"
    for ax in (ax_a, ax_b):
        ax.set_xlabel(xl)
        ax.set_xticks(sorted(g["_x"].unique()))
    # two short lines: rows do not collide
    ax_a.set_ylabel(textwrap.fill(METRIC_LABELS.get(metric, metric), 22))
    ax_b.set_ylabel("paired difference\nto the reference " + ("↓" if "lpips" in metric else "↑"))
