"""experiments.report and the paired / FEC figures of experiments.plots, on a tiny real sweep."""
from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pandas as pd
import pytest

from experiments.plots import PlotReport
from experiments.report import ReportFiles
from experiments.sweep import ResultStore, run_sweep


def quiet(*_a):
    pass


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_config):
    """2 images × 2 codebook sizes × (2 index-loss rates + 2 Bernoulli rates × FEC off/RS(6,4)) × 3 methods × 2 seeds.
    """
    cfg = tiny_config()
    cfg["channels"] = [{"model": "index_loss", "rate": [0.1, 0.3]}, {"model": "bernoulli", "p": [0.1, 0.3]}]
    cfg["examples"] = {"enabled": True}
    out = tmp_path_factory.mktemp("report") / "tiny"
    return run_sweep(cfg, out, progress=False, log=quiet)


@dataclass
class Written:
    """One ``write_report`` of the sweep folder, read back at once (later tests redraw and rewrite the folder)."""

    rep: ReportFiles
    plots_before: bool  # whether plots/ existed before the call (no: the report had to draw every figure)
    html: str
    markdown: str
    sig: pd.DataFrame  # plots/paired_differences.csv as this report wrote it


@pytest.fixture(scope="module")
def report(sweep):
    """The sweep folder's first report: drawing every figure (PNG + PDF at 200 dpi) costs seconds, so the tests
    that read the report share this one."""
    from experiments.report import write_report

    plots_before = (sweep.out / "plots").exists()
    rep = write_report(sweep.out)
    return Written(rep, plots_before, rep.html.read_text(encoding="utf-8"), rep.markdown.read_text(encoding="utf-8"),
                   pd.read_csv(sweep.out / "plots" / "paired_differences.csv"))


@dataclass
class Drawn:
    """One ``make_plots(sweep folder, png, dpi 50)``, with the files it wrote read back at once."""

    rep: PlotReport
    paired_csv: pd.DataFrame
    readme: str


@pytest.fixture(scope="module")
def plots50(sweep, report):
    """Every figure of the sweep folder as small PNGs, drawn once for the tests that check the drawn numbers
    (after ``report``, so that the shared report is the one that found no plots/)."""
    from experiments.plots import make_plots

    rep = make_plots(sweep.out, formats=("png",), dpi=50)
    plots = sweep.out / "plots"
    return Drawn(rep, pd.read_csv(plots / "paired_vs_loss.csv"), (plots / "README.txt").read_text())


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[dict] = []
        self.tables = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "table":
            self.tables += 1

    def handle_data(self, data):
        self.text.append(data)


def test_report_html_is_self_contained(sweep, report):
    from PIL import Image

    p = _Collect()
    p.feed(report.html)
    assert p.imgs and p.imgs[0]["alt"] == "paired_vs_loss"
    assert any(i["alt"] == "fec_vs_bits" for i in p.imgs)
    for img in p.imgs:
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()
    assert p.tables >= 4  # verdict counts, significant rows, all rows, means, provenance
    text = " ".join(p.text)
    prov = json.loads((sweep.out / "provenance.json").read_text())
    assert prov["config_hash"] in text
    assert prov["git"]["commit"] and prov["git"]["commit"] in text
    assert "codebook_sizes" in text  # the config YAML
    assert "better" in text and "n.s." in text


def test_report_states_unit_images_correction_and_warns_with_few_images(report):
    p = _Collect()
    p.feed(report.html)
    text = " ".join(p.text)
    assert "Unit: image (seeds averaged within each image first), n_images = 2, n_seeds = 2" in text
    assert re.search(r"\d+ of \d+ comparisons have an interval excluding 0 before correction", text)
    assert re.search(r"\d+ remains? significant after Holm", text)
    assert "warning: only 2 image(s) back some intervals (fewer than 5)" in text
    assert "80 % power" in text
    sig = report.sig
    for c in ("unit", "n_images", "n_seeds", "p", "correction", "p_adj", "verdict", "verdict_unadjusted", "mdd"):
        assert c in sig.columns
    assert set(sig["unit"]) == {"image"} and set(sig["n_images"]) == {2} and set(sig["correction"]) == {"holm"}
    assert (sig["p_adj"] >= sig["p"] - 1e-12).all()
    md = report.markdown
    assert "> **warning: only 2 image(s)" in md and "Unit: image" in md and "after holm" in md


def test_report_md_links_existing_files(sweep, report):
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.markdown)
    assert links[0] == "plots/paired_vs_loss.png"
    for link in links:
        assert not link.startswith("/") and (sweep.out / link).is_file()


def test_docs_report_figure_is_drawn_from_the_report(sweep, report, tmp_path):
    """docs/make_report_figure.py (the README's picture of the demo report) reads the title, the trials line and the
    paired-verdict paragraph from report.md and stacks them over plots/paired_vs_loss.png, 650 px wide."""
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "make_report_figure", Path(__file__).resolve().parents[2] / "docs" / "make_report_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    title, paras, fig, caption = mod.report_parts(sweep.out)
    assert title.startswith("vqsim sweep report") and re.match(r"\d+ trials;", paras[0])
    assert paras[1].startswith("Paired differences in ") and fig == sweep.out / "plots" / "paired_vs_loss.png"
    out = tmp_path / "top.jpg"
    mod.main(str(sweep.out), str(out))
    page, plot = Image.open(out), Image.open(fig)
    assert page.width == 650 and page.height > round(plot.height * 650 / plot.width) + 100  # text above the plot
    with pytest.raises(FileNotFoundError, match="report.md"):
        mod.report_parts(tmp_path)


def test_report_draws_missing_plots(sweep, report):
    folder = sweep.out  # the shared report is the folder's first: no plots/ before it
    assert not report.plots_before
    rep = report.rep
    assert (folder / "plots" / "paired_vs_loss.png").exists() and rep.figures[0].name == "paired_vs_loss.png"


def test_paired_figure_draws_paired_differences(sweep, plots50):
    from experiments.paired import image_mean_ci, paired_differences
    from experiments.significance import adjust_pvalues

    rep = plots50.rep
    assert "paired_vs_loss" in {p.stem for p in rep.files}
    drawn = rep.data["paired_vs_loss"]
    csv = plots50.paired_csv
    assert len(csv) == len(drawn)
    df = sweep.results
    point = dict(codebook_size=16, channel_label="bernoulli(p=0.3)", fec="none")
    b = drawn[(drawn["panel"] == "b") & (drawn["method"] == "none")]
    for c, v in point.items():
        b = b[b[c] == v]
    assert len(b) == 1
    sub = df[(df["codebook_size"] == 16) & (df["channel_label"] == "bernoulli(p=0.3)") & (df["fec"] == "none")]
    ref = paired_differences(sub, "lpips_alex_vs_lossfree", "best_baseline").set_index("method").loc["none"]
    assert b["reference"].iloc[0] == ref["reference"]
    assert (b["unit"].iloc[0], b["n_images"].iloc[0], b["n_seeds"].iloc[0]) == ("image", 2, 2)
    assert b["n"].iloc[0] == ref["n"] == 2  # 2 images (their 2 seeds averaged first)
    for col, rc in (("value", "diff"), ("lo", "lo"), ("hi", "hi"), ("p", "p")):
        assert b[col].iloc[0] == pytest.approx(ref[rc])
    assert bool(b["significant_unadjusted"].iloc[0]) == bool(ref["significant_unadjusted"])
    # the filled markers: Holm over every (b) point of the figure (ties left out)
    allb = drawn[drawn["panel"] == "b"]
    assert (allb["correction"] == "holm").all()
    zero = allb["value"].eq(0) & allb["lo"].eq(0) & allb["hi"].eq(0)
    tie = zero.groupby(
        [allb[c] for c in ("channel_family", "fec", "codebook_size", "channel_label", "loss_rate_nominal")]
    ).transform("all")
    holm = adjust_pvalues(allb.loc[~tie, "p"].to_numpy(), "holm")
    assert list(allb.loc[~tie, "p_adj"]) == pytest.approx(list(holm))
    assert list(allb.loc[~tie, "significant"]) == list((holm < 0.05) & allb.loc[~tie, "significant_unadjusted"])
    assert not allb.loc[tie, "significant"].any()
    a = drawn[(drawn["panel"] == "a") & (drawn["method"] == "neighbor")]
    for c, v in point.items():
        a = a[a[c] == v]
    g = sub[sub["method"] == "neighbor"]
    mu, lo, hi, n = image_mean_ci(g["lpips_alex_vs_lossfree"].to_numpy(), g["image_hash"].to_numpy())
    assert (a["value"].iloc[0], a["lo"].iloc[0], a["hi"].iloc[0], a["n"].iloc[0]) == pytest.approx((mu, lo, hi, 2))
    assert "paired statistics: unit=image correction=holm" in plots50.readme


def test_reference_parameter(sweep, tmp_path):
    from experiments.plots import make_plots

    # the paired figure's rows at one codebook size without FEC (both channel families, 2 loss rates each):
    # every report below redraws all figures the data supports (PNG + PDF at 200 dpi), so fewer of them
    folder = tmp_path / "ref"
    df = sweep.results
    ResultStore(folder).append(df[(df["codebook_size"] == 16) & (df["fec"] == "none")].to_dict("records"))
    rep = make_plots(folder, formats=("png",), dpi=50, reference="none")
    b = rep.data["paired_vs_loss"].query("panel == 'b'")
    assert set(b["reference"]) == {"none"} and "none" not in set(b["method"])
    from experiments.report import write_report

    write_report(folder)  # the default reference: the figure is redrawn to match the tables
    csv = pd.read_csv(folder / "plots" / "paired_vs_loss.csv").query("panel == 'b'")
    assert "none" not in set(csv["reference"])
    write_report(folder, reference="none")
    csv = pd.read_csv(folder / "plots" / "paired_vs_loss.csv").query("panel == 'b'")
    assert set(csv["reference"]) == {"none"}


def test_fec_vs_bits_points_and_one_fec_setting(sweep, plots50, tmp_path):
    from experiments.plots import make_plots

    t = plots50.rep.data["fec_vs_bits"]
    assert set(t["fec"]) == {"none", "RS(6,4)"} and set(t["codebook_size"]) == {8, 16}
    assert t.loc[t["fec"] == "none", "ideal"].isna().all()
    fec = t[t["fec"] != "none"]
    assert fec["ideal"].notna().all()
    one = sweep.results[sweep.results["fec"] == "none"]
    store = ResultStore(tmp_path / "nofec")
    store.append(one.to_dict("records"))
    rep = make_plots(tmp_path / "nofec", formats=("png",), dpi=50)
    text = " ".join(rep.skipped)
    assert "fec_vs_bits" in text and "failed" not in text
    assert "paired_vs_loss" in {p.stem for p in rep.files}


def test_ideal_fec_rule():
    from experiments.plots import ideal_fec

    base = dict(
        image_hash="h",
        seed=0,
        codebook_size=16,
        channel_label="c",
        mtu=24,
        interleave="random",
        coder="raw",
        method="none",
        lossfree_lpips_alex=0.2,
    )
    df = pd.DataFrame(
        [
            {**base, "fec": "none", "data_lost": 2, "lpips_alex": 0.5},
            {**base, "fec": "RS(6,4)", "data_lost": 0, "lpips_alex": 0.2},  # every block recovered
            {**base, "seed": 1, "fec": "none", "data_lost": 3, "lpips_alex": 0.6},
            {**base, "seed": 1, "fec": "RS(6,4)", "data_lost": 1, "lpips_alex": 0.45},  # a block lost > parity
        ]
    )
    f, note = ideal_fec(df)
    assert note == ""
    assert list(f["ideal"]) == [0.2, 0.6]
    f, note = ideal_fec(df.drop(columns="data_lost"))
    assert "data_lost" in note and list(f["ideal"]) == [0.2, 0.2]


def test_cli_report(sweep, report, capsys, tmp_path):  # report: the folder's first report is the shared one
    from experiments.cli import main

    assert main(["report", str(sweep.out)]) == 0
    assert str(sweep.out / "report.html") in capsys.readouterr().out
    from experiments.report import _plots_current

    plots = sweep.out / "plots"  # figures drawn with Holm are redrawn for another correction
    assert _plots_current(plots, "best_baseline", "image", "holm")
    assert not _plots_current(plots, "best_baseline", "image", "bh")
    assert main(["report", str(sweep.out), "--detect", "0.01"]) == 0
    md = (sweep.out / "report.md").read_text(encoding="utf-8")
    assert "Holm" in md and "To detect a difference of 0.01 with 80 % power" in md
    sig = pd.read_csv(plots / "paired_differences.csv")
    assert set(sig["correction"]) == {"holm"} and "n_needed" in sig.columns
    capsys.readouterr()
    assert main(["report", str(sweep.out), "--detect", "-0.01"]) == 2
    assert "difference to detect must be a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", str(sweep.out), "--correction", "bonferroni"])
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2


def test_unknown_reference_is_refused(sweep, capsys):
    """Issue 27: ``--reference magic`` drew empty "difference to magic" panels with exit 0."""
    from experiments.cli import main

    for cmd in ("plot", "report"):
        assert main([cmd, str(sweep.out), "--reference", "magic"]) == 2
        err = capsys.readouterr().err
        assert "reference 'magic' is not a method" in err and "best_baseline" in err and "neighbor" in err


def test_demo_photos_are_six_distinct_images():
    from experiments.config import load_config, validate_config
    from experiments.demo import DEMO_CONFIG
    from experiments.sweep.sources import load_images

    images = load_images(validate_config(load_config(DEMO_CONFIG)))
    assert len(images) == 6 and len({im.hash for im in images}) == 6  # no photo twice under two names
