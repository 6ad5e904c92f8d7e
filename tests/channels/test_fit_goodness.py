"""Goodness of fit (channels.goodness): a fitted model reproduces its trace, a wrong one is rejected, exact CCDFs."""
from __future__ import annotations

import numpy as np
import pytest

from channels import Bernoulli, GilbertElliott
from channels.fit import fit_all, fit_bernoulli, fit_gilbert_elliott
from channels.goodness import ccdf, empirical_ccdf, goodness_of_fit, inner_runs, verdict
from channels.stats import mean_burst_length


def ge_trace(n: int = 20_000, seed: int = 0) -> np.ndarray:
    return GilbertElliott(0.02, 0.25, 0.3, 0.995).sample(n, np.random.default_rng(seed))[0]


def test_fitted_ge_model_simulates_the_traces_statistics():
    x = ge_trace()
    f = fit_gilbert_elliott(x)
    sim = f.model.sample(400_000, np.random.default_rng(1))[0]
    assert sim.mean() == pytest.approx(x.mean(), rel=0.05)
    assert mean_burst_length(sim) == pytest.approx(mean_burst_length(x), rel=0.05)
    g = goodness_of_fit(x, f.model, np.random.default_rng(2), n_boot=49)
    assert g.rejected(0.05) == [], {k: t.p_value for k, t in g.tests.items()}


def test_bernoulli_fitted_to_a_bursty_trace_is_rejected_on_burst_and_gap_lengths():
    x = ge_trace()
    g = goodness_of_fit(x, fit_bernoulli(x).model, np.random.default_rng(3), n_boot=49)
    assert set(g.rejected(0.05)) == {"burst_lengths", "gap_lengths"}
    assert g.tests["burst_lengths"].p_value == pytest.approx(1 / 50)   # no bootstrap trace as extreme


def test_goodness_of_fit_is_reproducible_from_the_seed():
    x = ge_trace(5_000)
    m = fit_bernoulli(x).model
    a = goodness_of_fit(x, m, np.random.default_rng(9), n_boot=19)
    b = goodness_of_fit(x, m, np.random.default_rng(9), n_boot=19)
    assert {k: t.p_value for k, t in a.tests.items()} == {k: t.p_value for k, t in b.tests.items()}


def test_verdict_picks_the_lowest_aic_model_the_tests_accept_and_prints_its_netem_string():
    x = ge_trace()
    fits, _ = fit_all(x, families=("bernoulli", "gilbert", "ge"))
    gofs = {f.family: goodness_of_fit(x, f.model, np.random.default_rng(4), n_boot=49) for f in fits}
    lines = verdict(fits, gofs)
    assert lines[0].startswith("AIC prefers ge")
    assert lines[-1].startswith("verdict: ge") and "loss gemodel" in lines[-1]
    assert any(line.startswith("bernoulli: rejected") for line in lines)


def test_model_ccdfs_are_exact_for_the_simple_gilbert_model():
    m = GilbertElliott(0.05, 0.3)
    k = np.arange(10)
    np.testing.assert_allclose(ccdf(m, 10, lost=True), 0.7 ** k, rtol=1e-12)    # bursts ~ Geometric(r)
    np.testing.assert_allclose(ccdf(m, 10, lost=False), 0.95 ** k, rtol=1e-12)  # gaps ~ Geometric(p)
    np.testing.assert_allclose(ccdf(Bernoulli(0.2), 5), 0.2 ** np.arange(5), rtol=1e-12)


def test_inner_runs_leave_out_runs_cut_by_the_ends_and_empirical_ccdf_by_hand():
    x = np.array([1, 0, 0, 1, 1, 1, 0, 1, 0, 0], dtype=bool)
    np.testing.assert_array_equal(inner_runs(x, True), [3, 1])
    np.testing.assert_array_equal(inner_runs(x, False), [2, 1])
    np.testing.assert_allclose(empirical_ccdf(np.array([3, 1]), 4), [1.0, 0.5, 0.5, 0.0])


def test_too_few_runs_give_no_length_test():
    x = np.array([0] * 30 + [1, 1] + [0] * 30, dtype=bool)
    g = goodness_of_fit(x, fit_bernoulli(x).model, np.random.default_rng(0), n_boot=19)
    assert np.isnan(g.tests["burst_lengths"].p_value) and "too few" in g.tests["burst_lengths"].detail
