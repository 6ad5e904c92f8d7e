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
* ``jpeg_q1`` / ``webp_q0``: the format at its lowest quality setting (1 / 0),
  full size: the floor of what the plain formats can do (one point each).

Rate sweeps (:data:`SWEEPS`, one row per image and operating point): ``jpeg``,
``webp``, ``avif`` (AV1 intra, Pillow's own encoder), ``heic`` (HEVC intra
through ``pillow-heif``: the codec inside BPG, reported as its stand-in) and
``jxl`` (JPEG XL through ``pillow-jxl-plugin``).  Each operating point is a
downscale factor ``x`` (Lanczos down, the file decoded and Lanczos up to the
original size; ``x = 1``: full size) and the format's quality setting, chosen so
every codec gives ≥ 4 points in 0.01–0.1 bpp on Kodak (measured means over
kodim01/05/12/20 in the comment of each grid) and two above 0.1 bpp, where
the formats first reach the VQ codec's LPIPS (≈ 0.45 on Kodak), so BD values
have an overlap to integrate over.  Byte counts are the real
files' lengths (container headers included).  A format whose plug-in is not
installed raises :class:`~codec.errors.ParameterError` naming the package
(``pip install 'vqsim[anchors]'``).
"""
from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

from .errors import ParameterError

#: operating points (downscale factor, quality) of each rate sweep, in increasing rate on Kodak;
#: the trailing comments give the mean bpp measured over kodim01, 05, 12 and 20
SWEEPS: dict[str, tuple[tuple[int, int], ...]] = {
    "jpeg": (
        (6, 1),
        (4, 1),
        (4, 10),
        (3, 10),
        (3, 30),
        (2, 10),
        (2, 30),
        (2, 60),
    ),  # .018 .024 .039 .058 .108 .108 .21 .33
    "webp": (
        (4, 0),
        (3, 0),
        (2, 0),
        (4, 20),
        (3, 20),
        (3, 50),
        (2, 20),
        (2, 50),
    ),  # .011 .017 .034 .039 .063 .111 .13 .23
    "avif": (
        (4, 0),
        (3, 0),
        (2, 0),
        (3, 20),
        (2, 20),
        (1, 0),
        (2, 40),
        (1, 20),
    ),  # .012 .017 .026 .031 .056 .073 .12 .18
    "heic": (
        (4, 0),
        (3, 0),
        (2, 0),
        (1, 0),
        (2, 20),
        (1, 10),
        (1, 20),
        (1, 30),
    ),  # .011 .014 .018 .040 .061 .09 .19 ~.4
    "jxl": (
        (6, 0),
        (4, 0),
        (3, 0),
        (4, 20),
        (3, 20),
        (2, 20),
        (2, 50),
        (1, 20),
    ),  # .011 .017 .030 .034 .058 .105 .19 .34
}
_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "heic": "HEIF", "jxl": "JXL"}
_PLUGINS = {"heic": ("pillow_heif", "pillow-heif"), "jxl": ("pillow_jxl", "pillow-jxl-plugin")}

#: single-point anchors (``run_anchor``) and rate sweeps (``run_sweep``)
SINGLE_ANCHORS = ("palette", "webp_down", "jpeg_q1", "webp_q0")
ANCHORS = SINGLE_ANCHORS + tuple(SWEEPS)


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
    packed = np.packbits(
        ((np.asarray(idx, dtype=np.int64)[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8)
    )
    nbytes = 6 + 3 * len(pal_u8) + len(zlib.compress(packed.tobytes(), 9))
    small = pal_u8[np.asarray(idx)].reshape(h, w, 3)
    rec = _resize(small, (h * block, w * block), Image.BICUBIC)
    out = np.empty_like(a)
    out[: h * block, : w * block] = rec
    if h * block < H or w * block < W:  # edge strips the blocks do not cover: nearest block colour
        full = _resize(small, (H, W), Image.NEAREST)
        out[h * block :, :] = full[h * block :, :]
        out[:, w * block :] = full[:, w * block :]
    return out, int(nbytes)


def check_format(name: str) -> str:
    """The Pillow format of sweep ``name``, after registering its plug-in; ParameterError if it cannot be used."""
    if name not in _FORMATS:
        raise ParameterError(f"unknown anchor format {name!r}; allowed: {', '.join(_FORMATS)}")
    if name in _PLUGINS:
        module, package = _PLUGINS[name]
        try:
            mod = __import__(module)
        except ImportError:
            raise ParameterError(
                f"anchor {name!r} needs the {package} package (pip install {package}, or pip install -e '.[anchors]')"
            ) from None
        if name == "heic":
            mod.register_heif_opener()
    if name == "avif":
        from PIL import features

        if not features.check("avif"):
            raise ParameterError("anchor 'avif' needs a Pillow built with AVIF support (Pillow >= 11.2 wheels have it)")
    return _FORMATS[name]


def _encode(a: np.ndarray, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    kw = {"quality": int(quality)}
    if fmt == "WEBP":
        kw["method"] = 6
    Image.fromarray(a).save(buf, format=fmt, **kw)
    return buf.getvalue()


def sweep_point(img: np.ndarray, name: str, scale: int, quality: int) -> tuple[np.ndarray, int]:
    """One operating point of sweep ``name``: Lanczos-downscale by ``scale``, encode at ``quality``,
    decode, Lanczos-upscale to the original size. Returns (reconstruction, file bytes)."""
    a = _check_image(img)
    fmt = check_format(name)
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ParameterError(f"scale must be an int ≥ 1, got {scale!r}")
    H, W = a.shape[:2]
    small = a if scale == 1 else _resize(a, (max(1, round(H / scale)), max(1, round(W / scale))), Image.LANCZOS)
    data = _encode(small, fmt, quality)
    rec = _decode(data)
    if rec.shape[:2] != (H, W):
        rec = _resize(rec, (H, W), Image.LANCZOS)
    return rec, len(data)


def sweep_setting(scale: int, quality: int) -> str:
    """Label of an operating point: ``"x3 q20"``."""
    return f"x{scale} q{quality}"


def run_sweep(name: str, img: np.ndarray, points=None):
    """Every operating point of sweep ``name`` (default ``SWEEPS[name]``): yields (setting, reconstruction, bytes)."""
    if name not in SWEEPS:
        raise ParameterError(f"unknown sweep {name!r}; allowed: {', '.join(SWEEPS)}")
    check_format(name)
    for scale, quality in SWEEPS[name] if points is None else points:
        rec, n = sweep_point(img, name, scale, quality)
        yield sweep_setting(scale, quality), rec, n


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
    pil_format = {"jpeg": "JPEG", "webp": "WEBP"}.get(fmt.lower())
    if pil_format is None:
        raise ParameterError("format must be 'jpeg' or 'webp'")
    data = _encode(a, pil_format, 1 if pil_format == "JPEG" else 0)
    return _decode(data), len(data)


def run_anchor(name: str, img: np.ndarray) -> tuple[np.ndarray, int]:
    """Dispatch a single-point anchor by name (one of ``SINGLE_ANCHORS``; sweeps: ``run_sweep``)."""
    if name == "palette":
        return palette_anchor(img)
    if name == "webp_down":
        return webp_down_anchor(img)
    if name in ("jpeg_q1", "webp_q0"):
        return lowest_quality_anchor(img, name[:4])
    if name in SWEEPS:
        raise ParameterError(f"anchor {name!r} is a rate sweep (several points); use run_sweep")
    raise ParameterError(f"unknown anchor {name!r}; allowed: {', '.join(ANCHORS)}")
