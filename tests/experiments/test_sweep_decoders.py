"""Decoder variants as a sweep dimension (``concealment.decoders``): config checks, plan ids, paired rows."""
from __future__ import annotations

import numpy as np
import pytest

from experiments.config import ConfigError, check_resources, config_hash, validate_config
from experiments.sweep import run_sweep


def quiet(*_):
    pass


def _decoder_file(codec_path, S: int, path, shift: float = 0.3, cid: str | None = None):
    """A decoder-variant file for the tiny codec at size S: its post_quant_conv with a shifted bias."""
    import torch

    from codec.zoo import load_codec

    codec = load_codec(str(codec_path), S, device="cpu")
    w = {k: v.detach().clone() for k, v in codec.model.state_dict().items() if k.startswith("post_quant_conv.")}
    w["post_quant_conv.bias"] += shift
    torch.save({"weights": w, "meta": {"codebook_id": cid or f"tiny/{S}", "name": path.stem}}, path)
    return path


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory, tiny_codec_path):
    d = tmp_path_factory.mktemp("robustdec")
    for S in (16, 8):
        _decoder_file(tiny_codec_path, S, d / f"tiny_robustdec_{S}.pt")
    return d


def _cfg(tiny_config, decoder_dir, decoders=("plain", "robust")):
    cfg = tiny_config()
    cfg["codec"]["codebook_sizes"] = [16]
    cfg.update(channels=[{"model": "index_loss", "rate": [0.0, 0.3]}, {"model": "bernoulli", "p": [0.2]}],
               fec=["none"], seeds=[0], examples={"enabled": False},
               concealment={"methods": ["latent_avg", "latent_avg_soft", "none"], "decoders": list(decoders),
                            "models": {"robust_decoder": str(decoder_dir / "tiny_robustdec_{size}.pt")}})
    return cfg


def test_decoders_are_validated(tiny_config, decoder_dir):
    cfg = _cfg(tiny_config, decoder_dir, ["plain", "fancy"])
    with pytest.raises(ConfigError, match=r"concealment.decoders\[1\].*fancy"):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="duplicate decoders"):
        validate_config(_cfg(tiny_config, decoder_dir, ["robust", "robust"]))


def test_default_decoders_keep_the_config_hash(tiny_config):
    cfg = tiny_config()
    explicit = tiny_config()
    explicit["concealment"]["decoders"] = ["plain"]
    assert config_hash(validate_config(cfg)) == config_hash(validate_config(explicit))
    explicit["concealment"]["decoders"] = ["plain", "robust"]
    assert config_hash(validate_config(cfg)) != config_hash(validate_config(explicit))


def test_missing_or_foreign_robust_decoder_is_a_config_error(tiny_config, decoder_dir, tiny_codec_path, tmp_path):
    cfg = _cfg(tiny_config, decoder_dir)
    cfg["concealment"]["models"]["robust_decoder"] = str(tmp_path / "none_{size}.pt")
    with pytest.raises(ConfigError, match=r"none_16\.pt.*train-robust-decoder"):
        check_resources(validate_config(cfg))
    _decoder_file(tiny_codec_path, 16, tmp_path / "other_16.pt", cid="default/1024")
    cfg["concealment"]["models"]["robust_decoder"] = str(tmp_path / "other_{size}.pt")
    with pytest.raises(ConfigError, match="default/1024"):
        check_resources(validate_config(cfg))


def test_skip_runs_a_decoder_only_where_its_file_exists(tiny_config, decoder_dir, tiny_codec_path, tmp_path):
    from experiments.sweep.plan import plan_units
    from experiments.sweep.sources import load_images

    _decoder_file(tiny_codec_path, 16, tmp_path / "only_16.pt")
    cfg = _cfg(tiny_config, decoder_dir)
    cfg["codec"]["codebook_sizes"] = [16, 8]
    cfg["concealment"].update(on_missing_model="skip", models={"robust_decoder": str(tmp_path / "only_{size}.pt")})
    cfg = validate_config(cfg)
    notes = check_resources(cfg)
    assert any("decodes at codebook size(s) 16 only" in n for n in notes)
    units = plan_units(cfg, load_images(cfg))
    labels = {S: {m for u in units if u.params["codebook_size"] == S for m, _ in u.trials} for S in (16, 8)}
    assert "latent_avg@robust" in labels[16] and not any("@" in m for m in labels[8])


def test_plain_trials_keep_their_ids_and_rows(tiny_config, decoder_dir):
    """Adding the robust decoder adds trials; the plain trials are the same trials with the same numbers."""
    both = run_sweep(_cfg(tiny_config, decoder_dir), decoder_dir / "both", progress=False, log=quiet).results
    plain = run_sweep(_cfg(tiny_config, decoder_dir, ["plain"]), decoder_dir / "plain", progress=False,
                      log=quiet).results
    assert len(both) == 2 * len(plain)
    assert set(both["decoder"]) == {"plain", "robust"} and set(plain["decoder"]) == {"plain"}
    assert set(both["method"]) == {"latent_avg", "latent_avg_soft", "none", "latent_avg@robust",
                                   "latent_avg_soft@robust", "none@robust"}
    b = both[both["decoder"] == "plain"].set_index("trial_id").sort_index()
    p = plain.set_index("trial_id").sort_index()
    assert list(b.index) == list(p.index)
    for col in ("index_error_ratio", "lpips_alex", "psnr", "lpips_alex_vs_lossfree"):
        np.testing.assert_array_equal(b[col].to_numpy(), p[col].to_numpy())


def test_decoders_decode_the_same_concealed_map(tiny_config, decoder_dir):
    """Paired: a method's concealed map is shared by the decoders; only the pixels differ, also without loss."""
    df = run_sweep(_cfg(tiny_config, decoder_dir), decoder_dir / "paired", progress=False, log=quiet).results
    df = df.assign(base=df["method"].str.split("@").str[0])
    pl = df[df["decoder"] == "plain"].set_index(["unit_id", "base"]).sort_index()
    rb = df[df["decoder"] == "robust"].set_index(["unit_id", "base"]).sort_index()
    assert list(pl.index) == list(rb.index)
    for col in ("index_error_ratio", "concealed_exact_ratio", "lost_indices"):
        np.testing.assert_array_equal(pl[col].to_numpy(), rb[col].to_numpy())
    assert (pl["lpips_alex"].to_numpy() != rb["lpips_alex"].to_numpy()).all()
    lossless = rb["index_error_ratio"] == 0
    assert lossless.any()
    # with no loss the plain decoder gives the loss-free reconstruction; the variant decodes it differently
    assert (pl.loc[lossless, "lpips_alex_vs_lossfree"] == 0).all()
    assert (rb.loc[lossless, "lpips_alex_vs_lossfree"] > 0).all()


def test_rows_without_a_decoder_column_read_as_plain(tiny_sweep, tmp_path):
    from experiments.sweep.storage import read_results

    df = read_results(tiny_sweep.out).drop(columns="decoder")
    df.to_parquet(tmp_path / "results.parquet", index=False)
    old = read_results(tmp_path)
    assert list(old["decoder"].unique()) == ["plain"]
    assert list(old.columns).index("decoder") == list(old.columns).index("method_options") + 1


def test_figures_name_and_colour_decoder_variants():
    from experiments.plots.common import METHOD_COLORS, method_colors, method_label

    assert method_label("bidir_soft@robust") == "bidir. transformer (soft) + robust decoder"
    assert method_label("bidir_soft") == "bidir. transformer (soft)"
    c = method_colors(["bidir_soft", "bidir_soft@robust", "mystery"])
    assert c["bidir_soft"] == METHOD_COLORS["bidir_soft"]
    assert isinstance(c["bidir_soft@robust"], tuple) and c["bidir_soft@robust"] != c["bidir_soft"]
    assert isinstance(c["mystery"], str)


def test_paired_comparisons_across_decoders_are_against_the_original(tiny_config, decoder_dir):
    """*_vs_lossfree is the plain decoder's loss-free picture: across decoders the summary, the paired figure and
    the report compare against the original instead (and say so)."""
    from experiments.paired import default_paired_metric
    from experiments.sweep import summary_table

    df = run_sweep(_cfg(tiny_config, decoder_dir), decoder_dir / "summary", progress=False, log=quiet).results
    assert default_paired_metric(df) == "lpips_alex"
    assert default_paired_metric(df[df["decoder"] == "plain"]) == "lpips_alex_vs_lossfree"
    text = summary_table(df)
    assert "decoders vary" in text and "paired differences in lpips_alex to" in text
    assert "decoders vary" not in summary_table(df[df["decoder"] == "plain"])
