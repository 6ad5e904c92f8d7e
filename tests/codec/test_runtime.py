"""CPU tuning (codec.runtime) changes speed, never results: a fixed map decodes to the stored fp32 reference."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from codec.image import load_image
from codec.runtime import configure_cpu
from codec.types import IndexMap
from codec.zoo import load_codec

DATA = Path(__file__).resolve().parents[1] / "data"


def _reference_map(codec) -> IndexMap:
    idx = np.load(DATA / "decode_ref_map.npy").astype(np.int64)  # kodim23[128:256, 256:448] at K = 1024
    return IndexMap(idx, codec.codebook_size, (128, 192), codec.codebook_id)


def test_cpu_tuning_gives_identical_pixels_and_matches_stored_reference():
    codec = load_codec("default", device="cpu")
    m = _reference_map(codec)
    torch.set_flush_denormal(False)
    plain = codec.decode_indices_tensor(m)
    applied = configure_cpu()
    assert applied.get("flush_denormal") is True or "tuning" in applied
    tuned = codec.decode_indices_tensor(m)
    assert torch.equal(plain, tuned)  # bit-identical floats
    # the stored uint8 reference (fp32, untuned, made on the development machine); other CPUs / BLAS
    # builds may round a few pixels differently, a different model or precision changes many
    ref = load_image(DATA / "decode_ref_K1024.png").astype(np.int16)
    got = codec.decode_indices(m).astype(np.int16)
    diff = np.abs(got - ref)
    assert diff.max() <= 2 and (diff == 0).mean() >= 0.999, (diff.max(), (diff == 0).mean())
    bf = load_codec("default", device="cpu", autocast="bf16").decode_indices(m).astype(np.int16)
    assert (np.abs(bf - ref) == 0).mean() < 0.99  # the test can tell bf16 from fp32


def test_library_calls_get_the_fast_path_and_leave_the_callers_settings(monkeypatch):
    """Issue 27: configure_cpu was applied only by the CLI; a Python user of decode_indices got the slow path.
    Now the codec sets it around its own calls and restores it: same pixels, caller's state unchanged."""
    from codec import runtime

    monkeypatch.setattr(runtime, "_CONFIGURED", False)  # as in a fresh Python process (no CLI)
    torch.set_flush_denormal(False)
    assert not runtime._denormals_flushed()
    with runtime.cpu_fast_path("cpu"):
        assert runtime._denormals_flushed()  # inside: the CLI's setting
    assert not runtime._denormals_flushed()  # after: the caller's
    with runtime.cpu_fast_path("meta"):
        assert not runtime._denormals_flushed()  # other devices: untouched
    codec = load_codec("default", device="cpu")
    m = _reference_map(codec)
    fast = codec.decode_indices_tensor(m)
    assert not runtime._denormals_flushed()
    monkeypatch.setenv("VQSIM_NO_CPU_TUNING", "1")
    plain = codec.decode_indices_tensor(m)
    assert torch.equal(fast, plain)  # bit-identical floats
