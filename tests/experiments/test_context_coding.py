"""The context packet coder (``tf_tile``) as a sweep dimension: config checks, plan, rows, strategies, paired table."""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import ConfigError, check_resources, validate_config
from experiments.sweep import run_sweep

AR_128 = str(Path(__file__).resolve().parents[2] / "codec/weights/default_ar_128.pt")


def quiet(*_):
    pass


def _cfg(tiny_config):
    cfg = tiny_config()
    cfg["codec"]["codebook_sizes"] = [16]
    cfg.update(channels=[{"model": "bernoulli", "p": [0.2, 0.5]}], fec=["none"], seeds=[0],
               examples={"enabled": False},
               packetization={"mtu": [24], "interleave": ["random", "tile"], "coder": ["raw", "tf_tile"]},
               # the shipped K = 128 AR transformer codes the tiny codec's 16 indices (vocabulary 129 ≥ 16)
               concealment={"methods": ["latent_avg", "none"], "models": {"ar": AR_128}})
    return cfg


def test_tf_tile_needs_the_tile_interleaver_in_the_config(tiny_config):
    cfg = _cfg(tiny_config)
    cfg["packetization"]["interleave"] = ["random"]
    with pytest.raises(ConfigError, match="add 'tile' to packetization.interleave"):
        validate_config(cfg)


def test_tf_tile_needs_an_ar_transformer_at_every_size(tiny_config):
    cfg = _cfg(tiny_config)
    del cfg["concealment"]["models"]          # the tiny codec ships no transformer
    with pytest.raises(ConfigError, match="codes each tile with the 'ar' transformer"):
        check_resources(validate_config(cfg))


@pytest.fixture(scope="module")
def ctx_run(tmp_path_factory, tiny_config):
    return run_sweep(_cfg(tiny_config), tmp_path_factory.mktemp("ctx") / "s", progress=False, log=quiet)


def test_sweep_pairs_tf_tile_with_tile_only_and_loses_whole_tiles(ctx_run):
    df = ctx_run.results
    combos = set(zip(df["interleave"], df["coder"], strict=True))
    assert combos == {("random", "raw"), ("tile", "raw"), ("tile", "tf_tile")}
    t = df[df["coder"] == "tf_tile"]
    assert len(t) and (t["payload_bits"] > 0).all() and (t["data_lost"] > 0).any()
    # the 16×24 map travels in equal tiles (4×6 at mtu 24): a lost packet costs exactly its tile, nothing more
    tile = t["num_indices"] // t["data_packets"]
    assert (t["num_indices"] % t["data_packets"] == 0).all()
    assert (t["lost_indices"] == t["data_lost"] * tile).all()


def test_strategies_and_paired_table_split_by_packetization(ctx_run):
    from experiments.paired import paired_table
    from experiments.plots import strategy_table

    t = strategy_table(ctx_run.results)
    assert set(t["packetization"]) == {"raw/random", "raw/tile", "tf_tile/tile"}
    assert "raw/random" in t.attrs["reference"]       # the symbol coder's packetization is the reference
    text = paired_table(ctx_run.results, reference="latent_avg")
    assert " tile tf_tile " in text and " random raw " in text
    from experiments.plots import make_plots

    rep = make_plots(ctx_run.out, formats=("png",), dpi=40, figures=["strategies"])
    assert [p.name for p in rep.files] == ["strategies.png"]
    assert set(rep.data["strategies"]["packetization"]) == {"raw/random", "raw/tile", "tf_tile/tile"}
