"""The shipped models load by name and reproduce the README model card on a Kodak image.

The expected numbers are the model card's (README, "Model card"), measured with
`vqsim eval` / the concealment sweep on kodim01; the tolerances allow for
float differences between CPUs / BLAS builds, not for a different model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.bitstream import bits_per_pixel
from codec.metrics import lpips_distance
from codec.zoo import WEIGHTS_DIR, list_models, load_codec, load_concealer

# kodim01 (768×512): bpp of the arith bitstream (header included) and LPIPS-Alex vs the original,
# per (codebook size, variant); "finetuned" decodes the same bitstream as "kmeans" (w/o fine-tune)
CARD_CODEC = {(1024, "trained"): (0.0317, 0.486), (128, "kmeans"): (0.0243, 0.485), (128, "finetuned"): (0.0243, 0.482),
              (8, "kmeans"): (0.0104, 0.482), (8, "finetuned"): (0.0104, 0.481)}
FINETUNED_SIZES = [512, 256, 128, 64, 32, 16, 8]
CONCEALER_SIZES = [1024, 128]


@pytest.fixture(scope="module")
def kodim01_t(kodim01):
    return torch.from_numpy(kodim01).permute(2, 0, 1)[None].float() / 255


def test_default_model_is_registered_and_small():
    (m,) = [m for m in list_models() if m["name"] == "default"]
    assert m["present"]
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.pt"))
    assert total <= 25e6, f"shipped weights {total / 1e6:.1f} MB exceed the 25 MB budget"


@pytest.mark.parametrize("size,variant", sorted(CARD_CODEC))
def test_codec_matches_model_card(size, variant, kodim01, kodim01_t):
    bpp_card, lpips_card = CARD_CODEC[(size, variant)]
    codec = load_codec("default", size, device="cpu", finetuned={"trained": None, "kmeans": False, "finetuned": True}[variant])
    assert codec.variant == variant
    data = codec.compress(kodim01)
    bpp = bits_per_pixel(len(data), kodim01.shape[:2])
    assert bpp == pytest.approx(bpp_card, rel=0.03)
    rec = codec.decode_indices_tensor(codec.decompress_indices(data))
    lp = float(lpips_distance(kodim01_t, rec, net="alex")[0])
    assert lp == pytest.approx(lpips_card, abs=0.01)


def test_every_reduced_size_ships_a_finetuned_decoder():
    from codec.zoo import _load_base, resolve_model_path

    _, extras = _load_base(str(resolve_model_path("default")[1]), None)
    assert sorted(extras["decoders"]) == sorted(FINETUNED_SIZES)
    assert sorted(int(s) for s in extras["meta"]["finetune"]) == sorted(FINETUNED_SIZES)
    for s in FINETUNED_SIZES:
        assert load_codec("default", s, device="cpu").variant == "finetuned"  # the default for reduced sizes


# kodim01, 20 % of the indices lost (random_loss_mask, seed 0): LPIPS-Alex of the concealed
# reconstruction vs the loss-free one, per (codebook size, method) (model card, concealment)
CARD_CONCEAL_20 = {
    (1024, "ar"): 0.0510, (1024, "ar_mean"): 0.0441, (1024, "bidir"): 0.0512, (1024, "bidir_mean"): 0.0469,
    (1024, "latent_avg"): 0.0454, (1024, "neighbor"): 0.0501, (1024, "mean"): 0.0594,
    (128, "ar"): 0.0533, (128, "ar_mean"): 0.0440, (128, "bidir"): 0.0450, (128, "bidir_mean"): 0.0448,
    (128, "latent_avg"): 0.0429, (128, "neighbor"): 0.0478, (128, "mean"): 0.0588,
}


@pytest.mark.parametrize("size", CONCEALER_SIZES)
@pytest.mark.parametrize("kind", ["ar", "bidir"])
def test_concealers_load_by_name(kind, size):
    model = load_concealer("default", size, kind)
    assert model.config.vocab_size == size + 1 and model.config.block_size == 256
    assert model.config.causal == (kind == "ar")
    assert model.meta["codebook_size"] == size


@pytest.mark.parametrize("size,method", sorted(CARD_CONCEAL_20))
def test_concealment_matches_model_card(size, method, kodim01):
    from codec.conceal import MODEL_KIND, conceal, random_loss_mask

    codec = load_codec("default", size, device="cpu")
    imap = codec.encode_indices(kodim01)
    lost = random_loss_mask(imap.shape, 0.2, np.random.default_rng(0))
    model = load_concealer("default", size, MODEL_KIND[method]) if method in MODEL_KIND else None
    filled = conceal(imap, lost, method, model=model, codebook=codec.codebook)
    assert np.array_equal(filled.indices[~lost], imap.indices[~lost])  # received indices untouched
    lossfree = codec.decode_indices_tensor(imap)
    lp = float(lpips_distance(lossfree, codec.decode_indices_tensor(filled), net="alex")[0])
    assert lp == pytest.approx(CARD_CONCEAL_20[(size, method)], abs=0.01)
