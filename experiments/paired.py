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
