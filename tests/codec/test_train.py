"""codec.train: a tiny VQGAN trains on real photo crops, checkpoints, resumes, freezes parts."""
from __future__ import annotations

import json

import pytest
import torch

from codec.image import save_image
from codec.train import NLayerDiscriminator, TrainConfig, adaptive_weight, hinge_d_loss, train_codec

TINY = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[], z_channels=8, embed_dim=8, n_embed=16,
            resolution=32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, kodim01):
    d = tmp_path_factory.mktemp("train")
    for i, (y, x) in enumerate([(0, 0), (200, 300), (400, 600)]):
        save_image(d / f"crop{i}.png", kodim01[y:y + 96, x:x + 96])
    return d


def _cfg(out, data_dir, steps, **kw):
    return TrainConfig(data=[str(data_dir)], val=None, out=str(out), model=TINY, steps=steps, batch_size=4, crop=32,
                       lr=2e-3, warmup=1, perceptual_weight=0.0, log_every=5, ckpt_every=5, restart_every=10,
                       seed=0, device="cpu", **kw)


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_loss_falls_and_resume_continues(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 20), log=lambda *_: None)
    rows = _log(out)
    assert rows[-1]["step"] == 20
    assert rows[-1]["rec"] < rows[0]["rec"]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["step"] == 20
    train_codec(_cfg(out, data_dir, 30), log=lambda *_: None)  # resumes at 20, runs 10 more
    rows = _log(out)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]


def test_freeze_keeps_encoder_and_codebook(tmp_path, data_dir):
    out = tmp_path / "run"
    train_codec(_cfg(out, data_dir, 5), log=lambda *_: None)
    before = torch.load(out / "last.pt", weights_only=True)["model"]
    train_codec(_cfg(out, data_dir, 10, freeze=["encoder", "quant_conv", "quantize"]), log=lambda *_: None)
    after = torch.load(out / "last.pt", weights_only=True)["model"]
    for k in before:
        same = torch.equal(before[k], after[k])
        if k.startswith(("encoder.", "quant_conv.", "quantize.")):
            assert same, k
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    with pytest.raises(ValueError, match="freeze"):
        train_codec(_cfg(out, data_dir, 11, freeze=["encodr"]), log=lambda *_: None)


def test_gan_pieces():
    torch.manual_seed(0)
    d = NLayerDiscriminator(n_layers=2)
    x = torch.randn(2, 3, 32, 32)
    assert d(x).ndim == 4
    # hinge: perfect separation (real ≥ 1, fake ≤ −1) costs nothing
    assert float(hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0
    w = torch.nn.Parameter(torch.randn(3, 3))
    rec, g = (w ** 2).sum(), (3 * w).sum()
    lam = adaptive_weight(rec, g, w, 1.0)
    assert torch.isclose(lam, torch.norm(2 * w.detach()) / (torch.norm(torch.full((3, 3), 3.0)) + 1e-4))
