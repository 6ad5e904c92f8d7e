"""Each image encoded once per codec setting, with its loss-free reconstruction and metrics, cached on disk.

Cache entries live in ``<out>/cache/encode/*.npz``, named by model SHA-256, codebook size, K-means seed,
fine-tune flag, coder, image hash and :data:`CACHE_VERSION`; an unreadable or inconsistent entry is
deleted (one warning) and recomputed.
"""
from __future__ import annotations

import contextlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np

from ..config import codec_sizes
from .codecs import load_sweep_codec, metric_device
from .errors import reason_line
from .sources import SweepImage
from .storage import atomic_write_bytes, fsync_dir

__all__ = ["EncodedImage", "prepare_encodings", "CACHE_VERSION"]


@dataclass
class EncodedImage:
    """An image encoded by one codec setting, with its loss-free reconstruction.

    Attributes:
        indices: int32 (h, w).  image_size: (H, W).
        bits_source: bits of the whole bitstream (``codec.compress_indices`` with the config's coder, header included).
        lossfree: uint8 (H, W, 3) decoded from ``indices``.
        metrics: metrics of ``lossfree`` vs the original (lpips_<net>, psnr, ssim, ms_ssim if ≥ 161 px).
    """

    indices: np.ndarray
    image_size: tuple[int, int]
    bits_source: int
    lossfree: np.ndarray
    metrics: dict[str, float]

    def to_row(self) -> dict[str, float]:
        """The loss-free reconstruction's metrics as result columns ``lossfree_<metric>``."""
        return {f"lossfree_{k}": float(v) for k, v in self.metrics.items()}


CACHE_VERSION = "v2"
"""Part of every encode-cache file name: v2 = bitstreams with the K/4-symbol prior weight and float32
SSIM of the loss-free reconstruction; entries of other versions are never read (they are recomputed)."""


def _cache_file(cache_dir: Path, codec_cfg: Mapping[str, Any], S: int, image_hash: str) -> Path:
    """Disk-cache entry of one (model weights, codebook size, K-means seed, coder, image)."""
    c = codec_cfg
    ft = c.get("finetuned", "auto")
    return (
        cache_dir / f"{c['sha256'][:12]}_S{S}_ks{c['kmeans_seed']}_ft{ft}_{c['coder']}_{image_hash}_{CACHE_VERSION}.npz"
    )


_CACHE_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)
"""What reading a damaged .npz can raise (truncated archive, bad CRC, missing member, wrong dtype, ...)."""


def _check_encoded(enc: EncodedImage, img: SweepImage, S: int) -> None:
    """Raise ValueError unless a cached encoding is consistent with its image and codebook size."""
    H, W = img.pixels.shape[:2]
    if tuple(enc.image_size) != (H, W):
        raise ValueError(f"image size {enc.image_size} ≠ {H}x{W}")
    if enc.indices.ndim != 2 or enc.indices.size == 0:
        raise ValueError(f"index map of shape {enc.indices.shape}")
    if int(enc.indices.min()) < 0 or int(enc.indices.max()) >= S:
        raise ValueError(f"indices outside [0, {S})")
    if enc.lossfree.shape != (H, W, 3) or enc.lossfree.dtype != np.uint8:
        raise ValueError(f"loss-free image of shape {enc.lossfree.shape} / {enc.lossfree.dtype}")
    if enc.bits_source <= 0:
        raise ValueError(f"bits_source = {enc.bits_source}")
    if not isinstance(enc.metrics, dict) or not all(isinstance(v, (int, float)) for v in enc.metrics.values()):
        raise ValueError("metrics are not a {name: number} mapping")


def _read_cache_entry(f: Path, img: SweepImage, S: int, log: Callable[[str], None]) -> EncodedImage | None:
    """A disk-cache entry, or None when absent; an unreadable / inconsistent one is deleted with a warning."""
    try:
        z = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        return None
    except _CACHE_ERRORS as e:
        _discard_cache_entry(f, reason_line(e), log)
        return None
    try:
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with z:
            enc = EncodedImage(
                z["indices"].astype(np.int32),
                cast("tuple[int, int]", tuple(int(v) for v in z["image_size"])),
                int(z["bits_source"]),
                np.asarray(z["lossfree"]),
                json.loads(str(z["metrics"])),
            )
        _check_encoded(enc, img, S)
    except _CACHE_ERRORS as e:
        _discard_cache_entry(f, reason_line(e), log)
        return None
    return enc


def _discard_cache_entry(f: Path, reason: str, log: Callable[[str], None]) -> None:
    """Delete a damaged cache entry (it is recomputed) and say so on one line."""
    with contextlib.suppress(FileNotFoundError):
        f.unlink()
    fsync_dir(f.parent)
    log(f"warning: encode cache entry {f} is unreadable ({reason}); deleted, the image is encoded again")


def _write_cache_entry(f: Path, enc: EncodedImage) -> None:
    """Store an encoding in the disk cache (atomically, fsynced)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        indices=enc.indices,
        image_size=np.array(enc.image_size),
        bits_source=np.array(enc.bits_source),
        lossfree=enc.lossfree,
        metrics=np.array(json.dumps(enc.metrics)),
    )
    atomic_write_bytes(f, buf.getvalue())


def prepare_encodings(
    cfg: Mapping[str, Any],
    images: Sequence[SweepImage],
    cache_dir: Path | None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, EncodedImage]:
    """Encode every image once per codebook size (batched per size), using / filling the disk cache.

    A cache entry that cannot be read, or does not fit its image, is deleted (with a warning through
    ``log``) and recomputed.  Returns ``{f"{S}/{image hash}": EncodedImage}``.
    """
    import torch

    from codec.metrics import image_metrics

    nets = list(cfg["metrics"]["nets"])
    c = cfg["codec"]
    out: dict[str, EncodedImage] = {}
    for S in codec_sizes(cfg):
        todo: list[SweepImage] = []
        for img in images:
            key = f"{S}/{img.hash}"
            enc = _read_cache_entry(_cache_file(cache_dir, c, S, img.hash), img, S, log) if cache_dir else None
            if enc is not None and all(f"lpips_{n}" in enc.metrics for n in nets):
                out[key] = enc
                continue
            todo.append(img)
        if not todo:
            continue
        codec = load_sweep_codec(cfg, S)
        log(f"encoding {len(todo)} image(s) with {codec.codebook_id} on {codec.device}")
        maps = codec.encode_many([img.pixels for img in todo])
        dev = metric_device(cfg, codec)
        for img, imap in zip(todo, maps, strict=False):
            with torch.no_grad():
                rec = codec.decode_indices(imap)
            bits = 8 * len(codec.compress_indices(imap))
            rec = np.ascontiguousarray(rec)
            m = image_metrics(img.pixels, rec, nets=tuple(nets), device=dev)
            enc = EncodedImage(np.asarray(imap.indices, dtype=np.int32), imap.image_size, bits, rec, m)
            out[f"{S}/{img.hash}"] = enc
            if cache_dir is not None:
                _write_cache_entry(_cache_file(cache_dir, c, S, img.hash), enc)
    return out
