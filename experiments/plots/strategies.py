"""``strategies``: every (codebook size, FEC, method) on one loss axis — the FEC-vs-concealment crossover.

A *strategy* is what a sender and receiver agree on: a codebook size S, an FEC setting, the packetization
(packet coder / interleaver, named only when a run has more than one: e.g. ``arith/random`` against the
context coder ``tf_tile/tile``) and a concealment method.  Per channel family (one column), (a) the
metric vs the nominal loss rate, one line per strategy (colour: S + FEC [+ packetization], line style /
marker: method), with the strategy's measured total rate in the legend, so
"equal bits" is shown, not assumed; (b) the paired difference of each strategy to the reference strategy
(default: the largest S without FEC, with its best model-free method) on the same images, seeds and channel
draws (common random numbers), with its 95 % t-interval over images (seeds averaged first).  Where the lines
of (a) cross, or (b) crosses zero, the better strategy changes with the loss rate.

Numbers in ``strategies.csv``.  Needs ≥ 2 (S, FEC) settings on packet channels and ≥ 2 loss rates in a family.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .common import LINESTYLES, MARKERS, METRIC_LABELS, PlotReport, method_label, metric_column, plot_style, save_figure

__all__ = ["plot_strategies", "strategy_table"]

MAX_STRATEGIES = 12


def _setting(S, fec, pk: str = "") -> str:
    """'S=1024 + RS(14,12) · tf_tile/tile': codebook size, FEC and (when a run varies it) packetization."""
    return f"S={int(S)}{'' if fec == 'none' else ' + ' + str(fec)}{' · ' + pk if pk else ''}"


def _strategy(S, fec, pk, method) -> str:
    return f"{_setting(S, fec, pk)} · {method_label(method)}"


def _with_packetization(d):
    """``d`` with a ``_pk`` column: 'coder/interleave' when the run has more than one, else ''."""
    d = d.copy()
    if {"coder", "interleave"} <= set(d.columns):
        pk = d["coder"].astype(str) + "/" + d["interleave"].astype(str)
        d["_pk"] = pk if pk.nunique() > 1 else ""
    else:
        d["_pk"] = ""
    return d


def _reference(d, metric: str, higher: bool) -> tuple[int, str, str, str]:
    """(S, fec, pk, method): the largest S without FEC (else the largest S), the symbol coders' packetization
    before a context coder's, with its best model-free method."""
    from codec.entropy.alphabet import CONTEXT_CODERS

    from ..paired import BASELINES

    nofec = d[d["fec"] == "none"]
    base = nofec if len(nofec) else d
    S = int(base["codebook_size"].max())
    g = base[base["codebook_size"] == S]
    fec = str(g["fec"].iloc[0])
    pks = sorted(g["_pk"].unique(), key=lambda k: (k.split("/")[0] in CONTEXT_CODERS, k))
    g = g[g["_pk"] == pks[0]]
    means = g.groupby("method")[metric].mean()
    cand = means[[m for m in means.index if m in BASELINES and m != "none"]]
    cand = cand if len(cand) else means
    return S, fec, pks[0], str(cand.idxmax() if higher else cand.idxmin())


def strategy_table(df, metric: str | None = None, unit: str = "image", reference: tuple | None = None,
                   methods: Sequence[str] | None = None):
    """One row per (channel family, loss rate, strategy): mean metric with its interval, total bits per
    pixel, and the paired difference to the reference strategy (``diff``, ``dlo``, ``dhi``, ``n_images``)."""
    import pandas as pd

    from ..paired import by_image, image_column, image_mean_ci, paired_stats

    metric = metric or metric_column(df)
    d = _with_packetization(df[df["channel_kind"] == "loss"])
    if methods:
        d = d[d["method"].isin(list(methods))]
    if d.empty or metric is None:
        return pd.DataFrame()
    higher = metric in ("psnr", "ssim")
    ref = reference or _reference(d, metric, higher)
    img = image_column(d)
    d["_L"] = d["loss_rate_nominal"].round(6)
    key = [img, "seed", "channel_label"]
    rows = []
    for fam, g in d.groupby("channel_family", sort=False):
        r = g[(g["codebook_size"] == ref[0]) & (g["fec"] == ref[1]) & (g["_pk"] == ref[2]) & (g["method"] == ref[3])]
        r = r[key + [metric]].rename(columns={metric: "_ref"})
        for (S, fec, pk, m), s in g.groupby(["codebook_size", "fec", "_pk", "method"], sort=False):
            for L, p in s.groupby("_L", sort=True):
                mu, lo, hi, n = image_mean_ci(p[metric].to_numpy(float), p[img].to_numpy(), unit=unit)
                row = {"channel_family": fam, "loss_rate_nominal": float(L), "codebook_size": int(S), "fec": fec,
                       "packetization": pk, "method": m, "strategy": _strategy(S, fec, pk, m),
                       "total_bpp": float(p["total_bpp"].mean()),
                       "mean": mu, "lo": lo, "hi": hi, "n_images": n,
                       "reference": _strategy(*ref)}
                j = p[key + [metric]].merge(r, on=key)
                if len(j):
                    st = paired_stats(by_image((j[metric] - j["_ref"]).to_numpy(float), j[img].to_numpy()), unit)
                    row.update(diff=float(st["mean"]), dlo=float(st["lo"]), dhi=float(st["hi"]))
                rows.append(row)
    t = pd.DataFrame(rows)
    t.attrs["reference"] = _strategy(*ref)
    return t


def plot_strategies(df, folder: Path, formats, report: PlotReport, unit: str = "image",
                    methods: Sequence[str] | None = None) -> None:
    import pandas as pd

    metric = metric_column(df)
    d = _with_packetization(df[df["channel_kind"] == "loss"] if metric else df.iloc[:0])
    if d.empty or d.groupby(["codebook_size", "fec", "_pk"]).ngroups < 2:
        report.skipped.append("strategies: needs ≥ 2 (codebook size, FEC, packetization) settings on packet-loss "
                              "channels")
        return
    t = strategy_table(d, metric, unit, methods=methods)
    fams = [f for f, g in t.groupby("channel_family", sort=False) if g["loss_rate_nominal"].nunique() >= 2]
    if not fams:
        report.skipped.append("strategies: every channel family has a single loss rate (needs ≥ 2)")
        return
    t = t[t["channel_family"].isin(fams)]
    # at most MAX_STRATEGIES lines: per (S, FEC) its methods ranked by mean metric
    SET = ["codebook_size", "fec", "packetization"]
    strat = t.groupby(SET + ["method"], sort=False)["mean"].mean().reset_index()
    higher = metric in ("psnr", "ssim")
    strat = strat.sort_values("mean", ascending=not higher)
    if len(strat) > MAX_STRATEGIES:   # every (S, FEC) keeps its best method; the other slots go by rank
        best = strat.drop_duplicates(SET)
        rest = strat.drop(best.index).head(max(0, MAX_STRATEGIES - len(best)))
        report.notes.append(f"strategies: showing {len(best) + len(rest)} of {len(strat)} strategies (every codebook "
                            f"size + FEC with its best method, then the best others)")
        strat = pd.concat([best, rest])
    keep = set(zip(strat["codebook_size"], strat["fec"], strat["packetization"], strat["method"], strict=False))
    t = t[[k in keep for k in zip(t["codebook_size"], t["fec"], t["packetization"], t["method"], strict=False)]]
    t.to_csv(folder / "strategies.csv", index=False)
    report.data["strategies"] = t
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    settings = sorted(
        dict.fromkeys(zip(t["codebook_size"], t["fec"], t["packetization"], strict=False)),
        key=lambda s: (-s[0], s[1] != "none", s[1], s[2]),
    )
    if t["packetization"].nunique() > 1 and len(settings) <= 10:   # categorical settings: distinct hues
        scol = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(settings)}
    else:                                                             # ordered codebook sizes: one ramp
        cmap = plt.get_cmap("viridis")
        scol = {s: cmap(0.9 * i / max(1, len(settings) - 1)) for i, s in enumerate(settings)}
    meths = list(dict.fromkeys(t["method"]))
    mstyle = {m: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]) for i, m in enumerate(meths)}
    with plt.rc_context(plot_style()):
        fig, axes = plt.subplots(2, len(fams), figsize=(max(6.4, 3.6 * len(fams)), 5.4), squeeze=False, sharex="col")
        for c, fam in enumerate(fams):
            g = t[t["channel_family"] == fam]
            ax_a, ax_b = axes[0][c], axes[1][c]
            for (S, fec, pk, m), s in g.groupby(SET + ["method"], sort=False):
                s = s.sort_values("loss_rate_nominal")
                x = 100 * s["loss_rate_nominal"].to_numpy()
                ls, mk = mstyle[m]
                col = scol[(S, fec, pk)]
                ax_a.plot(x, s["mean"], color=col, ls=ls, marker=mk, ms=3.5, lw=1.1)
                if "diff" in s.columns and s["diff"].notna().any():
                    y, lo, hi = (s[k].to_numpy(float) for k in ("diff", "dlo", "dhi"))
                    ok = np.isfinite(lo)
                    ax_b.plot(x, y, color=col, ls=ls, marker=mk, ms=3.5, lw=1.1)
                    ax_b.errorbar(
                        x[ok],
                        y[ok],
                        yerr=[y[ok] - lo[ok], hi[ok] - y[ok]],
                        fmt="none",
                        ecolor=col,
                        elinewidth=0.7,
                        capsize=1.5,
                    )
            ax_b.axhline(0.0, color="k", lw=0.8)
            ax_a.set_title(str(fam).replace(",", ", "))
            ax_b.set_xlabel("packet loss rate, stationary (%)")
            ax_b.set_xticks(sorted(100 * g["loss_rate_nominal"].unique()))
            if c == 0:
                ax_a.set_ylabel(METRIC_LABELS.get(metric, metric))
                ax_b.set_ylabel(f"paired difference to\n{t.attrs.get('reference', '')}", fontsize=7)
        bpp = t.groupby(SET)["total_bpp"].mean()
        handles = [Line2D([], [], color=scol[s], lw=2.5, label=f"{_setting(*s)} ({bpp[s]:.4f} bpp)") for s in settings]
        handles += [
            Line2D([], [], color="0.3", ls=mstyle[m][0], marker=mstyle[m][1], label=method_label(m)) for m in meths
        ]
        ncol = min(4, len(handles))
        nrow = -(-len(handles) // ncol)
        fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 0.0))
        h = fig.get_size_inches()[1]
        fig.suptitle(
            "strategies (codebook size S + FEC [· packetization] · concealment) at their measured total rate "
            "(legend: bits per pixel incl. headers + parity);\nbars: 95 % t-interval over images of the paired "
            "difference (same images, seeds and channel draws)",
            fontsize=7.5,
        )
        fig.tight_layout(rect=(0, (0.1 + 0.16 * nrow) / h, 1, 1 - 0.45 / h))
        save_figure(fig, folder, "strategies", formats, report)
