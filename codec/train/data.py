"""Training data of the codec: images decoded once into memory, random crops drawn from them.

Sources are folders of JPEG/PNG images or ``.tar`` archives of them (e.g.
``../shared/data/train256_part{1,2}.tar``); a crop is a uniformly placed
size×size window with a horizontal flip of probability ½, scaled to [-1, 1].
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ParameterError


def load_image_pool(sources: list[str], min_side: int) -> list[np.ndarray]:
    """Decode every image in folders / tar archives into uint8 (H, W, 3) arrays."""
    pool: list[np.ndarray] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"training data not found: {p}")
        if p.suffix == ".tar":
            with tarfile.open(p) as tf:
                for m in tf:
                    fh = tf.extractfile(m) if m.isfile() else None  # a regular member always has one
                    if fh is not None and m.name.lower().endswith((".jpg", ".jpeg", ".png")):
                        data = fh.read()
                        pool.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        else:
            from ..image import list_images, load_image

            pool.extend(load_image(q) for q in list_images(p))
    pool = [a for a in pool if min(a.shape[:2]) >= min_side]
    if not pool:
        raise ParameterError(f"no training image of at least {min_side} px in {sources}")
    return pool


def random_crops(pool: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """n random size×size crops with random horizontal flips → float (n,3,size,size) in [-1, 1]."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for b, i in enumerate(rng.integers(0, len(pool), size=n)):
        a = pool[i]
        y = rng.integers(0, a.shape[0] - size + 1)
        x = rng.integers(0, a.shape[1] - size + 1)
        c = a[y:y + size, x:x + size]
        out[b] = c[:, ::-1] if rng.random() < 0.5 else c
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
