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

from .errors import ParameterError, VQSimError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def load_image(path: str | Path, *, limits=None) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3).

    The file's header is checked against ``limits.max_pixels`` (``codec.limits.DecodeLimits``;
    default ``DecodeLimits.from_env()``: 2^21 pixels or ``$VQSIM_MAX_PIXELS``) before any pixel is
    decoded, so a PNG claiming 30000² pixels costs nothing (``LimitExceededError``).

    Conversions: RGB as is (16-bit-per-channel RGB files arrive as their high bytes, Pillow's
    reading); grey (``L``, ``1``) is replicated to three channels; palette images are expanded;
    CMYK and YCbCr go through Pillow's conversion; an alpha channel is dropped (the colour is kept
    as stored, not composited); 16-bit grey (``I;16*``, and 32-bit integer grey holding values in
    0…65535) is scaled to 8 bits as ``round(v / 257)`` (65535 → 255). Floating-point images
    (``F``) and integer images outside 0…65535 have no defined 8-bit scale and are refused
    (``ParameterError``).

    Raises:
        FileNotFoundError, IsADirectoryError: no such file / a folder.
        ParameterError: unreadable or unsupported image.
        LimitExceededError: the image has more pixels than ``limits`` allow.
    """
    import warnings

    from .limits import LimitExceededError, resolve_limits

    limits = resolve_limits(limits)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"image not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"expected an image file, got a directory: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
            with Image.open(p) as im:
                W, H = im.size
                limits.check_image(H, W, what=f"image {p}")
                return _to_rgb8(im, p)
    except Image.DecompressionBombError as e:  # beyond even Pillow's own ceiling
        raise LimitExceededError(f"image {p} claims more pixels than max_pixels = {limits.max_pixels} "
                                 f"and than Pillow's own ceiling ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, VQSimError):  # ours (an unsupported mode, the limit): already one clear line
            raise
        raise ParameterError(f"cannot read image {p}: {e}") from e


def _to_rgb8(im: Image.Image, p: Path) -> np.ndarray:
    """uint8 RGB of an opened image (see :func:`load_image` for the conversions)."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise ParameterError(f"cannot read image {p}: {mode} image with values outside 0..65535 "
                                 f"(range {int(a.min())}..{int(a.max())}) has no 8-bit scale")
        g = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "F":
        raise ParameterError(f"cannot read image {p}: floating-point (mode F) images have no defined 8-bit scale; "
                             f"convert it to an 8- or 16-bit image first")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def check_output_image_path(path: str | Path) -> Path:
    """``path`` if an image can be written there: an extension Pillow writes (``.png``, ``.jpg``, …),
    not a folder. Call it before the work whose result it receives (``ParameterError`` /
    ``IsADirectoryError`` otherwise)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"output image {p} is a directory; give a file name such as {p / 'out.png'}")
    Image.init()
    ext = p.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        shown = ", ".join(e for e in (".png", ".jpg", ".bmp", ".tif", ".webp") if e in Image.registered_extensions())
        what = (
            f"extension {p.suffix!r} is not an image format Pillow writes" if p.suffix else "the name has no extension"
        )
        raise ParameterError(f"cannot write image {p}: {what} (use e.g. {shown})")
    return p


def save_image(path: str | Path, image: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3) to a file (format from the extension; see :func:`check_output_image_path`)."""
    check_output_image_path(path)
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
