"""Benchmark inputs: the benchmark image (Kodak kodim01 or a bundled photo) and the CPU codec."""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
KODAK_DIR = ROOT.parent / "shared" / "data" / "kodak"
KODAK_IMAGE = KODAK_DIR / "kodim01.png"


def load_bench_image(size: tuple[int, int], path: str | None = None) -> tuple[np.ndarray, str]:
    """The benchmark image as uint8 (H, W, 3) of ``size`` = (H, W), and where it came from.

    Kodak kodim01 (../shared/data/kodak relative to the repository root) when
    present, else scikit-image's bundled astronaut photo; resized (Lanczos)
    when its size differs.
    """
    from PIL import Image

    from codec.image import load_image

    if path is not None:
        img, src = load_image(path), str(path)
    elif KODAK_IMAGE.exists():
        img, src = load_image(KODAK_IMAGE), str(KODAK_IMAGE)
    else:
        from skimage import data

        img, src = np.asarray(data.astronaut())[..., :3].astype(np.uint8), "skimage.data.astronaut"
    H, W = size
    if img.shape[:2] != (H, W):
        img = np.asarray(Image.fromarray(img).resize((W, H), Image.LANCZOS))
        src += f" (resized to {W}x{H})"
    return np.ascontiguousarray(img), src


def cpu_codec():
    from codec.zoo import load_codec

    return load_codec("default", device="cpu")
