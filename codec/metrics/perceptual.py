"""LPIPS distances: ``lpips_distance``, and the same forward split into ``lpips_features`` / ``lpips_from_features``.

Images are float (N, 3, H, W) in [0, 1], mapped to [-1, 1] inside; the
models come from ``codec.metrics.lpips_weights.get_lpips`` (offline weights).
"""
from __future__ import annotations

import torch

from ..errors import ParameterError
from ._inputs import check_pair, check_range, default_device
from .lpips_weights import check_net, get_lpips
from .specs import LPIPS_MIN_SIZE

__all__ = ["lpips_distance", "lpips_features", "lpips_from_features"]


def lpips_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    net: str = "alex",
    device: str | torch.device | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """LPIPS v0.1 distance per image pair, float32 (N,) on ``x.device``.

    Args:
        x, y: float (N, 3, H, W) (or (3, H, W)) in [0, 1], H, W ≥ 31 (alex) / 16 (vgg);
            mapped to [-1, 1] inside.
        net: 'alex' (the usual evaluation metric) or 'vgg' (the usual loss).
        device: where to run; None: x's device if it is CUDA, else CUDA when
            available, else CPU.
        batch_size: images per forward pass (bounds memory).

    Runs under ``torch.no_grad`` unless grad mode is on and x or y requires
    grad, in which case the result is differentiable w.r.t. the inputs.
    """
    x, y = check_pair(x, y, "lpips_distance")
    net = check_net(net)
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    H, W = x.shape[-2:]
    if min(H, W) < LPIPS_MIN_SIZE[net]:
        raise ParameterError(
            f"lpips_distance: images must be at least {LPIPS_MIN_SIZE[net]} px for net={net!r}, got {H}x{W}"
        )
    check_range(x.detach(), y.detach(), "lpips_distance")
    dev = x.device if (device is None and x.device.type == "cuda") else default_device(device)
    model = get_lpips(net, dev)
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    outs = []
    with torch.set_grad_enabled(grad):
        for lo in range(0, x.shape[0], batch_size):
            xb = x[lo : lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
            yb = y[lo : lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
            outs.append(model(xb, yb).reshape(-1))
    return torch.cat(outs).to(x.device)


@torch.no_grad()
def lpips_features(
    x: torch.Tensor, net: str = "alex", device: str | torch.device | None = None, batch_size: int = 8
) -> list[torch.Tensor]:
    """The unit-normalised LPIPS v0.1 features of images in [0, 1]: one (N, C_l, H_l, W_l) tensor per layer.

    ``lpips_from_features(lpips_features(x), lpips_features(y))`` is ``lpips_distance(x, y)``
    (the ``lpips`` package's forward, split in two), so a reference's features can be
    computed once and compared with many images, and one image's with several references.
    """
    net = check_net(net)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ParameterError(f"lpips_features: expected (N, 3, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < LPIPS_MIN_SIZE[net]:
        raise ParameterError(f"lpips_features: images must be at least {LPIPS_MIN_SIZE[net]} px for net={net!r}")
    check_range(x, x, "lpips_features")
    dev = x.device if (device is None and x.device.type == "cuda") else default_device(device)
    model = get_lpips(net, dev)
    import lpips

    chunks: list[list[torch.Tensor]] = []
    for lo in range(0, x.shape[0], batch_size):
        xb = x[lo : lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
        outs = model.net.forward(model.scaling_layer(xb))
        chunks.append([lpips.normalize_tensor(o) for o in outs])
    return [torch.cat([c[k] for c in chunks]) for k in range(len(chunks[0]))]


@torch.no_grad()
def lpips_from_features(f0: list[torch.Tensor], f1: list[torch.Tensor], net: str = "alex") -> torch.Tensor:
    """LPIPS (N,) from two ``lpips_features`` results; a batch of 1 on either side broadcasts."""
    import lpips

    model = get_lpips(check_net(net), f1[0].device)
    if len(f0) != len(f1) or len(f0) != len(model.lins):
        raise ParameterError(
            f"lpips_from_features: need {len(model.lins)} layers on both sides, got {len(f0)}, {len(f1)}"
        )
    val: torch.Tensor | int = 0
    for k, lin in enumerate(model.lins):
        val = val + lpips.spatial_average(lin((f0[k] - f1[k]) ** 2), keepdim=True)
    assert isinstance(val, torch.Tensor)  # model.lins is never empty
    return val.reshape(-1)
