"""``start`` of the Markov channels: netem's transient ("good") vs the stationary law.

Statistical checks use many seeded fresh streams; tolerances are 4.5 binomial
standard errors (two-sided false-alarm rate ~7e-6 per check, and the seeds
are fixed, so the tests are deterministic anyway).
"""
from __future__ import annotations

import ast
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from channels import (
    FourStateMarkov,
    GilbertElliott,
    GilbertElliottBitError,
    make_channel,
    parse_netem,
)
from channels._markov import BLOCK
from codec.errors import ParameterError

Z = 4.5
N_STREAMS = 8000  # fresh streams per statistical check


def _tol(p: float, n: int) -> float:
    return Z * math.sqrt(p * (1.0 - p) / n)


def _dig(*arrs) -> str:
    h = hashlib.sha256()
    for a in arrs:
        a = np.asarray(a)
        h.update(np.packbits(a).tobytes() if a.dtype == bool else a.astype(np.int64).tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ start="stationary" is today's behaviour
# Digests recorded with the code *before* ``start`` existed (same models, seeds and calls).
PINNED = {
    "ge_simple": (lambda: GilbertElliott(0.05, 0.3), {
        "states0": "3708e638ed895c9d", "lost0": "3b47a956e473ebec", "states1": "344e7879fdfc61e6",
        "lost1": "f65889c1a304f7a5", "states2024": "794a641c16e83eb0", "lost2024": "1e74429f1fa3cc56",
        "first500": "790fdffb9a640aae"}),
    "ge_full": (lambda: GilbertElliott(0.06, 0.35, h=0.35, k=0.97), {
        "states0": "e74b4179bd134064", "lost0": "282a420a0df2afac", "states1": "01611b5e74abc462",
        "lost1": "bb332364564df371", "states2024": "faa97617d5d53f93", "lost2024": "3606427dcc8ffd45",
        "first500": "cc4cfa3513030ce2"}),
    "m4_full": (lambda: FourStateMarkov(0.04, 0.3, 0.15, 0.5, 0.02), {
        "states0": "f54530b88d1f774d", "lost0": "0af6d0e835268847", "states1": "d0216b6d75c395d3",
        "lost1": "9143aa0daddd0379", "states2024": "3661c4b086bbac06", "lost2024": "1b1887bdc95a1cfa",
        "first500": "7065a897f808b578"}),
    "m4_default": (lambda: FourStateMarkov(0.05), {
        "states0": "0504f8465304f1bf", "lost0": "f26dda60013034eb", "states1": "9c973b5c9738fad0",
        "lost1": "4fb8960a0d0af05c", "states2024": "7f7c15cfe8dcb646", "lost2024": "94a76b7b8286746f",
        "first500": "49c69289ade755db"}),
    # netem-parsed models now default to start="good"; with start="stationary" they give the old draws
    "netem_ge": (lambda: parse_netem("loss gemodel 4% 30% 70% 1%", start="stationary"), {
        "states0": "5468e529b6357e1a", "lost0": "676258d8ecdc2db8", "states1": "9f63c19b8dcefe53",
        "lost1": "8efe2f8d519797ce", "states2024": "99c2a7d66f2cdc75", "lost2024": "2f26ccd1c8065ed0",
        "first500": "005fb7c6ac3defc5"}),
    "netem_state": (lambda: parse_netem("loss state 1% 30% 10% 50% 0.5%", start="stationary"), {
        "states0": "4ef3b64f0a9a1f03", "lost0": "87a4f6c6d94c38a3", "states1": "f54c89ee348eeae0",
        "lost1": "6d203a37d2a304e2", "states2024": "c1bf59839c91d843", "lost2024": "97734f71687783ae",
        "first500": "5a46a4918d9a0b2d"}),
    "from_netem_ge": (lambda: GilbertElliott.from_netem("loss gemodel 2% 25%", start="stationary"), {
        "states0": "b3f15edf0c29e45f", "lost0": "cede37e97c22e00b", "states1": "7f1571c805ac1756",
        "lost1": "161de2203a98419c", "states2024": "5feb01faa7dfbef0", "lost2024": "119bdaac55ab36a6",
        "first500": "e15d081fff970b71"}),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_stationary_start_reproduces_pinned_draws(name):
    make, want = PINNED[name]
    m = make()
    assert m.start == "stationary"
    for seed in (0, 1, 2024):
        lost, states, _ = m.sample_states(5000, np.random.default_rng(seed))
        assert _dig(lost, states) == want[f"states{seed}"]
        assert _dig(lost) == want[f"lost{seed}"]
        rng, state, parts = np.random.default_rng(seed), None, []
        for k in (1, 300, 4699):  # chunked: same packets
            x, state = m.sample(k, rng, state)
            parts.append(x)
        assert _dig(np.concatenate(parts)) == want[f"lost{seed}"]
    rng = np.random.default_rng(7)
    assert _dig(np.array([m.sample(1, rng)[0][0] for _ in range(500)])) == want["first500"]


def test_stationary_start_pinned_loss_positions_and_bit_masks():
    lost = GilbertElliott(0.05, 0.3).sample(400, np.random.default_rng(3))[0]
    assert np.flatnonzero(lost).tolist()[:20] == [8, 9, 10, 11, 55, 62, 63, 67, 68, 69, 72, 73, 140, 167, 168,
                                                  209, 210, 211, 241, 246]
    assert int(lost.sum()) == 66
    lost = FourStateMarkov(0.04, 0.3, 0.15, 0.5, 0.02).sample(400, np.random.default_rng(3))[0]
    assert np.flatnonzero(lost).tolist()[:20] == [7, 23, 24, 25, 45, 46, 76, 110, 115, 116, 117, 118, 131, 132,
                                                  137, 138, 139, 143, 154, 155]
    assert int(lost.sum()) == 53
    bit = GilbertElliottBitError(0.01, 0.2, 0.001, 0.3)
    assert _dig(bit.error_mask(20000, np.random.default_rng(0))[0]) == "6e2534b5fbc52d6b"
    assert _dig(bit.error_mask(20000, np.random.default_rng(5))[0]) == "1927fa98b863d1d8"


# ------------------------------------------------------------------ start="good": netem's transient
GE = GilbertElliott(p=0.1, r=0.3, h=0.4, k=0.8)  # loss 0.2 in Good, 0.6 in Bad; L = 0.3
M4 = FourStateMarkov(p13=0.2, p31=0.3, p32=0.1, p23=0.5, p14=0.1)  # L ~ 0.404, netem first packet: p13 + p14


def _good(m):
    return type(m)(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "start": "good"})


def _first_packets(model, streams: int, t: int, seed: int) -> np.ndarray:
    """(streams, t) fates of the first t packets of ``streams`` fresh streams drawn from one generator."""
    rng = np.random.default_rng(seed)
    return np.stack([model.sample(t, rng)[0] for _ in range(streams)])


def test_transient_formulas():
    g = _good(GE)
    P, e = g.transition_matrix, np.array([1 - GE.k, 1 - GE.h])
    assert g.initial_distribution.tolist() == [1.0, 0.0]
    want = [np.array([1.0, 0.0]) @ np.linalg.matrix_power(P, t) @ e for t in range(6)]
    assert np.allclose(g.loss_probabilities(6), want)
    assert g.loss_probabilities(1)[0] == pytest.approx(1 - GE.k)  # Good's loss probability
    assert g.loss_probabilities(2)[1] == pytest.approx((1 - GE.p) * (1 - GE.k) + GE.p * (1 - GE.h))
    assert g.loss_probabilities(400)[-1] == pytest.approx(GE.stationary_loss_rate, abs=1e-9)
    assert np.allclose(GE.loss_probabilities(5), GE.stationary_loss_rate)  # stationary: flat
    m = _good(M4)
    assert m.initial_distribution.tolist() == pytest.approx([0.7, 0.0, 0.2, 0.1])  # one step out of state 1
    assert m.loss_probabilities(1)[0] == pytest.approx(M4.p13 + M4.p14)
    assert m.loss_probabilities(400)[-1] == pytest.approx(M4.stationary_loss_rate, abs=1e-9)


@pytest.mark.parametrize("model", [GE, M4], ids=["gilbert_elliott", "markov4"])
def test_good_start_first_packets_follow_netem_transient(model):
    g = _good(model)
    n, t = N_STREAMS, 3
    fates = _first_packets(g, n, t, seed=2024)
    want = g.loss_probabilities(t)
    for i in range(t):
        assert abs(fates[:, i].mean() - want[i]) < _tol(want[i], n), (i, fates[:, i].mean(), want[i])
    # the first packet is clearly not at the stationary rate (|0.2-0.3|, |0.3-0.404| >> tolerance)
    L = model.stationary_loss_rate
    assert abs(want[0] - L) > 2 * _tol(L, n)  # the two tolerance bands do not overlap
    # and the stationary start does give L at the first packet
    st = _first_packets(model, n, 1, seed=2025)[:, 0]
    assert abs(st.mean() - L) < _tol(L, n)


def test_good_start_first_packet_good_state_loss_probability():
    # netem loss_gilb_ell: packet 0 is decided with GOOD_STATE's 1-k (before the move to Bad is used)
    g = _good(GE)
    n = N_STREAMS
    first = _first_packets(g, n, 1, seed=11)[:, 0]
    assert abs(first.mean() - (1 - GE.k)) < _tol(1 - GE.k, n)
    # with k = 1 (Gilbert, simple Gilbert, tc's 'gemodel p' Bernoulli) packet 0 is never lost
    for spec in ("loss gemodel 30%", "loss gemodel 10% 30%", "loss gemodel 10% 30% 70%"):
        m = parse_netem(spec)
        assert m.start == "good"
        assert not _first_packets(m, 2000, 1, seed=3).any(), spec
    # ... and packet 1 is lost with probability p (in Bad, 1-h = 1 by default)
    b = parse_netem("loss gemodel 30%")
    second = _first_packets(b, n, 2, seed=4)[:, 1]
    assert abs(second.mean() - 0.3) < _tol(0.3, n)


def test_good_start_markov4_first_packet_is_one_step_from_state_1():
    # netem loss_4state: in state 1, draw the move; the packet is lost iff it enters 3 or 4
    g = _good(M4)
    n = N_STREAMS
    rng = np.random.default_rng(5)
    s0 = np.array([g.sample_states(1, rng)[1][0] for _ in range(n)])  # hidden state of packet 0
    assert abs(np.mean(s0 == FourStateMarkov.BURST_LOSS) - M4.p13) < _tol(M4.p13, n)
    assert abs(np.mean(s0 == FourStateMarkov.GAP_LOSS) - M4.p14) < _tol(M4.p14, n)
    assert not np.any(s0 == FourStateMarkov.BURST_RX)  # 1 -> 2 is impossible
    # same law as "the previous packet was in state 1" (int state), which netem's start is
    rng = np.random.default_rng(6)
    prev = np.array([M4.sample(1, rng, FourStateMarkov.GAP_RX)[0][0] for _ in range(n)])
    assert abs(prev.mean() - (M4.p13 + M4.p14)) < _tol(M4.p13 + M4.p14, n)
    # tc's one-parameter 'state p13' is exactly Bernoulli(p13), transient included
    b = parse_netem("loss state 30%")
    f = _first_packets(b, n, 2, seed=8)
    assert all(abs(f[:, i].mean() - 0.3) < _tol(0.3, n) for i in range(2))


@pytest.mark.parametrize("model", [GE, M4], ids=["gilbert_elliott", "markov4"])
def test_good_start_long_run_loss_rate_is_stationary(model):
    lost = _good(model).sample(1_000_000, np.random.default_rng(99))[0]
    assert abs(lost.mean() / model.stationary_loss_rate - 1) < 0.02


def test_good_start_bit_error_channel():
    m = GilbertElliottBitError(0.05, 0.2, 0.1, 0.5, start="good")
    n = N_STREAMS
    rng = np.random.default_rng(1)
    first = np.array([m.error_mask(1, rng)[0][0] for _ in range(n)])
    assert abs(first.mean() - 0.1) < _tol(0.1, n)  # ber_good, not the stationary 0.18
    assert m.loss_probabilities(1)[0] == pytest.approx(0.1)


# ------------------------------------------------------------------ reproducibility and stream semantics
@pytest.mark.parametrize("model", [_good(GE), _good(M4), GilbertElliottBitError(0.01, 0.2, 0.0, 0.4, start="good")],
                         ids=repr)
def test_same_seed_same_draws_and_chunking_with_good_start(model):
    sample = model.error_mask if hasattr(model, "error_mask") else model.sample
    a, _ = sample(60_000, np.random.default_rng(42))
    b, _ = sample(60_000, np.random.default_rng(42))
    assert np.array_equal(a, b)
    rng, state, parts = np.random.default_rng(42), None, []
    for k in (1, 0, 7, 255, 256, BLOCK, BLOCK + 3, 2, 60_000 - (1 + 7 + 255 + 256 + BLOCK + BLOCK + 3 + 2)):
        x, state = sample(k, rng, state)
        parts.append(x)
    assert np.array_equal(np.concatenate(parts), a)  # a carried state continues: no restart in Good


def test_state_none_restarts_and_explicit_state_overrides_start():
    g = parse_netem("loss gemodel 50% 1%")  # Bad is sticky; packet 0 of a fresh stream is in Good, never lost
    rng = np.random.default_rng(0)
    _, st = g.sample(5000, rng)  # long stream: almost surely in Bad now
    assert st.state == GilbertElliott.BAD
    assert not any(g.sample(1, rng)[0][0] for _ in range(500))  # state=None: a new stream, in Good again
    after_bad = np.array([g.sample(1, rng, GilbertElliott.BAD)[0][0] for _ in range(200)])
    assert after_bad.mean() > 0.9  # an int state means "previous packet was in Bad" whatever the start


# ------------------------------------------------------------------ API: defaults, validation, repr
def test_defaults_per_api():
    assert GilbertElliott(0.1, 0.3).start == "stationary"
    assert FourStateMarkov(0.1).start == "stationary"
    assert GilbertElliottBitError(0.1, 0.3, 0.0, 0.5).start == "stationary"
    assert GilbertElliott.from_loss_and_burst(0.05, 4).start == "stationary"
    assert GilbertElliott.from_loss_and_burst(0.05, 4, start="good").start == "good"
    assert parse_netem("loss gemodel 1% 30%").start == "good"
    assert parse_netem("loss state 1% 30%").start == "good"
    assert parse_netem("loss gemodel 1% 30%", start="stationary").start == "stationary"
    assert GilbertElliott.from_netem("loss gemodel 1% 30%").start == "good"
    assert FourStateMarkov.from_netem("loss state 1%", start="stationary").start == "stationary"
    assert make_channel("loss gemodel 1% 30%").start == "good"
    assert make_channel("netem", spec="loss gemodel 1% 30%").start == "good"
    assert make_channel("netem", spec="loss gemodel 1% 30%", start="stationary").start == "stationary"
    assert make_channel("gilbert_elliott", p=0.1, r=0.3, start="good").start == "good"
    assert make_channel("gilbert_elliott", loss_rate=0.1, mean_burst=3, start="good").start == "good"
    assert make_channel("markov4", p13=0.1, start="good").start == "good"
    assert parse_netem("loss random 1%", start="stationary").p == pytest.approx(0.01)  # memoryless: no start


@pytest.mark.parametrize("bad", ["Good", "GOOD", "", "transient", None, 1, True, ("good",)])
@pytest.mark.parametrize(
    "ctor",
    [
        lambda s: GilbertElliott(0.1, 0.3, start=s),
        lambda s: FourStateMarkov(0.1, start=s),
        lambda s: GilbertElliottBitError(0.1, 0.3, 0.0, 0.5, start=s),
        lambda s: GilbertElliott.from_loss_and_burst(0.05, 4, start=s),
        lambda s: GilbertElliott.from_netem("loss gemodel 1%", start=s),
        lambda s: FourStateMarkov.from_netem("loss state 1%", start=s),
        lambda s: parse_netem("loss gemodel 1%", start=s),
        lambda s: parse_netem("loss random 1%", start=s),
        lambda s: make_channel("netem", spec="loss state 1%", start=s),
    ],
    ids=["ge", "markov4", "ge_bit", "from_loss_and_burst", "ge_from_netem", "m4_from_netem", "parse_netem",
         "parse_netem_random", "factory"],
)
def test_invalid_start_raises_parameter_error(ctor, bad):
    with pytest.raises(ParameterError, match=r"start must be 'stationary' .* or 'good'") as exc:
        ctor(bad)
    assert repr(bad) in str(exc.value)


def test_repr_eq_hash():
    assert repr(GilbertElliott(0.1, 0.3)) == "GilbertElliott(p=0.1, r=0.3, h=0.0, k=1.0)"  # unchanged
    assert repr(FourStateMarkov(0.1)) == "FourStateMarkov(p13=0.1, p31=0.9, p32=0.0, p23=1.0, p14=0.0)"
    assert repr(GilbertElliott(0.1, 0.3, start="good")) == "GilbertElliott(p=0.1, r=0.3, h=0.0, k=1.0, start='good')"
    assert GilbertElliott(0.1, 0.3) == GilbertElliott(0.1, 0.3, start="stationary")
    assert GilbertElliott(0.1, 0.3) != GilbertElliott(0.1, 0.3, start="good")
    assert hash(FourStateMarkov(0.1, start="good")) == hash(FourStateMarkov(0.1, start="good"))


# ------------------------------------------------------------------ structure: one from_netem, no import cycle
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_from_netem_has_one_home_and_models_do_not_import_the_parser():
    assert GilbertElliott.from_netem.__func__ is FourStateMarkov.from_netem.__func__
    import channels

    root = Path(channels.__file__).parent
    for mod in ("gilbert.py", "markov4.py", "_tc.py", "_markov.py", "bernoulli.py", "base.py"):
        imps = _imports(root / mod)
        assert not any(i.endswith("netem") for i in imps), (mod, imps)
    assert {".gilbert", ".markov4"} <= _imports(root / "netem.py")


# ------------------------------------------------------------------ against a per-packet re-statement of netem
def _netem_ge_reference(m: GilbertElliott, streams: int, t: int, rng) -> np.ndarray:
    """sch_netem.c loss_gilb_ell per packet, restated: from the current state draw the move, then the
    loss with the loss probability of the state the packet arrived in; every stream starts in Good."""
    good = np.ones(streams, dtype=bool)
    out = np.empty((streams, t), dtype=bool)
    for i in range(t):
        u1, u2 = rng.random(streams), rng.random(streams)
        lost = np.where(good, u2 < 1 - m.k, u2 >= m.h)
        good = np.where(good, ~(u1 < m.p), u1 < m.r)
        out[:, i] = lost
    return out


def _netem_4state_reference(m: FourStateMarkov, streams: int, t: int, rng) -> np.ndarray:
    """sch_netem.c loss_4state per packet, restated: one draw moves the chain out of the current state;
    the packet is lost iff the state entered is 3 or 4; every stream is in state 1 before packet 0."""
    s = np.ones(streams, dtype=np.int8)
    out = np.empty((streams, t), dtype=bool)
    for i in range(t):
        u = rng.random(streams)
        new = s.copy()
        new[(s == 1) & (u < m.p14)] = 4
        new[(s == 1) & (u >= m.p14) & (u < m.p13 + m.p14)] = 3
        new[(s == 2) & (u < m.p23)] = 3
        new[(s == 3) & (u < m.p32)] = 2
        new[(s == 3) & (u >= m.p32) & (u < m.p31 + m.p32)] = 1
        new[s == 4] = 1
        s = new
        out[:, i] = s >= 3
    return out


@pytest.mark.parametrize("model,ref", [(GE, _netem_ge_reference), (M4, _netem_4state_reference)],
                         ids=["gilbert_elliott", "markov4"])
def test_good_start_matches_netem_per_packet_reference(model, ref):
    g = _good(model)
    n, t = N_STREAMS, 4
    P, e, init = g.transition_matrix, g._derived()["e"], g.initial_distribution
    joint01 = float((init * e) @ P @ e)  # P(packet 0 and packet 1 lost)
    marg = g.loss_probabilities(t)
    for fates in (ref(model, 4 * n, t, np.random.default_rng(31)), _first_packets(g, n, t, seed=32)):
        k = fates.shape[0]
        for i in range(t):
            assert abs(fates[:, i].mean() - marg[i]) < _tol(marg[i], k), (i, fates[:, i].mean(), marg[i])
        both = np.mean(fates[:, 0] & fates[:, 1])
        assert abs(both - joint01) < _tol(joint01, k), (both, joint01)
