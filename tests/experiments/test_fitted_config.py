"""The `fitted` channel of sweep configs: fit once, scale_loss grid, concrete model specs, clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from channels import GilbertElliott
from channels.factory import from_spec
from experiments.config import ConfigError, expand_channels, validate_config


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    x = GilbertElliott(0.03, 0.4).sample(20_000, np.random.default_rng(0))[0]
    p = tmp_path_factory.mktemp("fitted") / "link.txt"
    p.write_text(" ".join("1" if v else "0" for v in x) + "\n")
    return p


def test_fitted_entry_expands_to_scaled_concrete_models_of_one_family(trace_file):
    pts = expand_channels([{"model": "fitted", "trace": str(trace_file), "family": "gilbert",
                            "scale_loss": [1, 2, 4]}])
    assert [p["label"] for p in pts] == [f"fitted(link.txt,gilbert,scale_loss={s})" for s in (1, 2, 4)]
    assert {p["family"] for p in pts} == {"fitted(link.txt,gilbert)"}
    base = pts[0]["loss_rate"]
    assert [p["loss_rate"] / base for p in pts] == pytest.approx([1, 2, 4])
    assert [p["burst"] for p in pts] == pytest.approx([pts[0]["burst"]] * 3)   # simple Gilbert: mean burst kept
    ch = from_spec(pts[1].spec)   # what a sweep trial builds
    assert isinstance(ch, GilbertElliott) and ch.stationary_loss_rate == pytest.approx(pts[1]["loss_rate"])


def test_fitted_config_validates_and_the_ge_family_is_the_default(trace_file):
    cfg = validate_config({"channels": [{"model": "fitted", "trace": str(trace_file), "scale_loss": [1, 1.5]}]})
    pts = expand_channels(cfg["channels"])
    assert [p["model"] for p in pts] == ["gilbert_elliott"] * 2 and pts[0]["params"]["start"] == "stationary"


@pytest.mark.parametrize("entry,msg", [
    ({"trace": "no/such.txt"}, "no such trace file: 'no/such.txt'"),
    ({"family": "markov"}, "family: unknown value 'markov'; allowed: bernoulli, gilbert, ge, 4state"),
    ({"scale_loss": 0}, "scale_loss: must be > 0.0"),
    ({"family": "gilbert", "scale_loss": 100}, "scale_loss=100 is out of reach"),
    ({"famly": "ge"}, "unknown key(s) 'famly'"),
])
def test_fitted_errors_name_the_key_and_the_limit(trace_file, entry, msg):
    with pytest.raises(ConfigError) as e:
        expand_channels([{"model": "fitted", "trace": str(trace_file), **entry}])
    assert msg in str(e.value)
