"""Trace replay: file formats, looping, exhaustion, measured statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from channels import Trace, TraceExhaustedError

SEQ = [0, 1, 1, 0, 0, 0, 1, 0, 1, 1]  # 5 losses in runs of 2, 1, 2 (no wrap-around join: it starts with 0)


def test_text_file_and_npy_and_array_agree(tmp_path):
    txt = tmp_path / "t.txt"
    txt.write_text("# a comment\n0 1 1\n0,0,0\n1\n0\n1 1  # trailing\n")
    npy = tmp_path / "t.npy"
    np.save(npy, np.array(SEQ, dtype=np.int8))
    traces = [Trace(txt), Trace(npy), Trace(SEQ), Trace(np.array(SEQ, dtype=bool))]
    for t in traces:
        assert np.array_equal(t.losses, np.array(SEQ, dtype=bool))
        assert len(t) == 10
    assert traces[0].path == str(txt)


def test_replay_and_position_state():
    t = Trace(SEQ)
    a, pos = t.sample(4, None)
    assert np.array_equal(a, SEQ[:4]) and pos == 4
    b, pos = t.sample(4, None, pos)
    assert np.array_equal(b, SEQ[4:8]) and pos == 8


def test_loop_wraps_around():
    t = Trace(SEQ, loop=True)
    x, pos = t.sample(25, np.random.default_rng(0), state=7)
    expected = [SEQ[(7 + i) % 10] for i in range(25)]
    assert np.array_equal(x, expected) and pos == (7 + 25) % 10
    # chunked replay == one call
    st, parts = 3, []
    for k in (4, 0, 13, 9):
        y, st = t.sample(k, None, st)
        parts.append(y)
    assert np.array_equal(np.concatenate(parts), t.sample(26, None, 3)[0])


def test_no_loop_raises_when_exhausted():
    t = Trace(SEQ, loop=False)
    x, pos = t.sample(10, None)
    assert pos == 10 and x.sum() == 5
    assert t.sample(0, None, pos)[0].size == 0
    with pytest.raises(TraceExhaustedError, match="only 2 remain"):
        t.sample(5, None, 8)
    assert issubclass(TraceExhaustedError, ValueError)


def test_measured_statistics():
    t = Trace(SEQ)
    assert t.stationary_loss_rate == pytest.approx(0.5)
    assert t.mean_burst_length == pytest.approx(5 / 3)
    wrap = Trace([1, 0, 0, 1, 1], loop=True)  # circular: the final run joins the first
    assert wrap.mean_burst_length == pytest.approx(3.0)
    assert Trace([1, 0, 0, 1, 1], loop=False).mean_burst_length == pytest.approx(1.5)
    assert Trace([0, 0, 0]).mean_burst_length == 0.0
    assert math.isinf(Trace([1, 1]).mean_burst_length)


def test_trace_of_a_model_reproduces_its_statistics():
    from channels import GilbertElliott

    m = GilbertElliott(0.05, 0.3)
    lost, _ = m.sample(200_000, np.random.default_rng(2))
    t = Trace(lost)
    assert t.stationary_loss_rate == pytest.approx(m.stationary_loss_rate, rel=0.03)
    assert t.mean_burst_length == pytest.approx(m.mean_burst_length, rel=0.03)


def test_random_start_uses_rng():
    t = Trace(np.arange(1000) % 7 == 0, random_start=True)
    _, p1 = t.sample(0, np.random.default_rng(1))
    starts = {t.sample(1, np.random.default_rng(s))[1] for s in range(20)}
    assert len(starts) > 10 and p1 in range(1000)
    with pytest.raises(TypeError, match="Generator"):
        t.sample(3, None)


@pytest.mark.parametrize(
    "source,match",
    [
        ([0, 2, 1], "only 0 \\(received\\) and 1"),
        ([], "empty"),
        ([[0, 1], [1, 0]], "1-D"),
        (["a", "b"], "numbers"),
    ],
)
def test_invalid_arrays(source, match):
    with pytest.raises(ValueError, match=match):
        Trace(source)


def test_invalid_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        Trace(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 x 1")
    with pytest.raises(ValueError, match="value #2"):
        Trace(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no values"):
        Trace(empty)


def test_invalid_state():
    t = Trace(SEQ)
    with pytest.raises(ValueError, match="out of range"):
        t.sample(1, None, 10)
    with pytest.raises(ValueError, match="int position"):
        t.sample(1, None, "3")


def test_trace_path_that_is_not_a_file_is_named_for_what_it_is(tmp_path):
    """Issue 27: /dev/null and a directory were reported as "no such trace file"."""
    from channels import Trace
    from codec.errors import ParameterError

    with pytest.raises(ParameterError, match="not a regular file"):
        Trace("/dev/null")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        Trace(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such trace file"):
        Trace(tmp_path / "absent.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ParameterError, match="not UTF-8"):
        Trace(tmp_path / "bin.txt")
