"""The metrics' fixed parameters, torch-free: LPIPS backbones and their smallest input, SSIM window and MS-SSIM scales.

Config validation and the sweep's image checks read these without loading
torch (``import codec.metrics.specs`` costs only the package's lazy
``__init__``).
"""
from __future__ import annotations

__all__ = ["LPIPS_NETS", "LPIPS_MIN_SIZE", "MS_SSIM_WEIGHTS", "SSIM_WIN", "SSIM_SIGMA", "SSIM_K1", "SSIM_K2",
           "MS_SSIM_MIN_SIZE"]

LPIPS_NETS = ("alex", "vgg")
"""LPIPS v0.1 backbones shipped offline (AlexNet, VGG16)."""

LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
"""Smallest H and W (px) each backbone accepts (AlexNet: 11×11/4 conv + two 3×3/2 pools)."""

# Wang, Simoncelli & Bovik 2003, Table/eq. for 5 scales
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WIN = 11
"""Side (px) of the Gaussian SSIM window; also the smallest image side SSIM accepts."""
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# 161 -> 81 -> 41 -> 21 -> 11: the coarsest of 5 scales still holds one 11×11 window
MS_SSIM_MIN_SIZE = (SSIM_WIN - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1
