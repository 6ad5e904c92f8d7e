"""Statistical and structural tests of the packet-loss models (fixed seeds, 1e6 packets)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from channels import Bernoulli, ChainState, FourStateMarkov, GilbertElliott
from channels._markov import BLOCK, burst_length_pmf, stationary_distribution
from channels.stats import mean_burst_length, run_lengths

N = 1_000_000
REL = 0.02

MODELS = {
    "bernoulli": Bernoulli(0.05),
    "simple_gilbert": GilbertElliott(0.05, 0.3),
    "gilbert": GilbertElliott(0.05, 0.4, h=0.3),
    "full_ge": GilbertElliott(0.06, 0.35, h=0.35, k=0.97),
    "full_ge_netem": GilbertElliott.from_netem("loss gemodel 4% 30% 70% 1%"),
    "markov4": FourStateMarkov(0.04, 0.3, 0.15, 0.5, 0.02),
    "markov4_no_isolated": FourStateMarkov(0.03, 0.25, 0.3, 0.6),
    "markov4_netem_default": FourStateMarkov(0.05),
}


@pytest.fixture(scope="module")
def samples() -> dict[str, np.ndarray]:
    return {name: m.sample(N, np.random.default_rng(1234 + i))[0] for i, (name, m) in enumerate(MODELS.items())}


@pytest.mark.parametrize("name", list(MODELS))
def test_realized_loss_rate_and_burst_length_match_formulas(name, samples):
    model, lost = MODELS[name], samples[name]
    assert lost.shape == (N,) and lost.dtype == bool
    L, B = model.stationary_loss_rate, model.mean_burst_length
    assert abs(lost.mean() / L - 1) < REL, (lost.mean(), L)
    assert abs(mean_burst_length(lost) / B - 1) < REL, (mean_burst_length(lost), B)


def _ge_by_hand(p, r, h, k):
    """Stationary loss and mean burst via the first-principles HMM formulas of the issue."""
    pg, pb = r / (p + r), p / (p + r)
    L = (1 - k) * pg + (1 - h) * pb
    P = np.array([[1 - p, p], [r, 1 - r]])
    e = np.array([1 - k, 1 - h])
    pi = np.array([pg, pb])
    both = (pi * e) @ P @ e  # P(lost at t-1 and at t)
    return L, L / (L - both)


@pytest.mark.parametrize(
    "p,r,h,k", [(0.05, 0.3, 0.0, 1.0), (0.05, 0.4, 0.3, 1.0), (0.06, 0.35, 0.35, 0.97), (0.2, 0.1, 0.6, 0.9)]
)
def test_ge_closed_forms(p, r, h, k):
    m = GilbertElliott(p, r, h, k)
    L, B = _ge_by_hand(p, r, h, k)
    assert m.stationary_loss_rate == pytest.approx(L, rel=1e-12)
    assert m.mean_burst_length == pytest.approx(B, rel=1e-9)
    # mean of the exact phase-type burst-length law equals L/S (independent derivation)
    pmf = m.burst_length_pmf(4000)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-9)
    assert (np.arange(1, 4001) * pmf).sum() == pytest.approx(B, rel=1e-9)
    if h == 0.0 and k == 1.0:
        assert B == pytest.approx(1 / r)


def test_markov4_closed_form_matches_linear_algebra():
    m = FourStateMarkov(0.04, 0.3, 0.15, 0.5, 0.02)
    P = m.transition()
    assert np.allclose(P.sum(axis=1), 1.0)
    pi = stationary_distribution(P)
    assert np.allclose(pi @ P, pi)
    assert np.allclose(pi, m.stationary_distribution)
    e = np.array([0.0, 0.0, 1.0, 1.0])
    assert m.stationary_loss_rate == pytest.approx(pi[2] + pi[3])
    pmf = burst_length_pmf(P, e, pi, 2000)
    assert (np.arange(1, 2001) * pmf).sum() == pytest.approx(m.mean_burst_length, rel=1e-9)


def test_bernoulli_special_cases_agree():
    p = 0.05
    for m in (GilbertElliott.from_netem("loss gemodel 5%"), FourStateMarkov(p)):
        assert m.stationary_loss_rate == pytest.approx(p)
        assert m.mean_burst_length == pytest.approx(Bernoulli(p).mean_burst_length)


def _burst_hist(lost: np.ndarray, kmax: int) -> np.ndarray:
    runs = run_lengths(lost)[1:-1]  # drop runs that may be cut by the sequence ends
    obs = np.bincount(np.minimum(runs, kmax), minlength=kmax + 1)[1:]
    return obs


def _chi2_vs_pmf(lost: np.ndarray, pmf_all: np.ndarray, kmax: int) -> float:
    obs = _burst_hist(lost, kmax)
    probs = np.concatenate([pmf_all[: kmax - 1], [1.0 - pmf_all[: kmax - 1].sum()]])
    return sps.chisquare(obs, probs * obs.sum()).pvalue


def test_simple_gilbert_bursts_are_geometric(samples):
    r = 0.3
    kmax = 15
    m = np.arange(1, kmax)
    geom = r * (1 - r) ** (m - 1)  # P(B=m), tail lumped in the last bin
    pvalue = _chi2_vs_pmf(samples["simple_gilbert"], geom, kmax)
    assert pvalue > 0.01


@pytest.mark.parametrize("name,kmax", [("full_ge", 8), ("markov4", 10)])
def test_general_burst_law_matches_exact_pmf(name, kmax, samples):
    pvalue = _chi2_vs_pmf(samples[name], MODELS[name].burst_length_pmf(kmax), kmax)
    assert pvalue > 0.01


def test_sample_states_consistent_with_hidden_chain():
    m = GilbertElliott(0.05, 0.3, h=0.2, k=0.95)
    lost, s, _ = m.sample_states(200_000, np.random.default_rng(5))
    # transition frequencies of the hidden chain
    prev, nxt = s[:-1], s[1:]
    assert np.mean(nxt[prev == 0] == 1) == pytest.approx(0.05, rel=0.05)
    assert np.mean(nxt[prev == 1] == 0) == pytest.approx(0.3, rel=0.05)
    # per-state loss probabilities
    assert lost[s == 0].mean() == pytest.approx(0.05, rel=0.05)
    assert lost[s == 1].mean() == pytest.approx(0.8, rel=0.03)
    # same draws as sample()
    assert np.array_equal(lost, m.sample(200_000, np.random.default_rng(5))[0])


def test_markov4_structure_only_allowed_transitions():
    m = FourStateMarkov(0.04, 0.3, 0.15, 0.5, 0.02)
    lost, s, _ = m.sample_states(300_000, np.random.default_rng(9))
    assert np.array_equal(lost, s >= 2)  # states 3 and 4 (indices 2, 3) are the lossy ones
    counts = np.zeros((4, 4))
    np.add.at(counts, (s[:-1], s[1:]), 1)
    P = m.transition()
    assert np.all(counts[P == 0] == 0)
    freq = counts / counts.sum(axis=1, keepdims=True)
    assert np.allclose(freq, P, atol=0.01)


# ---------------------------------------------------------------- carry-over
@pytest.mark.parametrize(
    "model",
    [
        GilbertElliott(0.01, 0.3, 0.2, 0.99),
        GilbertElliott(0.05, 0.3),
        FourStateMarkov(0.02, 0.3, 0.1, 0.5, 0.01),
        Bernoulli(0.1),
    ],
    ids=repr,
)
def test_chunked_sampling_equals_one_long_call(model):
    sizes = [1, 0, 7, 255, 256, BLOCK, BLOCK + 3, 2, 40_000]
    n = sum(sizes)
    whole, _ = model.sample(n, np.random.default_rng(77))
    rng, state, parts = np.random.default_rng(77), None, []
    for k in sizes:
        x, state = model.sample(k, rng, state)
        parts.append(x)
    assert np.array_equal(np.concatenate(parts), whole)


def test_state_passes_through_and_old_state_is_replayable():
    m = GilbertElliott(0.02, 0.2, h=0.1)
    rng = np.random.default_rng(3)
    _, st = m.sample(1000, rng)
    assert isinstance(st, ChainState) and st.state in (0, 1)
    a, st_a = m.sample(500, np.random.default_rng(10), st)
    b, st_b = m.sample(500, np.random.default_rng(10), st)  # state is immutable: same result
    assert np.array_equal(a, b) and st_a.state == st_b.state
    # state.state is the hidden state of the last delivered packet
    lost, s, st2 = m.sample_states(777, np.random.default_rng(4))
    assert st2.state == s[-1]


def test_int_state_means_previous_packet_state():
    # simple Gilbert: previous packet Bad -> next lost with prob 1-r; previous Good -> lost with prob p
    m = GilbertElliott(0.1, 0.3)
    rng = np.random.default_rng(11)
    trials = 3000
    after_bad = np.array([m.sample(1, rng, GilbertElliott.BAD)[0][0] for _ in range(trials)])
    after_good = np.array([m.sample(1, rng, GilbertElliott.GOOD)[0][0] for _ in range(trials)])
    for freq, p in ((after_bad.mean(), 0.7), (after_good.mean(), 0.1)):
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / trials)


def test_none_state_starts_stationary():
    # first packet of many fresh streams is lost at the stationary rate
    m = GilbertElliott(0.1, 0.3)
    rng = np.random.default_rng(12)
    first = np.array([m.sample(1, rng)[0][0] for _ in range(3000)])
    L = m.stationary_loss_rate
    assert abs(first.mean() - L) < 4 * math.sqrt(L * (1 - L) / 3000)


def test_zero_packets_and_edge_probabilities():
    rng = np.random.default_rng(0)
    x, st = GilbertElliott(0.1, 0.3).sample(0, rng)
    assert x.shape == (0,) and st is None
    assert not GilbertElliott(0.0, 0.5).sample(10_000, rng)[0].any()  # never enters Bad
    assert GilbertElliott(0.0, 0.5).mean_burst_length == 0.0
    assert Bernoulli(1.0).sample(100, rng)[0].all() and math.isinf(Bernoulli(1.0).mean_burst_length)
    assert not FourStateMarkov(0.0).sample(10_000, rng)[0].any()
    alt = GilbertElliott(1.0, 1.0).sample(1000, rng)[0]  # deterministic alternation
    assert np.all(alt[1:] != alt[:-1])


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "ctor,match",
    [
        (lambda: Bernoulli(1.5), "p must be in"),
        (lambda: Bernoulli(-0.1), "p must be in"),
        (lambda: Bernoulli(float("nan")), "p must be in"),
        (lambda: Bernoulli("0.1"), "real number"),
        (lambda: GilbertElliott(0.1, 0.0), "never recover"),
        (lambda: GilbertElliott(0.0, 0.0), "both be 0"),
        (lambda: GilbertElliott(0.1, 0.3, h=2.0), "h must be in"),
        (lambda: GilbertElliott(0.1, 0.3, k=-1), "k must be in"),
        (lambda: GilbertElliott.from_loss_and_burst(0.6, 1.0), "unreachable"),
        (lambda: GilbertElliott.from_loss_and_burst(0.1, 0.5), "mean_burst"),
        (lambda: GilbertElliott.from_loss_and_burst(1.0, 3.0), "loss_rate must be < 1"),
        (lambda: FourStateMarkov(0.6, 0.3, 0.0, 1.0, 0.5), "p13 \\+ p14"),
        (lambda: FourStateMarkov(0.1, 0.6, 0.5), "p31 \\+ p32"),
        (lambda: FourStateMarkov(0.1, 0.0), "burst would never end"),
        (lambda: FourStateMarkov(0.1, 0.3, 0.2, 0.0), "state 2 forever"),
    ],
)
def test_invalid_parameters_raise(ctor, match):
    with pytest.raises(ValueError, match=match):
        ctor()


def test_invalid_call_arguments():
    m = GilbertElliott(0.1, 0.3)
    with pytest.raises(ValueError, match="n must be"):
        m.sample(-1, np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        m.sample(10, np.random.RandomState(0))
    with pytest.raises(ValueError, match="hidden-state index"):
        m.sample(10, np.random.default_rng(0), state=5)


def test_from_loss_and_burst_roundtrip():
    m = GilbertElliott.from_loss_and_burst(0.05, 4.0)
    assert m.h == 0.0 and m.k == 1.0
    assert m.stationary_loss_rate == pytest.approx(0.05)
    assert m.mean_burst_length == pytest.approx(4.0)


def test_models_are_frozen_and_hashable():
    m = GilbertElliott(0.1, 0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.p = 0.2  # type: ignore[misc]
    assert m == GilbertElliott(0.1, 0.3) and hash(m) == hash(GilbertElliott(0.1, 0.3))
    assert "GilbertElliott(p=0.1" in repr(m)
