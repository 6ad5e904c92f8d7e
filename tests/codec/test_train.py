"""codec.train.loop: a tiny VQGAN trains on real photo crops, checkpoints, resumes, freezes parts."""
from __future__ import annotations

import json
import math

import pytest
import torch

from codec.image import save_image
from codec.train import NLayerDiscriminator, TrainConfig, adaptive_weight, hinge_d_loss, train_codec

TINY = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], z_channels=8, embed_dim=8, n_embed=16,
            resolution=32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, kodim01):
    d = tmp_path_factory.mktemp("train")
    for i, (y, x) in enumerate([(0, 0), (200, 300), (400, 600)]):
        save_image(d / f"crop{i}.png", kodim01[y:y + 96, x:x + 96])
    return d


def _cfg(out, data_dir, steps, **kw):
    base = dict(data=[str(data_dir)], val=None, out=str(out), model=TINY, steps=steps, batch_size=4, crop=32,
                lr=2e-3, warmup=1, perceptual_weight=0.0, log_every=5, ckpt_every=5, restart_every=10,
                seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_loss_falls_and_resume_continues(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 20), log=lambda *_: None)
    rows = _log(out)
    assert rows[-1]["step"] == 20
    assert rows[-1]["rec"] < rows[0]["rec"]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["step"] == 20
    train_codec(_cfg(out, data_dir, 30), log=lambda *_: None)  # resumes at 20, runs 10 more
    rows = _log(out)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    # every log line carries the time left (minutes) to the end of the schedule: 0 at its last step
    assert all(r["eta_min"] >= 0 for r in rows) and rows[-1]["eta_min"] == 0


def test_freeze_keeps_encoder_and_codebook(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 5), log=lambda *_: None)
    before = torch.load(out / "last.pt", weights_only=True)["model"]
    train_codec(_cfg(out, data_dir, 10, freeze=["encoder", "quant_conv", "quantize"]), log=lambda *_: None)
    after = torch.load(out / "last.pt", weights_only=True)["model"]
    for k in before:
        same = torch.equal(before[k], after[k])
        if k.startswith(("encoder.", "quant_conv.", "quantize.")):
            assert same, k
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    with pytest.raises(ValueError, match="freeze"):
        train_codec(_cfg(out, data_dir, 11, freeze=["encodr"]), log=lambda *_: None)


def test_gan_pieces():
    torch.manual_seed(0)
    d = NLayerDiscriminator(n_layers=2)
    x = torch.randn(2, 3, 32, 32)
    assert d(x).ndim == 4
    # hinge: perfect separation (real ≥ 1, fake ≤ −1) costs nothing
    assert float(hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0
    w = torch.nn.Parameter(torch.randn(3, 3))
    rec, g = (w ** 2).sum(), (3 * w).sum()
    lam = adaptive_weight(rec, g, w, 1.0)
    assert torch.isclose(lam, torch.norm(2 * w.detach()) / (torch.norm(torch.full((3, 3), 3.0)) + 1e-4))


def test_crop_schedule_switches_crop_and_batch(tmp_path, data_dir):
    from codec.train import crop_at

    cfg = _cfg(tmp_path / "run", data_dir, 6, crop_schedule=[[3, 64, 2]])
    assert crop_at(0, cfg) == (32, 4) and crop_at(2, cfg) == (32, 4) and crop_at(3, cfg) == (64, 2)
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 6, crop_schedule=[[3, 64, 2]], log_every=1), log=lambda *_: None)
    rows = [r for r in _log(out) if "crop" in r]
    # the row logged after step s describes step s-1 (0-based): steps 0-2 use 32 px, 3-5 use 64 px
    assert [(r["crop"], r["batch"]) for r in rows] == [(32, 4)] * 3 + [(64, 2)] * 3
    with pytest.raises(ValueError, match="multiple of the downsampling factor"):
        train_codec(_cfg(tmp_path / "bad", data_dir, 2, crop_schedule=[[1, 33, 2]]), log=lambda *_: None)
    with pytest.raises(ValueError, match="from_step, crop, batch_size"):
        crop_at(0, _cfg(tmp_path / "bad", data_dir, 2, crop_schedule=[[1, 32]]))


def test_lowpass_loss_sees_colour_not_texture():
    from codec.train import lowpass_loss

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert float(lowpass_loss(x, x, 16, 2.0)) == 0.0
    # zero-mean texture inside each 16x16 block: invisible to the block means
    tex = torch.ones(1, 1, 16, 16)
    tex[..., ::2, :] = -1
    assert float(lowpass_loss(x, x + 0.1 * tex.repeat(2, 3, 2, 2), 16, 2.0)) < 1e-6
    # a pure chroma shift (Cr up, Y unchanged) is seen, and weighted by chroma_weight
    from codec.metrics.pixel import _YCBCR

    m = torch.tensor(_YCBCR)
    d_rgb = torch.linalg.solve(m, torch.tensor([0.0, 0.0, 0.1]))  # RGB change giving ΔY = ΔCb = 0, ΔCr = 0.1
    y = x + d_rgb.view(1, 3, 1, 1)
    l1, l2 = float(lowpass_loss(x, y, 16, 1.0)), float(lowpass_loss(x, y, 16, 2.0))
    assert l1 == pytest.approx(0.05, rel=1e-4) and l2 == pytest.approx(2 * l1, rel=1e-5)


def test_kmeans_init_puts_every_codeword_in_use(tmp_path, data_dir):
    import numpy as np

    from codec.train import kmeans_init_codebook, load_image_pool, random_crops
    from codec.vqgan import VQModel

    torch.manual_seed(0)
    model = VQModel(TINY)
    pool = load_image_pool([str(data_dir)], 32)
    xs = [random_crops(pool, 8, 32, np.random.default_rng(i)) for i in range(4)]
    with torch.no_grad():
        before = torch.unique(torch.cat([model.quantize.indices(model.encode_pre_quant(x)).flatten() for x in xs]))
        kmeans_init_codebook(model, xs, seed=0)
        after = torch.unique(torch.cat([model.quantize.indices(model.encode_pre_quant(x)).flatten() for x in xs]))
    assert after.numel() == 16 > before.numel()


def test_init_from_and_model_only_checkpoint(tmp_path, data_dir):
    a = tmp_path / "a"
    train_codec(_cfg(a, data_dir, 5), log=lambda *_: None)
    small = torch.load(a / "model.pt", weights_only=True)
    assert set(small) == {"model", "step", "wall_s", "config"} and small["step"] == 5
    b = tmp_path / "b"
    # lr 0: one more step changes nothing, so b's weights are a's, and b continues at a's step
    train_codec(_cfg(b, data_dir, 6, lr=0.0, init_from=str(a / "model.pt")), log=lambda *_: None)
    got = torch.load(b / "last.pt", weights_only=True)
    assert got["step"] == 6
    assert all(torch.equal(got["model"][k], small["model"][k]) for k in small["model"])
    with pytest.raises(FileNotFoundError, match="init_from"):
        train_codec(_cfg(tmp_path / "c", data_dir, 5, init_from=str(tmp_path / "nope.pt")), log=lambda *_: None)


def test_validation_reports_lowpass_psnr_and_keeps_best(tmp_path, data_dir):
    out = tmp_path / "run"
    cfg = _cfg(out, data_dir, 10, val_every=5, val_images=2)
    cfg.val = str(data_dir)
    train_codec(cfg, log=lambda *_: None)
    vals = [r for r in _log(out) if "val_lpips_alex" in r]
    assert [r["step"] for r in vals] == [5, 10]
    assert all(r["val_lowpass_chroma_psnr"] > 0 and r["val_lowpass_luma_psnr"] > 0 for r in vals)
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["val_lpips_alex"] == pytest.approx(min(r["val_lpips_alex"] for r in vals))


def test_variance_preserving_init_passes_absolute_levels():
    """A fresh model with the default init answers (almost) the same to every flat colour; with 'vp' it does not."""
    from codec.train import variance_preserving_init
    from codec.vqgan import VQModel

    cfg = {**TINY, "ch_mult": [1, 1, 2, 2, 4], "resolution": 256, "attn_resolutions": [16], "norm_groups": 8}
    flats = torch.linspace(-0.8, 0.8, 5).view(5, 1, 1, 1).repeat(1, 3, 32, 32)
    flats[:, 0] *= -1  # distinct colours, not only greys

    def spread(model):
        with torch.no_grad():
            out = model.decode(model.encode_pre_quant(flats))  # no quantizer: the linear path alone
        return float(out.mean((2, 3)).std(0).mean())

    torch.manual_seed(0)
    default = VQModel(cfg)
    torch.manual_seed(0)
    vp = VQModel(cfg)
    variance_preserving_init(vp)
    assert spread(vp) > 8 * spread(default)  # measured: 0.140 vs 0.011
    # residual branches start as the identity
    blk = vp.encoder.down[0].block[0]
    x = torch.randn(1, blk.in_channels, 8, 8)
    assert torch.equal(blk(x), x)
    with pytest.raises(ValueError, match="init must be"):
        train_codec(TrainConfig(out="unused", model=TINY, init="xavier", crop=32), log=lambda *_: None)


def test_diff_augment_is_seeded_differentiable_and_changes_each_image():
    from codec.train import diff_augment

    x = (torch.rand(6, 3, 32, 32) * 2 - 1).requires_grad_(True)
    a = diff_augment(x, torch.Generator().manual_seed(3))
    b = diff_augment(x, torch.Generator().manual_seed(3))
    c = diff_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert all(not torch.allclose(a[i], x[i]) for i in range(6))
    # cutout (16x16 at 32 px, clipped at the border) and the zero fill of the shift: ≥ 64 px all-zero per image
    zero = (a.detach() == 0).all(1)
    assert all(int(zero[i].sum()) >= 64 for i in range(6))
    a.square().sum().backward()  # gradients reach the input through colour, shift and cutout
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_validation_metrics_and_selection_on_unseen_metrics(tmp_path, data_dir):
    out = tmp_path / "run"
    cfg = _cfg(out, data_dir, 10, val_every=5, val_images=2, val_metrics=["lpips_alex", "lpips_vgg", "dists"],
               select_on=["dists", "lpips_vgg"])
    cfg.val = str(data_dir)
    train_codec(cfg, log=lambda *_: None)
    vals = [r for r in _log(out) if "val_dists" in r]
    assert [r["step"] for r in vals] == [5, 10]
    for r in vals:
        assert 0 < r["val_dists"] < 1 and 0 < r["val_lpips_vgg"] < 1.5
        assert r["val_score"] == pytest.approx((r["val_dists"] + r["val_lpips_vgg"]) / 2)
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["select_on"] == ["dists", "lpips_vgg"]
    assert best["val_score"] == pytest.approx(min(r["val_score"] for r in vals))


@pytest.mark.parametrize("bad, match", [
    (dict(lpips_net="squeeze"), "lpips_net"),
    (dict(val_metrics=["lpips_alex", "fid"]), "val_metrics"),
    (dict(select_on=["dists"]), "select_on"),  # not among val_metrics (lpips_alex only)
])
def test_bad_training_settings_raise_before_any_work(tmp_path, data_dir, bad, match):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=match):
        train_codec(_cfg(out, data_dir, 5, **bad), log=lambda *_: None)
    assert not (out / "log.jsonl").exists()


def test_gan_with_diffaugment_and_two_perceptual_nets_train(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 6, disc_start=2, disc_augment=True, perceptual_weight=1.0, lpips_net="alex+vgg",
                     log_every=2), log=lambda *_: None)
    rows = _log(out)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert "d_loss" not in rows[0] and all(r["d_loss"] > 0 for r in rows[1:])  # the GAN trains from step 2 on
    assert all(r["gan_lambda"] >= 0 for r in rows[1:])


def test_disc_warmup_trains_the_discriminator_alone_first(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 6, disc_start=2, disc_warmup=2, log_every=2), log=lambda *_: None)
    rows = _log(out)
    assert ["d_loss" in r for r in rows] == [False, True, True]        # D from step 2
    assert ["gan_lambda" in r for r in rows] == [False, False, True]   # the decoder's GAN term from step 4
    with pytest.raises(ValueError, match="disc_warmup"):
        train_codec(_cfg(tmp_path / "bad", data_dir, 6, disc_warmup=-1), log=lambda *_: None)
    assert all(torch.isfinite(v).all() for v in torch.load(out / "last.pt", weights_only=True)["disc"].values()
               if v.is_floating_point())


def test_init_from_a_shipped_model_file(tmp_path, data_dir):
    from codec.checkpoint import save_vqgan
    from codec.vqgan import VQModel

    torch.manual_seed(1)
    shipped = VQModel(TINY)
    f = save_vqgan(tmp_path / "m.pt", shipped, meta={"steps": 7, "train_wall_s": 1.5}, half=True)
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 8, lr=0.0, init_from=str(f)), log=lambda *_: None)
    got = torch.load(out / "last.pt", weights_only=True)
    assert got["step"] == 8  # continued at the shipped model's step 7
    ref = {k: v.half().float() for k, v in shipped.state_dict().items()}
    assert all(torch.equal(got["model"][k], ref[k]) for k in ref if ref[k].is_floating_point())


def test_a_sitting_cut_by_max_minutes_ends_with_a_validation(tmp_path, data_dir):
    out = tmp_path / "run"
    cfg = _cfg(out, data_dir, 50, val_every=40, val_images=2, max_minutes=1e-6)
    cfg.val = str(data_dir)
    train_codec(cfg, log=lambda *_: None)
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step < 50
    assert [r["step"] for r in _log(out) if "val_lpips_alex" in r] == [step]


def test_bf16_training_follows_the_fp32_gradient_and_keeps_the_indices(tmp_path, data_dir):
    """precision: bf16 autocasts the decoder (+ LPIPS): same indices, gradient close to fp32's, fp32 weights;
    a precision no trainer has is refused at construction."""
    from codec.errors import ParameterError
    from codec.train.loop import check_train_config
    from codec.train.losses import decoder_autocast
    from codec.train.robust_decoder import RobustDecoderConfig
    from codec.vqgan import VQGANConfig, VQModel

    torch.manual_seed(3)
    m = VQModel(VQGANConfig.from_dict(TINY))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    grads, idx = {}, {}
    for prec in ("fp32", "bf16"):
        m.zero_grad(set_to_none=True)
        z_q, _, idx[prec] = m.quantize(m.encode_pre_quant(x))
        with decoder_autocast(prec, "cpu"):
            xr = m.decode(z_q)
        assert xr.dtype == (torch.bfloat16 if prec == "bf16" else torch.float32)
        (x - xr.float()).abs().mean().backward()
        grads[prec] = torch.cat([p.grad.flatten() for n, p in m.named_parameters() if n.startswith("decoder.")])
        assert all(p.dtype == torch.float32 for p in m.parameters())
    assert torch.equal(idx["fp32"], idx["bf16"])
    cos = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    assert cos > 0.99, float(cos)
    assert not torch.equal(grads["fp32"], grads["bf16"])  # bf16 did run
    out = tmp_path / "bf16"
    train_codec(_cfg(out, data_dir, 5, precision="bf16"), log=lambda *_: None)
    assert [r["step"] for r in _log(out) if "loss" in r] == [5] and math.isfinite(_log(out)[-1]["loss"])
    with pytest.raises(ParameterError, match="precision"):
        check_train_config(_cfg(out, data_dir, 5, precision="fp16"))
    with pytest.raises(ParameterError, match="precision"):
        RobustDecoderConfig(precision="half")


def test_splice_decoder_ships_a_decoder_only_fine_tune(tmp_path, data_dir):
    """export-codec --base: the fine-tuned decoder side goes into the base file; all else stays the base's."""
    from codec.checkpoint import read_checkpoint, save_vqgan
    from codec.errors import CheckpointError
    from codec.train.export import splice_decoder
    from codec.vqgan import VQModel

    torch.manual_seed(1)
    base = save_vqgan(tmp_path / "base.pt", VQModel(TINY), priors={16: torch.arange(16)}, meta={"steps": 7},
                      half=True)
    frozen = tmp_path / "dec"
    train_codec(_cfg(frozen, data_dir, 10, lr=1e-3, init_from=str(base),
                     freeze=["encoder", "quant_conv", "quantize"]), log=lambda *_: None)
    out = splice_decoder(frozen / "last.pt", base, tmp_path / "spliced.pt", log=lambda *_: None)
    b, s = read_checkpoint(base), read_checkpoint(out)
    trained = torch.load(frozen / "last.pt", weights_only=True)["model"]
    for k, v in s["state_dict"].items():
        if k.startswith(("decoder.", "post_quant_conv.")):
            assert torch.equal(v, trained[k].half()), k
        else:
            assert torch.equal(v, b["state_dict"][k]), k
    assert any(not torch.equal(s["state_dict"][k], b["state_dict"][k]) for k in s["state_dict"]
               if k.startswith("decoder."))
    assert torch.equal(s["priors"]["16"], b["priors"]["16"])
    assert s["meta"]["steps"] == 7 and s["meta"]["decoder_steps"] == 10
    moved = tmp_path / "all"  # encoder trained too: not a decoder-only fine-tune of base
    train_codec(_cfg(moved, data_dir, 10, lr=1e-3, init_from=str(base)), log=lambda *_: None)
    with pytest.raises(CheckpointError, match="outside the decoder side"):
        splice_decoder(moved / "last.pt", base, tmp_path / "bad.pt", log=lambda *_: None)
    assert not (tmp_path / "bad.pt").exists()


def test_splice_decoder_takes_a_robust_decoder_file_made_for_the_base(tmp_path):
    """export-codec --base with a train-robust-decoder file: its decoder side goes in, the rest stays the base's;
    a file made for another codebook size, another encoder or with other tensors is refused, nothing written."""
    from codec.checkpoint import read_checkpoint, save_atomic, save_vqgan
    from codec.errors import CheckpointError
    from codec.train.export import DECODER_PARTS, splice_decoder
    from codec.vqgan import VQModel

    torch.manual_seed(2)
    base = save_vqgan(tmp_path / "base.pt", VQModel(TINY), priors={16: torch.arange(16)}, meta={"steps": 7},
                      half=True)
    b = read_checkpoint(base)
    side = {k: (v.float() + 0.5).half() for k, v in b["state_dict"].items() if k.startswith(DECODER_PARTS)}
    meta = {"name": "rd", "codebook_id": "tiny/16", "codec_steps": 7, "steps": 40, "filler": "latent_avg_soft"}
    good = save_atomic({"weights": side, "meta": meta}, tmp_path / "rd.pt")
    s = read_checkpoint(splice_decoder(good, base, tmp_path / "spliced.pt", log=lambda *_: None))
    for k, v in s["state_dict"].items():
        assert torch.equal(v, side[k] if k.startswith(DECODER_PARTS) else b["state_dict"][k]), k
    assert torch.equal(s["priors"]["16"], b["priors"]["16"])
    assert s["meta"]["steps"] == 7 and s["meta"]["decoder_steps"] == 40 and s["meta"]["decoder_from"] == "rd.pt"
    bad = {"other size": ({"weights": side, "meta": {**meta, "codebook_id": "tiny/8"}}, "full codebook"),
           "other encoder": ({"weights": side, "meta": {**meta, "codec_steps": 9}}, "trained 9 steps"),
           "missing tensor": ({"weights": dict(list(side.items())[1:]), "meta": meta}, "missing"),
           "wrong shape": ({"weights": {**side, next(iter(side)): torch.zeros(3)}, "meta": meta}, "shape")}
    for name, (ck, msg) in bad.items():
        f = save_atomic(ck, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=msg):
            splice_decoder(f, base, tmp_path / "out.pt", log=lambda *_: None)
        assert not (tmp_path / "out.pt").exists(), name


def test_a_grown_decoder_starts_as_the_trained_one_and_trains(tmp_path, data_dir):
    """decoder_extra_blocks on init_from: the extra blocks start as the identity, then learn."""
    from codec.checkpoint import save_vqgan
    from codec.errors import CheckpointError
    from codec.vqgan import VQModel, load_grown_decoder

    torch.manual_seed(2)
    small = VQModel({**TINY, "attn_resolutions": [16]}).eval()
    deep = VQModel({**TINY, "attn_resolutions": [16], "decoder_extra_blocks": 1}).eval()
    n = load_grown_decoder(deep, small.state_dict())
    assert n > 0 and len(deep.state_dict()) == len(small.state_dict()) + n
    z = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(deep.decode(z), small.decode(z), atol=1e-6, rtol=0)
    with pytest.raises(CheckpointError, match="already has the extra"):
        load_grown_decoder(deep, deep.state_dict())
    with pytest.raises(CheckpointError, match="nothing to grow"):
        load_grown_decoder(small, small.state_dict())
    base = save_vqgan(tmp_path / "base.pt", small, meta={"steps": 3}, half=False)
    out = tmp_path / "deep"
    train_codec(_cfg(out, data_dir, 6, lr=1e-3, init_from=str(base), model={**TINY, "attn_resolutions": [16],
                     "decoder_extra_blocks": 1}, freeze=["encoder", "quant_conv", "quantize"]), log=lambda *_: None)
    got = torch.load(out / "last.pt", weights_only=True)["model"]
    k = "decoder.up.0.block.2.conv2.weight"  # an extra block (num_res_blocks = 1: blocks 0, 1 are taming's)
    assert k in got and got[k].abs().sum() > 0  # it left the identity
    assert torch.equal(got["encoder.conv_in.weight"], small.state_dict()["encoder.conv_in.weight"])
