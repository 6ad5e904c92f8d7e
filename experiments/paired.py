"""Paired comparisons of concealment methods: mean difference to a reference method with a 95 % interval.

Every trial unit of a sweep (one image, one channel realization, one seed)
scores all its methods on the *same* lost positions, so the difference
``metric(method) − metric(reference)`` within a unit is a paired sample.
For each group of trials (codebook size, channel, loss rate, FEC) and each
method, :func:`paired_differences` reports over the n units of the group

    d̄ = (1/n) Σ d_u,   95 % interval d̄ ± t_{0.975, n−1} · s_d / √n

(Student's t on the per-unit differences; images × seeds are the units).
The reference is a named method, or ``"best_baseline"``: per group, the
model-free method (``BASELINES``) with the best mean.  A difference is
*significant* when its interval excludes 0.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

#: model-free concealment methods (the candidates for ``reference="best_baseline"``)
BASELINES = ("latent_avg", "neighbor", "mean", "none")
#: metrics where larger is better (all others: smaller is better)
HIGHER_IS_BETTER = ("psnr", "ssim", "ms_ssim", "lowpass_luma_psnr", "lowpass_chroma_psnr")

GROUP_COLUMNS = ("codebook_size", "channel_label", "loss_rate_nominal", "fec")


def _higher_better(metric: str) -> bool:
    base = metric.removesuffix("_vs_lossfree")
    return base in HIGHER_IS_BETTER


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided ``level`` Student-t interval of the samples ``d`` (:func:`experiments.plots.mean_ci`);
    the interval is nan for fewer than 2 finite samples, so one pair is never called significant."""
    from .plots import mean_ci

    m, lo, hi, n = mean_ci(d, level)
    return (m, lo, hi) if n >= 2 else (m, math.nan, math.nan)


def paired_differences(df: pd.DataFrame, metric: str = "lpips_alex_vs_lossfree", reference: str = "best_baseline",
                       by: Sequence[str] = GROUP_COLUMNS, unit: str = "unit_id", level: float = 0.95) -> pd.DataFrame:
    """Per group and method: n, mean metric, the reference, mean paired difference and its interval.

    Args:
        df: sweep rows (one per trial; ``unit`` identifies the paired realization).
        metric: a numeric column.
        reference: a method name, or ``"best_baseline"`` (per group, the best of ``BASELINES`` present).
        by: grouping columns (those absent from ``df`` are ignored).
        level: interval coverage.

    Returns one row per (group, method ≠ reference): columns ``by`` + method, reference, n, mean,
    mean_ref, diff, lo, hi, significant (interval excludes 0), better (significant and in the
    metric's good direction).
    """
    if metric not in df.columns:
        raise KeyError(f"metric {metric!r} is not a column of the results")
    by = [c for c in by if c in df.columns]
    higher = _higher_better(metric)
    rows = []
    for key, g in (df.groupby(by, dropna=False, sort=True) if by else [((), df)]):
        key = key if isinstance(key, tuple) else (key,)
        piv = g.pivot_table(index=unit, columns="method", values=metric, aggfunc="mean")
        means = piv.mean()
        if reference == "best_baseline":
            cand = [m for m in BASELINES if m in piv.columns]
            if not cand:
                continue
            ref = max(cand, key=lambda m: means[m]) if higher else min(cand, key=lambda m: means[m])
        elif reference in piv.columns:
            ref = reference
        else:
            continue
        order = [m for m in dict.fromkeys(g["method"]) if m in piv.columns and m != ref]
        for m in order:
            both = piv[[m, ref]].dropna()
            d, lo, hi = t_interval((both[m] - both[ref]).to_numpy(), level)
            sig = bool(np.isfinite(lo) and (lo > 0 or hi < 0))
            rows.append({**dict(zip(by, key)), "method": m, "reference": ref, "n": int(len(both)),
                         "mean": float(both[m].mean()) if len(both) else math.nan,
                         "mean_ref": float(both[ref].mean()) if len(both) else math.nan,
                         "diff": d, "lo": lo, "hi": hi, "significant": sig,
                         "better": sig and ((d > 0) if higher else (d < 0))})
    return pd.DataFrame(rows)


def paired_table(df: pd.DataFrame, metric: str | None = None, reference: str = "best_baseline",
                 max_rows: int = 80) -> str:
    """:func:`paired_differences` as text: one line per group × method, ``*`` marking significant differences."""
    if df is None or not len(df):
        return "(no results)"
    if metric is None:
        metric = next((m for m in ("lpips_alex_vs_lossfree", "lpips_vgg_vs_lossfree", "psnr_vs_lossfree")
                       if m in df.columns), None)
        if metric is None:
            return "(no metric columns)"
    t = paired_differences(df, metric, reference)
    if not len(t):
        return f"(no paired comparison: reference {reference!r} not among the methods)"
    lines = [f"paired differences in {metric} to {reference} (mean over images × seeds, 95 % t-interval; "
             f"* = interval excludes 0)"]
    # groups where nothing differs (e.g. FEC recovered every loss) carry no comparison
    same = t.groupby([c for c in GROUP_COLUMNS if c in t.columns], dropna=False)["diff"].transform(
        lambda d: bool((d == 0).all()))
    n_same = int(same.sum())
    t = t[~same.astype(bool)]
    label = [c for c in ("codebook_size", "channel_label", "fec") if c in t.columns]
    shown = t.head(max_rows)
    for _, r in shown.iterrows():
        grp = " ".join(f"S={r[c]}" if c == "codebook_size" else f"fec={r[c]}" if c == "fec" else str(r[c]) for c in label)
        star = "*" if r["significant"] else " "
        lines.append(f"  {grp}  {r['method']:>11} − {r['reference']:<10} = {r['diff']:+.4f} "
                     f"[{r['lo']:+.4f}, {r['hi']:+.4f}]{star}  (n={r['n']}, {r['mean']:.4f} vs {r['mean_ref']:.4f})")
    if len(t) > max_rows:
        lines.append(f"  … {len(t) - max_rows} more rows")
    if n_same:
        lines.append(f"  ({n_same} rows with identical results for every method left out)")
    return "\n".join(lines)


#: columns that split the paired figure's panels, besides the channel family and FEC (when the sweep varies them)
PANEL_EXTRA = ("codebook_size", "mtu", "interleave", "coder")


def _varied(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """The columns of ``cols`` the sweep varies (packetization columns: among packet-channel rows only)."""
    pk = df[df["channel_kind"] != "index"] if "channel_kind" in df.columns else df
    return [c for c in cols if c in df.columns
            and (pk if c in ("mtu", "interleave", "coder") else df)[c].nunique(dropna=False) > 1]


def paired_curves(df: pd.DataFrame, metric: str = "lpips_alex_vs_lossfree", reference: str = "best_baseline",
                  level: float = 0.95) -> pd.DataFrame:
    """The numbers the paired figure draws (``plots/paired_vs_loss.csv``), one row per point.

    Panel ``a``: per (family, FEC, loss rate, method) the mean of ``metric`` (a per-unit paired
    measure, e.g. LPIPS between the concealed and the loss-free reconstruction of the same image)
    with its ``level`` t-interval over the units (images × seeds).  Panel ``b``: the mean paired
    difference ``metric(method) − metric(reference)`` with its interval — exactly
    :func:`paired_differences` of the same group (a row per method ≠ reference).

    Columns: channel_family, fec, the varied :data:`PANEL_EXTRA` columns, channel_label,
    loss_rate_nominal, panel, method, reference, n, value (mean or difference), lo, hi, significant.
    """
    if metric not in df.columns:
        raise KeyError(f"metric {metric!r} is not a column of the results")
    extra = _varied(df, PANEL_EXTRA)
    by = ["channel_family", "fec", *extra, "channel_label", "loss_rate_nominal"]
    rows = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        base = dict(zip(by, key))
        for m in dict.fromkeys(g["method"]):
            v = g.loc[g["method"] == m, metric].to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            mu, lo, hi = t_interval(v, level)
            rows.append({**base, "panel": "a", "method": m, "reference": "", "n": int(v.size), "value": mu,
                         "lo": lo, "hi": hi, "significant": False})
    t = paired_differences(df, metric, reference, by=by, level=level)
    for r in t.to_dict("records"):
        rows.append({**{c: r[c] for c in by}, "panel": "b", "method": r["method"], "reference": r["reference"],
                     "n": r["n"], "value": r["diff"], "lo": r["lo"], "hi": r["hi"],
                     "significant": bool(r["significant"])})
    return pd.DataFrame(rows, columns=by + ["panel", "method", "reference", "n", "value", "lo", "hi", "significant"])


def significance_table(df: pd.DataFrame, metric: str = "lpips_alex_vs_lossfree", reference: str = "best_baseline",
                       level: float = 0.95) -> pd.DataFrame:
    """:func:`paired_differences` as a readable table: which methods differ significantly from the reference.

    One row per (channel, FEC, method ≠ reference) with ``verdict`` "better" / "worse" (the
    ``level`` interval excludes 0, in the metric's good / bad direction) or "n.s."; groups where
    every method gives identical results (e.g. FEC recovered every loss) are left out.
    """
    by = [c for c in (*GROUP_COLUMNS, *_varied(df, PANEL_EXTRA[1:])) if c in df.columns]
    t = paired_differences(df, metric, reference, by=by, level=level)
    if not len(t):
        return t
    same = t.groupby(by, dropna=False)["diff"].transform(lambda d: bool((d == 0).all())).astype(bool)
    t = t[~same]
    verdict = np.where(t["better"], "better", np.where(t["significant"], "worse", "n.s."))
    out = pd.DataFrame({
        **({"S": t["codebook_size"]} if df["codebook_size"].nunique() > 1 else {}),
        "channel": t["channel_label"], "FEC": t["fec"],
        **{c: t[c] for c in by if c in PANEL_EXTRA[1:]},
        "method": t["method"], "reference": t["reference"], "n": t["n"],
        "mean": t["mean"], "mean_ref": t["mean_ref"], "diff": t["diff"], "lo": t["lo"], "hi": t["hi"],
        "verdict": verdict,
    })
    return out.reset_index(drop=True)
