"""VQGANCodec: image ⇄ IndexMap ⇄ bytes with a small real model (the taming golden VQGAN)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.api import VQGANCodec
from codec.checkpoint import save_vqgan
from codec.errors import BitstreamError
from codec.types import IndexMap
from codec.vqgan import VQModel


@pytest.fixture(scope="module")
def tiny_model(reference_dir):
    g = torch.load(reference_dir / "taming_golden.pt", weights_only=True)["vqgan"]
    m = VQModel(g["config"]).eval()
    m.load_state_dict(g["state_dict"])
    return m


@pytest.fixture(scope="module")
def codec(tiny_model):
    return VQGANCodec(tiny_model, name="golden", device="cpu")


@pytest.fixture(scope="module")
def photo(kodim01):
    return np.ascontiguousarray(kodim01[100:137, 200:253])  # 37×53: not a multiple of f=2


def test_encode_decode_any_size(codec, photo):
    imap = codec.encode_indices(photo)
    assert imap.image_size == (37, 53) and imap.shape == (19, 27)
    assert imap.codebook_size == 16 and imap.codebook_id == "golden/16"
    rec = codec.decode_indices(imap)
    assert rec.shape == photo.shape and rec.dtype == np.uint8


@pytest.mark.parametrize("coder", ["raw", "deflate", "arith"])
def test_compress_roundtrip_is_lossless_at_index_level(codec, photo, coder):
    data = codec.compress(photo, coder=coder)
    assert isinstance(data, bytes)
    imap = codec.encode_indices(photo)
    assert codec.decompress_indices(data) == imap
    assert np.array_equal(codec.decompress(data), codec.decode_indices(imap))


def test_batch_matches_single(codec, kodim01):
    imgs = [np.ascontiguousarray(kodim01[y:y + 32, 64:112]) for y in (0, 40, 80)]
    maps = codec.encode_many(imgs)
    for im, m in zip(imgs, maps, strict=True):
        assert codec.encode_indices(im) == m


def test_foreign_and_corrupt_bitstreams(codec, photo, tiny_model):
    data = codec.compress(photo)
    other = VQGANCodec(
        tiny_model.with_codebook(tiny_model.quantize.embedding.weight[:8].detach()), name="golden", device="cpu"
    )
    with pytest.raises(BitstreamError, match="codebook size"):
        other.decompress(data)
    renamed = VQGANCodec(tiny_model, name="other", device="cpu")
    with pytest.raises(BitstreamError, match="codebook"):
        renamed.decompress(data)
    with pytest.raises(BitstreamError):
        codec.decompress(data[: len(data) // 2])
    with pytest.raises(BitstreamError):
        codec.decompress(b"\x00" * 40)
    bad = IndexMap(np.zeros((3, 3), np.int32), 16, (37, 53), "golden/16")
    with pytest.raises(BitstreamError, match="does not fit"):
        codec.decode_indices(bad)


def test_zoo_loads_path_with_reduced_codebook(tmp_path, tiny_model, photo):
    from codec.zoo import load_codec

    p = save_vqgan(tmp_path / "tiny.pt", tiny_model, half=False)
    full = load_codec(p, device="cpu")
    assert full.codebook_size == 16 and full.name == "tiny"
    small = load_codec(p, 4, device="cpu")
    assert small.codebook_size == 4
    imap = small.encode_indices(photo)
    assert int(imap.indices.max()) < 4
    again = load_codec(p, 4, device="cpu")  # deterministic K-means
    assert np.array_equal(again.codebook, small.codebook)
    with pytest.raises(ValueError, match="codebook_size"):
        load_codec(p, 32, device="cpu")


def test_unknown_model_is_a_clear_error():
    from codec.errors import ModelNotFoundError
    from codec.zoo import load_codec

    with pytest.raises(ModelNotFoundError, match="unknown model"):
        load_codec("no-such-model")


def test_loaded_codecs_are_independent(tmp_path, tiny_model):
    """Two codecs of one file share no module: moving, training or changing one leaves the other."""
    from codec.checkpoint import save_vqgan
    from codec.zoo import load_codec

    p = save_vqgan(tmp_path / "tiny.pt", tiny_model)
    a, b = load_codec(p, device="cpu"), load_codec(p, device="cpu")
    small_a, small_b = load_codec(p, 4, device="cpu"), load_codec(p, 4, device="cpu")
    assert a.model is not b.model and a.model.decoder is not b.model.decoder
    assert small_a.model.encoder is not small_b.model.encoder and small_a.model.encoder is not a.model.encoder
    ref = {k: v.clone() for k, v in b.model.state_dict().items()}
    with torch.no_grad():
        for q in a.model.parameters():
            q.add_(1.0)
    a.model.train()
    a.model.to(torch.float64)
    assert not b.model.training and not small_b.model.training
    assert all(torch.equal(ref[k], v) for k, v in b.model.state_dict().items())
    assert next(b.model.parameters()).dtype == torch.float32
    assert next(small_a.model.encoder.parameters()).dtype == torch.float32
    # and a fresh load still gives the file's weights
    c = load_codec(p, device="cpu")
    assert all(torch.equal(ref[k], v) for k, v in c.model.state_dict().items())


def test_bitstream_codebook_id_never_names_a_file(tmp_path):
    from codec.errors import BitstreamError
    from codec.zoo import model_for_bitstream

    assert model_for_bitstream("default/256") == "default"
    assert model_for_bitstream("/etc/passwd/8", model="default") == "default"  # the receiver's choice wins
    for cid in ("/etc/passwd/8", str(tmp_path / "evil.pt") + "/16", "../x/4", None, ""):
        with pytest.raises(BitstreamError, match="not a registered model|names no codebook"):
            model_for_bitstream(cid)


def test_decompress_checks_shape_and_limits_before_decoding(codec, photo):
    from codec.limits import DecodeLimits, LimitExceededError

    data = codec.compress(photo)
    with pytest.raises(LimitExceededError, match="max_pixels"):
        codec.decompress(data, limits=DecodeLimits(max_pixels=100))
    assert codec.decompress_indices(data, limits=DecodeLimits(max_pixels=photo.shape[0] * photo.shape[1])) is not None


def test_bf16_autocast_on_cpu_is_opt_in_and_close(codec, photo, tiny_model):
    """bf16 autocast runs on CPU when asked for; fp32 (the default) is unaffected; pixels stay close."""
    bf = VQGANCodec(tiny_model, name="golden", device="cpu", autocast="bf16")
    m = codec.encode_indices(photo)
    x32 = codec.decode_indices_tensor(m)
    x16 = bf.decode_indices_tensor(m)
    assert x16.dtype == torch.float32 and x16.shape == x32.shape
    assert not torch.equal(x16, x32)  # bf16 really ran
    assert float((x16 - x32).abs().mean()) < 0.02
    assert torch.equal(codec.decode_indices_tensor(m), x32)  # and left the fp32 codec alone


def test_encode_refuses_images_over_the_pixel_limit(codec, photo):
    """Issue 27 item 4: an array of any size went to the encoder (a 10000² image: 12.8 GB)."""
    from codec.limits import DecodeLimits, LimitExceededError

    small = DecodeLimits(max_pixels=37 * 53 - 1)
    for call in (
        lambda: codec.encode_indices(photo, limits=small),
        lambda: codec.compress(photo, limits=small),
        lambda: codec.encode_batch(torch.zeros(1, 3, 37, 53), limits=small),
    ):
        with pytest.raises(LimitExceededError, match="max_pixels"):
            call()
    big = np.zeros((1500, 1500, 3), np.uint8)  # 2.25 Mpx > the default 2^21: refused before any copy
    with pytest.raises(LimitExceededError, match="1500x1500"):
        codec.encode_indices(big)
    assert codec.encode_indices(photo, limits=DecodeLimits(max_pixels=37 * 53)).shape == (19, 27)
