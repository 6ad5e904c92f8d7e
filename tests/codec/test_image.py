"""Image loading: modes converted as documented, and the pixel limit checked from the file's header (issue 27)."""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from codec.errors import ParameterError
from codec.image import load_image
from codec.limits import DecodeLimits, LimitExceededError


def _png_header_only(path, w, h):
    """A PNG whose header claims w×h RGB pixels but whose data holds a few rows (costs nothing to read)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * w) * 4)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [2000, 30000])
def test_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path, side):
    # 30000²: Pillow's DecompressionBombError was an internal error; 2000² (4 Mpx > 2^21) was decoded
    p = _png_header_only(tmp_path / "claim.png", side, side)
    t = time.perf_counter()
    with pytest.raises(LimitExceededError, match="max_pixels"):
        load_image(p)
    assert time.perf_counter() - t < 1.0


def test_pixel_limit_uses_the_decode_override(tmp_path, monkeypatch):
    p = tmp_path / "small.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(p)
    with pytest.raises(LimitExceededError, match="40x30 = 1200 pixels"):
        load_image(p, limits=DecodeLimits(max_pixels=1000))
    monkeypatch.setenv("VQSIM_MAX_PIXELS", "1199")
    with pytest.raises(LimitExceededError):
        load_image(p)
    monkeypatch.setenv("VQSIM_MAX_PIXELS", "1200")
    assert load_image(p).shape == (30, 40, 3)


def test_16_bit_grey_is_scaled_not_saturated(tmp_path):
    # a 16-bit PNG (mode I;16) loaded as an all-white image, and a sweep scored it
    a = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == "I;16"
    img = load_image(p)
    assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
    assert np.array_equal(img[..., 0], img[..., 2])
    expect = np.round(a / 257.0).astype(np.uint8)
    assert np.array_equal(img[..., 0], expect)
    assert img.min() == 0 and img.max() == 255 and abs(img.mean() - 127.5) < 1


def test_other_modes_as_documented(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgb)  # alpha dropped, colour kept
    Image.fromarray(rgb[..., 0]).save(tmp_path / "l.png")
    assert np.array_equal(load_image(tmp_path / "l.png"), np.repeat(rgb[..., :1], 3, axis=2))
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (8, 8, 3)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.tif")
    assert load_image(tmp_path / "c.tif").shape == (8, 8, 3)
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "f.tif")
    with pytest.raises(ParameterError, match="floating-point"):
        load_image(tmp_path / "f.tif")
