"""Conformance of codec.vqgan with taming-transformers (reference data in ../shared/reference)."""
from __future__ import annotations

import json

import pytest
import torch

from codec.vqgan import VQGANConfig, VQModel, infer_config_from_state_dict


@pytest.fixture(scope="module")
def golden(reference_dir):
    return torch.load(reference_dir / "taming_golden.pt", weights_only=True)["vqgan"]


@pytest.mark.parametrize("name", ["vqgan_imagenet_f16_16384", "vqgan_imagenet_f16_1024"])
def test_official_configs_have_exact_keys_and_shapes(reference_dir, name):
    ref = json.loads((reference_dir / "taming_state_dict_shapes.json").read_text())[name]
    model = VQModel(ref["config"])
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert set(got) == set(ref["state_dict_shapes"])
    assert got == ref["state_dict_shapes"]


def test_golden_forward_matches_reference(golden):
    model = VQModel(golden["config"]).eval()
    model.load_state_dict(golden["state_dict"], strict=True)
    with torch.no_grad():
        h = model.encode_pre_quant(golden["input"])
        z_q, _, idx = model.quantize(h)
        dec = model.decode(z_q)
    assert torch.equal(idx, golden["expected_indices"].to(idx.dtype))
    assert torch.allclose(h, golden["expected_h"], atol=1e-5, rtol=0)
    assert torch.allclose(z_q, golden["expected_zq"], atol=1e-5, rtol=0)
    assert torch.allclose(dec, golden["expected_decoded"], atol=1e-5, rtol=0)
    # decoding straight from indices gives the same pixels
    with torch.no_grad():
        assert torch.allclose(model.decode_indices(idx), golden["expected_decoded"], atol=1e-5, rtol=0)


def test_config_inferred_from_state_dict(golden):
    cfg = infer_config_from_state_dict(golden["state_dict"], resolution=golden["config"]["resolution"])
    ref = {k: v for k, v in golden["config"].items()}
    assert cfg.to_dict() == VQGANConfig.from_dict(ref).to_dict()


def test_invalid_config_is_rejected():
    with pytest.raises(ValueError, match="multiple of 32"):
        VQGANConfig(ch=48)
    with pytest.raises(ValueError, match="unknown VQGAN config keys"):
        VQGANConfig.from_dict({"ch": 32, "chmult": [1, 2]})
    with pytest.raises(ValueError, match="n_embed"):
        VQGANConfig(n_embed=1)


def test_with_codebook_shares_encoder_and_decoder(golden):
    model = VQModel(golden["config"]).eval()
    model.load_state_dict(golden["state_dict"])
    small = model.with_codebook(model.quantize.embedding.weight[:4].detach())
    assert small.codebook_size == 4
    assert small.encoder is model.encoder and small.decoder is model.decoder
    with torch.no_grad():
        idx = small.encode(golden["input"])[2]
    assert int(idx.max()) < 4
    with pytest.raises(ValueError):
        model.with_codebook(torch.zeros(4, 3))
