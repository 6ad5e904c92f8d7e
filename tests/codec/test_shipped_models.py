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
