"""The ``codec`` section: encode / decode time per image on CPU (and CUDA) and each entropy coder's bytes and time."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .config import BenchConfig
from .inputs import cpu_codec, load_bench_image
from .timing import median_s


def bench_codec(cfg: BenchConfig) -> dict[str, Any]:
    """Codec encode / decode ms per image on CPU (and CUDA), bitstream bytes and coding ms per coder."""
    import torch

    from codec.entropy import CODERS
    from codec.metrics import bpp
    from codec.zoo import load_codec

    img, src = load_bench_image(cfg.image_size, cfg.image)
    devices = ["cpu"] + (["cuda"] if cfg.device == "cuda" else [])
    per_dev: dict[str, dict[str, float]] = {}
    imap = None
    for dev in devices:
        t0 = time.perf_counter()
        codec = load_codec("default", device=dev)
        load_s = time.perf_counter() - t0
        m = codec.encode_indices(img)
        imap = m if imap is None else imap
        per_dev[dev] = {
            "load_s": load_s,
            "encode_ms": 1e3 * median_s(lambda codec=codec: codec.encode_indices(img), cfg.repeats, device=dev),
            "decode_ms": 1e3 * median_s(lambda codec=codec, m=m: codec.decode_indices(m), cfg.repeats, device=dev),
        }
        if dev == "cuda":
            per_dev[dev]["indices_equal_cpu"] = bool(np.array_equal(m.indices, imap.indices))
    codec = cpu_codec()
    coders: dict[str, dict[str, float]] = {}
    for coder in CODERS:
        data = codec.compress_indices(imap, coder)
        assert codec.decompress_indices(data) == imap, f"coder {coder} does not round-trip"
        coders[coder] = {
            "bytes": len(data),
            "bpp": bpp(len(data), imap.image_size),
            "encode_ms": 1e3 * median_s(lambda coder=coder: codec.compress_indices(imap, coder), cfg.repeats),
            "decode_ms": 1e3 * median_s(lambda data=data: codec.decompress_indices(data), cfg.repeats),
        }
    cpu = per_dev["cpu"]
    summary = {
        "encode_ms_cpu": cpu["encode_ms"],
        "decode_ms_cpu": cpu["decode_ms"],
        "decode_over_encode_cpu": cpu["decode_ms"] / cpu["encode_ms"],
        **{f"bytes_{c}": coders[c]["bytes"] for c in CODERS},
        "bpp_arith": coders["arith"]["bpp"],
        "raw_over_arith_bytes": coders["raw"]["bytes"] / coders["arith"]["bytes"],
        "arith_encode_ms": coders["arith"]["encode_ms"],
    }
    if "cuda" in per_dev:
        summary["encode_ms_cuda"] = per_dev["cuda"]["encode_ms"]
        summary["decode_ms_cuda"] = per_dev["cuda"]["decode_ms"]
        summary["cuda_speedup_encode"] = cpu["encode_ms"] / per_dev["cuda"]["encode_ms"]
        summary["cuda_speedup_decode"] = cpu["decode_ms"] / per_dev["cuda"]["decode_ms"]
    return {"summary": summary, "image": src, "image_size": list(imap.image_size),
            "index_map": list(imap.shape), "codebook_size": imap.codebook_size, "devices": per_dev,
            "coders": coders, "torch_threads": torch.get_num_threads()}
