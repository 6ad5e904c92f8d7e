"""experiments.evaluation: RD curves, Pareto fronts and the BD table (bjontegaard, PCHIP)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from experiments.evaluation import (
    PAPER_KODAK,
    PAPER_LABEL,
    Curve,
    bd_pair,
    bd_table,
    format_bd_table,
    pareto_front,
    rd_curves,
)


def _curve(name, bpp, lpips):
    return Curve(name, np.asarray(bpp, float), {"lpips_alex": np.asarray(lpips, float)}, 1)


def test_pareto_front_keeps_only_points_better_than_every_cheaper_one():
    bpp = [0.01, 0.02, 0.015, 0.04, 0.03]
    lp = [0.50, 0.45, 0.55, 0.40, 0.46]                 # 0.015 is worse than 0.01; 0.03 worse than 0.02
    assert pareto_front(bpp, lp).tolist() == [0, 1, 3]
    assert pareto_front(bpp, [-v for v in lp], lower_is_better=False).tolist() == [0, 1, 3]


def test_half_the_rate_at_equal_quality_is_minus_fifty_percent():
    lp = [0.5, 0.45, 0.4, 0.35, 0.3]
    anchor = _curve("a", [0.02, 0.04, 0.08, 0.16, 0.32], lp)
    test = _curve("vqsim", [0.01, 0.02, 0.04, 0.08, 0.16], lp)
    rate, dq, note = bd_pair(anchor, test, "lpips_alex")
    assert rate == pytest.approx(-50.0, abs=1e-6) and note == ""
    assert dq < 0                                       # at equal rate the test's LPIPS is lower (better)
    rate2, _, _ = bd_pair(test, anchor, "lpips_alex")
    assert rate2 == pytest.approx(100.0, abs=1e-6)


def test_curves_that_do_not_overlap_give_nan_and_say_why():
    anchor = _curve("jpeg", [0.02, 0.04, 0.08], [0.9, 0.8, 0.7])
    test = _curve("vqsim", [0.01, 0.02, 0.03], [0.5, 0.45, 0.44])
    rate, dq, note = bd_pair(anchor, test, "lpips_alex")
    assert math.isnan(rate) and np.isfinite(dq)
    assert "do not overlap" in note and "[0.440, 0.500]" in note
    assert "not measured" in bd_pair(anchor, test, "dists")[2]


def test_rd_curves_pick_the_shipped_variant_per_size_and_group_anchor_settings():
    rows = []
    for img in ("a.png", "b.png"):
        for K, v, bpp, lp in ((16, "trained", 0.03, 0.40), (8, "finetuned", 0.02, 0.45), (8, "kmeans", 0.02, 0.47)):
            rows.append(dict(set="kodak", image=img, codebook_size=K, variant=v, anchor="", setting=f"K={K}",
                             bpp_arith_rep=bpp, lpips_alex=lp))
        for s, bpp, lp in (("x4 q0", 0.01, 0.9), ("x2 q0", 0.05, 0.6)):
            rows.append(dict(set="kodak", image=img, codebook_size=0, variant=f"avif {s}", anchor="avif", setting=s,
                             bpp_arith_rep=bpp, lpips_alex=lp))
    rows.append(dict(set="kodak", image="c.png", codebook_size=16, variant="trained", anchor="", setting="K=16",
                     bpp_arith_rep=0.5, lpips_alex=0.1))           # an interrupted run's image: not on the curve
    c = rd_curves(pd.DataFrame(rows), metrics=("lpips_alex", "dists"))
    assert c["vqsim"].bpp.tolist() == [0.02, 0.03] and c["vqsim"].metrics["lpips_alex"].tolist() == [0.45, 0.40]
    assert c["avif"].settings == ("x4 q0", "x2 q0") and c["avif"].images == 2
    assert "dists" not in c["vqsim"].metrics


def test_bd_table_has_the_table_1_layout_with_the_paper_row_on_kodak_only():
    lp = np.asarray(PAPER_KODAK["lpips_alex"])
    ours = Curve("vqsim", np.asarray(PAPER_KODAK["bpp"]) * 2,
                 {"lpips_alex": lp, "dists": np.asarray(PAPER_KODAK["dists"])}, 24)
    curves = {"kodak": {"vqsim": ours, "heic": _curve("heic", [0.01, 0.05, 0.2], [0.35, 0.25, 0.15])},
              "val": {"vqsim": ours}}
    rows = bd_table(curves, anchors=("heic",), paper_set="kodak")
    assert [r["anchor"] for r in rows] == ["heic", PAPER_LABEL]
    paper = rows[1]
    assert paper["kodak:lpips_alex:rate"] == pytest.approx(100.0, abs=1e-6)   # twice the paper's bits
    assert math.isnan(paper["val:lpips_alex:rate"])                         # the paper plots Kodak only
    assert math.isnan(rows[0]["kodak:dists:rate"]) and math.isfinite(rows[0]["kodak:lpips_alex:rate"])
    text = format_bd_table(rows, ["kodak", "val"], images={"kodak": 24, "val": 16})
    assert text.splitlines()[0].startswith("| anchor | kodak (24 img) BD-rate LPIPS | kodak (24 img) BD-rate DISTS |")
    assert "+100.0 %" in text and "read off its published plot" in text and "val: heic not measured" in text
