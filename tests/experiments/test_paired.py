"""experiments.paired: paired differences to a reference method with Student-t intervals."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from experiments.paired import paired_differences, paired_table, t_interval


def _rows(rng, n_units=12, shift=0.02):
    rows = []
    for u in range(n_units):
        base = rng.uniform(0.05, 0.3)              # per-unit difficulty, shared by every method (pairing)
        for m, off in (("latent_avg", 0.0), ("neighbor", 0.03), ("bidir", -shift), ("ar", 0.001)):
            rows.append({"unit_id": f"u{u}", "codebook_size": 1024, "loss_rate_nominal": 0.2, "method": m,
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


def test_best_baseline_is_the_lowest_mean_baseline_and_pairing_removes_unit_spread():
    df = _rows(np.random.default_rng(0))
    t = paired_differences(df, "lpips_alex_vs_lossfree")
    assert set(t["reference"]) == {"latent_avg"}
    assert set(t["method"]) == {"neighbor", "bidir", "ar"}
    b = t.set_index("method").loc["bidir"]
    # the unit spread (0.05–0.3) would swamp a 0.02 difference marginally; paired, it is resolved
    assert b["diff"] == pytest.approx(-0.02, abs=0.003)
    assert b["hi"] < 0 and b["significant"] and b["better"]
    a = t.set_index("method").loc["ar"]
    assert a["lo"] < 0 < a["hi"] and not a["significant"]
    nb = t.set_index("method").loc["neighbor"]
    assert nb["significant"] and not nb["better"]


def test_higher_is_better_metric_picks_the_highest_baseline():
    df = _rows(np.random.default_rng(1))
    t = paired_differences(df, "psnr_vs_lossfree")
    assert set(t["reference"]) == {"latent_avg"}       # 30 − 10·(base + 0) is the highest baseline
    assert bool(t.set_index("method").loc["bidir", "better"])


def test_named_reference_and_missing_metric():
    df = _rows(np.random.default_rng(2))
    t = paired_differences(df, "lpips_alex_vs_lossfree", reference="neighbor")
    assert set(t["reference"]) == {"neighbor"} and "neighbor" not in set(t["method"])
    with pytest.raises(KeyError, match="nope"):
        paired_differences(df, "nope")


def test_paired_table_marks_significant_rows():
    text = paired_table(_rows(np.random.default_rng(3)))
    line = next(l for l in text.splitlines() if "bidir" in l)
    assert line.rstrip().split("(n=")[0].rstrip().endswith("*")
    assert "latent_avg" in line and "n=12" in line
