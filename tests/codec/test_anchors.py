"""codec.anchors: classical references with real byte counts."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from codec.anchors import ANCHORS, lowest_quality_anchor, palette_anchor, run_anchor, webp_down_anchor


def test_palette_of_a_blocky_image_is_exact_and_counts_its_bytes():
    rng = np.random.default_rng(0)
    cols = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    blocks = cols[rng.integers(0, 8, (4, 6))]                       # 4x6 blocks, 8 distinct colours
    img = np.repeat(np.repeat(blocks, 16, 0), 16, 1)                # 64x96, flat 16x16 blocks
    rec, nbytes = palette_anchor(img, colours=8)
    assert rec.shape == img.shape and rec.dtype == np.uint8
    # block centres are exact (bicubic upsampling only blurs the block borders)
    assert np.abs(rec[8::16, 8::16].astype(int) - blocks).max() <= 40
    # 6-byte header + 8 colours x 3 bytes + DEFLATE of 24 three-bit indices (9 packed bytes)
    assert 6 + 24 < nbytes <= 6 + 24 + 9 + 11
    _, n64 = palette_anchor(img, colours=64)                        # fewer distinct colours than asked: kept as is
    assert n64 >= nbytes


def test_palette_handles_edges_and_rejects_tiny_images():
    img = np.full((40, 50, 3), 77, np.uint8)                        # 2x3 blocks + edge strips
    rec, _ = palette_anchor(img)
    assert rec.shape == img.shape and int(np.abs(rec.astype(int) - 77).max()) <= 1
    with pytest.raises(ValueError, match="smaller than one"):
        palette_anchor(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        palette_anchor(np.zeros((32, 32), np.uint8))


def test_webp_down_stays_within_budget_and_spends_it(kodim01):
    img = kodim01[:256, :384]
    rec, nbytes = webp_down_anchor(img, scale=3.0, max_bpp=0.05)
    assert rec.shape == img.shape
    assert nbytes <= 0.05 * 256 * 384 / 8
    _, loose = webp_down_anchor(img, scale=3.0, max_bpp=0.5)
    assert loose > nbytes                                           # a larger budget buys a higher quality
    with pytest.raises(ValueError, match="max_bpp"):
        webp_down_anchor(img, max_bpp=0)


def test_lowest_quality_formats_are_real_files(kodim01):
    img = kodim01[:128, :128]
    for fmt, magic in (("jpeg", b"\xff\xd8"), ("webp", b"RIFF")):
        rec, nbytes = lowest_quality_anchor(img, fmt)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt.upper(), quality=1 if fmt == "jpeg" else 0,
                                  **({"method": 6} if fmt == "webp" else {}))
        assert nbytes == len(buf.getvalue()) and buf.getvalue()[:len(magic)] == magic
        assert rec.shape == img.shape
    with pytest.raises(ValueError, match="unknown anchor"):
        run_anchor("png", img)
    assert set(ANCHORS) == {"palette", "webp_down", "jpeg_q1", "webp_q0", "jpeg", "webp", "avif", "heic", "jxl"}


def test_sweeps_write_real_files_and_scale_back_to_full_size(kodim01):
    from codec.anchors import SWEEPS, run_sweep, sweep_point

    img = kodim01[:96, :144]
    magic = {"avif": b"ftyp", "heic": b"ftyp", "jxl": b"\xff\x0a"}
    for name in ("avif", "heic", "jxl"):
        rec, n = sweep_point(img, name, 3, 0)
        assert rec.shape == img.shape and rec.dtype == np.uint8 and n > 0
        _, n_full = sweep_point(img, name, 1, 0)
        assert n_full > n                                   # the downscaled file is smaller
    from codec.anchors import _encode
    data = _encode(img, "AVIF", 0)
    assert data[4:8] == magic["avif"] and len(data) == sweep_point(img, "avif", 1, 0)[1]
    pts = list(run_sweep("webp", img))
    assert [p[0] for p in pts] == [f"x{s} q{q}" for s, q in SWEEPS["webp"]]
    assert all(len(SWEEPS[a]) >= 6 for a in SWEEPS)
    with pytest.raises(ValueError, match="rate sweep"):
        run_anchor("avif", img)
    with pytest.raises(ValueError, match="scale"):
        sweep_point(img, "jpeg", 0, 10)


def test_a_missing_plugin_is_a_clear_error(monkeypatch, kodim01):
    import builtins

    from codec.anchors import sweep_point

    real = builtins.__import__

    def no_jxl(name, *a, **k):
        if name == "pillow_jxl":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_jxl)
    with pytest.raises(ValueError, match="pillow-jxl-plugin"):
        sweep_point(kodim01[:32, :32], "jxl", 1, 0)
