"""Input checks shared by the metrics: image-pair shape / dtype, the [0, 1] pixel range, the default device.

Images are float tensors (N, 3, H, W) (a single (3, H, W) is promoted to a
batch of one) with values in [0, 1].
"""
from __future__ import annotations

import torch

from ..errors import ParameterError


def default_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device``; None: CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) as equal-shaped float batches (N ≥ 1, 3, H, W); TypeError / ParameterError naming ``name`` otherwise."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name}: x and y must be torch tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if y.ndim == 3:
        y = y.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ParameterError(f"{name}: expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape != y.shape:
        raise ParameterError(f"{name}: x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise ParameterError(f"{name}: empty batch")
    if not (x.is_floating_point() and y.is_floating_point()):
        raise TypeError(f"{name}: expected float tensors in [0, 1], got {x.dtype}, {y.dtype}")
    return x, y


def check_range(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    """ParameterError unless every pixel of x and y lies in [0, 1] (± 1e-6)."""
    lo = min(float(x.min()), float(y.min()))
    hi = max(float(x.max()), float(y.max()))
    if not (lo >= -1e-6 and hi <= 1.0 + 1e-6):
        raise ParameterError(f"{name}: pixel values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
