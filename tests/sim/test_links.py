"""Link presets (sim.links): LoRa time on air, duty-cycle spacing in the SimPy model, payload limits, config, CLI."""
import math

import numpy as np
import pytest
import yaml

from codec.errors import ParameterError
from codec.types import IndexMap
from experiments.cli import main
from experiments.config import ConfigError
from experiments.config.schema import LINK_DEFAULTS, config_hash, validate_config
from sim.links import LINK_PRESETS, LinkConfig, LoRaParams, duty_off_time_s, get_link_preset
from sim.network import ARRIVED, NetworkSimulator


# ---------------------------------------------------------------- LoRa airtime
# Reference values: Semtech SX1276 datasheet §4.1.1.7 formula (the Semtech LoRa Calculator and The Things
# Network airtime calculator give the same): SF7/125 kHz/CR4/5, 8-symbol preamble, explicit header, CRC on,
# 20-byte PHY payload: 12.25 + 43 symbols of 1.024 ms = 56.576 ms; SF12 (DE on), 51 bytes: 12.25 + 63 symbols
# of 32.768 ms = 2.465792 s; SF12, 51 B LoRaWAN FRMPayload + 13 B MAC = 64 B PHY: 85.25 symbols = 2.793472 s
# (TTN calculator: 2793.5 ms).
@pytest.mark.parametrize("sf, phy_bytes, symbols, seconds", [
    (7, 20, 43, 0.056576),
    (12, 51, 63, 2.465792),
    (12, 64, 73, 2.793472),
    (9, 128, 8 + math.ceil((8 * 128 - 36 + 44) / 36) * 5, None),
])
def test_lora_time_on_air_matches_the_datasheet_formula(sf, phy_bytes, symbols, seconds):
    lp = LoRaParams(sf=sf)
    assert lp.payload_symbols(phy_bytes) == symbols
    want = (12.25 + symbols) * (1 << sf) / 125e3 if seconds is None else seconds
    assert lp.time_on_air_s(phy_bytes) == pytest.approx(want, rel=1e-9)


def test_lora_low_data_rate_optimisation_only_for_sf11_sf12_at_125khz():
    assert [LoRaParams(sf=s).de for s in range(7, 13)] == [0, 0, 0, 0, 1, 1]
    assert LoRaParams(sf=12, bw_hz=500e3).de == 0


def test_lorawan_presets_use_the_regional_payload_limits_and_mac_overhead():
    assert [LINK_PRESETS[n].max_payload_bytes for n in ("lora_sf7", "lora_sf9", "lora_sf12")] == [222, 115, 51]
    p = LINK_PRESETS["lora_sf12"]
    assert p.per_packet_overhead_bytes == 13 and p.duty_cycle == 0.01
    assert p.airtime_s(51) == pytest.approx(2.793472)  # 51 B of vqsim bytes = the TTN example
    assert p.off_time_s(p.airtime_s(51)) == pytest.approx(2.793472 * 99)


def test_every_preset_is_cited_and_consistent():
    for name, p in LINK_PRESETS.items():
        assert p.name == name and p.source and p.description
        assert p.airtime_s(p.max_payload_bytes) > p.airtime_s(1) > 0
        if p.lora is None:
            assert p.airtime_s(100) == pytest.approx(8 * (100 + p.per_packet_overhead_bytes) / p.bitrate_bps
                                                     + p.per_packet_time_s)
    assert LINK_PRESETS["ble_1m"].airtime_s(244) == pytest.approx(265 * 8e-6)
    assert LINK_PRESETS["acoustic"].propagation_s == pytest.approx(1000 / 1500)
    with pytest.raises(ParameterError, match="unknown link preset"):
        get_link_preset("lora_sf13")


def test_image_airtime_counts_frames_and_the_silences_between_them():
    p = LINK_PRESETS["lora_sf9"]
    n, t = p.image_airtime_s(1536, 40)
    assert n == math.ceil(1536 / 75)
    full, last = p.airtime_s(115), p.airtime_s(1536 - (n - 1) * 75 + 40)
    assert t == pytest.approx((n - 1) * full * 100 + last)
    with pytest.raises(ParameterError, match="no room"):
        LINK_PRESETS["lora_sf12"].image_airtime_s(100, 60)


# ---------------------------------------------------------------- SimPy link
def test_default_link_has_no_duty_cycle_and_unchanged_serialization():
    link = LinkConfig()
    assert link.duty_cycle is None and link.preset is None and link.max_packet_bytes is None
    assert link.off_time_s(np.array([1.0])) is None
    assert np.array_equal(link.serialization_s(np.array([100, 1500])), np.array([100, 1500]) * 8.0 / 10e6)
    assert duty_off_time_s(1.0, None) == 0.0


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "0.01"])
def test_duty_cycle_is_validated(bad):
    with pytest.raises(ParameterError, match="duty_cycle"):
        LinkConfig(duty_cycle=bad)


def test_duty_cycle_spaces_packets_in_the_simpy_timing():
    link = LinkConfig.from_preset("lora_sf9")
    assert (link.bandwidth_bps, link.overhead_bytes, link.duty_cycle) == (
        LINK_PRESETS["lora_sf9"].bitrate_bps, 13, 0.01)
    sim = NetworkSimulator(link=link, rng=np.random.default_rng(0))
    wire = [bytes(50), bytes(100), bytes(20)]
    tr = sim.send_packets(wire)
    air = np.array([LINK_PRESETS["lora_sf9"].airtime_s(len(w)) for w in wire])
    assert np.allclose(tr.airtime_s, air) and np.allclose(tr.off_s, air * 99)
    # packet i leaves after every earlier packet's airtime and silence, then its own airtime
    ends = np.cumsum(air) + np.concatenate([[0.0], np.cumsum(air * 99)[:-1]])
    assert np.allclose(tr.arrive_t, ends + link.propagation_s)
    assert (tr.fate == ARRIVED).all()
    # duty cycle honoured: on-air time / (time until the last silence ends) = dc
    assert air.sum() / (ends[-1] + air[-1] * 99) == pytest.approx(0.01)
    # the next transmission of the session waits for the last silence
    tr2 = sim.send_packets([bytes(10)])
    assert tr2.arrive_t[0] == pytest.approx(ends[-1] + air[-1] * 99 + LINK_PRESETS["lora_sf9"].airtime_s(10)
                                            + link.propagation_s)


def test_duty_cycle_on_a_plain_link_and_queue_during_silence():
    link = LinkConfig(bandwidth_bps=8000, propagation_s=0.0, duty_cycle=0.5, queue_packets=1)
    tr = NetworkSimulator(link=link, rng=np.random.default_rng(0)).send_packets([bytes(100)] * 3)
    # 0.1 s each + 0.1 s silence; one packet waits, the third finds the queue full
    assert list(tr.fate) == [ARRIVED, ARRIVED, 3]
    assert np.allclose(tr.arrive_t[:2], [0.1, 0.3])


def test_preset_payload_limit_is_refused():
    sim = NetworkSimulator(link=LinkConfig.from_preset("lora_sf12"), rng=np.random.default_rng(0))
    with pytest.raises(ParameterError, match="51-byte payload limit"):
        sim.send_packets([bytes(52)])
    m = IndexMap(np.arange(64).reshape(8, 8) % 256, 256, (128, 128))
    with pytest.raises(ParameterError, match="payload limit"):
        sim.send(m, mtu=20)  # 20 + 40 bytes > 51
    rec = sim.send(m, mtu=40, header="compact")  # 40 + 5 bytes fit
    assert rec.loss_ratio == 0.0 and max(rec.packets_sent, 1) == 2


def test_records_get_link_columns_only_with_a_preset_or_duty_cycle():
    m = IndexMap(np.arange(64).reshape(8, 8) % 256, 256, (128, 128))
    plain = NetworkSimulator(link=LinkConfig(), rng=np.random.default_rng(0)).send(m, mtu=32)
    assert plain.link_stats is None
    assert not {"airtime_s", "duty_off_s", "delivery_s"} & set(plain.to_row())
    rec = NetworkSimulator(link=LinkConfig.from_preset("lora_sf7"), rng=np.random.default_rng(0)).send(m, mtu=32)
    row = rec.to_row()
    assert list(row)[:len(plain.to_row())] == list(plain.to_row())
    assert list(row)[-3:] == ["airtime_s", "duty_off_s", "delivery_s"]
    air = LINK_PRESETS["lora_sf7"].airtime_s(72)
    assert row["airtime_s"] == pytest.approx(2 * air) and row["duty_off_s"] == pytest.approx(2 * air * 99)
    assert row["delivery_s"] == pytest.approx(air * 101 + LINK_PRESETS["lora_sf7"].propagation_s)
    assert "link: airtime" in rec.summary()


# ---------------------------------------------------------------- config
def _raw(**link):
    raw = {"channels": [{"model": "bernoulli", "p": [0.1]}], "packetization": {"mtu": [64]}, "fec": ["none"]}
    if link is not None:
        raw["link"] = link
    return raw


def test_config_without_preset_resolves_and_hashes_as_before():
    base = validate_config(_raw())
    assert set(base["link"]) == set(LINK_DEFAULTS)
    assert validate_config(_raw(preset=None)) == base
    assert config_hash(validate_config(_raw(preset=None))) == config_hash(base)
    with open("experiments/configs/bernoulli.yaml") as f:
        shipped = validate_config(yaml.safe_load(f))
    assert set(shipped["link"]) == set(LINK_DEFAULTS)


def test_config_preset_fills_the_link_and_explicit_keys_win():
    c = validate_config(_raw(preset="acoustic", propagation_s=2.0))["link"]
    p = LINK_PRESETS["acoustic"]
    assert (c["preset"], c["bandwidth_bps"], c["propagation_s"], c["duty_cycle"]) == ("acoustic", 5000.0, 2.0, None)
    link = LinkConfig(**c)
    assert link.link_preset is p and link.propagation_s == 2.0
    c = validate_config(_raw(preset="lora_sf7"))["link"]
    assert c["duty_cycle"] == 0.01 and c["overhead_bytes"] == 13
    assert validate_config(_raw(duty_cycle=0.1))["link"]["duty_cycle"] == 0.1


def test_config_rejects_unknown_presets_bad_duty_cycles_and_oversized_packets():
    with pytest.raises(ConfigError, match="link.preset: unknown value 'wifi'"):
        validate_config(_raw(preset="wifi"))
    with pytest.raises(ConfigError, match="link.duty_cycle"):
        validate_config(_raw(duty_cycle=2))
    with pytest.raises(ConfigError, match=r"at most 51 bytes.*104 bytes; lower packetization.mtu to ≤ 11"):
        validate_config(_raw(preset="lora_sf12"))
    raw = _raw(preset="lora_sf9")
    raw["fec"] = ["none", "6,4"]  # parity packets: 64 + 82 = 146 > 115
    with pytest.raises(ConfigError, match=r"parity packet.*RS\(6,4\) is 146 bytes"):
        validate_config(raw)
    raw["packetization"] = {"mtu": [32]}
    assert validate_config(raw)["link"]["preset"] == "lora_sf9"


# ---------------------------------------------------------------- CLI
def test_links_command_lists_every_preset(capsys):
    assert main(["links", "--sources"]) == 0
    out = capsys.readouterr().out
    for name, p in LINK_PRESETS.items():
        assert name in out and p.source in out
    assert "1.5 KB compact" in out


def test_transmit_over_a_link_preset_with_the_compact_header(capsys):
    assert main(["transmit", "--random", "8x8", "--codebook-size", "256", "--link", "lora_sf12", "--mtu", "40",
                 "--header", "compact", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["loss_ratio"] == 0.0 and row["header_bits"] == 2 * 5 * 8 and row["duty_off_s"] > 400
    assert main(["transmit", "--random", "8x8", "--link", "lora_sf12", "--mtu", "40"]) == 2
    assert "exceeds the 51-byte payload limit" in capsys.readouterr().err
    assert main(["transmit", "--link", "lora_sf13"]) == 2
