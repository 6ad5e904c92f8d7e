"""The SSIM / MS-SSIM of vqsim before 2026-12-02 (float64, every statistic filtered per comparison).

Kept as a baseline, not used by the library: ``vqsim bench``'s trial section
times the old code path with it, and ``tests/codec/test_metrics.py`` checks
that ``codec.metrics`` (float32, centred planes, references prepared once)
agrees with it to 1e-5.
"""
from __future__ import annotations

import torch

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

__all__ = ["ssim64", "ms_ssim64", "ssim_maps64"]


def _filter64(img: torch.Tensor) -> torch.Tensor:
    """The former float64 'valid' separable Gaussian filter (11 taps, σ = 1.5), columns first."""
    t = torch.arange(-5, 6, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    taps = [float(v) for v in g / g.sum()]
    n, W = len(taps), img.shape[-1]
    out = img[..., 0: W - n + 1] * taps[0]
    for k in range(1, n):
        out.add_(img[..., k: k + W - n + 1], alpha=taps[k])
    H = out.shape[-2]
    res = out[..., 0: H - n + 1, :] * taps[0]
    for k in range(1, n):
        res.add_(out[..., k: k + H - n + 1, :], alpha=taps[k])
    return res


def ssim_maps64(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The former float64 SSIM / cs channel means (N, 3): all five statistics filtered per comparison."""
    C1, C2 = 0.01**2, 0.03**2
    mu_x, mu_y, exx, eyy, exy = _filter64(torch.stack([x, y, x * x, y * y, x * y])).unbind(0)
    sxx, syy, sxy = exx - mu_x * mu_x, eyy - mu_y * mu_y, exy - mu_x * mu_y
    cs = (2 * sxy + C2) / (sxx + syy + C2)
    lum = (2 * mu_x * mu_y + C1) / (mu_x * mu_x + mu_y * mu_y + C1)
    return (lum * cs).mean((-2, -1)), cs.mean((-2, -1))


def ssim64(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM (N,) of (N, 3, H, W) images in [0, 1], float64."""
    return ssim_maps64(x.double(), y.double())[0].mean(1)


def ms_ssim64(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM (N,) over 5 scales (2×2 average pooling), float64."""
    x, y = x.double(), y.double()
    vals = []
    for j in range(5):
        s, cs = ssim_maps64(x, y)
        vals.append((s if j == 4 else cs).mean(1).clamp_min(0.0))
        x = torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True)
        y = torch.nn.functional.avg_pool2d(y, 2, ceil_mode=True)
    return torch.prod(torch.stack(vals, 1) ** torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64), dim=1)
