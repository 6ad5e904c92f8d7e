"""One image pair's full metric report as plain floats (``image_metrics``), and bits per pixel (``bpp``).

Accepts the API image convention (uint8 (H, W, 3) numpy) as well as float
numpy / tensors in [0, 1]; combines LPIPS, PSNR, low-pass PSNR, SSIM and MS-SSIM.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import ParameterError
from ._inputs import default_device
from .perceptual import lpips_distance, lpips_features, lpips_from_features
from .pixel import lowpass_psnr, psnr
from .structural import MS_SSIM_MIN_SIZE, MS_SSIM_WEIGHTS, SSIMReference, ssim_and_ms_ssim

__all__ = ["bpp", "image_metrics"]


def bpp(nbytes: int, image_size: tuple[int, int]) -> float:
    """Bits per pixel: 8·nbytes / (H·W)."""
    n = int(nbytes)
    if n < 0:
        raise ParameterError(f"nbytes must be >= 0, got {nbytes}")
    H, W = (int(v) for v in image_size)
    if H <= 0 or W <= 0:
        raise ParameterError(f"image_size must be positive (H, W), got {image_size}")
    return 8.0 * n / (H * W)


def _as_batch(image: Any) -> torch.Tensor:
    """uint8/float [0,1] numpy (H, W, 3) or float tensor (3, H, W)/(1, 3, H, W) -> (1, 3, H, W)."""
    from ..image import as_uint8_image, to_tensor

    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            return to_tensor(image.cpu().numpy())
        if not image.is_floating_point():
            raise TypeError(f"image tensors must be float in [0, 1] or uint8, got {image.dtype}")
        t = image.detach()
        t = t.unsqueeze(0) if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise ParameterError(f"expected one image tensor (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        return t.float()
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating) and (arr.min() < 0 or arr.max() > 1):
        raise ParameterError("float images must lie in [0, 1]")
    return to_tensor(as_uint8_image(arr)) if arr.dtype != np.uint8 else to_tensor(arr)


@torch.no_grad()
def image_metrics(
    original: Any,
    reconstructed: Any,
    nets: tuple[str, ...] = ("alex", "vgg"),
    device: str | torch.device | None = None,
    *,
    ref: SSIMReference | None = None,
    lpips_refs: Mapping[str, Sequence[torch.Tensor]] | None = None,
) -> dict[str, float]:
    """All metrics of one image pair as plain floats.

    Accepts uint8 (H, W, 3) numpy arrays (the API image convention), float
    numpy (H, W, 3) in [0, 1] (quantized to uint8 first), or float tensors
    (3, H, W) / (1, 3, H, W) in [0, 1].

    Returns ``{"lpips_<net>" for net in nets, "psnr" (dB, inf if identical),
    "lowpass_luma_psnr", "lowpass_chroma_psnr" (16×16 block means, dB; see
    ``lowpass_psnr``; omitted below 16 px), "ssim", "ms_ssim"}``; ``ms_ssim`` is omitted when the short side is below
    161 px. ``device=None``: CUDA when available, else CPU.

    ``ref``: ``prepare_reference(original)`` already on the metric device
    (e.g. ``prepare_reference(to_tensor(original).to(device))``), reused for
    SSIM / MS-SSIM across calls with the same original; the numbers are the
    same as without it. SSIM and MS-SSIM share their first scale (``ssim_and_ms_ssim``).

    ``lpips_refs``: {net: ``lpips_features(x, net, device)``}, x the original as
    one (1, 3, H, W) float tensor on the metric device, reused across calls
    with the same original: only the reconstruction goes through the network.
    The numbers are bit-for-bit those without it when x has the memory layout
    this function gives the original (which picks the convolution kernels):
    ``to_tensor(original, device)`` for a numpy image, the tensor itself for a
    tensor. A net of ``nets`` without an entry is computed in full; that the
    features are the original's is the caller's promise (their count, shapes
    and device are checked).
    """
    x, y = _as_batch(original), _as_batch(reconstructed)
    if x.shape != y.shape:
        raise ParameterError(f"image shapes differ: {tuple(x.shape[-2:])} vs {tuple(y.shape[-2:])}")
    dev = default_device(device)
    x, y = x.to(dev), y.to(dev)
    out: dict[str, float] = {}
    for net in nets:
        feats = None if lpips_refs is None else lpips_refs.get(net)
        if feats is None:
            out[f"lpips_{net}"] = float(lpips_distance(x, y, net=net, device=dev)[0])
        else:
            out[f"lpips_{net}"] = float(_lpips_with_reference(feats, y, net, dev)[0])
    out["psnr"] = float(psnr(x, y)[0])
    if min(x.shape[-2:]) >= 16:
        luma, chroma = lowpass_psnr(x, y, 16)
        out["lowpass_luma_psnr"], out["lowpass_chroma_psnr"] = float(luma[0]), float(chroma[0])
    if ref is not None and min(x.shape[-2:]) >= MS_SSIM_MIN_SIZE and ref.n_scales < len(MS_SSIM_WEIGHTS):
        raise ParameterError(f"image_metrics: ref has {ref.n_scales} scale(s); ms_ssim needs {len(MS_SSIM_WEIGHTS)}")
    s, ms = ssim_and_ms_ssim(x, y, ref=ref)
    out["ssim"] = float(s[0])
    if ms is not None:
        out["ms_ssim"] = float(ms[0])
    return out


def _lpips_with_reference(feats: Sequence[torch.Tensor], y: torch.Tensor, net: str, dev: torch.device) -> torch.Tensor:
    """LPIPS of y against the original's ``lpips_features``, after checking they fit y (count, shape, device)."""
    name = f"image_metrics: lpips_refs[{net!r}]"
    if isinstance(feats, torch.Tensor) or not all(isinstance(f, torch.Tensor) for f in feats):
        raise TypeError(f"{name} must be lpips_features(original, {net!r}): a list of tensors")
    want = torch.empty(0, device=dev).device  # "cuda" -> "cuda:0", as tensors report it
    if any(f.device != want for f in feats):
        raise ParameterError(f"{name} is on {feats[0].device}, the metrics run on {want} "
                             f"(lpips_features(original, {net!r}, device={str(want)!r}))")
    fy = lpips_features(y, net, dev)
    shapes = [tuple(f.shape) for f in feats]
    if len(feats) != len(fy) or any(s != (1, *f.shape[1:]) for s, f in zip(shapes, fy, strict=False)):
        raise ParameterError(f"{name} does not fit the image: its layers have shapes {shapes}, the reconstruction's "
                             f"{[tuple(f.shape) for f in fy]} (lpips_features of the (1, 3, H, W) original)")
    return lpips_from_features(list(feats), fy, net)
