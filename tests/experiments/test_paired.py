"""experiments.paired / experiments.significance: clustered intervals, corrections for many comparisons, power.

The simulation tests draw thousands of repetitions at once (vectorised numpy) from a model with a known
image-level random effect and seed-level noise, and check the coverage and error rates the docstrings promise.
"""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from codec.errors import ParameterError
from experiments.paired import (
    by_image,
    family_summary,
    paired_differences,
    paired_table,
    power_sentence,
    significance_table,
    t_interval,
)
from experiments.significance import adjust_pvalues, min_detectable, paired_stats, power, t_stats, units_needed

METHODS = (("latent_avg", 0.0), ("neighbor", 0.03), ("bidir", -0.02), ("ar", 0.001))


def _rows(rng, n_images=6, n_seeds=2, shift=0.02, image_sd=0.0, dup=False):
    """Sweep-like rows: per (image, seed) unit every method, paired through a per-unit difficulty.

    ``image_sd``: an image-level random effect on bidir's difference (shared by the image's seeds);
    ``dup``: the last image is a copy of the first under another name (same content hash)."""
    rows = []
    for i in range(n_images):
        eff = rng.normal(0, image_sd)
        h = "h0" if dup and i == n_images - 1 else f"h{i}"
        for s in range(n_seeds):
            base = rng.uniform(0.05, 0.3)              # per-unit difficulty, shared by every method (pairing)
            for m, off in METHODS:
                off = -shift + eff if m == "bidir" else off
                rows.append({"unit_id": f"u{i}_{s}", "image": f"img{i}", "image_hash": h, "seed": s,
                             "codebook_size": 1024, "channel_label": "index_loss", "fec": "none",
                             "loss_rate_nominal": 0.2, "method": m,
                             "lpips_alex_vs_lossfree": base + off + rng.normal(0, 0.002),
                             "psnr_vs_lossfree": 30 - 10 * (base + off)})
    return pd.DataFrame(rows)


def test_t_interval_matches_scipy():
    d = np.array([0.1, -0.2, 0.05, 0.3, 0.0, 0.12])
    m, lo, hi = t_interval(d)
    ref = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert m == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(ref)
    assert np.isnan(t_interval(np.array([1.0]))[1])


def test_t_stats_matches_scipy_and_ignores_nan():
    x = np.random.default_rng(0).normal(0.2, 1.0, (3, 9))
    x[1, 4] = np.nan
    s = t_stats(x, 0.9)
    for r in range(3):
        v = x[r][np.isfinite(x[r])]
        assert s["n"][r] == v.size
        assert s["p"][r] == pytest.approx(stats.ttest_1samp(v, 0.0).pvalue)
        assert (s["lo"][r], s["hi"][r]) == pytest.approx(stats.t.interval(0.9, v.size - 1, v.mean(), stats.sem(v)))
    one = t_stats(np.array([[0.5, np.nan]]))
    assert one["n"][0] == 1 and np.isnan(one["p"][0]) and np.isnan(one["lo"][0])


def test_image_unit_averages_seeds_first_and_counts_identical_photos_once():
    df = _rows(np.random.default_rng(4), n_images=5, n_seeds=3, dup=True)
    b = paired_differences(df, "lpips_alex_vs_lossfree").set_index("method").loc["bidir"]
    assert (b["unit"], b["n_images"], b["n_seeds"], b["n_trials"], b["n"]) == ("image", 4, 3, 15, 4)
    piv = df.pivot_table(index="unit_id", columns="method", values="lpips_alex_vs_lossfree")
    d = (piv["bidir"] - piv["latent_avg"]).rename("d").to_frame().join(df.drop_duplicates("unit_id")
                                                                         .set_index("unit_id")["image_hash"])
    per_image = d.groupby("image_hash")["d"].mean().to_numpy()    # the duplicate's 6 trials form one image
    assert b["diff"] == pytest.approx(per_image.mean())
    assert (b["lo"], b["hi"]) == pytest.approx(stats.t.interval(0.95, 3, per_image.mean(), stats.sem(per_image)))
    assert b["p"] == pytest.approx(stats.ttest_1samp(per_image, 0.0).pvalue)
    t = paired_differences(df, "lpips_alex_vs_lossfree", unit="trial").set_index("method").loc["bidir"]
    assert t["n"] == 15 and (t["lo"], t["hi"]) == pytest.approx(
        stats.t.interval(0.95, 14, d["d"].mean(), stats.sem(d["d"])))


def test_clustered_interval_covers_the_true_difference_and_the_per_trial_one_does_not():
    """d[i, s] = Δ + b_i + e_is (σ_b = 1, σ_e = 0.5): 6 images × 4 seeds, 4000 repetitions."""
    rng = np.random.default_rng(2024)
    R, I, S, delta = 4000, 6, 4, 0.3  # noqa: E741 (I images, as in the model d[i, s])
    d = delta + rng.normal(0, 1.0, (R, I, 1)) + rng.normal(0, 0.5, (R, I, S))
    cover = {u: float(np.mean((s["lo"] <= delta) & (delta <= s["hi"])))
             for u in ("image", "trial") for s in [paired_stats(d, u)]}
    se = np.sqrt(0.95 * 0.05 / R)                                  # 0.0034
    assert abs(cover["image"] - 0.95) < 4 * se
    assert cover["trial"] < 0.80                                   # ρ = 0.8: the variance is 3.4× too small
    # a missing trial (unbalanced seeds) keeps the image as the unit
    d[:, 0, 3] = np.nan
    s = paired_stats(d, "image")
    assert (s["n_images"] == I).all() and (s["n_trials"] == I * S - 1).all()


def _holm(p):
    o = np.argsort(p)
    m, out, run = len(p), np.empty(len(p)), 0.0
    for j, i in enumerate(o):
        run = max(run, min(1.0, (m - j) * p[i]))
        out[i] = run
    return out


def _bh(p):
    o = np.argsort(p)[::-1]
    m, out, run = len(p), np.empty(len(p)), 1.0
    for j, i in enumerate(o):
        run = min(run, m / (m - j) * p[i])
        out[i] = run
    return out


def test_holm_and_bh_follow_their_definitions():
    rng = np.random.default_rng(7)
    p = rng.uniform(0, 0.2, (20, 12)) ** 2
    p[3, 5] = np.nan
    for name, ref in (("holm", _holm), ("bh", _bh)):
        adj = adjust_pvalues(p, name)
        for r in range(p.shape[0]):
            ok = np.isfinite(p[r])
            assert adj[r][ok] == pytest.approx(ref(p[r][ok]))
            assert np.isnan(adj[r][~ok]).all()
    assert np.array_equal(adjust_pvalues(p, "none"), p, equal_nan=True)
    assert adjust_pvalues(np.array([0.01, 0.04, 0.03, 0.005]), "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_corrections_keep_their_error_rates_on_a_table_with_known_nulls():
    """2000 tables of 40 comparisons (8 images × 2 seeds each), 30 true nulls; comparisons share image effects."""
    rng = np.random.default_rng(11)
    R, m, m0, I, S = 2000, 40, 30, 8, 2  # noqa: E741 (I images, as in the model)
    delta = np.r_[np.zeros(m0), np.full(m - m0, 2.0)][:, None, None]
    shared = rng.normal(0, 0.6, (R, 1, I, 1))                     # a hard image is hard for every comparison
    d = delta + shared + rng.normal(0, 0.6, (R, m, I, 1)) + rng.normal(0, 0.5, (R, m, I, S))
    p = paired_stats(d, "image")["p"]
    null = np.arange(m) < m0
    rej = {c: adjust_pvalues(p, c) < 0.05 for c in ("none", "holm", "bh")}
    fwer = {c: float(np.mean(r[:, null].any(axis=1))) for c, r in rej.items()}
    fdr = {c: float(np.mean(r[:, null].sum(1) / np.maximum(r.sum(1), 1))) for c, r in rej.items()}
    assert fwer["none"] > 0.5                                      # ~1.5 false verdicts per table unadjusted
    assert fwer["holm"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / R)
    assert fdr["bh"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / R)
    assert rej["bh"][:, ~null].mean() >= rej["holm"][:, ~null].mean() > 0.5   # BH finds more true effects
    p0 = paired_stats(d - delta, "image")["p"]                    # every comparison null: BH's FDR is its FWER
    for c in ("holm", "bh"):
        assert np.mean((adjust_pvalues(p0, c) < 0.05).any(axis=1)) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / R)


def test_power_min_detectable_and_images_needed_agree_with_simulation():
    assert int(units_needed(0.5, 1.0)) == 34                       # the textbook n for d = 0.5 at 80 % power
    n_need = units_needed(0.01, np.array([0.004, 0.02, 0.05]))
    for n, sd in zip(n_need, (0.004, 0.02, 0.05), strict=False):
        assert power(0.01, n, sd) >= 0.8 > power(0.01, n - 1, sd) or n == 2
    mdd = float(min_detectable(6, 0.02))
    assert power(mdd, 6, 0.02) == pytest.approx(0.8, abs=1e-6)
    rng = np.random.default_rng(5)                                  # 6 images at δ = mdd: rejected ~80 % of the time
    x = mdd + rng.normal(0, 0.02, (20000, 6))
    assert np.mean(t_stats(x)["p"] < 0.05) == pytest.approx(0.8, abs=0.015)


def test_best_baseline_is_the_lowest_mean_baseline_and_pairing_removes_unit_spread():
    df = _rows(np.random.default_rng(0))
    t = paired_differences(df, "lpips_alex_vs_lossfree")
    assert set(t["reference"]) == {"latent_avg"}
    assert set(t["method"]) == {"neighbor", "bidir", "ar"}
    b = t.set_index("method").loc["bidir"]
    # the unit spread (0.05–0.3) would swamp a 0.02 difference marginally; paired, it is resolved
    assert b["diff"] == pytest.approx(-0.02, abs=0.003)
    assert b["hi"] < 0 and b["significant"] and b["better"] and b["p_adj"] >= b["p"]
    a = t.set_index("method").loc["ar"]
    assert a["lo"] < 0 < a["hi"] and not a["significant"]
    nb = t.set_index("method").loc["neighbor"]
    assert nb["significant"] and not nb["better"]


def test_a_nominal_verdict_that_does_not_survive_the_correction():
    """Six points where bidir is slightly better with a large image effect: unadjusted some excludes 0, Holm fewer."""
    frames = []
    for k in range(6):
        f = _rows(np.random.default_rng(100 + k), n_images=8, shift=0.006, image_sd=0.006)
        frames.append(f.assign(loss_rate_nominal=0.1 * (k + 1), unit_id=f["unit_id"] + f"_{k}"))
    df = pd.concat(frames, ignore_index=True)
    t = paired_differences(df, "lpips_alex_vs_lossfree")
    s = family_summary(t)
    assert s["m"] == 18 and s["expected_null"] == pytest.approx(0.9)
    assert s["n_adjusted"] < s["n_unadjusted"]
    assert (t["p_adj"] >= t["p"]).all()
    assert (t["significant"] <= t["significant_unadjusted"]).all()
    bh = paired_differences(df, "lpips_alex_vs_lossfree", correction="bh")
    assert family_summary(bh)["n_adjusted"] >= s["n_adjusted"]


def test_higher_is_better_metric_picks_the_highest_baseline():
    df = _rows(np.random.default_rng(1))
    t = paired_differences(df, "psnr_vs_lossfree")
    assert set(t["reference"]) == {"latent_avg"}       # 30 − 10·(base + 0) is the highest baseline
    assert bool(t.set_index("method").loc["bidir", "better"])


def test_named_reference_and_bad_input():
    df = _rows(np.random.default_rng(2))
    t = paired_differences(df, "lpips_alex_vs_lossfree", reference="neighbor")
    assert set(t["reference"]) == {"neighbor"} and "neighbor" not in set(t["method"])
    for kw, word in (({"metric": "nope"}, "nope"), ({"unit": "seed"}, "unit"), ({"correction": "bonf"}, "correction"),
                     ({"level": 1.5}, "level"), ({"detect": -0.01}, "detect"), ({"detect": "x"}, "detect")):
        with pytest.raises(ParameterError, match=word):
            paired_differences(df, **{"metric": "lpips_alex_vs_lossfree", **kw})
    with pytest.raises(ParameterError, match="image"):
        paired_differences(df.drop(columns=["image", "image_hash"]), "lpips_alex_vs_lossfree")


def test_significance_table_states_unit_images_correction_and_power():
    df = _rows(np.random.default_rng(3), n_images=6, image_sd=0.01)
    sig = significance_table(df, "lpips_alex_vs_lossfree", detect=0.01)
    row = sig.set_index("method").loc["bidir"]
    assert (row["unit"], row["n_images"], row["n_seeds"], row["correction"]) == ("image", 6, 2, "holm")
    assert row["verdict_unadjusted"] in ("better", "n.s.") and row["mdd"] > 0 and row["n_needed"] >= 2
    text = power_sentence(sig, "lpips_alex_vs_lossfree")
    assert "80 % power" in text and "To detect a difference of 0.01" in text


def test_paired_table_marks_rows_and_warns_with_few_images():
    text = paired_table(_rows(np.random.default_rng(3)))
    line = next(ln for ln in text.splitlines() if "bidir" in ln)
    assert line.rstrip().split("(images=")[0].rstrip().endswith("*")
    assert "latent_avg" in line and "images=6, seeds=2" in line and "p_holm=" in line
    assert "significant after Holm" in text and "80 % power" in text and "warning" not in text
    few = paired_table(_rows(np.random.default_rng(3), n_images=3), correction="bh")
    assert "warning: only 3 image(s)" in few and "Benjamini" in few


def test_by_image_layout():
    m = by_image(np.array([1.0, 2.0, 3.0]), ["b", "a", "b"])
    assert m.shape == (2, 2) and m[0, 0] == 2.0 and list(m[1]) == [1.0, 3.0] and np.isnan(m[0, 1])
