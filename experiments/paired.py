"""Paired comparisons of concealment methods: mean difference to a reference method, its interval and verdict.

Every trial unit of a sweep (one image, one channel realization, one seed)
scores all its methods on the *same* lost positions, so the difference
``d = metric(method) − metric(reference)`` within a unit is a paired sample.
For each group of trials (codebook size, channel, loss rate, FEC) and each
method, :func:`paired_differences` reports the mean paired difference, its
interval, a p-value and the verdict after a correction for the many
comparisons of the table (the math: :mod:`experiments.significance`):

* **unit** ``"image"`` (default): the seeds of an image share its content, so
  they are averaged within the image first, d_i = mean_s d[i, s], and the
  interval is d̄ ± t_{(1+level)/2, I−1} · s_d / √I over the I images
  (``n_images``, ``n_seeds`` next to every interval).  Trials with the same
  image content (``image_hash``) are one image.  ``"trial"``: the old
  interval over all images × seeds as if independent (too narrow when images
  differ; kept by name for comparison).
* **correction** ``"holm"`` (default; family-wise error ≤ 1 − level),
  ``"bh"`` (Benjamini–Hochberg, false discovery rate ≤ 1 − level) or
  ``"none"``, over every comparison of one call (one table or one figure),
  except groups where every method equals the reference on every trial
  (nothing to compare).  ``p`` and the interval stay unadjusted;
  ``p_adj`` and ``significant`` are adjusted, ``significant_unadjusted`` is
  "the interval excludes 0".
* **power**: ``mdd`` is the smallest |difference| the sweep detects with
  80 % power at its n and observed spread (two-sided t-test at α = 1 − level,
  noncentral t); ``detect=δ`` adds ``n_needed``, the units (images) needed to
  detect δ with 80 % power at the observed spread.

The reference is a named method, or ``"best_baseline"``: per group, the
model-free method (``BASELINES``) with the best mean.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from codec.errors import ParameterError

from .significance import (
    MIN_IMAGES,
    POWER,
    adjust_pvalues,
    check_correction,
    check_level,
    check_unit,
    mean_ci,
    min_detectable,
    paired_stats,
    units_needed,
)

#: model-free concealment methods (the candidates for ``reference="best_baseline"``)
BASELINES = ("latent_avg", "neighbor", "mean", "none")
#: metrics where larger is better (all others: smaller is better)
HIGHER_IS_BETTER = ("psnr", "ssim", "ms_ssim", "lowpass_luma_psnr", "lowpass_chroma_psnr")

GROUP_COLUMNS = ("codebook_size", "channel_label", "loss_rate_nominal", "fec")
#: the default statistics of every paired interval and verdict
DEFAULT_UNIT = "image"
DEFAULT_CORRECTION = "holm"
CORRECTION_NAMES = {"holm": "Holm (family-wise error)", "bh": "Benjamini–Hochberg (false discovery rate)",
                    "none": "no correction"}
UNIT_NAMES = {"image": "image (seeds averaged within each image first)",
              "trial": "trial (images × seeds as if independent)"}


def _higher_better(metric: str) -> bool:
    base = metric.removesuffix("_vs_lossfree")
    return base in HIGHER_IS_BETTER


def t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided ``level`` Student-t interval of the samples ``d`` (:func:`experiments.significance.mean_ci`);
    the interval is nan for fewer than 2 finite samples, so one pair is never called significant."""
    m, lo, hi, n = mean_ci(d, level)
    return (m, lo, hi) if n >= 2 else (m, math.nan, math.nan)


def image_column(df: pd.DataFrame) -> str:
    """The column that names an image's content: ``image_hash`` (identical photos are one image), else ``image``."""
    for c in ("image_hash", "image"):
        if c in df.columns:
            return c
    raise ParameterError("results have no 'image_hash' or 'image' column: the image cannot be the interval's unit")


def by_image(values: np.ndarray, images: Sequence[Any]) -> np.ndarray:
    """Values laid out (images, trials per image), nan-padded: the input of :func:`significance.paired_stats`."""
    v = np.asarray(values, dtype=np.float64)
    codes, inv = np.unique(np.asarray(images).astype(str), return_inverse=True)
    if v.size == 0:
        return np.full((0, 1), np.nan)
    slot = pd.Series(inv).groupby(inv).cumcount().to_numpy()
    out = np.full((len(codes), int(slot.max()) + 1), np.nan)
    out[inv, slot] = v
    return out


def image_mean_ci(values: Sequence[float], images: Sequence[Any] | None, level: float = 0.95,
                  unit: str = DEFAULT_UNIT) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the t-interval with ``unit`` as sample: images (trials of one image averaged
    first) or trials.  ``images=None`` treats every value as its own image.  One sample: zero width."""
    v = np.asarray(values, dtype=np.float64)
    img = np.arange(v.size) if images is None else np.asarray(images)
    s = paired_stats(by_image(v, img), unit, level)
    m, lo, hi, n = float(s["mean"]), float(s["lo"]), float(s["hi"]), int(s["n"])
    return (m, m, m, n) if n == 1 else (m, lo, hi, n)


def _family(t: pd.DataFrame, level: float, correction: str) -> pd.DataFrame:
    """Adds p_adj, significant (adjusted), better: the correction runs over the rows outside tie groups."""
    alpha = 1.0 - level
    fam = ~t["tie"].to_numpy(bool) & np.isfinite(t["p"].to_numpy(float))
    p_adj = np.full(len(t), np.nan)
    p_adj[fam] = adjust_pvalues(t["p"].to_numpy(float)[fam], correction)
    p_adj[t["tie"].to_numpy(bool)] = 1.0
    t["p_adj"] = p_adj
    t["correction"] = correction
    if correction == "none":
        t["significant"] = t["significant_unadjusted"]
    else:
        t["significant"] = (p_adj < alpha) & t["significant_unadjusted"].to_numpy(bool)
    higher = t.attrs.get("higher_is_better", False)
    t["better"] = t["significant"] & ((t["diff"] > 0) if higher else (t["diff"] < 0))
    t.attrs.update(family_size=int(fam.sum()), level=level, correction=correction)
    return t


def paired_differences(df: pd.DataFrame, metric: str = "lpips_alex_vs_lossfree", reference: str = "best_baseline",
                       by: Sequence[str] = GROUP_COLUMNS, unit_column: str = "unit_id", level: float = 0.95,
                       unit: str = DEFAULT_UNIT, correction: str = DEFAULT_CORRECTION,
                       detect: float | None = None) -> pd.DataFrame:
    """Per group and method: the mean paired difference to the reference, its interval, p and verdict.

    Args:
        df: sweep rows (one per trial; ``unit_column`` identifies the paired realization).
        metric: a numeric column.
        reference: a method name, or ``"best_baseline"`` (per group, the best of ``BASELINES`` present).
        by: grouping columns (those absent from ``df`` are ignored).
        level: interval coverage; α = 1 − level for p-values, corrections and power.
        unit: ``"image"`` or ``"trial"`` (module docstring).
        correction: ``"holm"``, ``"bh"`` or ``"none"``, across all rows returned (one family).
        detect: a difference δ > 0 in the metric's units: adds ``n_needed`` (units for 80 % power).

    Returns one row per (group, method ≠ reference): columns ``by`` + method, reference, unit, n_images,
    n_seeds, n_trials, n (samples of the interval: n_images or n_trials), mean, mean_ref, diff, lo, hi
    (unadjusted), sd (of the samples), p (unadjusted), p_adj, correction, significant_unadjusted,
    significant (adjusted), better (significant, good direction), mdd (80 % power), tie (every method
    equals the reference in this group; outside the family), [n_needed].  ``attrs``: family_size, level,
    correction, unit.
    """
    if metric not in df.columns:
        raise ParameterError(f"metric {metric!r} is not a column of the results")
    level, unit, correction = check_level(level), check_unit(unit), check_correction(correction)
    if detect is not None:
        units_needed(detect, np.array(1.0))                  # validates δ
    by = [c for c in by if c in df.columns]
    img_col = image_column(df)
    higher = _higher_better(metric)
    rows = []
    for key, g in (df.groupby(by, dropna=False, sort=True) if by else [((), df)]):
        key = key if isinstance(key, tuple) else (key,)
        piv = g.pivot_table(index=unit_column, columns="method", values=metric, aggfunc="mean")
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
        info = g.drop_duplicates(unit_column).set_index(unit_column)
        order = [m for m in dict.fromkeys(g["method"]) if m in piv.columns and m != ref]
        grp = []
        for m in order:
            both = piv[[m, ref]].dropna()
            d = (both[m] - both[ref]).to_numpy()
            imgs = info.loc[both.index, img_col].to_numpy()
            s = paired_stats(by_image(d, imgs), unit, level)
            n_seeds = int(info.loc[both.index, "seed"].nunique()) if "seed" in info.columns else \
                int(pd.Series(imgs).value_counts().max()) if len(imgs) else 0
            lo, hi = float(s["lo"]), float(s["hi"])
            grp.append({**dict(zip(by, key, strict=False)), "method": m, "reference": ref, "unit": unit,
                        "n_images": int(s["n_images"]), "n_seeds": n_seeds, "n_trials": int(s["n_trials"]),
                        "n": int(s["n"]), "mean": float(both[m].mean()) if len(both) else math.nan,
                        "mean_ref": float(both[ref].mean()) if len(both) else math.nan,
                        "diff": float(s["mean"]), "lo": lo, "hi": hi, "sd": float(s["sd"]), "p": float(s["p"]),
                        "significant_unadjusted": bool(np.isfinite(lo) and (lo > 0 or hi < 0)),
                        "_zero": bool(len(d) and np.all(d == 0))})
        tie = bool(grp) and all(r.pop("_zero") for r in grp)
        for r in grp:
            r.pop("_zero", None)
            r["tie"] = tie
        rows += grp
    cols = [*by, "method", "reference", "unit", "n_images", "n_seeds", "n_trials", "n", "mean", "mean_ref", "diff",
            "lo", "hi", "sd", "p", "significant_unadjusted", "tie"]
    t = pd.DataFrame(rows, columns=cols)
    t.attrs.update(higher_is_better=higher, unit=unit, metric=metric)
    t = _family(t, level, correction)
    t["mdd"] = min_detectable(t["n"].to_numpy(float), t["sd"].to_numpy(float), 1.0 - level) if len(t) else []
    if detect is not None:
        t["n_needed"] = units_needed(detect, t["sd"].to_numpy(float), 1.0 - level) if len(t) else []
        t.attrs["detect"] = float(detect)
    return t


def family_summary(t: pd.DataFrame) -> dict[str, Any]:
    """Counts of one family (a :func:`paired_differences` result, tie groups left out): m comparisons,
    how many intervals exclude 0 before correction, how many stay significant after it, how many a
    null world would give unadjusted (m·α), and the image counts behind the intervals."""
    f = t[~t["tie"].astype(bool)] if len(t) else t
    level = float(t.attrs.get("level", 0.95))
    m = int(len(f))
    return {"m": m, "n_unadjusted": int(f["significant_unadjusted"].sum()) if m else 0,
            "n_adjusted": int(f["significant"].sum()) if m else 0, "expected_null": m * (1.0 - level),
            "level": level, "correction": t.attrs.get("correction", DEFAULT_CORRECTION),
            "unit": t.attrs.get("unit", DEFAULT_UNIT),
            "min_images": int(f["n_images"].min()) if m else 0, "max_images": int(f["n_images"].max()) if m else 0,
            "min_seeds": int(f["n_seeds"].min()) if m else 0, "max_seeds": int(f["n_seeds"].max()) if m else 0}


def _span(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}–{b}"


def family_sentence(s: dict[str, Any], what: str = "comparisons") -> str:
    """One sentence: the unit, the correction, how many verdicts survive (from :func:`family_summary`)."""
    pct = f"{100 * s['level']:g} %"
    head = (f"Unit: {UNIT_NAMES[s['unit']]}, n_images = {_span(s['min_images'], s['max_images'])}, "
            f"n_seeds = {_span(s['min_seeds'], s['max_seeds'])}; {pct} t-intervals. ")
    raw = (f"{s['n_unadjusted']} of {s['m']} {what} have an interval excluding 0 before correction "
           f"(about {s['expected_null']:.1f} would by chance if no method differed anywhere)")
    if s["correction"] == "none":
        return head + raw + "; no correction for multiple comparisons applied."
    verb = "remains" if s["n_adjusted"] == 1 else "remain"
    return head + raw + (f"; {s['n_adjusted']} {verb} significant after {CORRECTION_NAMES[s['correction']]} "
                         f"at {100 * (1 - s['level']):g} % over the {s['m']} {what}.")


def few_images_warning(s: dict[str, Any]) -> str | None:
    """The warning when fewer than :data:`significance.MIN_IMAGES` images back an interval, else None."""
    if s["m"] and s["unit"] == "image" and s["min_images"] < MIN_IMAGES:
        return (f"warning: only {s['min_images']} image(s) back some intervals (fewer than {MIN_IMAGES}): the "
                f"image-to-image spread is poorly estimated, intervals are wide and 'n.s.' mostly means too few "
                f"images; add images (`images:` in the config), not seeds.")
    return None


def power_sentence(t: pd.DataFrame, metric: str) -> str:
    """Sample-size statement of a family: the detectable difference, and images needed for ``detect``."""
    keep = np.isfinite(t["mdd"].to_numpy(float)) if len(t) else np.zeros(0, bool)
    if "tie" in t.columns:
        keep &= ~t["tie"].to_numpy(bool)
    f = t[keep]
    if not len(f):
        return "No comparison with ≥ 2 units: no power statement."
    alpha = 100 * (1 - float(t.attrs.get("level", 0.95)))
    u = "images" if t.attrs.get("unit", DEFAULT_UNIT) == "image" else "trials"
    n = f["n_images"] if u == "images" else f["n_trials"]
    q = np.percentile(f["mdd"], [0, 50, 100])
    text = (f"From the observed spread, the smallest |difference in {metric}| this sweep detects with "
            f"{100 * POWER:g} % power (two-sided t-test at α = {alpha:g} % per comparison, before correction) is "
            f"{q[1]:.4f} at the median comparison (range {q[0]:.4f}–{q[2]:.4f}) with "
            f"{_span(int(n.min()), int(n.max()))} {u}.")
    if "n_needed" in f.columns:
        nn = f["n_needed"].to_numpy(float)
        fin = nn[np.isfinite(nn)]
        have = int((nn <= n.to_numpy(float)).sum())
        text += (f" To detect a difference of {t.attrs['detect']:g} with {100 * POWER:g} % power you need "
                 + (f"{int(np.median(fin))} {u} at the median comparison (up to {int(fin.max())})"
                    if fin.size else "more than 10⁷ " + u)
                 + f"; {have} of {len(f)} comparisons already have enough (seeds per image as in this sweep).")
    return text


def default_paired_metric(df: pd.DataFrame) -> str | None:
    """The metric paired comparisons use unless told: ΔLPIPS-Alex against the loss-free reconstruction (else
    LPIPS-VGG, else PSNR). When the rows decode with more than one decoder variant (column ``decoder``), the
    same metric against the *original*: ``*_vs_lossfree`` is measured against the plain decoder's loss-free
    picture, which would charge a variant for rendering even a loss-free map differently."""
    for base in ("lpips_alex", "lpips_vgg", "psnr"):
        m = f"{base}_vs_lossfree"
        if m in df.columns and df[m].notna().any():
            return paired_metric_of(df, base)
    return None


def decoders_vary(df: pd.DataFrame) -> bool:
    """Whether the rows decode with more than one decoder variant (column ``decoder``)."""
    return "decoder" in df.columns and df["decoder"].nunique() > 1


def paired_metric_of(df: pd.DataFrame, metric: str) -> str:
    """The column paired comparisons of ``metric`` (``lpips_alex``, ``psnr``, ...) use: ``{metric}_vs_lossfree``,
    or ``metric`` itself (against the original) when the decoders vary (see :func:`default_paired_metric`)."""
    return metric if decoders_vary(df) and metric in df.columns else f"{metric}_vs_lossfree"


def paired_table(df: pd.DataFrame, metric: str | None = None, reference: str = "best_baseline",
                 max_rows: int = 80, unit: str = DEFAULT_UNIT, correction: str = DEFAULT_CORRECTION,
                 level: float = 0.95) -> str:
    """:func:`paired_differences` as text: one line per group × method, ``*`` marking significant differences
    after the correction (``+``: the interval excludes 0 before correction only), then the family's counts
    and, with fewer than 5 images, a warning."""
    if df is None or not len(df):
        return "(no results)"
    if metric is None:
        metric = default_paired_metric(df)
        if metric is None:
            return "(no metric columns)"
    pk = [c for c in _varied(df, PANEL_EXTRA[1:]) if c in df.columns]  # packetization the sweep varies: own rows
    t = paired_differences(df, metric, reference, by=[*GROUP_COLUMNS, *pk], unit=unit, correction=correction,
                           level=level)
    if not len(t):
        return f"(no paired comparison: reference {reference!r} not among the methods)"
    s = family_summary(t)
    ptext = power_sentence(t, metric)
    pct = f"{100 * level:g} %"
    lines = [f"paired differences in {metric} to {reference} (unit: {unit}; {pct} t-interval; "
             f"* = significant after {correction}, + = interval excludes 0 before correction only)"]
    n_same = int(t["tie"].sum())
    t = t[~t["tie"].astype(bool)]
    label = [c for c in ("codebook_size", "channel_label", "fec", *pk) if c in t.columns]
    for _, r in t.head(max_rows).iterrows():
        grp = " ".join(
            f"S={r[c]}" if c == "codebook_size" else f"fec={r[c]}" if c == "fec" else str(r[c]) for c in label
        )
        star = "*" if r["significant"] else "+" if r["significant_unadjusted"] else " "
        lines.append(
            f"  {grp}  {r['method']:>11} − {r['reference']:<10} = {r['diff']:+.4f} "
            f"[{r['lo']:+.4f}, {r['hi']:+.4f}]{star}  (images={r['n_images']}, seeds={r['n_seeds']}, "
            f"p={r['p']:.2g}, p_{correction}={r['p_adj']:.2g}; {r['mean']:.4f} vs {r['mean_ref']:.4f})"
        )
    if len(t) > max_rows:
        lines.append(f"  … {len(t) - max_rows} more rows")
    if n_same:
        lines.append(f"  ({n_same} rows with identical results for every method left out)")
    lines.append(family_sentence(s))
    lines.append(ptext)
    w = few_images_warning(s)
    if w:
        lines.append(w)
    return "\n".join(lines)


#: columns that split the paired figure's panels, besides the channel family and FEC (when the sweep varies them)
PANEL_EXTRA = ("codebook_size", "mtu", "interleave", "coder")


def _varied(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    """The columns of ``cols`` the sweep varies (packetization columns: among packet-channel rows only)."""
    pk = df[df["channel_kind"] != "index"] if "channel_kind" in df.columns else df
    return [
        c
        for c in cols
        if c in df.columns and (pk if c in ("mtu", "interleave", "coder") else df)[c].nunique(dropna=False) > 1
    ]


CURVE_COLUMNS = (
    "panel",
    "method",
    "reference",
    "unit",
    "n_images",
    "n_seeds",
    "n",
    "value",
    "lo",
    "hi",
    "p",
    "p_adj",
    "correction",
    "significant_unadjusted",
    "significant",
)


def paired_curves(
    df: pd.DataFrame,
    metric: str = "lpips_alex_vs_lossfree",
    reference: str = "best_baseline",
    level: float = 0.95,
    unit: str = DEFAULT_UNIT,
    correction: str = DEFAULT_CORRECTION,
) -> pd.DataFrame:
    """The numbers the paired figure draws (``plots/paired_vs_loss.csv``), one row per point.

    Panel ``a``: per (family, FEC, loss rate, method) the mean of ``metric`` (a per-unit paired
    measure, e.g. LPIPS between the concealed and the loss-free reconstruction of the same image)
    with its ``level`` t-interval over the ``unit`` (images: seeds averaged first).  Panel ``b``: the
    mean paired difference ``metric(method) − metric(reference)`` with its unadjusted interval and
    the verdict corrected over all panel-b points of the figure — :func:`paired_differences` of the
    same rows and groups.

    Columns: channel_family, fec, the varied :data:`PANEL_EXTRA` columns, channel_label,
    loss_rate_nominal, then :data:`CURVE_COLUMNS`.  ``attrs``: the panel-b family's
    :func:`family_summary`.
    """
    if metric not in df.columns:
        raise ParameterError(f"metric {metric!r} is not a column of the results")
    extra = _varied(df, PANEL_EXTRA)
    by = ["channel_family", "fec", *extra, "channel_label", "loss_rate_nominal"]
    img_col = image_column(df)
    rows = []
    for key, g in df.groupby(by, dropna=False, sort=True):
        base = dict(zip(by, key, strict=False))
        for m in dict.fromkeys(g["method"]):
            s = g.loc[g["method"] == m]
            v = s[metric].to_numpy(dtype=np.float64)
            ok = np.isfinite(v)
            st = paired_stats(by_image(v[ok], s[img_col].to_numpy()[ok]), unit, level)
            rows.append(
                {
                    **base,
                    "panel": "a",
                    "method": m,
                    "reference": "",
                    "unit": unit,
                    "n_images": int(st["n_images"]),
                    "n_seeds": int(s["seed"].nunique()) if "seed" in s else 0,
                    "n": int(st["n"]),
                    "value": float(st["mean"]),
                    "lo": float(st["lo"]),
                    "hi": float(st["hi"]),
                    "p": math.nan,
                    "p_adj": math.nan,
                    "correction": "",
                    "significant_unadjusted": False,
                    "significant": False,
                }
            )
    t = paired_differences(df, metric, reference, by=by, level=level, unit=unit, correction=correction)
    for r in t.to_dict("records"):
        rows.append(
            {
                **{c: r[c] for c in by},
                "panel": "b",
                "value": r["diff"],
                **{c: r[c] for c in CURVE_COLUMNS if c in r and c not in ("panel", "value")},
            }
        )
    out = pd.DataFrame(rows, columns=by + list(CURVE_COLUMNS))
    out.attrs["family"] = family_summary(t)
    return out


def significance_table(
    df: pd.DataFrame,
    metric: str = "lpips_alex_vs_lossfree",
    reference: str = "best_baseline",
    level: float = 0.95,
    unit: str = DEFAULT_UNIT,
    correction: str = DEFAULT_CORRECTION,
    detect: float | None = None,
) -> pd.DataFrame:
    """:func:`paired_differences` as a readable table: which methods differ significantly from the reference.

    One row per (channel, FEC, method ≠ reference) with ``verdict`` "better" / "worse" (significant
    after ``correction`` over the table's rows, in the metric's good / bad direction) or "n.s.", and
    ``verdict_unadjusted`` (the unadjusted interval excludes 0); the unit, n_images, n_seeds, p, p_adj,
    ``mdd`` (smallest difference detectable with 80 % power) and, with ``detect``, ``n_needed``.
    Groups where every method gives identical results (e.g. FEC recovered every loss) are left out
    (and out of the family).  ``attrs``: the family's :func:`family_summary`.
    """
    by = [c for c in (*GROUP_COLUMNS, *_varied(df, PANEL_EXTRA[1:])) if c in df.columns]
    t = paired_differences(df, metric, reference, by=by, level=level, unit=unit, correction=correction, detect=detect)
    summary = family_summary(t)
    if not len(t):
        return t
    attrs = dict(t.attrs)
    t = t[~t["tie"].astype(bool)]

    def verdict(sig, better):
        return np.where(better, "better", np.where(sig, "worse", "n.s."))

    higher = _higher_better(metric)
    better_raw = t["significant_unadjusted"] & ((t["diff"] > 0) if higher else (t["diff"] < 0))
    out = pd.DataFrame(
        {
            **({"S": t["codebook_size"]} if df["codebook_size"].nunique() > 1 else {}),
            "channel": t["channel_label"],
            "FEC": t["fec"],
            **{c: t[c] for c in by if c in PANEL_EXTRA[1:]},
            "method": t["method"],
            "reference": t["reference"],
            "unit": t["unit"],
            "n_images": t["n_images"],
            "n_seeds": t["n_seeds"],
            "n_trials": t["n_trials"],
            "mean": t["mean"],
            "mean_ref": t["mean_ref"],
            "diff": t["diff"],
            "lo": t["lo"],
            "hi": t["hi"],
            "p": t["p"],
            "correction": t["correction"],
            "p_adj": t["p_adj"],
            "verdict": verdict(t["significant"], t["better"]),
            "verdict_unadjusted": verdict(t["significant_unadjusted"], better_raw),
            "mdd": t["mdd"],
            **({"n_needed": t["n_needed"]} if "n_needed" in t.columns else {}),
        }
    ).reset_index(drop=True)
    out.attrs.update(attrs)
    out.attrs["family"] = summary
    return out
