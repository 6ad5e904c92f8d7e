"""Sweep config: the erasure code of an FEC setting (`code: cauchy | vandermonde`), its label and its hash."""
from __future__ import annotations

import pytest

from experiments.config import ConfigError, config_hash, fec_label, validate_config

CH = [{"model": "bernoulli", "p": [0.1]}]


def test_vandermonde_setting_resolves_and_is_labelled():
    cfg = validate_config({"channels": CH, "fec": ["none", {"n": 6, "k": 4}, {"n": 6, "k": 4, "code": "vandermonde"}]})
    assert cfg["fec"] == [{"n": 0, "k": 0, "nsym": 0}, {"n": 6, "k": 4, "nsym": 0},
                          {"n": 6, "k": 4, "nsym": 0, "code": "vandermonde"}]
    assert [fec_label(f) for f in cfg["fec"]] == ["none", "RS(6,4)", "RS(6,4,vandermonde)"]
    assert fec_label({"n": 6, "k": 4, "nsym": 8, "code": "vandermonde"}) == "RS(6,4,vandermonde)+inpkt8"
    pairs = validate_config(
        {
            "channels": CH,
            "pairs": [
                {"codebook_size": 16, "fec": {"n": 6, "k": 4, "code": "vandermonde"}},
                {"codebook_size": 16, "fec": {"n": 6, "k": 4}},
            ],
        }
    )["pairs"]
    assert [p["fec"].get("code") for p in pairs] == ["vandermonde", None]


def test_config_without_code_resolves_and_hashes_as_before():
    """Configs without `code` (or with the default `code: cauchy`) resolve to the dicts and hashes they had before
    the key existed (hashes pinned from the tree before the change), so labels, unit ids and result rows of
    existing sweeps stay identical."""
    # the packetization default changed in issue 24 (mtu 1200 + raster -> 128 + random): pinned with the old one
    old_pk = {"mtu": [1200], "interleave": ["raster"]}
    plain = {"channels": CH, "packetization": old_pk}
    fec = {
        "channels": CH,
        "fec": ["none", {"n": 12, "k": 8}, {"n": 6, "k": 4, "nsym": 8}, "5,3"],
        "packetization": old_pk,
    }
    pairs = {
        "channels": CH,
        "pairs": [{"codebook_size": 16, "fec": {"n": 12, "k": 8}}, {"codebook_size": 64}],
        "packetization": old_pk,
    }
    pinned = {
        "plain": (plain, "3fb829756bc83741"),
        "fec": (fec, "5580a8efe3963e46"),
        "pairs": (pairs, "63777bae91338654"),
    }
    for name, (raw, digest) in pinned.items():
        assert config_hash(validate_config(raw)) == digest, name
    cfg = validate_config(fec)
    assert cfg["fec"] == [
        {"n": 0, "k": 0, "nsym": 0},
        {"n": 12, "k": 8, "nsym": 0},
        {"n": 6, "k": 4, "nsym": 8},
        {"n": 5, "k": 3, "nsym": 0},
    ]
    explicit = {
        "channels": CH,
        "fec": ["none", {"n": 12, "k": 8, "code": "cauchy"}, {"n": 6, "k": 4, "nsym": 8, "code": "cauchy"}, "5,3"],
        "packetization": old_pk,
    }
    assert validate_config(explicit) == cfg and config_hash(validate_config(explicit)) == "5580a8efe3963e46"
    assert [fec_label(f) for f in cfg["fec"]] == ["none", "RS(12,8)", "RS(6,4)+inpkt8", "RS(5,3)"]
    vdm = {
        "channels": CH,
        "fec": ["none", {"n": 12, "k": 8, "code": "vandermonde"}, {"n": 6, "k": 4, "nsym": 8}, "5,3"],
        "packetization": old_pk,
    }
    assert config_hash(validate_config(vdm)) != "5580a8efe3963e46"


@pytest.mark.parametrize(
    "fec, words",
    [
        ([{"n": 6, "k": 4, "code": "zfec"}], ["fec[0].code", "'zfec'", "cauchy", "vandermonde"]),
        ([{"n": 6, "k": 4, "code": 3}], ["fec[0].code", "cauchy"]),
        ([{"nsym": 8, "code": "vandermonde"}], ["fec[0]", "needs n and k"]),
        ([{"n": 6, "k": 4}, {"n": 6, "k": 4, "code": "cauchy"}], ["fec", "duplicate"]),
        ([{"n": 6, "k": 4, "codes": "vandermonde"}], ["fec[0]", "'codes'"]),
    ],
)
def test_bad_code_names_the_key(fec, words):
    with pytest.raises(ConfigError) as e:
        validate_config({"channels": CH, "fec": fec})
    for w in words:
        assert w in str(e.value), (w, str(e.value))
