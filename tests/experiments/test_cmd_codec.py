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


def test_eval_csv_extends_an_existing_file_and_refuses_other_columns(tmp_path, tiny_ckpt, small_png, capsys):
    """--csv never overwrites what an earlier run measured: a second run with the same columns appends its rows, a
    run with other columns (here one more LPIPS net) stops with an error naming the file and leaves it intact."""
    import pandas as pd

    csv = tmp_path / "rows.csv"
    base = ["eval", "--images", str(small_png), "--model", str(tiny_ckpt), "--no-progress", "--csv", str(csv)]
    assert main([*base, "--codebook-size", "16", "--nets", "alex"]) == 0
    assert main([*base, "--codebook-size", "4", "--nets", "alex"]) == 0
    df = pd.read_csv(csv)
    assert sorted(df.codebook_size) == [4, 16]          # the first run's row is still there
    before = csv.read_bytes()
    capsys.readouterr()
    assert main([*base, "--codebook-size", "8", "--nets", "alex,vgg"]) == 2
    err = capsys.readouterr().err
    assert str(csv) in err and "other columns" in err and "Traceback" not in err
    assert csv.read_bytes() == before


def test_eval_decoder_variant_keeps_the_bits_and_changes_the_pixels(tmp_path, tiny_ckpt, small_png, capsys):
    import pandas as pd
    import torch

    from codec.zoo import load_codec

    codec = load_codec(str(tiny_ckpt), 16, device="cpu")
    w = {k: v.detach().clone() for k, v in codec.model.state_dict().items() if k.startswith("post_quant_conv.")}
    w["post_quant_conv.bias"] += 0.3
    torch.save({"weights": w, "meta": {"codebook_id": codec.codebook_id, "name": "shifted"}}, tmp_path / "dec.pt")
    rows = {}
    for dec in ("plain", str(tmp_path / "dec.pt")):
        csv = tmp_path / f"{len(rows)}.csv"
        assert main(["eval", "--images", str(small_png), "--model", str(tiny_ckpt), "--nets", "alex",
                     "--decoder", dec, "--csv", str(csv)]) == 0
        rows[dec] = pd.read_csv(csv).iloc[0]
    plain, var = rows["plain"], rows[str(tmp_path / "dec.pt")]
    assert var["bytes_arith"] == plain["bytes_arith"] and var["psnr"] != plain["psnr"]
    assert var["variant"].endswith("+decoder:shifted")
    capsys.readouterr()
    assert main(["eval", "--images", str(small_png), "--model", str(tiny_ckpt), "--decoder", "robust"]) == 2
    assert "no robust decoder ships" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ft_ckpt(tmp_path_factory, tiny_ckpt, kodim01):
    """tiny_ckpt with K-means codebooks 8 and 4 and a (short) fine-tuned decoder side for size 8 only."""
    import torch

    from codec.checkpoint import load_vqgan, save_vqgan
    from codec.kmeans import kmeans_codebook
    from codec.train.finetune import FinetuneConfig, finetune_model

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
    pairs = sorted(zip(df.codebook_size, df.variant, strict=True))
    assert pairs == [(4, "kmeans"), (8, "finetuned"), (8, "kmeans"), (16, "trained")]
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


def _forged(forge, tmp_path, name, **kw):
    p = tmp_path / name
    p.write_bytes(forge(**kw))
    return p


def _one_line_refusal(capsys, argv, match):
    import time

    t = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - t < 1.0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    return err


def test_decode_refuses_bombs_in_one_line(forge, tmp_path, tiny_ckpt, capsys):
    # 5 KB claiming 2048×2048 indices of a 32768×32768 image; no --model, so nothing is loaded either
    big = _forged(forge, tmp_path, "big.vqb", h=2048, w=2048, H=32768, W=32768, payload=bytes(5000),
                  codebook_id="default/8")
    out = str(tmp_path / "x.png")
    _one_line_refusal(capsys, ["decode", str(big), out], "max_indices")
    _one_line_refusal(capsys, ["decode", str(big), out, "--max-indices", str(1 << 24)], "max_pixels")
    # latents that do not fit the image at the model's factor (f = 2 for the tiny model)
    att = _forged(forge, tmp_path, "att.vqb", h=100, w=100, H=64, W=64, K=16, payload=bytes(300))
    _one_line_refusal(capsys, ["decode", str(att), str(tmp_path / "x.png"), "--model", str(tiny_ckpt)],
                      "does not fit image size 64x64")


def test_decode_never_opens_a_file_named_by_the_bitstream(forge, tmp_path, capsys):
    target = tmp_path / "secret.pt"
    target.write_bytes(b"not for the sender to choose")
    vqb = _forged(forge, tmp_path, "evil.vqb", h=2, w=2, H=32, W=32, codebook_id=f"{target}/8")
    err = _one_line_refusal(capsys, ["decode", str(vqb), str(tmp_path / "x.png")], "not a registered model")
    assert "--model" in err


def test_internal_errors_are_not_blamed_on_the_user(monkeypatch, capsys):
    import experiments.cmd_models as cc

    def broken(args):
        raise ValueError("an untyped bug deep inside")

    monkeypatch.setattr(cc, "cmd_models", broken)
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip()
    assert "internal error (ValueError: an untyped bug deep inside)" in err and "please report" in err
    assert len(err.splitlines()) == 1
    monkeypatch.setenv("VQSIM_DEBUG", "1")
    with pytest.raises(ValueError, match="untyped bug"):
        main(["models"])


def test_checkpoint_errors_do_not_advise_unsafe_loading(tmp_path, capsys, small_png):
    import argparse
    import pickle

    bad = tmp_path / "bad.pt"  # a pickled Python object: torch's weights-only reader refuses it
    bad.write_bytes(pickle.dumps(argparse.Namespace(state_dict={})))
    assert main(["encode", str(small_png), str(tmp_path / "x.vqb"), "--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "weights only" in err and "weights_only" not in err and "Traceback" not in err


def test_eval_plot_puts_codec_and_anchors_on_one_rate_axis(tmp_path, ft_ckpt, small_png, capsys):
    import pandas as pd
    from PIL import Image

    from experiments.plots.rate import plot_eval_rd

    csv, png = tmp_path / "rows.csv", tmp_path / "rd.png"
    assert main(["eval", "--images", str(small_png), "--model", str(ft_ckpt), "--codebook-size", "16", "8", "4",
                 "--nets", "alex", "--anchors", "jpeg_q1,webp_q0", "--csv", str(csv), "--plot", str(png)]) == 0
    assert f"plot: {png}" in capsys.readouterr().out
    assert Image.open(png).format == "PNG"
    df = pd.read_csv(csv)
    pts = plot_eval_rd(df, tmp_path / "again.png")
    assert set(pts.loc[pts.kind == "anchor", "variant"]) == {"jpeg_q1", "webp_q0"}
    jpeg = pts.set_index("variant").loc["jpeg_q1"]
    assert jpeg.bpp == pytest.approx(df.loc[df.variant == "jpeg_q1", "bpp_arith_rep"].mean())
    assert jpeg.lpips_alex == pytest.approx(df.loc[df.variant == "jpeg_q1", "lpips_alex"].mean())
    vq = pts[pts.kind == "vq"]
    assert sorted(vq.codebook_size) == [4, 8, 8, 16]   # both variants of the reduced sizes, and the full codebook


def test_encode_refuses_huge_images_in_one_line(tmp_path, tiny_ckpt, small_png, capsys):
    """Issue 27 item 4: a PNG claiming 30000² was Pillow's DecompressionBombError as an internal error."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    claim = tmp_path / "claim.png"
    claim.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                      + chunk(b"IDAT", zlib.compress(b"\x00" * 90001)) + chunk(b"IEND", b""))
    assert main(["encode", str(claim), str(tmp_path / "x.vqb"), "--model", str(tiny_ckpt)]) == 2
    err = capsys.readouterr().err
    assert "max_pixels" in err and "internal error" not in err and len(err.strip().splitlines()) == 1
    # the same override as decoding: --max-pixels
    assert main(["encode", str(small_png), str(tmp_path / "y.vqb"), "--model", str(tiny_ckpt),
                 "--max-pixels", "1000"]) == 2
    assert "64 = 6144 pixels" in capsys.readouterr().err
    assert main(["encode", str(small_png), str(tmp_path / "y.vqb"), "--model", str(tiny_ckpt),
                 "--max-pixels", "6144"]) == 0


def _refused(capsys, argv, match):
    """``argv`` exits 2 with one line naming the problem (never "internal error", never torch's unsafe advice)."""
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert match in err, err
    assert len(err.splitlines()) == 1 and "internal error" not in err and "weights_only=False" not in err
    return err


def test_bad_output_paths_devices_seeds_and_threads_are_user_errors(tmp_path, tiny_ckpt, small_png, capsys):
    """Issue 27, bad input reported as a bug (exit 1): each is now one line and exit 2, before any work."""
    vqb = tmp_path / "a.vqb"
    assert main(["encode", str(small_png), str(vqb), "--model", str(tiny_ckpt)]) == 0
    capsys.readouterr()
    dec = ["decode", str(vqb)]
    _refused(capsys, dec + [str(tmp_path / "out.xyz"), "--model", str(tiny_ckpt)], "extension '.xyz'")
    _refused(capsys, dec + [str(tmp_path / "out"), "--model", str(tiny_ckpt)], "has no extension")
    _refused(capsys, dec + [str(tmp_path), "--model", str(tiny_ckpt)], "is a directory")
    _refused(capsys, dec + [str(tmp_path / "o.png"), "--device", "bogus"], "unknown device 'bogus'")
    _refused(capsys, dec + [str(tmp_path / "o.png"), "--device", "cuda:abc"], "unknown device 'cuda:abc'")
    import torch

    if not torch.cuda.is_available():
        _refused(capsys, dec + [str(tmp_path / "o.png"), "--device", "cuda"], "CUDA is not available")
    con = ["conceal", str(vqb), str(tmp_path / "c.png"), "--model", str(tiny_ckpt), "--method", "neighbor"]
    _refused(capsys, con + ["--seed", "-1"], "--seed must be")
    _refused(capsys, con + ["--threads", "-1"], "--threads must be")
    _refused(capsys, con + ["--threads", "100000"], "--threads must be")


def test_bad_config_files_are_user_errors(tmp_path, tiny_ckpt, small_png, capsys):
    """A binary, NUL-named, invalid or !!python-tagged config was an internal error."""
    vqb = tmp_path / "a.vqb"
    assert main(["encode", str(small_png), str(vqb), "--model", str(tiny_ckpt)]) == 0
    capsys.readouterr()
    bad_yaml, tagged, binary = tmp_path / "bad.yaml", tmp_path / "tag.yaml", tmp_path / "bin.yaml"
    bad_yaml.write_text("a: [1, 2\nb: }")
    tagged.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    binary.write_bytes(bytes(range(256)))
    for cfg, match in ((bad_yaml, "not valid YAML"), (tagged, "Python-object tag"), (binary, "not a text file")):
        _refused(capsys, ["sweep", str(cfg), "--out", str(tmp_path / "r")], match)
        _refused(capsys, ["train-codec", "--config", str(cfg), "--out", str(tmp_path / "t")], match)
    _refused(capsys, ["sweep", "a\x00b.yaml"], "NUL byte")
    from codec.checkpoint import config_from_taming_yaml
    from codec.errors import CheckpointError

    for cfg in (bad_yaml, tagged, binary):  # --config of an official checkpoint
        with pytest.raises(CheckpointError, match="not a readable taming config yaml"):
            config_from_taming_yaml(cfg)


def test_train_codec_refuses_a_malicious_init_from(tmp_path, capsys):
    import argparse
    import pickle

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(argparse.Namespace(model={})))  # torch's weights-only reader refuses it
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"init_from: {evil}\nmodel: {{ch: 8, ch_mult: [1, 2], num_res_blocks: 1, attn_resolutions: [], "
                   f"n_embed: 16, embed_dim: 4, z_channels: 4, norm_groups: 4}}\n")
    _refused(capsys, ["train-codec", "--config", str(cfg), "--out", str(tmp_path / "run"), "--steps", "1"],
             "cannot read checkpoint")
    # and a last.pt to resume from that is not a training checkpoint
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "last.pt").write_bytes(np_random_bytes())
    _refused(capsys, ["train-codec", "--config", str(cfg), "--out", str(tmp_path / "run"), "--steps", "1"],
             "not a PyTorch checkpoint")


def np_random_bytes() -> bytes:
    return np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes()


def test_disk_full_is_reported_not_blamed_on_vqsim(tmp_path, tiny_ckpt, small_png, capsys):
    """OSError [Errno 28] (disk full) was an internal error; /dev/full fails every write with it."""
    import os

    vqb = tmp_path / "a.vqb"
    assert main(["encode", str(small_png), str(vqb), "--model", str(tiny_ckpt)]) == 0
    full = tmp_path / "full.png"
    os.symlink("/dev/full", full)
    capsys.readouterr()
    err = _refused(capsys, ["decode", str(vqb), str(full), "--model", str(tiny_ckpt)], "No space left on device")
    assert "errno 28" in err


def test_eval_bd_rate_measures_sweeps_and_rebuilds_the_table_from_csv(tmp_path, tiny_ckpt, small_png, capsys):
    import pandas as pd

    csv = tmp_path / "rows.csv"
    # tf_ar: this model ships no transformer, so its bpp cells are written as 'nan' (read back as missing)
    assert main(["eval", "--images", str(small_png), "--model", str(tiny_ckpt), "--codebook-size", "16", "4",
                 "--nets", "alex", "--anchors", "heic", "--bd-rate", "--no-progress", "--csv", str(csv),
                 "--coders", "arith_rep,tf_ar"]) == 0
    out = capsys.readouterr().out
    folder = small_png.parent.name
    assert f"| anchor | {folder} (1 img) BD-rate LPIPS |" in out and "HEIC (HEVC intra, BPG stand-in)" in out
    df = pd.read_csv(csv)
    assert (df.anchor == "heic").sum() == 8 and set(df.set) == {folder}
    assert main(["eval", "--bd-rate", "--from-csv", str(csv)]) == 0
    again = capsys.readouterr().out
    assert again[again.index("BD table"):] == out[out.index("BD table"):out.index("rows written")].rstrip("\n") + "\n"
    assert main(["eval", "--from-csv", str(csv)]) == 2                # only with --bd-rate
    assert "--bd-rate" in capsys.readouterr().err
