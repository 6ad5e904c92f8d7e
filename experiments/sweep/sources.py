"""The sweep's images: loaded from the config's source, resized, centre-cropped, hashed."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..config import ConfigError

__all__ = ["SweepImage", "load_images"]


@dataclass(frozen=True)
class SweepImage:
    """A test image after resize / crop: uint8 (H, W, 3); ``hash`` = SHA-256 of shape + pixels (12 hex)."""

    name: str
    hash: str
    pixels: np.ndarray


def _resize(a: np.ndarray, size: int | list[int]) -> np.ndarray:
    from PIL import Image

    H, W = a.shape[:2]
    if isinstance(size, int):
        s = size / min(H, W)
        new = (max(1, round(H * s)), max(1, round(W * s)))
    else:
        new = (int(size[0]), int(size[1]))
    if new == (H, W):
        return a
    return np.asarray(Image.fromarray(a).resize((new[1], new[0]), Image.LANCZOS), dtype=np.uint8)


def _crop(a: np.ndarray, crop: list[int], name: str) -> np.ndarray:
    H, W = a.shape[:2]
    h, w = crop
    if h > H or w > W:
        raise ConfigError(f"config: images.crop: {h}x{w} is larger than image {name!r} ({H}x{W} after resize)")
    top, left = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(a[top:top + h, left:left + w])


def load_images(cfg: Mapping[str, Any]) -> list[SweepImage]:
    """The config's images, resized and cropped, checked against the metrics' minimum size."""
    from codec.image import as_uint8_image, list_images, load_image

    ic = cfg["images"]
    named: list[tuple[str, np.ndarray]] = []
    if ic["source"] == "skimage":
        import skimage.data

        for n in ic["names"]:
            photo = getattr(skimage.data, n)()
            photo = photo[0] if isinstance(photo, tuple) else photo    # stereo_motorcycle: (left, right, disparity)
            named.append((n, as_uint8_image(np.asarray(photo))))
    else:
        try:
            paths = list_images(ic["source"])
        except FileNotFoundError as e:
            raise ConfigError(f"config: images.source: {e}") from None
        seen: dict[str, int] = {}
        for p in paths:
            n = p.stem
            seen[n] = seen.get(n, 0) + 1
            named.append((n if seen[n] == 1 else f"{n}_{seen[n]}", load_image(p)))
    if ic["limit"]:
        named = named[: ic["limit"]]
    nets = cfg["metrics"]["nets"]
    from codec.metrics.specs import LPIPS_MIN_SIZE as MIN_SIDE
    from codec.metrics.specs import SSIM_WIN as SSIM_MIN_SIDE

    need = max([SSIM_MIN_SIDE] + [MIN_SIDE[n] for n in nets])
    out = []
    for n, a in named:
        if ic["resize"] is not None:
            a = _resize(a, ic["resize"])
        if ic["crop"] is not None:
            a = _crop(a, ic["crop"], n)
        if min(a.shape[:2]) < need:
            raise ConfigError(
                f"config: images: {n!r} is {a.shape[0]}x{a.shape[1]} px; the metrics "
                f"({', '.join('lpips_' + x for x in nets)}, ssim) need ≥ {need} px per side (images.resize / crop)"
            )
        a = np.ascontiguousarray(a, dtype=np.uint8)
        h = hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:12]
        out.append(SweepImage(n, h, a))
    return out
