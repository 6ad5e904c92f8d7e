"""FEC figures: ``fec_vs_concealment``, ``fec_vs_bits`` and the idealised-FEC reference (:func:`ideal_fec`).

See :mod:`experiments.plots` for what each figure shows and when it is skipped.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .common import (
    LINESTYLES,
    MARKERS,
    METRIC_LABELS,
    PlotReport,
    fec_names,
    image_ci,
    make_panels,
    method_colors,
    method_label,
    method_names,
    metric_column,
    panel_title,
    pick_even,
    plot_style,
    save_figure,
)


def plot_fec_vs_concealment(df, folder: Path, formats, report: PlotReport, unit: str = "image") -> None:
    metric = metric_column(df)
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
        report.notes.append(f"fec_vs_concealment: showing 6 of {len(panels)} channel settings")
        panels = pick_even(panels, 6)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = method_names(d)
    settings = sorted(
        dict.fromkeys(zip(d["codebook_size"], d["fec"], strict=False)), key=lambda t: (-t[0], t[1] != "none", t[1])
    )
    cmap = plt.get_cmap("tab10")
    scol = {s: cmap(i % 10) for i, s in enumerate(settings)}
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(panels), w=2.8)
        for ax, (k, g) in zip(axes, panels, strict=False):
            k = k if isinstance(k, tuple) else (k,)
            for mi, m in enumerate(methods):
                line = []
                for s in settings:
                    sg = g[(g["method"] == m) & (g["codebook_size"] == s[0]) & (g["fec"] == s[1])]
                    if sg.empty:
                        continue
                    x = float(sg["total_bpp"].mean())
                    mu, lo, hi, _ = image_ci(sg, metric, unit=unit)
                    ax.errorbar(
                        x,
                        mu,
                        yerr=[[mu - lo], [hi - mu]] if np.isfinite(lo) else None,
                        fmt=MARKERS[mi % len(MARKERS)],
                        color=scol[s],
                        ms=4,
                        capsize=1.5,
                        lw=0.8,
                    )
                    line.append((x, mu))
                if len(line) > 1:
                    a = np.array(sorted(line))
                    ax.plot(a[:, 0], a[:, 1], color="0.6", lw=0.6, zorder=0)
            ax.set_title(panel_title(k[0], extra, k[1:]))
            ax.set_xlabel("total rate incl. headers + FEC (bits/pixel)")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        handles = [Line2D([], [], ls="", marker="s", color=scol[s], label=f"S={s[0]}, FEC {s[1]}") for s in settings]
        handles += [
            Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], color="0.3", label=method_label(m))
            for i, m in enumerate(methods)
        ]
        rows = (len(handles) - 1) // 5
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(5, len(handles)),
            frameon=False,
            bbox_to_anchor=(0.5, -0.02 - 0.035 * rows),
        )
        fig.tight_layout(rect=(0, 0.07 + 0.035 * rows, 1, 1))
        save_figure(fig, folder, "fec_vs_concealment", formats, report)


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
    from ..paired import BASELINES

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
    return [m for m in method_names(d) if m in set(picks)]


def plot_fec_vs_bits(
    df, folder: Path, formats, report: PlotReport, channel: str | None = None,
    methods: Sequence[str] | None = None, unit: str = "image",
) -> None:
    metric = metric_column(df)
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
    panels.sort(
        key=lambda kg: (kg[1]["channel_family"].iloc[0], float(np.nan_to_num(kg[1]["loss_rate_nominal"].iloc[0])))
    )
    if len(panels) > 6:
        report.notes.append(f"fec_vs_bits: showing 6 of {len(panels)} channel points")
        panels = pick_even(panels, 6)
    higher = metric in ("psnr", "ssim")
    shown = list(methods) if methods else _show_methods(d, metric, higher)
    ideal, note = ideal_fec(d[d["method"].isin(shown)], metric)
    if note:
        report.notes.append(f"fec_vs_bits: {note}")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fecs = fec_names(d)
    colors = method_colors(method_names(d))
    rows = []
    with plt.rc_context(plot_style()):
        fig, axes = make_panels(len(panels), w=3.4, h=2.6)
        for ax, (k, g) in zip(axes, panels, strict=False):
            _fec_bits_panel(ax, k, g, extra, ideal, shown, fecs, colors, metric, unit, rows)
        handles = [Line2D([], [], color=colors[m], marker="o", label=method_label(m)) for m in shown]
        handles += [
            Line2D([], [], color="0.3", ls=LINESTYLES[j % len(LINESTYLES)], marker=MARKERS[j % len(MARKERS)],
                   label=f"FEC {f}")
            for j, f in enumerate(fecs)
        ]
        handles += [
            Line2D([], [], ls="", marker="*", mfc="none", color="k", ms=7, label="ideal FEC"),
            Line2D([], [], color="0.5", ls=":", label="loss-free"),
        ]
        nrow = (len(handles) - 1) // 5
        fig.legend(
            handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False,
            bbox_to_anchor=(0.5, -0.02 - 0.035 * nrow),
        )
        import textwrap

        fig.suptitle(
            "\n".join(
                textwrap.wrap(
                    "mean over images × seeds; bars: 95 % t-interval over "
                    f"{'images (seeds averaged first)' if unit == 'image' else 'trials'} of the loss penalty (LPIPS − "
                    "loss-free LPIPS of the "
                    "same image); arrow: same method and codebook size S without → with FEC; labels: S",
                    60 * min(3, len(panels)),
                )
            ),
            fontsize=7.5,
        )
        fig.tight_layout(rect=(0, 0.07 + 0.035 * nrow, 1, 0.97))
        save_figure(fig, folder, "fec_vs_bits", formats, report)
    import pandas as pd

    table = pd.DataFrame(rows)
    table.to_csv(folder / "fec_vs_bits.csv", index=False)
    report.data["fec_vs_bits"] = table


def _fec_bits_panel(ax, k, g, extra, ideal, shown, fecs, colors, metric: str, unit: str, rows: list) -> None:
    """One channel point of ``plot_fec_vs_bits``: its curves, arrows, size labels, ideal-FEC stars and
    loss-free lines; its table rows appended to ``rows``."""
    lf = f"lossfree_{metric}"
    k = k if isinstance(k, tuple) else (k,)
    ig = ideal[ideal["channel_label"] == k[0]]
    for c, v in zip(extra, k[1:], strict=False):
        ig = ig[ig[c] == v]
    xr = max(float(g["total_bpp"].max() - g["total_bpp"].min()), 1e-9)
    for mi, m in enumerate(shown):
        off = (mi - (len(shown) - 1) / 2) * 0.02 * xr
        for j, f in enumerate(fecs):
            line = []
            for S, sg in g[(g["method"] == m) & (g["fec"] == f)].groupby("codebook_size"):
                pen = sg.assign(_pen=(sg[metric] - sg[lf]) if lf in sg.columns else sg[metric])
                mu_p, lo_p, hi_p, n = image_ci(pen, "_pen", unit=unit)
                mu = float(sg[metric].mean())
                x = float(sg["total_bpp"].mean())
                line.append((x, mu, mu + lo_p - mu_p, mu + hi_p - mu_p))
                row = {
                    "channel": k[0], **dict(zip(extra, k[1:], strict=False)), "codebook_size": int(S),
                    "fec": f, "method": m, "total_bpp": x, metric: mu, "lo": line[-1][2], "hi": line[-1][3],
                    "unit": unit, "n": n,
                }
                if f != "none":
                    ii = ig[(ig["method"] == m) & (ig["fec"] == f) & (ig["codebook_size"] == S)]["ideal"]
                    row["ideal"] = float(ii.mean()) if len(ii) else math.nan
                rows.append(row)
            if not line:
                continue
            a = np.array(sorted(line))
            mk = MARKERS[j % len(MARKERS)]
            ax.errorbar(
                a[:, 0] + off, a[:, 1], yerr=[a[:, 1] - a[:, 2], a[:, 3] - a[:, 1]], color=colors[m],
                ls=LINESTYLES[j % len(LINESTYLES)], marker=mk, ms=4.5, capsize=1.5, lw=1.0, elinewidth=0.6,
                zorder=3,
            )
        # the same method and codebook size without → with FEC: an arrow, the trade the reader compares
        for _S, sg in g[g["method"] == m].groupby("codebook_size"):
            a = sg.groupby("fec").agg(x=("total_bpp", "mean"), y=(metric, "mean"))
            if "none" not in a.index:
                continue
            for f in a.index.drop("none"):
                ax.annotate(
                    "", xy=(a.loc[f, "x"] + off, a.loc[f, "y"]),
                    xytext=(a.loc["none", "x"] + off, a.loc["none", "y"]),
                    arrowprops={"arrowstyle": "->", "color": colors[m], "lw": 0.6, "alpha": 0.8,
                                "shrinkA": 3, "shrinkB": 3},
                    zorder=2,
                )
    # which point is which codebook size (the legend gives method and FEC)
    for (S, f), sg in g[g["method"].isin(shown)].groupby(["codebook_size", "fec"]):
        ax.annotate(
            f"S={int(S)}" + ("" if f == "none" else f"\n{f}"), (float(sg["total_bpp"].mean()), 0.97),
            xycoords=("data", "axes fraction"), fontsize=5.5, ha="center", va="top", color="0.25",
        )
    xs = sorted(g.groupby(["codebook_size", "fec"])["total_bpp"].mean().round(4).unique())
    if len(xs) <= 6:
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:.3g}" for v in xs])
    ax.margins(x=0.12, y=0.25)
    for f in fecs[1:]:
        for _S, sg in ig[ig["fec"] == f].groupby("codebook_size"):
            ax.scatter(
                [float(sg["total_bpp"].mean())], [float(sg["ideal"].mean())], marker="*", s=45,
                facecolors="none", edgecolors="k", linewidths=0.8, zorder=4,
            )
    if lf in g.columns:
        for _S, sg in g.groupby("codebook_size"):
            ax.axhline(float(sg.drop_duplicates("image_hash")[lf].mean()), color="0.5", ls=":", lw=0.8)
    ax.set_title(panel_title(k[0], extra, k[1:]))
    ax.set_xlabel("total rate incl. headers + parity (bpp)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
