"""vqsim encode / decode / eval / models on a real photo with a small real model."""
from __future__ import annotations

import numpy as np
import pytest

from codec.image import load_image, save_image
from experiments.cli import main


@pytest.fixture(scope="module")
def small_png(tmp_path_factory, kodim01):
    p = tmp_path_factory.mktemp("img") / "crop.png"
    save_image(p, kodim01[:64, :96])
    return p


def test_encode_decode_roundtrip(tmp_path, tiny_ckpt, small_png, capsys):
    vqb, out = tmp_path / "a.vqb", tmp_path / "a.png"
    assert main(["encode", str(small_png), str(vqb), "--model", str(tiny_ckpt), "--coder", "deflate"]) == 0
    assert "bpp" in capsys.readouterr().out
    assert main(["decode", str(vqb), str(out), "--model", str(tiny_ckpt)]) == 0
    rec = load_image(out)
    assert rec.shape == (64, 96, 3)
    # the reduced codebook path too
    vqb8 = tmp_path / "b.vqb"
    assert main(["encode", str(small_png), str(vqb8), "--model", str(tiny_ckpt), "--codebook-size", "8"]) == 0
    assert main(["decode", str(vqb8), str(tmp_path / "b.png"), "--model", str(tiny_ckpt)]) == 0
    assert vqb8.stat().st_size <= vqb.stat().st_size + 8


def test_decode_errors_are_one_line(tmp_path, tiny_ckpt, capsys):
    bad = tmp_path / "bad.vqb"
    bad.write_bytes(b"PK\x03\x04 definitely not ours")
    assert main(["decode", str(bad), str(tmp_path / "x.png"), "--model", str(tiny_ckpt)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert main(["decode", str(tmp_path / "missing.vqb"), str(tmp_path / "x.png")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "missing.png"), str(tmp_path / "x.vqb"), "--model", str(tiny_ckpt)]) == 2
    assert main(["encode", str(bad), str(tmp_path / "x.vqb"), "--model", "no-such-model"]) == 2


def test_eval_prints_table_and_writes_csv(tmp_path, tiny_ckpt, small_png, capsys):
    import pandas as pd

    csv = tmp_path / "rows.csv"
    assert main(["eval", "--images", str(small_png), "--model", str(tiny_ckpt), "--codebook-size", "16", "4",
                 "--nets", "alex", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "codebook_size" in out and "lpips_alex" in out
    df = pd.read_csv(csv)
    assert sorted(df.codebook_size) == [4, 16]
    # fewer codewords -> fewer raw bits: ceil(log2 4) = 2 vs 4 bits per index (+ header)
    raw = df.set_index("codebook_size").bytes_raw
    assert raw[4] < raw[16]
    assert np.all(df.lpips_alex >= 0) and np.all(df.psnr > 0)


@pytest.fixture(scope="module")
def ft_ckpt(tmp_path_factory, tiny_ckpt, kodim01):
    """tiny_ckpt with K-means codebooks 8 and 4 and a (short) fine-tuned decoder side for size 8 only."""
    import torch

    from codec.checkpoint import load_vqgan, save_vqgan
    from codec.finetune import FinetuneConfig, finetune_model
    from codec.kmeans import kmeans_codebook

    d = tmp_path_factory.mktemp("ftcli")
    save_image(d / "data" / "a.png", kodim01[:64, :64])
    model, _ = load_vqgan(tiny_ckpt)
    cb = model.quantize.embedding.weight.detach().numpy()
    books = {s: torch.from_numpy(kmeans_codebook(cb, s, seed=0).centroids) for s in (8, 4)}
    base = save_vqgan(d / "base.pt", model, codebooks=books, meta={"kmeans_seed": 0})
    cfg = FinetuneConfig(steps=10, batch_size=2, window=8, lr=3e-3, warmup=1, perceptual_weight=0.0)
    return finetune_model(base, d / "ft.pt", [str(d / "data")], [8], cfg, log=lambda *_: None)


def test_eval_variants_and_decode_no_finetune(tmp_path, ft_ckpt, small_png, capsys):
    import pandas as pd

    csv = tmp_path / "rows.csv"
    assert main(["eval", "--images", str(small_png), "--model", str(ft_ckpt), "--codebook-size", "16", "8", "4",
                 "--nets", "alex", "--csv", str(csv)]) == 0
    df = pd.read_csv(csv)
    assert sorted(zip(df.codebook_size, df.variant)) == [(4, "kmeans"), (8, "finetuned"), (8, "kmeans"), (16, "trained")]
    by = df.set_index(["codebook_size", "variant"])
    assert by.loc[(8, "finetuned"), "bytes_arith"] == by.loc[(8, "kmeans"), "bytes_arith"]  # same indices
    assert by.loc[(8, "finetuned"), "psnr"] != by.loc[(8, "kmeans"), "psnr"]                # other decoder
    assert "finetuned" in capsys.readouterr().out
    vqb = tmp_path / "a.vqb"
    assert main(["encode", str(small_png), str(vqb), "--model", str(ft_ckpt), "--codebook-size", "8"]) == 0
    a, b = tmp_path / "ft.png", tmp_path / "km.png"
    assert main(["decode", str(vqb), str(a), "--model", str(ft_ckpt)]) == 0
    assert main(["decode", str(vqb), str(b), "--model", str(ft_ckpt), "--no-finetune"]) == 0
    assert "(kmeans)" in capsys.readouterr().out
    assert not np.array_equal(load_image(a), load_image(b))
