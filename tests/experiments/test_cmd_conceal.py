"""vqsim conceal / train-transformer through the real CLI, with a small real codec (taming reference weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.image import load_image, save_image
from codec.transformer import GPT, load_transformer, save_transformer
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
