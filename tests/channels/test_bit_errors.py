"""Bit-error channels: BSC and bit-level Gilbert-Elliott."""
from __future__ import annotations

import numpy as np
import pytest

from channels import BinarySymmetric, GilbertElliottBitError
from channels.stats import mean_burst_length


def test_bsc_bit_error_rate():
    m = BinarySymmetric(0.01)
    mask, st = m.error_mask(1_000_000, np.random.default_rng(21))
    assert st is None and mask.shape == (1_000_000,)
    assert abs(mask.mean() / 0.01 - 1) < 0.02


def test_bursty_bits_rate_and_clustering():
    m = GilbertElliottBitError(p=0.002, r=0.05, ber_good=1e-4, ber_bad=0.2)
    mask, _ = m.error_mask(2_000_000, np.random.default_rng(22))
    ber = m.stationary_bit_error_rate
    pb = 0.002 / 0.052
    assert ber == pytest.approx(1e-4 * (1 - pb) + 0.2 * pb)
    assert abs(mask.mean() / ber - 1) < 0.02
    assert abs(mean_burst_length(mask) / m.mean_burst_length - 1) < 0.02
    # errors cluster: the next bit after an error is far more likely flipped than on average
    after_error = mask[1:][mask[:-1]].mean()
    assert after_error > 10 * ber


def test_ge_bits_chunked_equals_single_call():
    m = GilbertElliottBitError(1e-3, 0.05, 1e-5, 0.1)
    whole, _ = m.error_mask(100_000, np.random.default_rng(3))
    rng, st, parts = np.random.default_rng(3), None, []
    for k in (8, 1000, 30_000, 68_992):
        x, st = m.error_mask(k, rng, st)
        parts.append(x)
    assert np.array_equal(np.concatenate(parts), whole)


def test_corrupt_flips_exactly_the_mask_bits():
    data = bytes(range(256)) * 40
    m = GilbertElliottBitError(0.01, 0.2, 0.001, 0.3)
    out, nflips, _ = m.corrupt(data, np.random.default_rng(5))
    mask, _ = m.error_mask(len(data) * 8, np.random.default_rng(5))
    diff = np.unpackbits(np.frombuffer(out, np.uint8) ^ np.frombuffer(data, np.uint8))
    assert np.array_equal(diff.astype(bool), mask) and nflips == int(mask.sum())
    same, zero, _ = BinarySymmetric(0.0).corrupt(data, np.random.default_rng(0))
    assert same == data and zero == 0


@pytest.mark.parametrize(
    "ctor,match",
    [
        (lambda: BinarySymmetric(-1e-3), "ber must be in"),
        (lambda: BinarySymmetric(1.2), "ber must be in"),
        (lambda: GilbertElliottBitError(0.1, 0.0, 0.0, 0.1), "never recover"),
        (lambda: GilbertElliottBitError(0.1, 0.2, 0.0, 1.5), "ber_bad must be in"),
    ],
)
def test_invalid_parameters(ctor, match):
    with pytest.raises(ValueError, match=match):
        ctor()


def test_invalid_nbits():
    with pytest.raises(ValueError, match="nbits"):
        BinarySymmetric(0.1).error_mask(-5, np.random.default_rng(0))
