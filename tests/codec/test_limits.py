"""Decode limits and hostile headers: every claim is checked before anything is allocated.

Each test replays one reproduction of the hardening issue (a few hundred CRC-valid
bytes claiming a huge image or map) and asserts a typed one-line refusal within a
second, or a correct result."""
from __future__ import annotations

import time

import numpy as np
import pytest

from codec.bitstream import decode_bitstream, encode_bitstream
from codec.entropy import CODERS, decode_symbols, encode_symbols, max_symbols
from codec.errors import BitstreamError, ParameterError
from codec.limits import DEFAULT_MAX_INDICES, DEFAULT_MAX_PIXELS, DecodeLimits, LimitExceededError
from codec.types import IndexMap


def _timed_refusal(fn, exc, match):
    t = time.perf_counter()
    with pytest.raises(exc, match=match) as e:
        fn()
    assert time.perf_counter() - t < 1.0
    assert "\n" not in str(e.value)
    return e.value


def test_defaults_and_validation():
    d = DecodeLimits()
    assert (d.max_pixels, d.max_indices) == (DEFAULT_MAX_PIXELS, DEFAULT_MAX_INDICES) == (1 << 21, 1 << 15)
    assert 1920 * 1080 <= d.max_pixels
    for bad in (0, -1, 1.5, "x", True):
        with pytest.raises(ParameterError):
            DecodeLimits(max_pixels=bad)
    assert DecodeLimits.from_env({"VQSIM_MAX_PIXELS": "100", "VQSIM_MAX_INDICES": " 7 "}) == DecodeLimits(100, 7)
    with pytest.raises(ParameterError, match="VQSIM_MAX_INDICES"):
        DecodeLimits.from_env({"VQSIM_MAX_INDICES": "lots"})


def test_bitstream_claiming_huge_image_refused_fast(forge):
    data = forge(2048, 2048, 32768, 32768, payload=bytes(5000))
    e = _timed_refusal(lambda: decode_bitstream(data), LimitExceededError, "max_indices")
    assert isinstance(e, BitstreamError)
    # within the index limit but a 32768×32768 image: the pixel limit
    data = forge(16, 16, 32768, 32768)
    _timed_refusal(lambda: decode_bitstream(data), LimitExceededError, "max_pixels")


def test_bitstream_latent_must_fit_image_size(forge):
    # 374 bytes claiming 512×512 latents for a 64×64 image (the attention bomb of the issue)
    data = forge(512, 512, 64, 64, payload=bytes(330))
    assert len(data) < 400
    lim = DecodeLimits(max_indices=1 << 20)
    _timed_refusal(lambda: decode_bitstream(data, limits=lim, downsample_factor=16), BitstreamError,
                   "does not fit image size 64x64 at downsampling factor 16")


def test_arith_bomb_refused_by_limit_and_by_payload_size(forge):
    # 811 bytes, K = 8, claiming a 4096×4096 map: the default limit refuses at once
    data = forge(4096, 4096, 65536, 65536, payload=bytes(780))
    _timed_refusal(lambda: decode_bitstream(data), LimitExceededError, "16777216 indices")
    # with the limits lifted, arith_rep's least cost per symbol shows 780 bytes cannot hold 2^24 symbols
    data = forge(4096, 4096, 65536, 65536, coder="arith_rep", payload=bytes(780))
    _timed_refusal(lambda: decode_bitstream(data, limits=DecodeLimits.unlimited()), BitstreamError,
                   "cannot hold 16777216 symbols")


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("K", [2, 8, 1024])
def test_max_symbols_bounds_real_payloads(coder, K):
    """The plausibility bound never refuses a real payload, even the most compressible one."""
    rng = np.random.default_rng(K)
    for s in (np.zeros(30000, int), rng.integers(0, K, 3000), np.repeat(rng.integers(0, K, 300), 10)):
        data = encode_symbols(s, K, coder)
        assert max_symbols(len(data), K, coder) >= s.size
        assert np.array_equal(decode_symbols(data, s.size, K, coder), s)
    # and it is finite: a few bytes never admit 2^24 symbols with a repeat context or raw
    if coder in ("raw", "arith_rep"):
        assert max_symbols(10, K, coder) < 1 << 24


def test_limits_do_not_refuse_ordinary_maps():
    rng = np.random.default_rng(0)
    imap = IndexMap(rng.integers(0, 1024, (32, 48)), 1024, (512, 768), "default/1024")
    assert decode_bitstream(encode_bitstream(imap), downsample_factor=16) == imap
    with pytest.raises(LimitExceededError):
        decode_bitstream(encode_bitstream(imap), limits=DecodeLimits(max_indices=1000))


@pytest.mark.parametrize("text", ["²", "x", "-5", "1.5"])
def test_bad_environment_limit_is_a_parameter_error_naming_the_variable(text):
    from codec.errors import ParameterError
    from codec.limits import DecodeLimits

    with pytest.raises(ParameterError, match="environment variable VQSIM_MAX_PIXELS"):
        DecodeLimits.from_env({"VQSIM_MAX_PIXELS": text})
    with pytest.raises(ParameterError, match="environment variable VQSIM_MAX_INDICES must be in"):
        DecodeLimits.from_env({"VQSIM_MAX_INDICES": "0"})
