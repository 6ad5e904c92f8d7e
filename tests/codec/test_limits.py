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


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_decode_peak_memory_is_within_the_documented_bound():
    """Issue 27 item 2: a 34-byte bitstream (all-zero 91×91 map of a 1448² image) made `vqsim decode` peak at
    4.09 GB against the documented ≈ 3.5 GB (now 2.26 GB). The bound is stated per pixel and measured here on
    a 768×1024 decode with the CLI's CPU settings (the peak the decode adds above the loaded model, VmHWM)."""
    import sys
    from pathlib import Path

    from codec.limits import DECODE_PEAK_FIXED, DECODE_PEAK_PER_PIXEL
    from codec.runtime import configure_cpu
    from codec.zoo import load_codec

    sys.path.insert(0, str(Path(__file__).parent))
    from test_vqgan import _peak_above_now

    codec = load_codec("default", 1024, device="cpu")
    configure_cpu()  # the CLI's settings (every in-process CLI test applies them too): what `vqsim decode` runs with
    H, W = 768, 1024
    m = IndexMap(np.zeros((H // 16, W // 16), np.int32), 1024, (H, W), codec.codebook_id)
    peak = _peak_above_now(lambda: codec.decode_indices(m)) * 2**20
    bound = DECODE_PEAK_FIXED + DECODE_PEAK_PER_PIXEL * H * W
    assert peak <= bound, (peak / 2**20, bound / 2**20)  # measured 530–782 MB against 846 MB
    # the documented total at the default limit: the bound above a loaded model (≈ 1.1 GB for the CLI process)
    assert DECODE_PEAK_FIXED + DECODE_PEAK_PER_PIXEL * DEFAULT_MAX_PIXELS + (1.1 * 2**30) <= 3.5 * 2**30


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_cpu_settings_return_large_buffers_to_the_system():
    """The CLI's allocator setting kept every buffer on the heap (M_MMAP_MAX = 0): a 2^21-pixel decode's
    full-size activations (268 MB each) fragmented it, +1.8 GB at the peak. Buffers above 64 MB are
    mmap-ed again, so freeing one gives its memory back."""
    import subprocess
    import sys

    code = """
import torch
from codec.runtime import configure_cpu
configure_cpu()
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
before = rss()
big = torch.ones(128 << 18)  # 128 MB, touched
held = rss() - before
del big
print(held, rss() - before)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "VQSIM_NO_CPU_TUNING": ""}).stdout.split()
    held, after = float(out[-2]), float(out[-1])
    assert held > 100 and after < 32, (held, after)  # was: 136 MB kept on the heap after the free
