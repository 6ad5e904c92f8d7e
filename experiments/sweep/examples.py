"""Example PNGs of a unit for the image grids: original, loss-free, lost-index overlay, one per method."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

__all__ = ["example_files", "example_dir"]


def _png(a: np.ndarray, max_side: int) -> bytes:
    """uint8 (H, W, 3) as PNG bytes, shrunk (Lanczos) so that its long side is at most ``max_side``."""
    from PIL import Image

    im = Image.fromarray(a)
    H, W = a.shape[:2]
    if max(H, W) > max_side:
        s = max_side / max(H, W)
        im = im.resize((max(1, round(W * s)), max(1, round(H * s))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _lost_overlay(lossfree: np.ndarray, lost: np.ndarray, f: int) -> np.ndarray:
    """The loss-free image with every lost f×f block blended 65 % with red (the lost-index map)."""
    H, W = lossfree.shape[:2]
    m = np.kron(lost.astype(np.uint8), np.ones((f, f), np.uint8))[:H, :W].astype(bool)
    out = lossfree.astype(np.float32)
    out[m] = 0.35 * out[m] + 0.65 * np.array([255.0, 0.0, 0.0], np.float32)
    return out.round().astype(np.uint8)


def example_dir(image: str, S: int, unit_id: str) -> str:
    """The unit's folder of example PNGs, relative to the results folder."""
    return f"examples/{image}_S{S}/{unit_id}"


def example_files(image: str, S: int, unit_id: str, original: np.ndarray, lossfree: np.ndarray, lost: np.ndarray,
                  factor: int, methods: Sequence[tuple[str, np.ndarray]], max_side: int) -> dict[str, bytes]:
    """{path relative to the results folder: PNG bytes}: ``examples/<image>_S<S>/`` holds the original and the
    loss-free image (shared by the units of that image and size), its ``<unit id>/`` folder the lost-index
    overlay (``factor`` = pixels per index) and each method's reconstruction."""
    root = f"examples/{image}_S{S}"
    ex = example_dir(image, S, unit_id)
    files: dict[str, bytes] = {f"{root}/original.png": _png(original, max_side),
                               f"{root}/lossfree.png": _png(lossfree, max_side),
                               f"{ex}/lost.png": _png(_lost_overlay(lossfree, lost, factor), max_side)}
    for method, img in methods:
        files[f"{ex}/{method}.png"] = _png(img, max_side)
    return files
