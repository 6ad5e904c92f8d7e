"""Sweeps on a small-payload link preset, with the full and the compact packet header."""
from __future__ import annotations

import pytest

from experiments.config import ConfigError, config_hash, validate_config
from experiments.sweep import run_sweep


def _lora(tiny_config, header, mtu=24):
    cfg = tiny_config()
    cfg["codec"]["codebook_sizes"] = [16]
    cfg["images"]["limit"] = 1
    cfg["channels"] = [{"model": "bernoulli", "p": [0.2]}]
    cfg["fec"] = ["none"]
    cfg["seeds"] = [0]
    cfg["packetization"] = {"mtu": [mtu], "interleave": ["random"], "coder": ["raw"], "header": header}
    cfg["link"] = {"preset": "lora_sf12"}
    return cfg


def test_header_key_is_left_out_unless_given(tiny_config):
    cfg = tiny_config()
    plain = validate_config(cfg)
    assert "header" not in plain["packetization"]
    cfg["packetization"]["header"] = ["full"]
    assert config_hash(validate_config(cfg)) != config_hash(plain)  # a new key, a new identity


def test_preset_payload_limit_counts_the_header_in_use(tiny_config):
    # LoRa SF12 (EU868 DR0) carries 51 bytes: 24 + 40 does not fit with the full header, 24 + 4..6 + CRC-8 does
    with pytest.raises(
        ConfigError, match=r"lora_sf12.*51 bytes.*mtu 24 \+ 40-byte header.*lower packetization.mtu to ≤ 11"
    ):
        validate_config(_lora(tiny_config, ["full"]))
    validate_config(_lora(tiny_config, ["compact"]))
    with pytest.raises(ConfigError, match="packetization.header"):
        validate_config(_lora(tiny_config, ["tiny"]))


def test_compact_header_sweep_reports_airtime_and_smaller_headers(tmp_path, tiny_config):
    full = run_sweep(_lora(tiny_config, ["full"], mtu=11), tmp_path / "full", progress=False, log=print).results
    compact = run_sweep(
        _lora(tiny_config, ["compact"], mtu=11), tmp_path / "compact", progress=False, log=print
    ).results
    for df, h in ((full, "full"), (compact, "compact")):
        assert (df["header"] == h).all() and (df["link_preset"] == "lora_sf12").all()
        assert (df["link_duty_cycle"] == 0.01).all()
        assert (df["airtime_s"] > 0).all() and (df["delivery_s"] >= df["airtime_s"]).all()
    # same payload per packet, same packet count; the compact header spends fewer bits and less airtime
    assert (compact["packets_sent"].to_numpy() == full["packets_sent"].to_numpy()).all()
    assert (compact["header_bits"].to_numpy() < full["header_bits"].to_numpy()).all()
    assert (compact["airtime_s"].to_numpy() < full["airtime_s"].to_numpy()).all()
