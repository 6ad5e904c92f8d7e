"""Fixtures of the sweep tests: a tiny real codec and tiny real images.

The codec is the taming-transformers golden VQGAN (f = 2, K = 16) saved in the
project format; the images are 32×48 crops of Kodak photos (LPIPS AlexNet
needs ≥ 31 px), so a trial costs milliseconds.
"""
from __future__ import annotations

import copy

import pytest


@pytest.fixture(scope="session")
def tiny_codec_path(tmp_path_factory, reference_dir):
    import torch

    from codec.checkpoint import save_vqgan
    from codec.vqgan import VQModel

    g = torch.load(reference_dir / "taming_golden.pt", weights_only=True)["vqgan"]
    model = VQModel(g["config"]).eval()
    model.load_state_dict(g["state_dict"])
    return save_vqgan(tmp_path_factory.mktemp("codec") / "tiny.pt", model)


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory, kodak_dir):
    from codec.image import load_image, save_image

    folder = tmp_path_factory.mktemp("images")
    for name, (y, x) in (("kodim01", (200, 300)), ("kodim03", (150, 250))):
        save_image(folder / f"{name}.png", load_image(kodak_dir / f"{name}.png")[y:y + 32, x:x + 48])
    return folder


@pytest.fixture(scope="session")
def tiny_config(tiny_codec_path, tiny_images):
    """A small but complete sweep: 2 images × 2 codebook sizes × (index loss + packet channels) × 2 FEC × 2 seeds."""
    cfg = {
        "name": "tiny",
        "images": {"source": str(tiny_images)},
        "codec": {"model": str(tiny_codec_path), "codebook_sizes": [16, 8], "coder": "arith", "device": "cpu"},
        "channels": [
            {"model": "index_loss", "rate": [0.0, 0.3]},
            {"model": "bernoulli", "p": [0.2]},
            {"model": "gilbert_elliott", "loss_rate": [0.2], "mean_burst": [4]},  # vs Bernoulli: burst 1.25
        ],
        "fec": ["none", {"n": 6, "k": 4}],
        "packetization": {"mtu": [24], "interleave": ["random"], "coder": ["raw"]},
        "concealment": {"methods": ["latent_avg", "neighbor", "none"]},
        "seeds": [0, 1],
        "metrics": {"nets": ["alex"], "device": "cpu"},
        "execution": {"flush_every_s": 0.0},
    }
    return lambda: copy.deepcopy(cfg)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory, tiny_config):
    """One uninterrupted run of ``tiny_config()`` (one part file per unit: flush_every_s = 0), shared by the
    modules that compare with it (test_sweep, test_sweep_faults). Read-only: a test that writes into a results
    folder works on a copy of ``tiny_sweep.out``."""
    from experiments.sweep import run_sweep

    out = tmp_path_factory.mktemp("tiny_sweep") / "tiny"
    return run_sweep(tiny_config(), out, progress=False, log=lambda *_a: None)
