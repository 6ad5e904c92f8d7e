"""Image I/O and conversions.

Conventions used across vqsim:
* an *image* at the API boundary is a numpy ``uint8`` array (H, W, 3), RGB;
* inside models and metrics images are torch float tensors (N, 3, H, W) in
  [0, 1] (``to_tensor``); the VQGAN itself works in [-1, 1] (``codec.api``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ParameterError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3). Raises FileNotFoundError / ValueError."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"expected an image file, got a directory: {p}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, SyntaxError) as e:
        raise ParameterError(f"cannot read image {p}: {e}") from e


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3) to a file (format from the extension)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_uint8_image(image)).save(path)


def as_uint8_image(image) -> np.ndarray:
    """Accept uint8 (H,W,3), float [0,1] (H,W,3), or a torch tensor (3,H,W)/(1,3,H,W) in [0,1]."""
    if hasattr(image, "detach"):  # torch tensor
        t = image.detach().float().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ParameterError(f"expected a single image, got batch of {t.shape[0]}")
            t = t[0]
        image = t.clamp(0, 1).permute(1, 2, 0).numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ParameterError(f"expected an RGB image (H, W, 3), got shape {a.shape}")
    a = a[:, :, :3]
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise TypeError(f"unsupported image dtype {a.dtype}")


def to_tensor(image, device=None):
    """uint8 (H,W,3) or list of them (same size) -> float tensor (N,3,H,W) in [0,1]."""
    import torch

    if hasattr(image, "detach"):
        t = image.float()
        return (t[None] if t.ndim == 3 else t).to(device)
    imgs = image if isinstance(image, (list, tuple)) else [image]
    arr = np.stack([as_uint8_image(im) for im in imgs])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0).to(device)


def list_images(spec: str | Path | list) -> list[Path]:
    """Expand a folder, a glob pattern, a file, or a list of those into sorted image paths."""
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    out: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS))
        elif any(ch in str(s) for ch in "*?["):
            import glob

            out.extend(sorted(Path(q) for q in glob.glob(str(s)) if Path(q).suffix.lower() in IMAGE_EXTENSIONS))
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such image file or folder: {s}")
    if not out:
        raise FileNotFoundError(f"no images found in {spec}")
    return out
