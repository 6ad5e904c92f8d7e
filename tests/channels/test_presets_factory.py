"""Presets and the name/spec factory."""
from __future__ import annotations

import numpy as np
import pytest

from channels import (
    PRESETS,
    Bernoulli,
    BinarySymmetric,
    BitErrorModel,
    FourStateMarkov,
    GilbertElliott,
    GilbertElliottBitError,
    LossModel,
    Trace,
    from_spec,
    get_preset,
    make_channel,
)


def test_presets_are_documented_and_usable():
    assert {"wired", "wifi", "cellular-edge", "satellite"} <= set(PRESETS)
    rng = np.random.default_rng(0)
    for name, p in PRESETS.items():
        assert p.name == name and len(p.description) > 20 and p.citation
        if p.kind == "loss":
            assert isinstance(p.model, LossModel)
            lost, _ = p.model.sample(1000, rng)
            assert lost.shape == (1000,)
        else:
            assert isinstance(p.model, BitErrorModel)
            mask, _ = p.model.error_mask(1000, rng)
            assert mask.shape == (1000,)


def test_preset_ordering_is_sensible():
    L = {n: PRESETS[n].model.stationary_loss_rate for n in ("wired", "wifi", "cellular-edge")}
    assert L["wired"] < L["wifi"] < L["cellular-edge"]
    assert PRESETS["satellite"].model.mean_burst_length > PRESETS["wifi"].model.mean_burst_length


def test_get_preset_errors_list_names():
    assert get_preset("Cellular_Edge") is PRESETS["cellular-edge"]
    with pytest.raises(ValueError, match="available: .*wifi"):
        get_preset("moon")


@pytest.mark.parametrize(
    "name,params,cls",
    [
        ("bernoulli", {"p": 0.1}, Bernoulli),
        ("gilbert_elliott", {"p": 0.1, "r": 0.3}, GilbertElliott),
        ("Gilbert-Elliott", {"loss_rate": 0.05, "mean_burst": 3}, GilbertElliott),
        ("markov4", {"p13": 0.01, "p31": 0.3}, FourStateMarkov),
        ("trace", {"data": [0, 1, 0]}, Trace),
        ("bsc", {"ber": 1e-3}, BinarySymmetric),
        ("ge_bit", {"p": 1e-3, "r": 0.1, "ber_good": 0.0, "ber_bad": 0.1}, GilbertElliottBitError),
        ("netem", {"spec": "loss gemodel 1% 30%"}, GilbertElliott),
        ("loss state 1% 30%", {}, FourStateMarkov),
        ("wifi", {}, GilbertElliott),
    ],
)
def test_make_channel(name, params, cls):
    assert isinstance(make_channel(name, **params), cls)


def test_make_channel_values():
    m = make_channel("gilbert_elliott", loss_rate=0.05, mean_burst=3)
    assert m.stationary_loss_rate == pytest.approx(0.05) and m.mean_burst_length == pytest.approx(3)
    t = make_channel("trace", data=[1, 0, 1], loop=False)
    assert not t.loop


def test_from_spec():
    m = from_spec({"model": "gilbert_elliott", "p": 0.01, "r": 0.3, "h": 0.3, "k": 0.999})
    assert m == GilbertElliott(0.01, 0.3, 0.3, 0.999)
    assert isinstance(from_spec({"type": "bsc", "ber": 0.01}), BinarySymmetric)
    assert isinstance(from_spec("satellite"), GilbertElliott)
    assert isinstance(from_spec("loss random 1%"), Bernoulli)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: make_channel("rayleigh"), "unknown channel 'rayleigh'; models: bernoulli, gilbert_elliott"),
        (lambda: make_channel("bernoulli", q=0.1), "unknown parameter"),
        (lambda: make_channel("bernoulli"), "missing required"),
        (lambda: make_channel("gilbert_elliott", loss_rate=0.1), "exactly \\(loss_rate, mean_burst\\)"),
        # a new user's guess at the loss-rate form is pointed to the names that work
        (lambda: make_channel("gilbert_elliott", loss=0.1, burst=2), "or exactly \\(loss_rate, mean_burst\\)"),
        (lambda: make_channel("wifi", p=0.1), "takes no parameters"),
        (lambda: make_channel("trace"), "exactly one of 'path' or 'data'"),
        (lambda: make_channel("netem"), "spec"),
        (lambda: make_channel("bernoulli", p=2.0), "p must be in"),
        (lambda: from_spec({"p": 0.1}), "exactly one of 'model'"),
        (lambda: from_spec({"model": "bsc", "type": "bsc", "ber": 0.1}), "exactly one of 'model'"),
        (lambda: from_spec(42), "mapping or a string"),
        (lambda: make_channel(""), "non-empty"),
    ],
)
def test_factory_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
