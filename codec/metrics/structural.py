"""Structural similarity: SSIM and MS-SSIM (float32, centred planes), with references prepared once.

Images are float tensors (N, 3, H, W) in [0, 1]; ``ssim`` / ``ms_ssim`` /
``ssim_and_ms_ssim`` return float64 (N,). ``prepare_reference(x)`` computes
the reference's local statistics once (``SSIMReference``) for comparisons with
many decoded images; the numbers are bit-for-bit those without it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ParameterError

__all__ = [
    "MS_SSIM_WEIGHTS", "MS_SSIM_MIN_SIZE", "ssim", "ms_ssim", "ssim_and_ms_ssim", "SSIMReference",
    "prepare_reference",
]

from .specs import MS_SSIM_MIN_SIZE, MS_SSIM_WEIGHTS, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WIN  # noqa: F401


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


def _wanted(t: torch.Tensor | None) -> torch.Tensor:
    """A map ``_compare_scale`` was asked for (never None)."""
    assert t is not None
    return t


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
    s1 = _wanted(s1).double().mean(1)
    if n_scales == 1:
        return s1, None
    vals = [_wanted(cs).double().mean(1).clamp_min(0.0)]
    for j in range(1, n_scales):
        y = F.avg_pool2d(y, 2, ceil_mode=True)
        s, cs = _compare_scale(scales[j], y, C1, C2, want_s=j == last, want_cs=j < last)
        vals.append(_wanted(s if j == last else cs).double().mean(1).clamp_min(0.0))
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
