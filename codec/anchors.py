"""Classical reference codecs ("anchors") evaluated on the same axes as the VQ codec.

Each anchor maps a uint8 (H, W, 3) image to ``(reconstruction, nbytes)``:
real bytes that a receiver would need, so bpp = 8·nbytes / (H·W).

* ``palette``: the no-neural-network reference of the colour issue. The image
  is averaged over 16×16 blocks (one value per block, like one VQ index); the
  block means are clustered (K-means, seeded) into a palette of at most
  ``colours`` entries; the receiver gets the palette (3 bytes per colour) and
  the DEFLATE-coded block indices (⌈log2 colours⌉ bits each), and upsamples
  the block colours bicubically. With 1,024 colours this sends the same
  10 bits per block as the VQ codec at K = 1,024, plus the palette.
* ``webp_down``: WebP (Pillow/libwebp) of a downscaled image (factor
  ``scale``, Lanczos), at the highest quality whose file fits ``max_bpp``
  (quality 0 if none fits), decoded and upsampled bicubically.
* ``jpeg`` / ``webp``: the format at its lowest quality setting (1 / 0),
  full size: the floor of what the plain formats can do.
"""
from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from .errors import ParameterError

ANCHORS = ("palette", "webp_down", "jpeg", "webp")


def _check_image(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ParameterError(f"anchors take uint8 (H, W, 3) images, got {a.dtype} {a.shape}")
    return a


def _resize(a: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
    """uint8 (h, w, 3) → uint8 (size[0], size[1], 3)."""
    return np.asarray(Image.fromarray(a).resize((size[1], size[0]), method))


def palette_anchor(img: np.ndarray, colours: int = 64, block: int = 16, seed: int = 0) -> tuple[np.ndarray, int]:
    """Block-mean palette image and its byte count (palette + DEFLATE-coded indices + a 6-byte header)."""
    from .kmeans import kmeans_codebook

    a = _check_image(img)
    H, W = a.shape[:2]
    h, w = H // block, W // block
    if h == 0 or w == 0:
        raise ParameterError(f"image {H}x{W} is smaller than one {block}x{block} block")
    means = a[: h * block, : w * block].astype(np.float64).reshape(h, block, w, block, 3).mean(axis=(1, 3))
    pts = means.reshape(-1, 3).astype(np.float32)
    if colours < 1:
        raise ParameterError(f"colours must be ≥ 1, got {colours}")
    uniq, inverse = np.unique(pts, axis=0, return_inverse=True)
    if len(uniq) <= colours:  # no clustering needed: the distinct block colours are the palette
        pal, idx = uniq, inverse.reshape(-1)
    else:
        res = kmeans_codebook(pts, int(colours), seed=seed, init="k-means++")
        pal, idx = res.centroids, res.assignment
    pal_u8 = np.clip(np.rint(pal), 0, 255).astype(np.uint8)
    bits = max(1, int(np.ceil(np.log2(max(2, len(pal_u8))))))
    packed = np.packbits(((np.asarray(idx, dtype=np.int64)[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8))
    nbytes = 6 + 3 * len(pal_u8) + len(zlib.compress(packed.tobytes(), 9))
    small = pal_u8[np.asarray(idx)].reshape(h, w, 3)
    rec = _resize(small, (h * block, w * block), Image.BICUBIC)
    out = np.empty_like(a)
    out[: h * block, : w * block] = rec
    if h * block < H or w * block < W:  # edge strips the blocks do not cover: nearest block colour
        full = _resize(small, (H, W), Image.NEAREST)
        out[h * block:, :] = full[h * block:, :]
        out[:, w * block:] = full[:, w * block:]
    return out, int(nbytes)


def _encode(a: np.ndarray, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    kw = {"quality": int(quality)}
    if fmt == "WEBP":
        kw["method"] = 6
    Image.fromarray(a).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def webp_down_anchor(img: np.ndarray, scale: float = 3.0, max_bpp: float = 0.04) -> tuple[np.ndarray, int]:
    """WebP of the image downscaled by ``scale`` at the best quality within ``max_bpp``, upsampled back."""
    a = _check_image(img)
    if not scale >= 1.0:
        raise ParameterError(f"scale must be ≥ 1, got {scale}")
    if not max_bpp > 0:
        raise ParameterError(f"max_bpp must be positive, got {max_bpp}")
    H, W = a.shape[:2]
    small = _resize(a, (max(1, round(H / scale)), max(1, round(W / scale))), Image.LANCZOS)
    budget = max_bpp * H * W / 8
    lo, hi, best = 0, 100, _encode(small, "WEBP", 0)
    while lo <= hi:  # file size grows with quality (monotone enough for a bisection)
        q = (lo + hi) // 2
        data = _encode(small, "WEBP", q)
        if len(data) <= budget:
            best, lo = data, q + 1
        else:
            hi = q - 1
    return _resize(_decode(best), (H, W), Image.BICUBIC), len(best)


def lowest_quality_anchor(img: np.ndarray, fmt: str) -> tuple[np.ndarray, int]:
    """JPEG at quality 1 or WebP at quality 0, full size."""
    a = _check_image(img)
    fmt = {"jpeg": "JPEG", "webp": "WEBP"}.get(fmt.lower())
    if fmt is None:
        raise ParameterError("format must be 'jpeg' or 'webp'")
    data = _encode(a, fmt, 1 if fmt == "JPEG" else 0)
    return _decode(data), len(data)


def run_anchor(name: str, img: np.ndarray) -> tuple[np.ndarray, int]:
    """Dispatch by name (one of ``ANCHORS``)."""
    if name == "palette":
        return palette_anchor(img)
    if name == "webp_down":
        return webp_down_anchor(img)
    if name in ("jpeg", "webp"):
        return lowest_quality_anchor(img, name)
    raise ParameterError(f"unknown anchor {name!r}; allowed: {', '.join(ANCHORS)}")
