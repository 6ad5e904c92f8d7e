"""One-page report of a sweep's results folder: ``report.html`` (self-contained) and ``report.md``.

``write_report(folder)`` draws the figures first when ``plots/`` lacks the
paired figure (:func:`experiments.plots.make_plots`), then writes

* ``report.html``: figures embedded as base64 PNG (the paired figure first),
  the significance table of paired differences (:func:`experiments.paired.significance_table`:
  95 % t-intervals with the image as the unit, n_images and n_seeds, p-values, the
  verdict after a Holm or Benjamini–Hochberg correction over the table, the
  smallest difference detectable with 80 % power and, with ``detect``, the
  images needed), a warning when fewer than 5 images back an interval, the
  table of mean metrics, the config (YAML) and the provenance (config hash,
  git commit, date, package versions, machine);
* ``report.md``: the same text, figures linked relatively (``plots/<name>.png``).
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["ReportFiles", "write_report", "FIGURE_ORDER"]

#: figures in report order, with the sentence that says what each shows
FIGURE_ORDER = (
    ("paired_vs_loss", "Paired comparison: (a) ΔLPIPS of each method vs the loss-free reconstruction, (b) its paired "
                       "difference to the reference method (95 % intervals over images; filled marker: significant "
                       "after the correction named in the title, half-filled: only the unadjusted interval "
                       "excludes 0)."),
    ("fec_vs_bits", "FEC vs concealment at equal total rate (headers and parity included); star: an idealised "
                    "FEC (loss-free while every block's losses ≤ parity, else the no-FEC result)."),
    ("strategies", "Strategies (codebook size S + FEC · concealment method) on one loss axis at their measured total "
                   "rate: (a) LPIPS vs loss rate, (b) the paired difference to the reference strategy (95 % intervals "
                   "over images); where lines cross, the better strategy changes."),
    ("lpips_vs_loss", "Absolute LPIPS vs the original per loss rate (marginal 95 % bands over images, seeds "
                      "averaged first)."),
    ("burst_effect", "Effect of the mean burst length at a fixed stationary loss rate."),
    ("rate_distortion", "Loss-free rate–distortion per codebook size."),
    ("fec_vs_concealment", "LPIPS vs total bits per pixel per channel setting (all methods)."),
)
MAX_GRIDS = 1
#: embedded PNGs wider than this are scaled down (image grids at 200 dpi are megabytes)
MAX_EMBED_WIDTH = 1400


@dataclass
class ReportFiles:
    """What ``write_report`` wrote: the two report files, the figures used, notes."""

    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


#: number formats of particular columns (others: 4 decimals)
_FORMATS = {"p": "{:.2g}", "p_adj": "{:.2g}", "n_needed": "{:.0f}"}


def _fmt(c: str, v, floatfmt: str) -> str:
    if isinstance(v, float):
        if c == "n_needed" and v == float("inf"):
            return "> 10⁷"
        return _FORMATS.get(c, floatfmt).format(v)
    return str(v)


def _table_html(df, floatfmt: str = "{:.4f}") -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for r in df.itertuples(index=False):
        cells = []
        for c, v in zip(cols, r, strict=False):
            text = _fmt(c, v, floatfmt)
            cls = f' class="{v}"' if c in ("verdict", "verdict_unadjusted") and v in ("better", "worse") else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _table_md(df, floatfmt: str = "{:.4f}") -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(c, v, floatfmt) for c, v in zip(cols, r, strict=False)) + " |")
    return "\n".join(lines)


def _plots_current(plots: Path, reference: str, unit: str = "image", correction: str = "holm") -> bool:
    """Whether ``plots/`` holds the paired figure drawn with ``reference``, ``unit`` and ``correction``."""
    from .plots import PAIRED_REFERENCE_NOTE, stats_note

    try:
        readme = (plots / "README.txt").read_text().splitlines()
    except OSError:
        return False
    return ((plots / "paired_vs_loss.png").exists() and f"{PAIRED_REFERENCE_NOTE}{reference}" in readme
            and stats_note(unit, correction) in readme)


def _png_bytes(path: Path, max_width: int = MAX_EMBED_WIDTH) -> bytes:
    """The PNG's bytes, re-encoded at ``max_width`` pixels when wider."""
    import io

    from PIL import Image

    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        if im.width <= max_width:
            return raw
        small = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        return buf.getvalue()


def _verdict_counts(sig):
    """Per method: at how many points it is significantly better / worse than the reference, or n.s."""
    import pandas as pd

    c = pd.crosstab(sig["method"], sig["verdict"]).reindex(columns=["better", "worse", "n.s."], fill_value=0)
    c = c.reindex([m for m in dict.fromkeys(sig["method"])]).reset_index()
    c.columns.name = None
    c.insert(1, "reference", [" / ".join(dict.fromkeys(sig.loc[sig["method"] == m, "reference"])) for m in c["method"]])
    return c


def _means(df):
    """Mean LPIPS vs original per (channel, FEC) × method."""
    metric = next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns), None)
    if metric is None:
        return None, None
    t = df.pivot_table(index=["channel_label", "fec"], columns="method", values=metric, aggfunc="mean", sort=False)
    t = t[[m for m in dict.fromkeys(df["method"]) if m in t.columns]].reset_index()
    t.columns.name = None
    return metric, t.rename(columns={"channel_label": "channel", "fec": "FEC"})


def _provenance(folder: Path) -> dict[str, Any]:
    from .sweep.provenance import read_provenance

    return read_provenance(folder)[0] or {}


def _prov_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    runs = p.get("runs") or [{}]
    last = runs[-1]
    git = p.get("git") or {}
    dev = p.get("device") or {}
    rows = [
        ("sweep", p.get("sweep", "")),
        ("config hash", p.get("config_hash", "")),
        ("git commit", f"{git.get('commit', '')}" + (" (dirty)" if git.get("dirty") else "")),
        ("created", p.get("created", "")),
        ("last run", f"{last.get('start', '')} – {last.get('end', '')}"),
        ("command", last.get("command", "")),
        ("status", f"{last.get('status', '')}, {last.get('trials_run', '')} trials, {last.get('wall_s', '')} s"),
        (
            "machine",
            f"{last.get('host', '')}, {p.get('platform', '')}, {dev.get('cpu_count', '')} CPUs, "
            f"CUDA {dev.get('torch_cuda_available', '')}",
        ),
        ("python", p.get("python", "")),
        ("packages", ", ".join(f"{k} {v}" for k, v in (p.get("packages") or {}).items())),
    ]
    return [(k, str(v)) for k, v in rows]


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:1em auto;font-size:14px}"
    "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
    "td.better{background:#d4f4d4}td.worse{background:#f6d4d4}img{max-width:100%}"
    "pre{background:#f6f6f6;padding:.5em;font-size:11px;overflow-x:auto}"
    "p.warning{background:#fff3cd;border:1px solid #e0c060;padding:.4em}"
)


#: what the verdict columns mean (the report's method paragraph)
def _method_text(unit: str, correction: str, level: float) -> str:
    from .paired import CORRECTION_NAMES
    from .significance import MIN_IMAGES, POWER

    pct, alpha = f"{100 * level:g} %", f"{100 * (1 - level):g} %"
    if unit == "image":
        u = (
            "The unit is the image: each image's seeds are averaged first (d_i), then the interval is "
            "mean ± t(n_images − 1)·s/√n_images over the images (identical photos, by content hash, count once); "
            "seeds of one image share its content and are not independent samples."
        )
    else:
        u = (
            "The unit is the trial: images × seeds are treated as independent samples (too narrow when images "
            "differ; kept for comparison with older reports)."
        )
    c = {
        "holm": f"Holm's correction over the table's comparisons keeps the chance of any false better/worse verdict "
        f"≤ {alpha}.",
        "bh": f"The Benjamini–Hochberg correction over the table's comparisons keeps the expected share of false "
        f"verdicts among the significant ones ≤ {alpha}.",
        "none": "No correction: with many comparisons some verdicts are expected by chance alone.",
    }[correction]
    return (
        f"{u} p is the two-sided p-value of the same t-test. {c} 'verdict' is after "
        f"{CORRECTION_NAMES[correction]}; the {pct} interval, p and 'verdict_unadjusted' are not adjusted "
        f"(all columns: plots/paired_differences.csv). mdd: the smallest |difference| the comparison detects with "
        f"{100 * POWER:g} % power (two-sided t-test, noncentral t, α = {alpha} per comparison, before "
        f"correction); n_needed: the {'images' if unit == 'image' else 'trials'} needed for the difference given "
        f"with --detect. Fewer than {MIN_IMAGES} images behind an interval draw a warning. Groups where every "
        f"method gives identical results are left out (and out of the correction)."
    )


#: columns of the report's table of significant differences (the full table has all)
_SHOWN = (
    "S",
    "channel",
    "FEC",
    "mtu",
    "interleave",
    "coder",
    "method",
    "reference",
    "unit",
    "n_images",
    "n_seeds",
    "diff",
    "lo",
    "hi",
    "p",
    "correction",
    "p_adj",
    "verdict",
    "mdd",
    "n_needed",
)


def _images_lead(df) -> str:
    names = df["image"].nunique() if "image" in df.columns else 0
    distinct = df["image_hash"].nunique() if "image_hash" in df.columns else names
    dup = f" ({names} image names; identical photos count once)" if names > distinct else ""
    return f"{distinct} images{dup} × {df['seed'].nunique()} seeds per point"


def findings_paragraph(sig, metric: str, reference: str, correction: str) -> str:
    """The main findings of the paired table in words: per method, at how many points it is better / worse than
    the reference after the correction, with its largest significant gain (diff and interval, where); methods
    with no significant difference are named together."""
    if sig is None or not len(sig):
        return ""
    ref = "the best model-free baseline at each point" if reference == "best_baseline" else reference
    corr = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}.get(correction, correction)

    def where(r) -> str:
        return ", ".join(str(x) for x in (f"S={r['S']}" if "S" in r else None, r["channel"], f"FEC {r['FEC']}") if x)

    parts, same = [], []
    for m, g in sig.groupby("method", sort=False):
        n = len(g)
        better, worse = g[g["verdict"] == "better"], g[g["verdict"] == "worse"]
        if not len(better) and not len(worse):
            same.append(m)
            continue
        bits = []
        if len(better):
            b = better.loc[better["diff"].abs().idxmax()]
            lo, hi = sorted((abs(b["lo"]), abs(b["hi"])))
            bits.append(
                f"better at {len(better)} of {n} points (largest gain {abs(b['diff']):.4f}, 95 % interval "
                f"[{lo:.4f}, {hi:.4f}], at {where(b)})"
            )
        if len(worse):
            w = worse.loc[worse["diff"].abs().idxmax()]
            bits.append(f"worse at {len(worse)} of {n} points (largest loss {abs(w['diff']):.4f} at {where(w)})")
        parts.append(f"{m} is " + " and ".join(bits))
    if same:
        parts.append(f"{', '.join(same)}: no significant difference at any point")
    head = "No method differs significantly from the reference. " if not [p for p in parts if " is " in p] else ""
    return (
        f"Main findings ({metric}, paired with {ref}, {corr} correction over the table's {len(sig)} "
        f"comparisons): {head}" + "; ".join(parts) + "."
    )


def strategies_sentence(df) -> str:
    """With several (codebook size, FEC) settings on packet-loss channels: the best strategy (S + FEC · method)
    at each loss rate of each channel family, in words (from :func:`experiments.plots.strategy_table`)."""
    from .plots.strategies import strategy_table

    d = df[df["channel_kind"] == "loss"] if "channel_kind" in df.columns else df.iloc[:0]
    pk = [c for c in ("coder", "interleave") if c in d.columns]
    if d.empty or d.groupby(["codebook_size", "fec", *pk]).ngroups < 2:
        return ""
    t = strategy_table(d)
    if t.empty:
        return ""
    metric = next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in d.columns), "metric")
    higher = metric in ("psnr", "ssim")
    out = []
    for fam, g in t.groupby("channel_family", sort=False):
        best = g.loc[
            (
                g.groupby("loss_rate_nominal")["mean"].idxmax()
                if higher
                else g.groupby("loss_rate_nominal")["mean"].idxmin()
            )
        ]
        pts = [f"{100 * r['loss_rate_nominal']:g} %: {r['strategy']} ({r['mean']:.3f})" for _, r in best.iterrows()]
        winners = list(dict.fromkeys(best["strategy"]))
        change = (
            f"the best strategy changes with the loss rate ({' → '.join(winners)})"
            if len(winners) > 1
            else f"{winners[0]} is best at every loss rate"
        )
        out.append(f"On {fam}, {change}: " + "; ".join(pts) + ".")
    return (
        f"Strategies at their measured total rates (best mean {metric} per loss rate; whether the gaps are "
        f"significant: the strategies figure's panel (b)): " + " ".join(out)
    )


def write_report(
    folder: str | Path,
    reference: str = "best_baseline",
    log: Callable[[str], None] | None = None,
    unit: str = "image",
    correction: str = "holm",
    detect: float | None = None,
    level: float = 0.95,
) -> ReportFiles:
    """Write ``report.html`` and ``report.md`` into a results folder (drawing its figures if missing).

    ``reference``: the method paired differences subtract (a method name or ``"best_baseline"``);
    ``unit``: ``"image"`` (seeds averaged within an image first; default) or ``"trial"``;
    ``correction``: ``"holm"`` (default), ``"bh"`` or ``"none"`` over the table's comparisons;
    ``detect``: a difference in the paired metric whose required number of images the report
    states (80 % power).  Figures drawn with another reference, unit or correction
    (``plots/README.txt`` names them) are redrawn, so that the paired figure and the tables agree.

    Raises FileNotFoundError when ``folder`` holds no results (``experiments.sweep.read_results``),
    ParameterError for an unknown unit or correction, a level outside (0, 1) or detect ≤ 0.
    """
    from .paired import family_sentence, few_images_warning, power_sentence, significance_table
    from .plots import make_plots
    from .significance import check_correction, check_level, check_unit, units_needed
    from .sweep import read_results
    from .sweep.health import few_packets_warning, incomplete_banner, realised_loss_warning

    check_unit(unit)
    check_correction(correction)
    level = check_level(level)
    if detect is not None:
        units_needed(detect, 1.0)  # validates δ before any work
    folder = Path(folder)
    df = read_results(folder)
    plots = folder / "plots"
    notes: list[str] = []
    if not _plots_current(plots, reference, unit, correction):
        rep = make_plots(folder, formats=("png", "pdf"), reference=reference, log=log, unit=unit, correction=correction)
        notes += rep.notes + rep.skipped
    figs = [(plots / f"{stem}.png", text) for stem, text in FIGURE_ORDER if (plots / f"{stem}.png").exists()]
    grids = sorted(plots.glob("grid_*.png"))[:MAX_GRIDS]
    figs += [(g, "Example images: original, loss-free, lost indices (red), each method's result.") for g in grids]

    from .paired import default_paired_metric

    metric = default_paired_metric(df)
    sig = (
        significance_table(df, metric, reference, level=level, unit=unit, correction=correction, detect=detect)
        if metric and df["method"].nunique() > 1
        else None
    )
    have_sig = sig is not None and len(sig) > 0
    if have_sig:
        sig.to_csv(plots / "paired_differences.csv", index=False)
    mean_metric, means = _means(df)
    prov = _provenance(folder)
    cfg_text = (folder / "config.yaml").read_text() if (folder / "config.yaml").exists() else "(no config.yaml)"
    name = prov.get("sweep") or folder.name
    lead = f"{len(df)} trials; {_images_lead(df)}; methods: {', '.join(dict.fromkeys(df['method']))}."
    if have_sig:
        fam = sig.attrs["family"]
        sig_lead = f"Paired differences in {metric} to {reference}. " + family_sentence(fam)
        warning = few_images_warning(fam)
        power_text = power_sentence(sig, metric)
    else:
        sig_lead = "No paired comparison (one method or no *_vs_lossfree metric)."
        warning = power_text = None
    if warning and log:
        log(warning)
    method_text = _method_text(unit, correction, level)
    findings = findings_paragraph(sig, metric, reference, correction) if have_sig else ""
    strat = strategies_sentence(df)
    findings = " ".join(x for x in (findings, strat) if x)
    banners = [b for b in (incomplete_banner(folder, df), few_packets_warning(df), realised_loss_warning(df)) if b]
    for b in banners:
        if log:
            log(b)
        notes.append(b)

    # ---- html
    h = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vqsim report: {html.escape(name)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>vqsim sweep report: {html.escape(name)}</h1>",
        *(f'<p class="warning"><b>{html.escape(b)}</b></p>' for b in banners),
        *([f"<p><b>{html.escape(findings)}</b></p>"] if findings else []),
        f"<p>{html.escape(lead)}<br>config hash <code>{html.escape(str(prov.get('config_hash', '')))}</code>, "
        f"git commit <code>{html.escape(str((prov.get('git') or {}).get('commit', '')))}</code></p>",
        f"<p>{html.escape(sig_lead)}</p>",
    ]
    if warning:
        h.append(f'<p class="warning">{html.escape(warning)}</p>')
    for path, text in figs:
        b64 = base64.b64encode(_png_bytes(path)).decode("ascii")
        h.append(
            f'<figure><img src="data:image/png;base64,{b64}" alt="{html.escape(path.stem)}">'
            f"<figcaption><b>{html.escape(path.stem)}</b>: {html.escape(text)}</figcaption></figure>"
        )
    h.append(f"<h2>Significance of paired differences</h2><p>{html.escape(sig_lead)}</p>")
    if have_sig:
        shown = sig[sig["verdict"] != "n.s."]
        nominal = sig[(sig["verdict"] == "n.s.") & (sig["verdict_unadjusted"] != "n.s.")]
        cols = [c for c in _SHOWN if c in sig.columns]
        h.append(f"<p>{html.escape(method_text)}</p>")
        if warning:
            h.append(f'<p class="warning">{html.escape(warning)}</p>')
        h.append(f"<h3>How much data</h3><p>{html.escape(power_text)}</p>")
        h.append(
            f"<h3>Per method: points better / worse than the reference (after {html.escape(correction)})</h3>"
            + _table_html(_verdict_counts(sig))
        )
        h.append(
            f"<h3>Significant differences (after {html.escape(correction)})</h3>"
            + (_table_html(shown[cols]) if len(shown) else "<p>none</p>")
        )
        if len(nominal) and correction != "none":
            h.append(
                f"<h3>Intervals excluding 0 that do not survive {html.escape(correction)}</h3>"
                + _table_html(nominal[cols + ["verdict_unadjusted"]])
            )
        h.append(
            f"<details><summary>all {len(sig)} paired differences (unadjusted and adjusted)</summary>"
            f"{_table_html(sig)}</details>"
        )
    if means is not None:
        h.append(f"<h2>Mean {html.escape(mean_metric)} per channel point</h2>" + _table_html(means))
    h.append(
        "<h2>Provenance</h2><table><tbody>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _prov_rows(prov))
        + "</tbody></table>"
    )
    h.append(f"<h2>Config</h2><pre>{html.escape(cfg_text)}</pre>")
    if notes:
        h.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    h.append("</body></html>")
    out_html = folder / "report.html"
    out_html.write_text("\n".join(h), encoding="utf-8")

    # ---- markdown
    m = [f"# vqsim sweep report: {name}", ""] + [f"> **{b}**\n" for b in banners]
    m += ([f"**{findings}**", ""] if findings else []) + [
        lead,
        "",
        f"config hash `{prov.get('config_hash', '')}`, git commit `{(prov.get('git') or {}).get('commit', '')}`",
        "",
        sig_lead,
        "",
    ]
    if warning:
        m += [f"> **{warning}**", ""]
    for path, text in figs:
        m += [f"![{path.stem}]({path.relative_to(folder).as_posix()})", "", f"*{path.stem}*: {text}", ""]
    m += ["## Significance of paired differences", "", sig_lead, ""]
    if have_sig:
        shown = sig[sig["verdict"] != "n.s."]
        nominal = sig[(sig["verdict"] == "n.s.") & (sig["verdict_unadjusted"] != "n.s.")]
        cols = [c for c in _SHOWN if c in sig.columns]
        m += [method_text, ""] + ([f"> **{warning}**", ""] if warning else [])
        m += ["### How much data", "", power_text, ""]
        m += [
            f"Per method: points better / worse than the reference (after {correction})",
            "",
            _table_md(_verdict_counts(sig)),
            "",
            f"Significant differences after {correction} (all of them, unadjusted values included: "
            "`plots/paired_differences.csv`)",
            "",
            _table_md(shown[cols]) if len(shown) else "none",
            "",
        ]
        if len(nominal) and correction != "none":
            m += [
                f"Intervals excluding 0 that do not survive {correction}",
                "",
                _table_md(nominal[cols + ["verdict_unadjusted"]]),
                "",
            ]
    if means is not None:
        m += [f"## Mean {mean_metric} per channel point", "", _table_md(means), ""]
    m += ["## Provenance", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _prov_rows(prov)] + [""]
    m += ["## Config", "", "```yaml", cfg_text.rstrip(), "```", ""]
    if notes:
        m += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out_md = folder / "report.md"
    out_md.write_text("\n".join(m), encoding="utf-8")
    return ReportFiles(out_html, out_md, [p for p, _ in figs], notes)
