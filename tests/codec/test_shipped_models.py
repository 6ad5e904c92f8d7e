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

# kodim01 (768×512): bpp of the arith bitstream (header included) and LPIPS-Alex vs the original
CARD_CODEC = {1024: (0.0317, 0.493), 64: (0.0216, 0.493), 8: (0.0104, 0.492)}


@pytest.fixture(scope="module")
def kodim01_t(kodim01):
    return torch.from_numpy(kodim01).permute(2, 0, 1)[None].float() / 255


def test_default_model_is_registered_and_small():
    (m,) = [m for m in list_models() if m["name"] == "default"]
    assert m["present"]
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.glob("*.pt"))
    assert total <= 25e6, f"shipped weights {total / 1e6:.1f} MB exceed the 25 MB budget"


@pytest.mark.parametrize("size", sorted(CARD_CODEC))
def test_codec_matches_model_card(size, kodim01, kodim01_t):
    bpp_card, lpips_card = CARD_CODEC[size]
    codec = load_codec("default", size, device="cpu")
    data = codec.compress(kodim01)
    bpp = bits_per_pixel(len(data), kodim01.shape[:2])
    assert bpp == pytest.approx(bpp_card, rel=0.03)
    rec = codec.decode_indices_tensor(codec.decompress_indices(data))
    lp = float(lpips_distance(kodim01_t, rec, net="alex")[0])
    assert lp == pytest.approx(lpips_card, abs=0.01)


# kodim01 at K=1024, 20 % of the indices lost (random_loss_mask, seed 0): LPIPS-Alex of the
# concealed reconstruction vs the loss-free one, per method (model card, concealment)
CARD_CONCEAL_20 = {"ar": 0.0407, "bidir": 0.0402, "latent_avg": 0.0398, "neighbor": 0.0423, "mean": 0.0475}


@pytest.mark.parametrize("kind", ["ar", "bidir"])
def test_concealers_load_by_name(kind):
    model = load_concealer("default", 1024, kind)
    assert model.config.vocab_size == 1025 and model.config.block_size == 256
    assert model.config.causal == (kind == "ar")
    assert model.meta["codebook_size"] == 1024


@pytest.mark.parametrize("method", sorted(CARD_CONCEAL_20))
def test_concealment_matches_model_card(method, kodim01):
    from codec.conceal import conceal, random_loss_mask

    codec = load_codec("default", device="cpu")
    imap = codec.encode_indices(kodim01)
    lost = random_loss_mask(imap.shape, 0.2, np.random.default_rng(0))
    model = load_concealer("default", 1024, method) if method in ("ar", "bidir") else None
    filled = conceal(imap, lost, method, model=model, codebook=codec.codebook)
    assert np.array_equal(filled.indices[~lost], imap.indices[~lost])  # received indices untouched
    lossfree = codec.decode_indices_tensor(imap)
    lp = float(lpips_distance(lossfree, codec.decode_indices_tensor(filled), net="alex")[0])
    assert lp == pytest.approx(CARD_CONCEAL_20[method], abs=0.01)
