"""Sweep config validation: bad keys / values fail before any work, with messages naming them."""
from __future__ import annotations

import math

import pytest

from experiments.config import ConfigError, check_resources, config_hash, expand_channels, load_config, validate_config


def base(**over):
    cfg = {"channels": [{"model": "bernoulli", "p": [0.1]}]}
    cfg.update(over)
    return cfg


def error(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    return str(e.value)


def test_defaults_are_filled_in():
    cfg = validate_config(base())
    assert cfg["images"]["source"] == "skimage" and cfg["images"]["names"] == [
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
    ]
    assert cfg["codec"]["model"] == "default" and cfg["fec"] == [{"n": 0, "k": 0, "nsym": 0}]
    assert cfg["codec"]["finetuned"] == "auto"
    assert validate_config(base(codec={"finetuned": False}))["codec"]["finetuned"] == "false"
    assert cfg["seeds"] == [0] and cfg["metrics"]["nets"] == ["alex"]
    assert cfg["packetization"] == {"mtu": [128], "interleave": ["random"], "coder": ["arith"]}


@pytest.mark.parametrize(
    "cfg, words",
    [
        (base(chanels=[]), ["'chanels'", "allowed", "channels"]),
        (base(images={"resiz": 64}), ["images", "'resiz'", "resize"]),
        (base(codec={"codebook_sizes": [16, "x"]}), ["codec.codebook_sizes[1]", "integer"]),
        (base(codec={"finetuned": "maybe"}), ["codec.finetuned", "auto, true or false", "'maybe'"]),
        (
            base(concealment={"methods": ["latent_avg", "magic"]}),
            ["concealment.methods[1]", "'magic'", "neighbor", "bidir"],
        ),
        (
            base(concealment={"methods": ["bidir"], "options": {"bidir": {"stepz": 3}}}),
            ["concealment.options.bidir", "'stepz'", "steps"],
        ),
        (base(fec=["none", {"n": 4, "k": 8}]), ["fec[1]", "(4, 8)", "1 ≤ k < n ≤ 255"]),
        (base(fec=[{"n": 300, "k": 8}]), ["fec[0]", "255"]),
        (base(fec=[{"n": 6}]), ["fec[0]", "both n and k"]),
        (base(fec=[{"nsym": 300}]), ["fec[0].nsym", "254"]),
        (base(packetization={"interleave": ["zigzag"]}), ["packetization.interleave[0]", "'zigzag'", "checkerboard"]),
        (base(seeds=3), ["seeds", "list"]),
        (base(metrics={"nets": ["squeeze"]}), ["metrics.nets[0]", "alex", "vgg"]),
        (base(images={"names": ["lena"]}), ["images.names[0]", "'lena'", "astronaut"]),
        (
            {"channels": [{"model": "wormhole", "p": 0.1}]},
            ["channels[0]", "wormhole", "bernoulli", "gilbert_elliott", "index_loss"],
        ),
        ({"channels": [{"model": "bernoulli", "q": 0.1}]}, ["channels[0]", "'q'", "allowed"]),
        ({"channels": [{"model": "index_loss", "rate": 1.5}]}, ["channels[0].rate", "1.0"]),
        (
            {"channels": [{"model": "gilbert_elliott", "loss_rate": 0.9, "mean_burst": 2}]},
            ["channels[0]", "unreachable"],
        ),
        (base(pairs=[{"codebook_size": 16}], fec=["none"]), ["pairs", "fec"]),
        ({}, ["channels", "missing"]),
    ],
)
def test_bad_configs_name_the_key(cfg, words):
    msg = error(cfg)
    for w in words:
        assert w in msg, (w, msg)


def test_channel_grid_expansion_and_labels():
    pts = expand_channels(
        [
            {"model": "gilbert_elliott", "loss_rate": [0.05, 0.1], "mean_burst": [1.5, 4, 10]},
            {"model": "index_loss", "rate": [0.0, 0.2]},
            {"preset": ["internet", "wifi"]},
            "loss gemodel 1% 30%",
        ]
    )
    assert len(pts) == 2 * 3 + 2 + 2 + 1
    ge = [p for p in pts if p["model"] == "gilbert_elliott"]
    # simple Gilbert from (L, b): stationary loss L and mean burst b by construction
    for p in ge:
        assert math.isclose(p["loss_rate"], p["params"]["loss_rate"], rel_tol=1e-9)
        assert math.isclose(p["burst"], p["params"]["mean_burst"], rel_tol=1e-9)
        assert p["family"] == f"gilbert_elliott(mean_burst={p['params']['mean_burst']:g})"
    idx = [p for p in pts if p["kind"] == "index"]
    assert [p["loss_rate"] for p in idx] == [0.0, 0.2] and all(p["family"] == "index_loss" for p in idx)
    assert {p["label"] for p in pts if p["entry"] == 2} == {"internet", "wifi"}
    assert len({p["label"] for p in pts}) == len(pts)


def test_duplicate_channel_points_rejected():
    msg = error({"channels": [{"model": "bernoulli", "p": [0.1]}, {"model": "bernoulli", "p": 0.1}]})
    assert "duplicate" in msg and "bernoulli(p=0.1)" in msg


def test_resources_codebook_size_and_missing_concealer(tiny_codec_path):
    cfg = validate_config(base(codec={"model": str(tiny_codec_path), "codebook_sizes": [32]}))
    with pytest.raises(ConfigError, match=r"codec.codebook_sizes.*32.*K=16"):
        check_resources(cfg)

    cfg = validate_config(
        base(codec={"model": str(tiny_codec_path), "codebook_sizes": [16]}, concealment={"methods": ["ar", "neighbor"]})
    )
    with pytest.raises(ConfigError) as e:
        check_resources(cfg)
    assert "concealment.methods" in str(e.value) and "tiny_ar_16.pt" in str(e.value)

    cfg = validate_config(
        base(
            codec={"model": str(tiny_codec_path), "codebook_sizes": [16]},
            concealment={"methods": ["ar", "neighbor"], "on_missing_model": "skip"},
        )
    )
    notes = check_resources(cfg)
    assert cfg["concealment"]["methods"] == ["neighbor"] and len(notes) == 1 and "'ar'" in notes[0]
    assert cfg["codec"]["K"] == 16 and len(cfg["codec"]["sha256"]) == 64

    cfg = validate_config(base(codec={"model": "no/such/model.pt"}))
    with pytest.raises(ConfigError, match="codec.model"):
        check_resources(cfg)


def test_bad_config_does_no_work(tmp_path, tiny_codec_path):
    from experiments.sweep import run_sweep

    out = tmp_path / "never"
    with pytest.raises(ConfigError, match="fec"):
        run_sweep(base(codec={"model": str(tiny_codec_path)}, fec=[{"n": 2, "k": 2}]), out, progress=False)
    assert not out.exists()


def test_config_hash_ignores_bookkeeping_only():
    a = validate_config(base())
    b = validate_config(base(description="other words", execution={"flush_every_s": 1.0}))
    c = validate_config(base(seeds=[1]))
    d = validate_config(base(execution={"torch_threads": 2}))
    assert config_hash(a) == config_hash(b)
    assert len({config_hash(a), config_hash(c), config_hash(d)}) == 3


@pytest.mark.parametrize(
    "name", ["paper_index_loss", "bernoulli", "gilbert_elliott", "fec_vs_concealment", "demo", "model_card_conceal"]
)
def test_bundled_configs_validate(name):
    cfg = validate_config(load_config(name))
    assert cfg["name"] == name
    assert expand_channels(cfg["channels"])


def test_fec_vs_concealment_pairs_match_payload_bits():
    """Raw coder: ceil(log2 S) bits per index, times n/k for RS(n, k) — equal for every pair."""
    cfg = validate_config(load_config("fec_vs_concealment"))
    assert cfg["codec"]["coder"] == "raw" and cfg["packetization"]["coder"] == ["raw"]
    cost = {
        math.ceil(math.log2(p["codebook_size"])) * (p["fec"]["n"] / p["fec"]["k"] if p["fec"]["n"] else 1)
        for p in cfg["pairs"]
    }
    assert len(cfg["pairs"]) >= 3 and len(cost) == 1


def test_yaml_exponent_floats_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1.0e5 / 1e-4 as strings; numeric fields accept exactly that form, nothing else."""
    f = tmp_path / "exp.yaml"
    f.write_text(
        "channels:\n  - {model: bsc, ber: [1e-4, 1.0e-3]}\n  - {model: bernoulli, p: 5E-2}\n"
        "link: {bandwidth_bps: 1.0e5, jitter_s: 2e-3}\npacing_bps: 5e4\nexecution: {flush_every_s: 1E1}\n"
    )
    raw = load_config(f)
    assert raw["link"]["bandwidth_bps"] == "1.0e5" and raw["channels"][0]["ber"][0] == "1e-4"  # the YAML 1.1 quirk
    cfg = validate_config(raw)
    assert cfg["link"]["bandwidth_bps"] == 1e5 and cfg["link"]["jitter_s"] == 2e-3 and cfg["pacing_bps"] == 5e4
    assert cfg["execution"]["flush_every_s"] == 10.0
    assert cfg["channels"] == [{"model": "bsc", "ber": [1e-4, 1e-3]}, {"model": "bernoulli", "p": 0.05}]
    assert [p["label"] for p in expand_channels(cfg["channels"])] == [
        "bsc(ber=0.0001)",
        "bsc(ber=0.001)",
        "bernoulli(p=0.05)",
    ]
    same = validate_config(
        {
            **raw,
            "channels": [{"model": "bsc", "ber": [1e-4, 1e-3]}, {"model": "bernoulli", "p": 0.05}],
            "link": {"bandwidth_bps": 1e5, "jitter_s": 2e-3},
            "pacing_bps": 5e4,
            "execution": {"flush_every_s": 10.0},
        }
    )
    assert config_hash(cfg) == config_hash(same)
    for bad in ("fast", "100", "0.5", "1e", "e5", "1e5x", "1,5e3", "0x1p3", "inf", "nan", "1e400"):
        assert "link.bandwidth_bps" in error(base(link={"bandwidth_bps": bad})), bad
    assert "channels[0]" in error({"channels": [{"model": "bernoulli", "p": "0.1"}]})


@pytest.mark.parametrize("names", [True, 3, "astronaut", {"a": 1}])
def test_image_names_must_be_a_list(names):
    msg = error(base(images={"names": names}))
    assert "images.names" in msg and "list" in msg and "astronaut" in msg


@pytest.mark.parametrize(
    "cfg, words",
    [
        (base(codec={"device": "cuda:abc"}), ["codec.device", "'cuda:abc'", "cuda:N"]),
        (base(metrics={"device": "cuda:"}), ["metrics.device", "'cuda:'"]),
        (base(concealment={"methods": ["ar"], "models": {"ar": "/tmp/x{}.pt"}}), ["concealment.models.ar", "{size}"]),
        (base(concealment={"methods": ["ar"], "models": {"ar": "{foo}"}}), ["concealment.models.ar", "KeyError"]),
        (
            base(concealment={"methods": ["ar"], "models": {"ar": "{size"}}),
            ["concealment.models.ar", "not a valid path"],
        ),
    ],
)
def test_issue27_bad_devices_and_model_templates_name_the_key(cfg, words):
    """These were internal errors (a device torch refuses, str.format of a broken template) after work started."""
    msg = error(cfg)
    for w in words:
        assert w in msg, (w, msg)
    assert "\n" not in msg


def test_bad_concealment_options_and_models_fail_before_any_work(tmp_path, tiny_codec_path):
    """Issue 27: bad option values and transformer files surfaced only after encoding had started."""
    from experiments.sweep import run_sweep

    codec = {"model": str(tiny_codec_path), "codebook_sizes": [16]}
    cases = [
        (
            base(codec=codec, concealment={"methods": ["latent_avg"], "options": {"latent_avg": {"connectivity": 5}}}),
            "concealment.options.latent_avg",
        ),
        (
            base(codec=codec, concealment={"methods": ["none"], "options": {"none": {"fill_value": 99}}}),
            "concealment.options.none",
        ),
    ]
    junk = tmp_path / "junk_16.pt"
    junk.write_bytes(b"not a transformer at all")
    cases.append(
        (
            base(
                codec=codec, concealment={"methods": ["bidir"], "models": {"bidir": str(tmp_path / "junk_{size}.pt")}}
            ),
            "concealment.models.bidir",
        )
    )
    for cfg, key in cases:
        out = tmp_path / "never"
        with pytest.raises(ConfigError, match=key):
            run_sweep(cfg, out, progress=False)
        assert not out.exists()  # nothing encoded, no folder
