"""codec.checks (the shared validators) and codec.errors.one_line (the one-line error rule)."""
import numpy as np
import pytest

from codec.checks import check_count, check_prob, check_rng
from codec.errors import ParameterError, one_line


def test_validators_return_the_checked_value_or_name_the_problem():
    assert check_prob("Model", "p", np.float32(0.25)) == 0.25 and isinstance(check_prob("M", "p", 1), float)
    assert check_count(np.int64(3)) == 3
    rng = np.random.default_rng(0)
    assert check_rng(rng) is rng
    with pytest.raises(ParameterError, match=r"Model: p must be in \[0, 1\], got nan"):
        check_prob("Model", "p", float("nan"))
    with pytest.raises(ParameterError, match="real number"):
        check_prob("Model", "p", True)
    with pytest.raises(ParameterError, match="nbits must be >= 0"):
        check_count(-1, "nbits")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        check_rng(np.random.RandomState(0))


def test_old_import_path_still_works():
    from channels import _markov

    assert _markov.check_prob is check_prob and _markov.check_count is check_count and _markov.check_rng is check_rng


def test_one_line():
    e = ValueError("first line\nsecond line")
    assert one_line(e) == "first line"
    assert one_line(e, with_type=True) == "ValueError: first line"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError("x" * 50), with_type=True, limit=20) == "RuntimeError: xxxxx…"
