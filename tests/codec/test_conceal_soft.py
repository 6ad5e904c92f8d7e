"""codec.conceal soft latents, shaped loss masks, decoder variants and the robust-decoder trainer (issue 23)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.conceal import (
    GPT,
    SOFT_METHODS,
    conceal,
    decode_concealment,
    decode_latents,
    decoder_table,
    random_loss_mask,
    shaped_loss_mask,
)
from codec.errors import CheckpointError, ModelNotFoundError, ParameterError
from codec.types import IndexMap

K = 16


def _gpt(causal, seed=0):
    torch.manual_seed(seed)
    m = GPT(vocab_size=K + 1, block_size=64, n_layer=1, n_head=2, n_embd=32, causal=causal)
    with torch.no_grad():
        m.pos_emb.normal_(0.0, 0.02)
    return m.eval()


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    cb = rng.normal(size=(K, 4))
    cb /= np.linalg.norm(cb, axis=1, keepdims=True)          # unit rows, as the l2 codec's
    imap = IndexMap(rng.integers(0, K, size=(6, 8)), K, (96, 128))
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(1))
    return imap, lost, cb


def test_soft_methods_are_registered():
    assert set(SOFT_METHODS) == {"bidir_soft", "bidir_soft_l2", "ar_soft", "latent_avg_soft"}


def test_bidir_soft_keeps_bidir_mean_indices_and_holds_posterior_means(setup):
    imap, lost, cb = setup
    model = _gpt(False)
    ref = conceal(imap, lost, "bidir_mean", model=model, codebook=cb, window=8)
    res = conceal(imap, lost, "bidir_soft", model=model, codebook=cb, window=8)
    assert np.array_equal(res.indices, ref.indices)
    assert ref.latents is None and res.latents.shape == (6, 8, 4) and res.latents.dtype == np.float32
    np.testing.assert_allclose(res.latents[~lost], cb[imap.indices[~lost]], atol=1e-6)
    # a mean of unit codewords lies inside the sphere; the snapped codeword does not
    assert np.all(np.linalg.norm(res.latents[lost], axis=1) < 1 - 1e-6)


def test_bidir_soft_one_step_equals_softmax_mean_of_one_forward(setup):
    imap, lost, cb = setup
    model = _gpt(False)
    res = conceal(imap, lost, "bidir_soft", model=model, codebook=cb, window=8, steps=1)
    grid = imap.indices.astype(np.int64)
    grid[lost] = K
    with torch.no_grad():
        logits = model(torch.from_numpy(grid.reshape(1, -1)), pos=torch.arange(48))[0]
    p = torch.softmax(logits[:, :K].double(), 1).numpy()
    np.testing.assert_allclose(res.latents[lost], (p @ cb)[lost.reshape(-1)], atol=1e-5)


def test_renorm_puts_soft_latents_back_on_the_unit_sphere(setup):
    imap, lost, cb = setup
    model = _gpt(False)
    res = conceal(imap, lost, "bidir_soft_l2", model=model, codebook=cb, window=8)
    np.testing.assert_allclose(np.linalg.norm(res.latents[lost], axis=1), 1.0, atol=1e-5)
    same = conceal(imap, lost, "bidir_soft", model=model, codebook=cb, window=8, renorm=True)
    np.testing.assert_allclose(same.latents, res.latents, atol=1e-6)


def test_ar_soft_keeps_ar_mean_indices(setup):
    imap, lost, cb = setup
    model = _gpt(True)
    ref = conceal(imap, lost, "ar_mean", model=model, codebook=cb, window=8)
    res = conceal(imap, lost, "ar_soft", model=model, codebook=cb, window=8)
    assert np.array_equal(res.indices, ref.indices)
    assert np.isfinite(res.latents).all() and not np.allclose(res.latents[lost], cb[res.indices[lost]])


def test_latent_avg_soft_is_the_unsnapped_neighbour_mean(setup):
    imap, _, cb = setup
    lost = np.zeros(imap.shape, dtype=bool)
    lost[2, 3] = True
    res = conceal(imap, lost, "latent_avg_soft", codebook=cb)
    nb = imap.indices[[1, 3, 2, 2], [3, 3, 2, 4]]
    np.testing.assert_allclose(res.latents[2, 3], cb[nb].mean(0), atol=1e-6)
    d = ((cb - cb[nb].mean(0)) ** 2).sum(1)
    assert res.indices[2, 3] == int(np.argmin(d))


def test_soft_methods_use_the_decoder_table_when_given(setup):
    imap, lost, cb = setup
    table = 2.0 * cb
    res = conceal(imap, lost, "latent_avg_soft", codebook=cb, decoder_codebook=table)
    np.testing.assert_allclose(res.latents[~lost], table[imap.indices[~lost]], atol=1e-5)
    with pytest.raises(ParameterError, match="decoder_codebook"):
        conceal(imap, lost, "latent_avg_soft", codebook=cb, decoder_codebook=table[:3])
    with pytest.raises(ParameterError, match="renorm"):
        conceal(imap, lost, "latent_avg_soft", codebook=cb, renorm="yes")


def test_shaped_loss_masks():
    rng = np.random.default_rng(0)
    rows = shaped_loss_mask((8, 12), 0.25, "rows", rng)
    assert rows.sum() == 24 and set(rows.all(1).nonzero()[0]) == set(rows.any(1).nonzero()[0])
    comb = shaped_loss_mask((8, 12), 0.25, "interleaved", rng, packet=12)
    flat = np.nonzero(comb.reshape(-1))[0]
    assert comb.sum() == 24 and len(set(flat % 8)) == 2          # 8 packets of stride 8, 2 lost
    assert shaped_loss_mask((8, 12), 0.25, "scattered", rng).sum() == 24
    with pytest.raises(ParameterError, match="loss shape"):
        shaped_loss_mask((8, 12), 0.25, "bursty", rng)


# ------------------------------------------------------------------ real codec: decoding latents, decoder variants
@pytest.fixture(scope="module")
def codec_small(kodim01):
    from codec.zoo import load_codec

    return load_codec("default", 1024, device="cpu"), np.ascontiguousarray(kodim01[:64, :96])


def test_decode_latents_of_table_rows_equals_index_decoding(codec_small):
    codec, img = codec_small
    imap = codec.encode_indices(img)
    table = decoder_table(codec)
    x = decode_latents(codec, table[imap.indices.astype(np.int64)], imap.image_size)
    torch.testing.assert_close(x, codec.decode_indices_tensor(imap), atol=1e-5, rtol=0)
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(0))
    res = conceal(imap, lost, "latent_avg_soft", codebook=codec.codebook, decoder_codebook=table)
    assert decode_concealment(codec, res).shape == (1, 3, 64, 96)
    with pytest.raises(ParameterError, match="latent map"):
        decode_latents(codec, table[imap.indices.astype(np.int64)], (128, 96))


def test_decoder_variant_changes_pixels_not_indices(codec_small, tmp_path):
    from codec.conceal.decoder_variant import with_decoder_variant

    codec, img = codec_small
    w = {k: v.detach().clone() for k, v in codec.model.state_dict().items() if k.startswith("post_quant_conv.")}
    w["post_quant_conv.bias"] += 0.5
    path = tmp_path / "dec.pt"
    torch.save({"weights": w, "meta": {"codebook_id": codec.codebook_id, "name": "test"}}, path)
    robust = with_decoder_variant(codec, str(path))
    imap = codec.encode_indices(img)
    assert np.array_equal(robust.encode_indices(img).indices, imap.indices)
    assert not torch.allclose(robust.decode_indices_tensor(imap), codec.decode_indices_tensor(imap))
    assert with_decoder_variant(codec, "plain") is codec
    torch.save({"weights": w, "meta": {"codebook_id": "default/128"}}, path)
    with pytest.raises(CheckpointError, match="default/128"):
        with_decoder_variant(codec, str(path))
    from codec.zoo import load_codec

    # at K = 1,024 the codec's own decoder was trained on concealed maps: no separate file, and the error says so
    with pytest.raises(ModelNotFoundError, match=r"no robust decoder ships for default/1024.*own \(plain\) decoder "
                                                 r"is the loss-aware one"):
        with_decoder_variant(codec, "robust")
    with pytest.raises(ModelNotFoundError, match="no robust decoder ships for default/128.*train-robust-decoder"):
        with_decoder_variant(load_codec("default", 128, device="cpu"), "robust")


def test_robust_decoder_trains_resumes_and_loads(kodak_dir, tmp_path, codec_small):
    from codec.conceal.decoder_variant import with_decoder_variant
    from codec.train.robust_decoder import RobustDecoderConfig, export_robust_decoder, train_robust_decoder

    codec, img = codec_small
    cfg = RobustDecoderConfig(out=str(tmp_path / "dec.pt"), data=[str(kodak_dir / "kodim01.png"),
                              str(kodak_dir / "kodim02.png")], window=4, steps=2, batch_size=2, perceptual_weight=0.0,
                              clean_fraction=0.0, log_every=1, ckpt_every=1, lr=1e-3)
    with pytest.raises(FileNotFoundError, match="no saved state"):
        export_robust_decoder(cfg)
    res = train_robust_decoder(cfg, log=lambda s: None)
    assert res["done"] and res["step"] == 2 and all(r["mean_lost"] > 0 for r in res["history"])
    finished = torch.load(cfg.out, weights_only=True)
    Path(cfg.out).unlink()
    assert export_robust_decoder(cfg) == {"out": cfg.out, "step": 2, "done": True}
    exported = torch.load(cfg.out, weights_only=True)  # the saved state gives the file training wrote
    assert exported["meta"]["steps"] == 2 and exported["meta"]["done"] is True
    for k, v in finished["weights"].items():
        assert torch.equal(exported["weights"][k], v)
    with pytest.raises(ParameterError, match="--resume"):
        train_robust_decoder(cfg, log=lambda s: None)
    cfg.steps = 3
    assert export_robust_decoder(cfg)["done"] is False  # a longer run, not finished yet
    res = train_robust_decoder(cfg, resume=True, log=lambda s: None)
    assert res["step"] == 3 and len(res["history"]) == 3
    robust = with_decoder_variant(codec, cfg.out)
    imap = codec.encode_indices(img)
    assert not torch.allclose(robust.decode_indices_tensor(imap), codec.decode_indices_tensor(imap))
    with pytest.raises(ParameterError, match="filler"):
        RobustDecoderConfig(filler="magic")
    with pytest.raises(ParameterError, match="lpips_net"):
        RobustDecoderConfig(lpips_net="squeeze")
    assert RobustDecoderConfig(lpips_net="alex+vgg").lpips_net == "alex+vgg"  # the mean of both nets


def test_robust_decoder_keeps_the_decoder_codebook_it_trained_against(kodak_dir, tmp_path):
    """At a reduced size the decoder side reads the size's fine-tuned decoder codebook without training it: the
    state and the file keep the one the run started with, so rebuilding the codec's fine-tuned sizes
    (finetune-codec) neither changes a resumed run nor the decoder its file describes."""
    import shutil

    from codec.checkpoint import read_checkpoint
    from codec.conceal.decoder_variant import with_decoder_variant
    from codec.train.robust_decoder import RobustDecoderConfig, train_robust_decoder
    from codec.zoo import WEIGHTS_DIR, load_codec

    base = tmp_path / "codec.pt"
    shutil.copy(WEIGHTS_DIR / "default.pt", base)
    cfg = RobustDecoderConfig(out=str(tmp_path / "dec.pt"), codec=str(base), codebook_size=16,
                              data=[str(kodak_dir / "kodim01.png")], window=4, steps=1, batch_size=2,
                              perceptual_weight=0.0, clean_fraction=0.0, log_every=1, ckpt_every=1, lr=1e-3,
                              filler="latent_avg_soft")
    train_robust_decoder(cfg, log=lambda s: None)
    own = load_codec(str(base), 16, device="cpu").model.decoder_codebook.weight.detach().float().clone()
    st = torch.load(tmp_path / "dec.pt.train" / "state.pt", weights_only=False)
    assert torch.equal(st["fixed"]["decoder_codebook"], own)
    ck = read_checkpoint(base)  # the codec file's K = 16 decoder side is rebuilt
    ck["decoders"]["16"]["decoder_codebook"] = ck["decoders"]["16"]["decoder_codebook"] + 0.25
    torch.save(ck, base)
    assert not torch.equal(load_codec(str(base), 16, device="cpu").model.decoder_codebook.weight.float(), own)
    cfg.steps = 2
    logs: list[str] = []
    train_robust_decoder(cfg, resume=True, log=logs.append)
    assert any("keeps its own" in m for m in logs)
    f = torch.load(cfg.out, weights_only=True)
    assert torch.equal(f["weights"]["decoder_codebook"].float(), own.half().float())
    codec = load_codec(str(base), 16, device="cpu")
    img = np.ascontiguousarray(read_image_crop(kodak_dir))
    dec = with_decoder_variant(codec, cfg.out)
    assert torch.equal(dec.model.decoder_codebook.weight.float(), own.half().float())
    assert np.array_equal(dec.encode_indices(img).indices, codec.encode_indices(img).indices)


def read_image_crop(kodak_dir: Path) -> np.ndarray:
    from codec.image import load_image

    return load_image(kodak_dir / "kodim02.png")[:64, :64]


def test_robust_decoder_bf16_channels_last_steps_like_fp32(kodak_dir, tmp_path, codec_small):
    """precision bf16 + channels_last (the fast settings): the same batches give a step close to fp32's (the
    weight change agrees in direction), the file is a loadable decoder variant in the default layout."""
    from codec.conceal.decoder_variant import with_decoder_variant
    from codec.train.robust_decoder import RobustDecoderConfig, train_robust_decoder

    codec, img = codec_small
    base = {k: v.detach().clone() for k, v in codec.model.named_parameters() if k.startswith("decoder.")}
    moved = {}
    for prec, cl in (("fp32", False), ("bf16", True)):
        cfg = RobustDecoderConfig(out=str(tmp_path / f"{prec}.pt"), data=[str(kodak_dir / "kodim01.png")], window=4,
                                  steps=1, batch_size=2, perceptual_weight=0.5, clean_fraction=0.0, log_every=1,
                                  lr=1e-3, precision=prec, channels_last=cl)
        assert train_robust_decoder(cfg, log=lambda s: None)["done"]
        w = torch.load(cfg.out, weights_only=True)["weights"]
        moved[prec] = torch.cat([(w[k].float() - base[k]).flatten() for k in sorted(base)])
    cos = torch.nn.functional.cosine_similarity(moved["fp32"], moved["bf16"], dim=0)
    assert cos > 0.9, float(cos)
    assert not torch.equal(moved["fp32"], moved["bf16"])
    robust = with_decoder_variant(codec, str(tmp_path / "bf16.pt"))
    out = robust.decode_indices(codec.encode_indices(img))
    assert out.shape == img.shape and out.dtype == np.uint8
    from codec.metrics import get_lpips  # the cached metric nets were not converted to channels-last

    for net in ("alex", "vgg"):
        assert all(p.is_contiguous() for p in get_lpips(net, device="cpu").parameters())


def test_robust_decoder_validates_on_unseen_photos_and_keeps_the_best(kodak_dir, tmp_path):
    """val / val_every: loss-free and under-loss scores against the original at each validation (the same masks
    each time), kept across a resume; best.pt is the decoder file of the lowest select_on score."""
    from codec.train.robust_decoder import RobustDecoderConfig, train_robust_decoder

    cfg = RobustDecoderConfig(out=str(tmp_path / "dec.pt"), data=[str(kodak_dir / "kodim01.png")], window=4,
                              steps=2, batch_size=1, perceptual_weight=0.0, log_every=1, ckpt_every=1, lr=1e-3,
                              val=str(kodak_dir / "kodim0[23].png"), val_images=2, val_every=1,
                              val_losses=[0.3], val_metrics=["lpips_alex"], select_on=["lpips_alex@30"])
    train_robust_decoder(cfg, log=lambda s: None)
    cfg.steps = 3
    train_robust_decoder(cfg, resume=True, log=lambda s: None)
    st = torch.load(tmp_path / "dec.pt.train" / "state.pt", weights_only=False)
    rows = st["val_history"]
    assert [r["step"] for r in rows] == [0, 1, 2, 3]  # from the decoder it starts from
    for r in rows:  # losing 30 % of the indices costs LPIPS against the original
        assert 0 < r["val_lpips_alex"] < r["val_lpips_alex@30"] < 1
        assert r["val_score"] == r["val_lpips_alex@30"]
    best = torch.load(tmp_path / "dec.pt.train" / "best.pt", weights_only=True)
    assert best["meta"]["val"]["val_score"] == min(r["val_score"] for r in rows)
    assert best["meta"]["steps"] == min(rows, key=lambda r: r["val_score"])["step"]
    with pytest.raises(ParameterError, match="select_on"):
        RobustDecoderConfig(val_losses=[0.2], select_on=["dists@40"])
    with pytest.raises(ParameterError, match="val_losses"):
        RobustDecoderConfig(val_losses=[1.5])


def test_robust_decoder_second_stage_starts_from_another_runs_state(kodak_dir, tmp_path):
    """resume_from: a run whose own state does not exist yet continues another run's saved state (weights, step,
    history) under its own settings, and leaves that state untouched; a missing file is named."""
    from codec.train.robust_decoder import RobustDecoderConfig, train_robust_decoder

    kw = dict(data=[str(kodak_dir / "kodim01.png")], window=4, batch_size=1, perceptual_weight=0.0, log_every=1,
              ckpt_every=1, lr=1e-3, clean_fraction=0.0)
    one = RobustDecoderConfig(out=str(tmp_path / "one.pt"), steps=2, **kw)
    train_robust_decoder(one, log=lambda s: None)
    first = tmp_path / "one.pt.train" / "state.pt"
    before = first.read_bytes()
    lines = []
    two = RobustDecoderConfig(out=str(tmp_path / "two.pt"), steps=3, filler="neighbor", resume_from=str(first), **kw)
    res = train_robust_decoder(two, log=lines.append)
    assert res["step"] == 3 and [r["step"] for r in res["history"]] == [1, 2, 3]
    assert any("resumed at step 2 from" in line for line in lines)
    assert first.read_bytes() == before
    st = torch.load(tmp_path / "two.pt.train" / "state.pt", weights_only=False)
    assert st["config"]["filler"] == "neighbor" and st["step"] == 3
    assert not (tmp_path / "two.pt.train" / "indices.pt").exists()  # the first stage's crop cache was read
    bad = RobustDecoderConfig(out=str(tmp_path / "three.pt"), steps=3, resume_from=str(tmp_path / "nope.pt"), **kw)
    with pytest.raises(FileNotFoundError, match="resume_from"):
        train_robust_decoder(bad, log=lambda s: None)


# ------------------------------------------------------------------ command line
def test_cli_conceal_soft_decoder_flag_and_eval(codec_small, tmp_path, capsys):
    import pandas as pd

    from codec.image import save_image
    from experiments.cli import main

    _, img = codec_small
    save_image(tmp_path / "crop.png", img)
    vqb = tmp_path / "crop.vqb"
    assert main(["encode", str(tmp_path / "crop.png"), str(vqb), "--codebook-size", "1024"]) == 0
    capsys.readouterr()
    assert main(["conceal", str(vqb), str(tmp_path / "s.png"), "--loss", "0.3", "--method", "latent_avg_soft"]) == 0
    assert "7 lost" in capsys.readouterr().out          # round(0.3 · 24)
    assert main(["conceal", str(vqb), str(tmp_path / "s.png"), "--method", "bidir_soft", "--sample"]) == 2
    assert main(["conceal", str(vqb), str(tmp_path / "s.png"), "--decoder", str(tmp_path / "none.pt")]) == 2
    assert "--decoder" in capsys.readouterr().err
    args = ["conceal-eval", "--images", str(tmp_path / "crop.png"), "--out", str(tmp_path / "ev"), "--loss", "0.3",
            "--methods", "latent_avg", "latent_avg_soft", "latent_avg_soft:renorm=true"]
    assert main(args) == 0
    rows = pd.read_csv(tmp_path / "ev" / "rows.csv")
    assert sorted(rows["method"]) == ["latent_avg", "latent_avg_soft", "latent_avg_soft:renorm=true"]
    assert (rows["n_lost"] == 7).all() and (rows["lpips_alex_vs_lossfree"] > 0).all()
    assert main(args) == 0                                  # resumed: nothing left to do
    assert len(pd.read_csv(tmp_path / "ev" / "rows.csv")) == 3
    assert main([*args[:-3], "magic"]) == 2
    # a decoder variant: scored against the plain loss-free image, the original and its own loss-free image
    codec = codec_small[0]
    w = {k: v.detach().clone() for k, v in codec.model.state_dict().items() if k.startswith("post_quant_conv.")}
    w["post_quant_conv.bias"] += 0.5
    torch.save({"weights": w, "meta": {"codebook_id": codec.codebook_id}}, tmp_path / "dec.pt")
    args = [*args[:-3], "latent_avg", f"latent_avg@{tmp_path / 'dec.pt'}", "--out", str(tmp_path / "ev2"),
            "--summary-metric", "vs_original"]
    assert main(args) == 0
    rows = pd.read_csv(tmp_path / "ev2" / "rows.csv").set_index("decoder")
    plain, var = rows.loc["plain"], rows.loc[str(tmp_path / "dec.pt")]
    assert plain["lpips_alex_vs_decoder_lossfree"] == plain["lpips_alex_vs_lossfree"]
    assert var["lpips_alex_vs_decoder_lossfree"] != var["lpips_alex_vs_lossfree"]
    assert var["lpips_alex_lossfree_decoder"] != plain["lpips_alex_lossfree_decoder"]
    summ = pd.read_csv(tmp_path / "ev2" / "summary.csv").set_index("method")
    assert summ.loc["latent_avg", "mean"] == pytest.approx(plain["lpips_alex_vs_original"])


def test_cli_conceal_eval_compares_a_trained_concealer_file_with_the_shipped_one(codec_small, tmp_path, capsys):
    import pandas as pd

    from codec.conceal import GPT, GPTConfig, save_transformer
    from codec.image import save_image
    from experiments.cli import main

    _, img = codec_small
    save_image(tmp_path / "crop.png", img)
    torch.manual_seed(0)
    cfg = dict(vocab_size=1025, block_size=256, n_layer=1, n_head=1, n_embd=16)
    save_transformer(tmp_path / "bi.pt", GPT(GPTConfig(**cfg, causal=False)), {"kind": "bidir", "window": 16})
    save_transformer(tmp_path / "ar.pt", GPT(GPTConfig(**cfg, causal=True)), {"kind": "ar", "window": 16})
    base = ["conceal-eval", "--images", str(tmp_path / "crop.png"), "--loss", "0.3", "--methods", "latent_avg"]
    mine = f"bidir_soft:steps=1,model={tmp_path / 'bi.pt'}"
    assert main([*base, "bidir_soft:steps=1", mine, "--out", str(tmp_path / "ev")]) == 0
    rows = pd.read_csv(tmp_path / "ev" / "rows.csv").set_index("method")
    assert len(rows) == 3                                   # the same loss mask for all three (paired)
    assert rows["n_lost"].nunique() == 1
    shipped, random = rows.loc["bidir_soft:steps=1"], rows.loc[mine]
    assert random["lpips_alex_vs_lossfree"] != shipped["lpips_alex_vs_lossfree"]  # another model, another picture
    capsys.readouterr()
    for label, msg in ((f"bidir_soft:model={tmp_path / 'ar.pt'}", "'ar' transformer"),
                       (f"latent_avg_soft:model={tmp_path / 'bi.pt'}", "uses no concealment transformer"),
                       (f"bidir_soft:model={tmp_path / 'none.pt'}", "no such file")):
        assert main([*base, label, "--out", str(tmp_path / "bad")]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "bad" / "rows.csv").exists()     # refused before anything was computed


def test_cli_conceal_eval_scores_every_metric_asked_for(codec_small, tmp_path, capsys):
    import pandas as pd

    from codec.image import load_image, save_image, to_tensor
    from codec.metrics import dists, lpips_distance
    from experiments.cli import main

    codec, img = codec_small
    save_image(tmp_path / "crop.png", img)
    args = ["conceal-eval", "--images", str(tmp_path / "crop.png"), "--loss", "0.3", "--methods", "latent_avg",
            "--out", str(tmp_path / "ev")]
    assert main([*args, "--net", "dists", "alex", "vgg"]) == 0
    row = pd.read_csv(tmp_path / "ev" / "rows.csv").iloc[0]
    orig = to_tensor(load_image(tmp_path / "crop.png"))
    lossfree = torch.floor(codec.decode_indices_tensor(codec.encode_indices(img)).clamp(0, 1) * 255 + 0.5) / 255
    assert row["dists_lossfree_decoder"] == pytest.approx(float(dists(orig, lossfree)[0]), abs=1e-6)
    assert row["lpips_vgg_lossfree_decoder"] == pytest.approx(float(lpips_distance(orig, lossfree, net="vgg")[0]),
                                                              abs=1e-6)
    assert row["dists_vs_lossfree"] > 0 and row["lpips_alex_vs_lossfree"] > 0 and row["lpips_vgg_vs_lossfree"] > 0
    summ = pd.read_csv(tmp_path / "ev" / "summary.csv")
    assert summ["mean"].iloc[0] == pytest.approx(row["dists_vs_lossfree"])  # the summary is on the first metric
    capsys.readouterr()
    assert main([*args, "--net", "alex", "--loss", "0.5"]) == 2    # appended rows would lack the file's columns
    assert "scored with --net alex vgg dists, not alex" in capsys.readouterr().err
    assert main([*args, "--net", "vgg", "alex", "dists", "--loss", "0.5"]) == 0   # the same nets: resumed
    rows = pd.read_csv(tmp_path / "ev" / "rows.csv")
    assert len(rows) == 2 and rows.notna().all().all()
    with pytest.raises(SystemExit):
        main([*args, "--net", "squeeze"])


def test_sweep_scores_the_soft_latents_not_their_snapped_indices(codec_small, tmp_path):
    import pandas as pd

    from codec.image import save_image
    from experiments.sweep import run_sweep

    _, img = codec_small
    (tmp_path / "img").mkdir()
    save_image(tmp_path / "img" / "crop.png", img)
    cfg = {"name": "soft", "images": {"source": str(tmp_path / "img")},
           "codec": {"model": "default", "codebook_sizes": [1024], "coder": "arith", "device": "cpu"},
           "channels": [{"model": "index_loss", "rate": [0.3]}], "fec": ["none"],
           "packetization": {"mtu": [24], "interleave": ["random"], "coder": ["raw"]},
           "concealment": {"methods": ["latent_avg", "latent_avg_soft"]}, "seeds": [0],
           "metrics": {"nets": ["alex"], "device": "cpu", "structural": False}, "execution": {"flush_every_s": 0.0}}
    rows = run_sweep(cfg, tmp_path / "out", progress=False, log=lambda *a, **k: None).results
    r = pd.DataFrame(rows).set_index("method")
    assert r.loc["latent_avg", "index_error_ratio"] > 0
    assert np.isfinite(r["lpips_alex_vs_lossfree"]).all()
    assert r.loc["latent_avg_soft", "lpips_alex_vs_lossfree"] != r.loc["latent_avg", "lpips_alex_vs_lossfree"]
