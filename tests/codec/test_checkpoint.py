"""Checkpoint loading: project format, official Lightning layout, clear errors for bad files."""
from __future__ import annotations

import pytest
import torch

from codec.checkpoint import load_vqgan, save_vqgan
from codec.errors import CheckpointError
from codec.vqgan import VQModel


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "taming_golden.pt", weights_only=True)["vqgan"]


def _indices(model, x):
    with torch.no_grad():
        return model.encode(x)[2]


def test_lightning_checkpoint_with_loss_keys(tmp_path, golden):
    sd = dict(golden["state_dict"])
    sd["loss.perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    sd["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": sd, "global_step": 10}, path)
    cfg = {k: v for k, v in golden["config"].items()}
    model, extras = load_vqgan(path, config=cfg)
    assert torch.equal(_indices(model, golden["input"]), golden["expected_indices"].long())
    # without a config it is inferred from the shapes (attention placed relative to resolution 256):
    # the same modules at the same levels, so the same indices
    model2, _ = load_vqgan(path)
    assert model2.config.ch_mult == model.config.ch_mult and model2.config.n_embed == 16
    assert torch.equal(_indices(model2, golden["input"]), golden["expected_indices"].long())


def test_transformer_checkpoint_first_stage_prefix(tmp_path, golden):
    sd = {f"first_stage_model.{k}": v for k, v in golden["state_dict"].items()}
    sd["transformer.tok_emb.weight"] = torch.zeros(16, 8)
    path = tmp_path / "net2net.ckpt"
    torch.save({"state_dict": sd}, path)
    model, _ = load_vqgan(path, config=dict(golden["config"]))
    assert torch.equal(_indices(model, golden["input"]), golden["expected_indices"].long())


def test_project_format_roundtrip_fp32_and_fp16(tmp_path, golden):
    model = VQModel(golden["config"]).eval()
    model.load_state_dict(golden["state_dict"])
    p32 = save_vqgan(tmp_path / "m32.pt", model, half=False, priors={16: torch.arange(16)}, meta={"steps": 3})
    m32, ex = load_vqgan(p32)
    assert torch.equal(_indices(m32, golden["input"]), golden["expected_indices"].long())
    assert ex["meta"]["steps"] == 3 and torch.equal(ex["priors"][16], torch.arange(16))
    p16 = save_vqgan(tmp_path / "m16.pt", model, half=True)
    assert p16.stat().st_size < p32.stat().st_size
    m16, _ = load_vqgan(p16)
    assert next(m16.parameters()).dtype == torch.float32  # stored fp16, computed in fp32


def test_missing_and_mismatched_keys_are_named(tmp_path, golden):
    sd = dict(golden["state_dict"])
    del sd["decoder.conv_out.bias"]
    sd["quantize.embedding.weight"] = torch.zeros(32, 8)
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError) as e:
        load_vqgan(path, config=dict(golden["config"]))
    msg = str(e.value)
    assert "decoder.conv_out.bias" in msg and "missing" in msg
    assert "quantize.embedding.weight" in msg and "shape mismatch" in msg


def test_truncated_and_foreign_files(tmp_path, golden):
    model = VQModel(golden["config"])
    good = save_vqgan(tmp_path / "good.pt", model)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_vqgan(trunc)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_vqgan(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="no VQGAN autoencoder keys"):
        load_vqgan(other)
    with pytest.raises(FileNotFoundError):
        load_vqgan(tmp_path / "absent.ckpt")


def test_pickled_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": Evil()}}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError):
        load_vqgan(path)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("kind", ["vqgan", "transformer"])
def test_config_bomb_is_refused_before_anything_is_allocated(tmp_path, kind):
    """Issue 27 item 3: a file's config (ch 4096 / a 65,536-token window) with an empty state_dict made the
    loader build the model first: 4–24 GB, then an 'internal error'. Now its shapes are checked on the meta
    device first: a CheckpointError, and no model-sized allocation."""
    import time

    from codec.conceal import load_transformer
    from codec.vqgan import VQGANConfig

    path = tmp_path / "bomb.pt"
    if kind == "vqgan":
        torch.save({"format": "vqsim-vqgan", "version": 1, "config": VQGANConfig(ch=4096).to_dict(),
                    "state_dict": {}}, path)
        small = {"format": "vqsim-vqgan", "version": 1, "config": VQGANConfig(ch=256).to_dict(), "state_dict": {}}
        load = load_vqgan
    else:
        torch.save({"format": "vqsim-transformer-1", "state_dict": {}, "meta": {},
                    "config": dict(vocab_size=1025, block_size=1 << 16, n_layer=4, n_head=4, n_embd=128)}, path)
        small = {"format": "vqsim-transformer-1", "state_dict": {}, "meta": {},
                 "config": dict(vocab_size=1025, block_size=1 << 13, n_layer=4, n_head=4, n_embd=128)}
        load = load_transformer
    with pytest.raises(CheckpointError, match="elements, more than"):
        load(path)
    # within the size bound (≈ 1 GB as float32) but not matching its weights: refused by the shape check
    torch.save(small, path)
    rss0, t = _peak_rss_mb(), time.perf_counter()
    with pytest.raises(CheckpointError, match="missing keys"):
        load(path)
    assert _peak_rss_mb() - rss0 < 300 and time.perf_counter() - t < 5  # was ≈ 1.1 GB allocated first


def test_random_bytes_are_not_called_python_objects(tmp_path):
    import numpy as np

    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError) as e:
        load_vqgan(path)
    assert "Python objects" not in str(e.value) and "weights_only=False" not in str(e.value)
    assert "not a PyTorch checkpoint" in str(e.value)
