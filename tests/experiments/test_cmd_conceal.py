"""vqsim conceal / train-transformer through the real CLI, with a small real codec (taming reference weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.conceal import GPT, load_transformer, save_transformer
from codec.image import load_image, save_image
from experiments.cli import main


@pytest.fixture(scope="module")
def vqb(tmp_path_factory, tiny_ckpt, kodim01):
    d = tmp_path_factory.mktemp("img")
    save_image(d / "crop.png", kodim01[:64, :96])  # → 32×48 indices
    out = d / "crop.vqb"
    assert main(["encode", str(d / "crop.png"), str(out), "--model", str(tiny_ckpt)]) == 0
    return out


@pytest.mark.parametrize("method", ["none", "mean", "neighbor", "latent_avg"])
def test_conceal_baselines(tmp_path, tiny_ckpt, vqb, method, capsys):
    out = tmp_path / f"{method}.png"
    rc = main(["conceal", str(vqb), str(out), "--loss", "0.3", "--method", method, "--model", str(tiny_ckpt)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "461 lost" in text and "LPIPS" in text  # round(0.3 · 1536)
    assert load_image(out).shape == (64, 96, 3)


def test_conceal_with_transformer_file(tmp_path, tiny_ckpt, vqb, capsys):
    torch.manual_seed(0)
    path = save_transformer(tmp_path / "ar.pt", GPT(vocab_size=17, block_size=64, n_layer=1, n_head=2, n_embd=16),
                            {"kind": "ar", "window": 8, "sos_token": 0})
    outs = []
    for method in ("ar", "ar_naive"):
        out = tmp_path / f"{method}.png"
        assert main(["conceal", str(vqb), str(out), "--loss", "0.1", "--method", method, "--model", str(tiny_ckpt),
                     "--concealer", str(path)]) == 0
        outs.append(load_image(out))
    assert np.array_equal(outs[0], outs[1])  # fast AR = naive AR
    # a model for another codebook size is refused with a one-line error
    bad = save_transformer(tmp_path / "bad.pt", GPT(vocab_size=65, block_size=64, n_layer=1, n_head=2, n_embd=16),
                           {"window": 8})
    capsys.readouterr()
    assert main(["conceal", str(vqb), str(tmp_path / "x.png"), "--method", "ar", "--model", str(tiny_ckpt),
                 "--concealer", str(bad)]) == 2
    assert "vocab_size 65" in capsys.readouterr().err


def test_conceal_input_errors(tmp_path, tiny_ckpt, vqb, capsys):
    assert main(["conceal", str(tmp_path / "missing.vqb"), str(tmp_path / "x.png")]) == 2
    assert main(["conceal", str(vqb), str(tmp_path / "x.png"), "--loss", "1.5", "--method", "mean",
                 "--model", str(tiny_ckpt)]) == 2
    assert "--loss" in capsys.readouterr().err


def test_train_transformer_cli_and_resume(tmp_path, tiny_ckpt, kodim01, capsys):
    imgs = tmp_path / "imgs"
    for n, (y, x) in enumerate([(0, 0), (64, 96), (128, 192)]):
        save_image(imgs / f"p{n}.png", kodim01[y:y + 64, x:x + 96])
    out = tmp_path / "m" / "ar.pt"
    args = ["train-transformer", "--codec", str(tiny_ckpt), "--images", str(imgs), "--out", str(out),
            "--window", "8", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch", "4",
            "--warmup", "0", "--log-every", "2", "--eval-every", "2", "--ckpt-every", "2",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args + ["--steps", "4"]) == 0
    cache = list((tmp_path / "cache").glob("indexmaps_tiny_16_*.npz"))
    assert not list(out.parent.glob("*.npz"))  # nothing but the model next to it
    assert len(cache) == 1 and out.exists()
    m = load_transformer(out)
    assert m.config.vocab_size == 17 and m.meta["codebook_id"] == "tiny/16" and m.meta["step"] == 4
    capsys.readouterr()
    assert main(args + ["--steps", "6", "--resume"]) == 0
    text = capsys.readouterr().out
    assert '"index_cache"' in text and '"resumed"' in text and '"step": 6' in text
    assert load_transformer(out).meta["step"] == 6


def test_index_data_then_train_from_it(tmp_path, tiny_ckpt, kodim01, capsys):
    imgs = tmp_path / "imgs"
    for n, (y, x) in enumerate([(0, 0), (64, 96), (128, 192), (200, 300)]):
        save_image(imgs / f"p{n}.png", kodim01[y:y + 64, x:x + 96])
    ds = tmp_path / "ds"
    base = ["index-data", "--codec", str(tiny_ckpt), "--codebook-size", "16", "8", "--images", str(imgs),
            "--out", str(ds), "--variants", "0,0;0,0,f;4,4"]
    for part in ("0/2", "1/2"):                                       # two processes share the photos
        assert main(base + ["--part", part]) == 0
    assert sorted(p.name for p in (ds / "K8").iterdir()) == [f"v0{v}-p{i}of2.npz" for v in range(3) for i in range(2)]
    out = tmp_path / "bidir.pt"
    args = ["train-transformer", "--codec", str(tiny_ckpt), "--codebook-size", "8", "--data", str(ds / "K8"),
            "--out", str(out), "--kind", "bidir", "--window", "8", "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
            "--batch", "4", "--warmup", "0", "--steps", "2", "--eval-every", "2", "--bidir-mask-range", "0.1,0.5",
            "--precision", "bf16", "--holdout", "0.25"]
    capsys.readouterr()
    assert main(args) == 0
    start = next(ln for ln in capsys.readouterr().out.splitlines() if '"start"' in ln)
    assert '"train_maps": 9' in start and '"heldout_maps": 3' in start   # 1 of 4 photos held out, all 3 variants
    m = load_transformer(out)
    assert m.meta["data_tokens"] == 8 * 32 * 48 + 4 * 30 * 46 and m.meta["codebook_id"] == "tiny/8"
    # the K16 folder for a K8 model is refused with the reason
    assert main(args[:6] + [str(ds / "K16")] + args[7:]) == 2
    assert "pass the K8 folder" in capsys.readouterr().err
