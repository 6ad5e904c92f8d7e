"""codec.train.finetune: decoder-side fine-tune of K-means-reduced codebooks, its file format and loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.checkpoint import load_vqgan, save_vqgan
from codec.errors import CheckpointError, ModelNotFoundError
from codec.image import save_image
from codec.kmeans import kmeans_codebook
from codec.train.finetune import FINETUNE_PARTS, FinetuneConfig, finetune_model
from codec.zoo import load_codec


@pytest.fixture(scope="module")
def crops_dir(tmp_path_factory, kodim01):
    d = tmp_path_factory.mktemp("ftdata")
    for i, (y, x) in enumerate([(0, 0), (200, 300), (400, 600), (100, 100)]):
        save_image(d / f"crop{i}.png", kodim01[y:y + 64, x:x + 64])
    return d


@pytest.fixture(scope="module")
def reduced_model(tmp_path_factory, tiny_ckpt):
    """The taming golden VQGAN (f=2, K=16) with K-means codebooks of 8 and 4, in the project format."""
    model, _ = load_vqgan(tiny_ckpt)
    cb = model.quantize.embedding.weight.detach().numpy()
    books = {s: torch.from_numpy(kmeans_codebook(cb, s, seed=0).centroids) for s in (8, 4)}
    return save_vqgan(tmp_path_factory.mktemp("ft") / "base.pt", model, codebooks=books, meta={"kmeans_seed": 0},
                      half=False)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, reduced_model, crops_dir):
    out = tmp_path_factory.mktemp("ftout") / "ft.pt"
    cfg = FinetuneConfig(steps=40, batch_size=4, window=8, lr=3e-3, warmup=2, perceptual_weight=0.0, log_every=10,
                         parts=list(FINETUNE_PARTS))  # decoder layers too (the codebook-only default: the CLI test)
    logs: list[str] = []
    finetune_model(reduced_model, out, [str(crops_dir)], [8, 4], cfg, log=logs.append)
    return out, logs


def _l1(codec, images):
    errs = []
    for a in images:
        rec = codec.decode_indices(codec.encode_indices(a))
        errs.append(np.abs(rec.astype(float) - a.astype(float)).mean())
    return float(np.mean(errs))


def test_finetune_lowers_error_and_keeps_indices(finetuned, reduced_model, kodim01):
    out, logs = finetuned
    assert any("fine-tuning size 8" in m for m in logs) and any("fine-tuning size 4" in m for m in logs)
    images = [kodim01[y:y + 64, x:x + 64] for y, x in [(0, 0), (200, 300), (400, 600), (100, 100)]]
    for s in (8, 4):
        ft = load_codec(out, s, device="cpu")
        km = load_codec(out, s, device="cpu", finetuned=False)
        assert (ft.variant, km.variant) == ("finetuned", "kmeans")
        for a in images:  # same encoder and K-means partition: identical index maps and bitstreams
            assert np.array_equal(ft.encode_indices(a).indices, km.encode_indices(a).indices)
            assert ft.compress(a) == km.compress(a)
        e_ft, e_km = _l1(ft, images), _l1(km, images)
        assert e_ft < 0.9 * e_km, (s, e_ft, e_km)
    # the full size is untouched and the input file's K-means model decodes as before
    base_before = load_codec(reduced_model, 8, device="cpu")
    assert base_before.variant == "kmeans"
    full = load_codec(out, None, device="cpu")
    assert full.variant == "trained"
    idx = full.encode_batch(torch.from_numpy(images[0]).permute(2, 0, 1)[None].float() / 255)
    ref = load_codec(reduced_model, None, device="cpu").decode_batch(idx)
    assert torch.allclose(full.decode_batch(idx), ref, atol=5e-3)  # output file stores fp16


def test_file_holds_only_decoder_side_weights(finetuned):
    out, _ = finetuned
    model, extras = load_vqgan(out)
    assert sorted(extras["decoders"]) == [4, 8]
    for s, w in extras["decoders"].items():
        assert tuple(w["decoder_codebook"].shape) == (s, model.config.embed_dim)   # S codewords of the codebook's width
        assert all(
            k == "decoder_codebook" or k.startswith(("post_quant_conv.", "decoder.conv_in.", "decoder.mid.block_1."))
            for k in w
        )
    ft = extras["meta"]["finetune"]
    assert ft["8"]["steps"] == 40 and "decoder_codebook" in ft["8"]["parts"]


def test_resume_skips_finished_sizes(finetuned, reduced_model, crops_dir):
    out, _ = finetuned
    logs: list[str] = []
    cfg = FinetuneConfig(steps=40, batch_size=4, window=8, lr=3e-3, warmup=2, perceptual_weight=0.0,
                         parts=list(FINETUNE_PARTS))
    finetune_model(reduced_model, out, [str(crops_dir)], [8, 4], cfg, log=logs.append)
    assert not any("fine-tuning" in m for m in logs)  # both sizes were already done (OUT.ft/{S}.pt)


def test_refinetuning_after_a_decoder_splice_clears_the_stale_mark(finetuned, crops_dir, tmp_path):
    """export-codec --base marks the reduced sizes as fine-tuned from the decoder it replaced; finetune-codec of a
    size removes that size from the mark (and the key when none is left)."""
    from codec.checkpoint import read_checkpoint, save_atomic

    out, _ = finetuned
    ck = read_checkpoint(out)
    ck["meta"]["finetuned_from_previous_decoder"] = [4, 8]  # as _write_spliced leaves it
    spliced = save_atomic(ck, tmp_path / "spliced.pt")
    cfg = FinetuneConfig(steps=2, batch_size=2, window=8, lr=1e-3, warmup=1, perceptual_weight=0.0)
    one = finetune_model(spliced, tmp_path / "one.pt", [str(crops_dir)], [8], cfg, log=lambda m: None)
    assert load_vqgan(one)[1]["meta"]["finetuned_from_previous_decoder"] == [4]
    both = finetune_model(spliced, tmp_path / "one.pt", [str(crops_dir)], [4], cfg, log=lambda m: None)
    assert "finetuned_from_previous_decoder" not in load_vqgan(both)[1]["meta"]


def test_alex_plus_vgg_loss_is_the_mean_of_both(reduced_model, crops_dir, tmp_path):
    """lpips_net "alex+vgg" (the shipped K = 1,024 decoder's loss): the perceptual term is the mean of the two nets,
    so its first step's loss lies between the alex-only and vgg-only runs' (same seed, batch and weights)."""
    from codec.errors import ParameterError

    first = {}
    for net in ("alex", "vgg", "alex+vgg"):
        cfg = FinetuneConfig(steps=1, batch_size=2, window=32, lr=1e-3, warmup=1, perceptual_weight=1.0,
                             lpips_net=net, log_every=1)
        out = finetune_model(reduced_model, tmp_path / f"{net}.pt", [str(crops_dir)], [8], cfg, log=lambda m: None)
        ck = torch.load(tmp_path / f"{net}.pt.ft" / "8.pt", weights_only=False)
        assert ck["config"]["lpips_net"] == net and out.exists()
        first[net] = ck["log"][0]["loss"]
    lo, hi = sorted((first["alex"], first["vgg"]))
    assert lo < first["alex+vgg"] < hi
    assert first["alex+vgg"] == pytest.approx((first["alex"] + first["vgg"]) / 2, rel=1e-4)
    for bad in ("squeeze", "alex+alex", ""):
        with pytest.raises(ParameterError, match="lpips_net"):
            FinetuneConfig(lpips_net=bad)


def test_clear_errors(finetuned, reduced_model, crops_dir, tmp_path):
    out, _ = finetuned
    with pytest.raises(ModelNotFoundError, match="no fine-tuned decoder for codebook size 2"):
        load_codec(out, 2, device="cpu", finetuned=True)
    with pytest.raises(ValueError, match="trained size"):
        load_codec(out, None, device="cpu", finetuned=True)
    with pytest.raises(ValueError, match="no K-means codebook of size 2"):
        finetune_model(reduced_model, tmp_path / "x.pt", [str(crops_dir)], [2], FinetuneConfig(steps=1))
    with pytest.raises(ValueError, match="steps"):
        FinetuneConfig(steps=0)
    with pytest.raises(ValueError, match="parts"):
        FinetuneConfig(parts=["encoder"])
    model, extras = load_vqgan(out)
    cb = extras["codebooks"][8].float()
    with pytest.raises(CheckpointError, match="unknown parameter"):
        model.with_codebook(cb, finetuned={"decoder.nonexistent.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="only replace"):
        model.with_codebook(cb, finetuned={"encoder.conv_in.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="decoder_codebook"):
        model.with_codebook(cb, finetuned={"decoder_codebook": torch.zeros(3, 2)})


def test_with_codebook_does_not_touch_base(reduced_model):
    model, extras = load_vqgan(reduced_model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    w = {k: torch.randn_like(v) for k, v in model.state_dict().items() if k.startswith("decoder.conv_in.")}
    m8 = model.with_codebook(extras["codebooks"][8].float(), finetuned=w)
    assert torch.equal(m8.decoder.conv_in.weight, w["decoder.conv_in.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_cli_parts_none_trains_the_decoder_codebook_only(reduced_model, crops_dir, tmp_path, capsys):
    """``vqsim finetune-codec --parts none``: only the decoder codebook moves; the file's fine-tuned size holds no
    decoder layers, its meta says so, and decoding uses the base model's decoder with the trained codewords."""
    from experiments.cli import main

    out = tmp_path / "cb.pt"
    rc = main(["finetune-codec", str(reduced_model), str(out), "--data", str(crops_dir), "--sizes", "8",
               "--steps", "20", "--batch-size", "4", "--window", "8", "--lr", "3e-3", "--perceptual-weight", "0",
               "--parts", "none"])
    assert rc == 0
    model, extras = load_vqgan(out)
    assert sorted(extras["decoders"][8]) == ["decoder_codebook"]
    assert extras["meta"]["finetune"]["8"]["parts"] == ["decoder_codebook"]
    base, base_extras = load_vqgan(reduced_model)
    assert not torch.allclose(extras["decoders"][8]["decoder_codebook"].float(),
                              base.with_codebook(base_extras["codebooks"][8].float()).quantize.codewords().float(),
                              atol=1e-3)  # the codewords were trained
    ft = load_codec(out, 8, device="cpu")
    assert ft.variant == "finetuned"
    assert torch.equal(ft.model.decoder.conv_in.weight.float(), model.decoder.conv_in.weight.float())
    rc = main(["finetune-codec", str(reduced_model), str(tmp_path / "bad.pt"), "--data", str(crops_dir),
               "--sizes", "8", "--steps", "1", "--parts", "decoder.nope"])
    assert rc != 0 and "fine-tune parts not in the model: ['decoder.nope']" in capsys.readouterr().err


def test_cli_defaults_are_the_config_defaults(reduced_model, crops_dir, tmp_path):
    """Options left out of ``vqsim finetune-codec`` take FinetuneConfig's defaults (the shipped recipe: the decoder
    codebook only), so the CLI and the Python API cannot drift apart."""
    from experiments.cli import main

    out = tmp_path / "d.pt"
    assert main(["finetune-codec", str(reduced_model), str(out), "--data", str(crops_dir), "--sizes", "8",
                 "--steps", "2", "--window", "32"]) == 0
    ck = torch.load(tmp_path / "d.pt.ft" / "8.pt", weights_only=False)
    defaults = FinetuneConfig()
    assert ck["config"]["parts"] == [] and ck["config"]["lr"] == defaults.lr
    assert ck["config"]["batch_size"] == defaults.batch_size and ck["config"]["lpips_net"] == defaults.lpips_net
