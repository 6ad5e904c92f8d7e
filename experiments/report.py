"""One-page report of a sweep's results folder: ``report.html`` (self-contained) and ``report.md``.

``write_report(folder)`` draws the figures first when ``plots/`` lacks the
paired figure (:func:`experiments.plots.make_plots`), then writes

* ``report.html``: figures embedded as base64 PNG (the paired figure first),
  the significance table of paired differences (:func:`experiments.paired.significance_table`,
  95 % t-intervals over images × seeds), the table of mean metrics, the
  config (YAML) and the provenance (config hash, git commit, date, package
  versions, machine);
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
                       "difference to the reference method (filled marker: the 95 % interval excludes 0)."),
    ("fec_vs_bits", "FEC vs concealment at equal total rate (headers and parity included); star: an idealised "
                    "FEC (loss-free while every block's losses ≤ parity, else the no-FEC result)."),
    ("lpips_vs_loss", "Absolute LPIPS vs the original per loss rate (marginal 95 % bands over images)."),
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


def _table_html(df, floatfmt: str = "{:.4f}") -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for r in df.itertuples(index=False):
        cells = []
        for c, v in zip(cols, r):
            text = floatfmt.format(v) if isinstance(v, float) else str(v)
            cls = f' class="{v}"' if c == "verdict" and v in ("better", "worse") else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _table_md(df, floatfmt: str = "{:.4f}") -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def _plots_current(plots: Path, reference: str) -> bool:
    """Whether ``plots/`` holds the paired figure drawn with ``reference``."""
    from .plots import PAIRED_REFERENCE_NOTE

    try:
        readme = (plots / "README.txt").read_text().splitlines()
    except OSError:
        return False
    return (plots / "paired_vs_loss.png").exists() and f"{PAIRED_REFERENCE_NOTE}{reference}" in readme


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
    from .sweep.provenance import _read_provenance

    return _read_provenance(folder)[0] or {}


def _prov_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    runs = p.get("runs") or [{}]
    last = runs[-1]
    git = p.get("git") or {}
    dev = p.get("device") or {}
    rows = [("sweep", p.get("sweep", "")), ("config hash", p.get("config_hash", "")),
            ("git commit", f"{git.get('commit', '')}" + (" (dirty)" if git.get("dirty") else "")),
            ("created", p.get("created", "")), ("last run", f"{last.get('start', '')} – {last.get('end', '')}"),
            ("command", last.get("command", "")), ("status", f"{last.get('status', '')}, "
                                                             f"{last.get('trials_run', '')} trials, {last.get('wall_s', '')} s"),
            ("machine", f"{last.get('host', '')}, {p.get('platform', '')}, {dev.get('cpu_count', '')} CPUs, "
                        f"CUDA {dev.get('torch_cuda_available', '')}"),
            ("python", p.get("python", "")),
            ("packages", ", ".join(f"{k} {v}" for k, v in (p.get("packages") or {}).items()))]
    return [(k, str(v)) for k, v in rows]


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:1em auto;font-size:14px}"
        "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
        "td.better{background:#d4f4d4}td.worse{background:#f6d4d4}img{max-width:100%}"
        "pre{background:#f6f6f6;padding:.5em;font-size:11px;overflow-x:auto}")


def write_report(folder: str | Path, reference: str = "best_baseline",
                 log: Callable[[str], None] | None = None) -> ReportFiles:
    """Write ``report.html`` and ``report.md`` into a results folder (drawing its figures if missing).

    ``reference``: the method paired differences subtract (a method name or ``"best_baseline"``);
    figures drawn with another reference (``plots/README.txt`` names it) are redrawn, so that the
    paired figure and the tables agree.

    Raises FileNotFoundError when ``folder`` holds no results (``experiments.sweep.read_results``).
    """
    from .paired import significance_table
    from .plots import make_plots
    from .sweep import read_results

    folder = Path(folder)
    df = read_results(folder)
    plots = folder / "plots"
    notes: list[str] = []
    if not _plots_current(plots, reference):
        rep = make_plots(folder, formats=("png", "pdf"), reference=reference, log=log)
        notes += rep.skipped
    figs = [(plots / f"{stem}.png", text) for stem, text in FIGURE_ORDER if (plots / f"{stem}.png").exists()]
    grids = sorted(plots.glob("grid_*.png"))[:MAX_GRIDS]
    figs += [(g, "Example images: original, loss-free, lost indices (red), each method's result.") for g in grids]

    metric = next((m for m in ("lpips_alex_vs_lossfree", "lpips_vgg_vs_lossfree", "psnr_vs_lossfree")
                   if m in df.columns), None)
    sig = significance_table(df, metric, reference) if metric and df["method"].nunique() > 1 else None
    if sig is not None and len(sig):
        sig.to_csv(plots / "paired_differences.csv", index=False)
    mean_metric, means = _means(df)
    prov = _provenance(folder)
    cfg_text = (folder / "config.yaml").read_text() if (folder / "config.yaml").exists() else "(no config.yaml)"
    name = prov.get("sweep") or folder.name
    n_sig = int((sig["verdict"] != "n.s.").sum()) if sig is not None and len(sig) else 0
    lead = (f"{len(df)} trials; {df['image'].nunique()} images × {df['seed'].nunique()} seeds per point; "
            f"methods: {', '.join(dict.fromkeys(df['method']))}.")
    sig_lead = (f"Paired differences in {metric} to {reference}: {n_sig} of {len(sig)} significant at 95 %."
                if sig is not None and len(sig) else "No paired comparison (one method or no *_vs_lossfree metric).")

    # ---- html
    h = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vqsim report: {html.escape(name)}</title>"
         f"<style>{_CSS}</style></head><body>", f"<h1>vqsim sweep report: {html.escape(name)}</h1>",
         f"<p>{html.escape(lead)}<br>config hash <code>{html.escape(str(prov.get('config_hash', '')))}</code>, "
         f"git commit <code>{html.escape(str((prov.get('git') or {}).get('commit', '')))}</code></p>"]
    for path, text in figs:
        b64 = base64.b64encode(_png_bytes(path)).decode("ascii")
        h.append(f"<figure><img src=\"data:image/png;base64,{b64}\" alt=\"{html.escape(path.stem)}\">"
                 f"<figcaption><b>{html.escape(path.stem)}</b>: {html.escape(text)}</figcaption></figure>")
    h.append(f"<h2>Significance of paired differences</h2><p>{html.escape(sig_lead)} "
             "Interval: mean ± t<sub>0.975,n−1</sub>·s/√n over the paired units (images × seeds); groups where "
             "every method gives identical results are left out.</p>")
    if sig is not None and len(sig):
        shown = sig[sig["verdict"] != "n.s."]
        h.append("<h3>Per method: points better / worse than the reference</h3>" + _table_html(_verdict_counts(sig)))
        h.append("<h3>Significant differences</h3>" + (_table_html(shown) if len(shown) else "<p>none</p>"))
        h.append(f"<details><summary>all {len(sig)} paired differences</summary>{_table_html(sig)}</details>")
    if means is not None:
        h.append(f"<h2>Mean {html.escape(mean_metric)} per channel point</h2>" + _table_html(means))
    h.append("<h2>Provenance</h2><table><tbody>" + "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _prov_rows(prov)) + "</tbody></table>")
    h.append(f"<h2>Config</h2><pre>{html.escape(cfg_text)}</pre>")
    if notes:
        h.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    h.append("</body></html>")
    out_html = folder / "report.html"
    out_html.write_text("\n".join(h), encoding="utf-8")

    # ---- markdown
    m = [f"# vqsim sweep report: {name}", "", lead, "",
         f"config hash `{prov.get('config_hash', '')}`, git commit `{(prov.get('git') or {}).get('commit', '')}`", ""]
    for path, text in figs:
        m += [f"![{path.stem}]({path.relative_to(folder).as_posix()})", "", f"*{path.stem}*: {text}", ""]
    m += ["## Significance of paired differences", "", sig_lead, ""]
    if sig is not None and len(sig):
        shown = sig[sig["verdict"] != "n.s."]
        m += ["Per method: points better / worse than the reference", "", _table_md(_verdict_counts(sig)), "",
              "Significant differences (all of them: `plots/paired_differences.csv`)", "",
              _table_md(shown) if len(shown) else "none", ""]
    if means is not None:
        m += [f"## Mean {mean_metric} per channel point", "", _table_md(means), ""]
    m += ["## Provenance", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in _prov_rows(prov)] + [""]
    m += ["## Config", "", "```yaml", cfg_text.rstrip(), "```", ""]
    if notes:
        m += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    out_md = folder / "report.md"
    out_md.write_text("\n".join(m), encoding="utf-8")
    return ReportFiles(out_html, out_md, [p for p, _ in figs], notes)
