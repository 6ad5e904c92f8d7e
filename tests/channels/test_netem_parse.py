"""netem loss-string parsing: syntax, tc defaults, errors."""
from __future__ import annotations

import pytest

from channels import Bernoulli, FourStateMarkov, GilbertElliott, parse_netem


def test_full_gemodel_uses_netem_semantics():
    m = parse_netem("loss gemodel 1% 30% 70% 0.1%")
    assert isinstance(m, GilbertElliott)
    assert (m.p, m.r) == pytest.approx((0.01, 0.30))
    assert 1 - m.h == pytest.approx(0.70)  # third value is the loss probability in Bad
    assert 1 - m.k == pytest.approx(0.001)  # fourth value is the loss probability in Good


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("loss gemodel 2%", GilbertElliott(0.02, 0.98, 0.0, 1.0)),  # Bernoulli: r=1-p, 1-h=1, 1-k=0
        ("loss gemodel 2% 25%", GilbertElliott(0.02, 0.25, 0.0, 1.0)),  # simple Gilbert
        ("loss gemodel 2% 25% 60%", GilbertElliott(0.02, 0.25, 0.4, 1.0)),  # Gilbert
        ("gemodel 2 25", GilbertElliott(0.02, 0.25)),  # '%' optional, keyword optional
        ("drop gemodel 2% 25%", GilbertElliott(0.02, 0.25)),
    ],
)
def test_gemodel_defaults(spec, expected):
    m = parse_netem(spec)
    for f in ("p", "r", "h", "k"):
        assert getattr(m, f) == pytest.approx(getattr(expected, f))


def test_gemodel_single_parameter_is_bernoulli():
    m = parse_netem("loss gemodel 3%")
    assert m.stationary_loss_rate == pytest.approx(0.03)
    assert m.mean_burst_length == pytest.approx(1 / 0.97)


def test_state_defaults():
    m = parse_netem("loss state 2%")
    assert isinstance(m, FourStateMarkov)
    assert (m.p13, m.p31, m.p32, m.p23, m.p14) == pytest.approx((0.02, 0.98, 0.0, 1.0, 0.0))
    assert m.stationary_loss_rate == pytest.approx(0.02)
    full = parse_netem("loss state 1% 30% 10% 50% 0.5%")
    assert (full.p13, full.p31, full.p32, full.p23, full.p14) == pytest.approx((0.01, 0.3, 0.1, 0.5, 0.005))
    two = parse_netem("loss state 1% 30%")
    assert two.mean_burst_length == pytest.approx(1 / 0.3)  # 2-state = simple Gilbert


@pytest.mark.parametrize("spec", ["loss random 1.5%", "loss 1.5%", "loss random 1.5% 0%", "random 1.5"])
def test_random(spec):
    m = parse_netem(spec)
    assert isinstance(m, Bernoulli) and m.p == pytest.approx(0.015)


def test_roundtrip_to_netem():
    for m in (GilbertElliott(0.01, 0.3, 0.3, 0.999), FourStateMarkov(0.01, 0.3, 0.1, 0.5, 0.005), Bernoulli(0.02)):
        back = parse_netem(m.to_netem())
        assert type(back) is type(m)
        assert back.stationary_loss_rate == pytest.approx(m.stationary_loss_rate, rel=1e-9)
        assert back.mean_burst_length == pytest.approx(m.mean_burst_length, rel=1e-9)


def test_from_netem_checks_model_kind():
    assert isinstance(GilbertElliott.from_netem("loss gemodel 1% 30%"), GilbertElliott)
    assert isinstance(FourStateMarkov.from_netem("loss state 1% 30%"), FourStateMarkov)
    with pytest.raises(ValueError, match="not a 'loss gemodel"):
        GilbertElliott.from_netem("loss state 1%")
    with pytest.raises(ValueError, match="not a 'loss state"):
        FourStateMarkov.from_netem("loss gemodel 1%")


@pytest.mark.parametrize(
    "spec,match",
    [
        ("", "empty"),
        ("loss", "needs a model"),
        ("loss 1% 25%", "correlation is not supported"),
        ("loss random 1% 25%", "correlation is not supported"),
        ("loss gemodel", "needs at least p"),
        ("loss gemodel 1% 2% 3% 4% 5%", "at most 4 values"),
        ("loss state 1% 2% 3% 4% 5% 6%", "at most 5 values"),
        ("loss gemodel 120%", "between 0% and 100%"),
        ("loss gemodel abc", "unexpected 'abc'"),
        ("loss gemodel 1% 0%", "never recover"),
        ("loss state 1% 0%", "burst would never end"),
        ("loss bogus 1%", "unknown loss model"),
        ("delay 100ms", "only the loss part"),
        ("loss 1% delay 10ms", "unexpected 'delay'"),
        ("loss gemodel -1%", "unexpected '-1%'"),
    ],
)
def test_malformed_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_netem(spec)


def test_non_string_rejected():
    with pytest.raises(ValueError, match="must be a string"):
        parse_netem(0.01)  # type: ignore[arg-type]
