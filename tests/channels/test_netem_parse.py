"""netem loss-string parsing: syntax, tc defaults, errors."""
from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from channels import Bernoulli, FourStateMarkov, GilbertElliott, parse_netem
from channels._tc import parse_loss_clause, tc_percent


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
        ("loss gemodel -1%", "'-1%' = -1%, but must be between 0% and 100%"),  # tc: strtod reads -1, out of range
    ],
)
def test_malformed_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_netem(spec)


def test_non_string_rejected():
    with pytest.raises(ValueError, match="must be a string"):
        parse_netem(0.01)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tc's number syntax, token by token
# (token, 1st value, 2nd-5th value, old 'loss P'): the fraction tc computes (strtod(token) / 100.) or
# None where tc rejects the command.  Checked against iproute2 6.1 `tc qdisc add dev <none> ... netem`
# (a parse error is reported before the missing device) and against glibc strtod for the values.
# tc/tc_util.c parse_percent: strtod, then only "" or "%" may follow, then 0 <= v <= 1;
# tc/q_netem.c: the 1st value is read unconditionally, the later ones (NEXT_IS_NUMBER) and the old
# 'loss P' form (isdigit(argv[0][0])) only when the token starts with a digit 0-9.
TC_TOKENS = [
    ("5", 5 / 100, 5 / 100, 5 / 100),
    ("5%", 5 / 100, 5 / 100, 5 / 100),
    ("0", 0.0, 0.0, 0.0),
    ("00", 0.0, 0.0, 0.0),
    ("0005%", 5 / 100, 5 / 100, 5 / 100),
    ("5.", 5 / 100, 5 / 100, 5 / 100),
    ("5.%", 5 / 100, 5 / 100, 5 / 100),
    ("0.%", 0.0, 0.0, 0.0),
    ("5e-1%", 0.5 / 100, 0.5 / 100, 0.5 / 100),
    ("5E-1", 0.5 / 100, 0.5 / 100, 0.5 / 100),
    ("5e+1%", 50 / 100, 50 / 100, 50 / 100),
    ("1.5e-2%", 0.015 / 100, 0.015 / 100, 0.015 / 100),
    ("0e0", 0.0, 0.0, 0.0),
    ("1e2", 1.0, 1.0, 1.0),
    ("100", 1.0, 1.0, 1.0),
    ("100%", 1.0, 1.0, 1.0),
    ("100.000000000000001%", 1.0, 1.0, 1.0),  # rounds to 100.0 in strtod
    ("99.99999999999999%", 99.99999999999999 / 100, 99.99999999999999 / 100, 99.99999999999999 / 100),
    ("1e-400", 0.0, 0.0, 0.0),  # underflows to 0 (tc ignores ERANGE)
    ("0x10", 16 / 100, 16 / 100, 16 / 100),  # hexadecimal: 16%
    ("0x10%", 16 / 100, 16 / 100, 16 / 100),
    ("0x1e", 30 / 100, 30 / 100, 30 / 100),
    ("0X1p-3", 0.125 / 100, 0.125 / 100, 0.125 / 100),
    ("0x1P+2%", 4 / 100, 4 / 100, 4 / 100),
    ("0x.8p1", 1 / 100, 1 / 100, 1 / 100),
    ("0x1.8", 1.5 / 100, 1.5 / 100, 1.5 / 100),
    # not led by a digit: accepted only as a 1st value
    (".5%", 0.5 / 100, None, None),
    (".5", 0.5 / 100, None, None),
    ("+5%", 5 / 100, None, None),
    ("+.5", 0.5 / 100, None, None),
    ("+0", 0.0, None, None),
    ("-0", 0.0, None, None),  # -0.0 is not < 0
    ("-0%", 0.0, None, None),
    ("-0x0", 0.0, None, None),
    ("%", 0.0, None, None),  # strtod converts nothing, returns 0; the rest is "%"
    # rejected everywhere
    ("-5%", None, None, None),  # 1st: out of range; later: not led by a digit
    ("-0.0000001%", None, None, None),
    ("101%", None, None, None),
    ("100.0000001%", None, None, None),
    ("1e3", None, None, None),  # 1000%
    ("1e400", None, None, None),
    ("0x1p2000", None, None, None),
    ("inf", None, None, None),
    ("-inf", None, None, None),
    ("INF%", None, None, None),
    ("infinity", None, None, None),
    ("5%%", None, None, None),
    ("0%%", None, None, None),
    ("%%", None, None, None),
    ("+%", None, None, None),
    ("-%", None, None, None),
    ("%5", None, None, None),
    ("5%5", None, None, None),
    ("5%x", None, None, None),
    ("5x", None, None, None),
    ("x5", None, None, None),
    ("5e", None, None, None),
    ("5e%", None, None, None),
    ("1e+", None, None, None),
    ("0.5e", None, None, None),
    ("0x", None, None, None),  # strtod reads "0", then "x" is left
    ("0x%", None, None, None),
    ("0x1p", None, None, None),
    ("0xg", None, None, None),
    ("0x1e+1", None, None, None),
    ("0b1", None, None, None),
    (".%", None, None, None),
    ("5..", None, None, None),
    ("1.2.3", None, None, None),
    ("--5", None, None, None),
    ("+-5", None, None, None),
    ("1,5", None, None, None),  # C locale: '.' only
    ("1_0", None, None, None),  # Python's float() would take it; strtod does not
    ("\u0665", None, None, None),  # ARABIC-INDIC DIGIT FIVE: not an ASCII digit
    ("1d", None, None, None),
    ("1L", None, None, None),
    ("nan(", None, None, None),
]

# where each column is tried, and which value of the clause it is
_PLACES = {
    1: [("loss gemodel {t}", 0), ("loss state {t}", 0), ("loss random {t}", 0), ("drop random {t}", 0)],
    2: [("loss gemodel 1% {t}", 1), ("loss gemodel 1% 30% 50% {t}", 3), ("loss state 1% {t}", 1),
        ("loss state 1% 30% 0% 100% {t}", 4), ("loss random 1% {t}", 1)],
    3: [("loss {t}", 0)],
}


def _clause_value(spec: str, index: int):
    try:
        clause = parse_loss_clause(spec)
    except ValueError as e:
        if "correlation is not supported" in str(e):  # tc accepts it; vqsim refuses non-zero correlation
            return "corr"
        return None
    return clause.values[index]


@pytest.mark.parametrize("tok,first,later,old", TC_TOKENS, ids=[repr(t[0]) for t in TC_TOKENS])
def test_tc_token_table(tok, first, later, old):
    for col, want in ((1, first), (2, later), (3, old)):
        for tmpl, index in _PLACES[col]:
            spec = tmpl.format(t=tok)
            got = _clause_value(spec, index)
            if got == "corr":
                assert want not in (None, 0.0), spec
                continue
            assert got == want, (spec, got, want)  # exact: the same double as tc's strtod(tok) / 100.
            if got is not None:
                assert math.copysign(1.0, got) == 1.0, spec  # '-0' gives +0.0
    if first is not None:
        assert tc_percent(tok) == first  # the raw strtod(tok) / 100. (may be -0.0)


def test_tc_percent_values_match_strtod_then_divide():
    assert tc_percent("1e3") == 10.0 and tc_percent("-5%") == -0.05 and tc_percent("101%") == 1.01
    assert tc_percent("inf") == math.inf and tc_percent("0x1p2000") == math.inf
    assert math.isnan(tc_percent("nan")) and math.isnan(tc_percent("NaN(1)%"))
    assert tc_percent("0x") is None and tc_percent("5%%") is None and tc_percent("1_0") is None


@pytest.mark.parametrize("tok", ["nan", "NaN%", "nan()", "nan(1)"])
def test_nan_first_value_is_the_one_deliberate_difference(tok):
    # tc's range check (v > 1 || v < 0) is false for NaN, so tc accepts it as a 1st value, but then
    # sends rint(NaN * UINT32_MAX) as u32 (undefined in C): vqsim refuses with a message saying so
    with pytest.raises(ValueError, match="not a number; tc's range check lets NaN through"):
        parse_netem(f"loss gemodel {tok}")
    with pytest.raises(ValueError, match="start with a digit"):  # later places: tc rejects it too
        parse_netem(f"loss gemodel 1% {tok}")


@pytest.mark.parametrize(
    "spec,words",
    [
        ("loss state 1% .5%", ["'.5%'", "p31", "2nd value of 'loss state'", "start with a digit 0-9", "'0.5%'"]),
        ("loss gemodel 1% +5%", ["'+5%'", "r (2nd value of 'loss gemodel')", "NEXT_IS_NUMBER"]),
        ("loss gemodel 1% 30% 50% -5%", ["'-5%'", "1-k (4th value of 'loss gemodel')"]),
        ("loss state 1% 30% 0% 100% .5%", ["'.5%'", "p14 (5th value of 'loss state')"]),
        ("loss random 1% .5", ["'.5'", "CORRELATION (2nd value of 'loss random')"]),
        ("loss gemodel 5%%", ["'5%%'", "p (1st value of 'loss gemodel')", "strtod"]),
        ("loss gemodel 1% 0x", ["'0x'", "r (2nd value of 'loss gemodel')"]),
        ("loss state 1% 150%", ["'150%'", "p31 (2nd value of 'loss state')", "between 0% and 100%"]),
        ("loss gemodel 1e3", ["'1e3'", "= 1000%", "between 0% and 100%"]),
        ("loss gemodel 1% 2% 3% 4% 5%", ["at most 4 values", "'5%'"]),
        ("loss gemodel 1% 2% 3% 4% .5%", ["'.5%'", "a further value"]),
        ("loss .5%", ["'.5%'", "starts with a digit", "Unknown loss parameter"]),
        ("loss gemodel 1% loss 2%", ["second loss clause"]),
        ("l gemodel 1%", ["only the loss part", "'l' (limit)"]),
        ("del 10ms", ["only the loss part", "(delay)"]),
    ],
)
def test_errors_name_token_and_position(spec, words):
    with pytest.raises(ValueError) as exc:
        parse_netem(spec)
    msg = str(exc.value)
    assert spec in msg
    for w in words:
        assert w in msg, (w, msg)


def test_tc_keyword_abbreviations_and_whitespace():
    # tc's matches(): any non-empty prefix of 'loss'/'drop' except those taken by an earlier option
    for kw in ("lo", "los", "loss", "dr", "dro", "drop"):
        assert parse_netem(f"{kw} gemodel 1% 30%").r == pytest.approx(0.3)
    assert parse_netem("  loss\tgemodel\n1%   30% ").r == pytest.approx(0.3)
    # model keywords are compared exactly (strcmp)
    with pytest.raises(ValueError, match="unknown loss model 'gem'"):
        parse_netem("loss gem 1%")
    with pytest.raises(ValueError, match="unknown loss model 'Gemodel'"):
        parse_netem("loss Gemodel 1%")


def test_parsed_values_are_exactly_tc_defaults():
    m = parse_netem("loss gemodel 0x1p-3% 5e-1")  # 0.125% and 0.5%
    assert (m.p, m.r, m.h, m.k) == (0.125 / 100, 0.5 / 100, 0.0, 1.0)
    m = parse_netem("loss state +5% 30 0.0 100")
    assert (m.p13, m.p31, m.p32, m.p23, m.p14) == (0.05, 0.3, 0.0, 1.0, 0.0)


@pytest.mark.skipif(shutil.which("tc") is None, reason="iproute2 tc not installed")
def test_table_agrees_with_the_installed_tc():
    """Oracle check: tc parses the options before looking up the device, so a device name that cannot
    exist ('/' is not allowed in interface names) tells a parse error from an accepted command; nothing
    is ever configured."""

    def tc_accepts(spec: str) -> bool:
        r = subprocess.run(["tc", "qdisc", "add", "dev", "vqsim/none", "root", "netem", *spec.split(" ")],
                           capture_output=True, text=True, timeout=10)
        out = r.stdout + r.stderr
        if "Cannot find device" not in out and "What is" not in out and "Illegal" not in out \
                and "Unknown loss parameter" not in out:
            pytest.skip(f"unexpected tc output: {out.strip()[:200]}")
        return "Cannot find device" in out

    for tok, first, later, old in TC_TOKENS:
        for col, want in ((1, first), (2, later), (3, old)):
            tmpl, _ = _PLACES[col][0]
            assert tc_accepts(tmpl.format(t=tok)) == (want is not None), (tmpl, tok)
    assert tc_accepts("loss gemodel nan")  # the deliberate difference
