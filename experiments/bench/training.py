"""The ``train`` section: one decoder-training step in fp32 and bf16 autocast, NCHW and channels-last.

The step is the robust decoder's and the codec campaign's (``codec.train.robust_decoder``,
``experiments/configs/train/robust_decoder_vgg.yaml``): the shipped model's ``post_quant_conv`` + decoder
decode a batch of real latent maps (the codec's own indices of crops of the bench image), the loss is
L1 + the mean of LPIPS-Alex and LPIPS-VGG, forward and backward.  Reported: the median step time of each
setting, the speed-up of each against NCHW fp32, and the cosine between each setting's decoder-side gradient
and fp32's on the same batch (how closely the faster step follows the exact one).
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .config import BenchConfig
from .inputs import cpu_codec, load_bench_image
from .timing import median_s

SETTINGS = (("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True))


def _name(precision: str, channels_last: bool) -> str:
    return precision + ("_cl" if channels_last else "")


def bench_training(cfg: BenchConfig) -> dict[str, Any]:
    """Median seconds per decoder-training step for each of :data:`SETTINGS`; speed-ups; gradient cosines."""
    import torch

    from codec.conceal.soft import decoder_table
    from codec.metrics import get_lpips
    from codec.train.losses import reconstruction_loss

    b, side = cfg.train_batch, cfg.train_crop
    img, src = load_bench_image(cfg.image_size, cfg.image)
    H, W = img.shape[:2]
    if H < side or W < side:
        raise ValueError(f"bench image {W}x{H} is smaller than the {side}-pixel training crop")
    rng = np.random.default_rng(cfg.seed)
    f = 16
    ys = rng.integers(0, (H - side) // f + 1, size=b) * f
    xs = rng.integers(0, (W - side) // f + 1, size=b) * f
    crops = np.stack([img[y:y + side, x:x + side] for y, x in zip(ys, xs, strict=True)])
    codec = cpu_codec()
    table = torch.from_numpy(decoder_table(codec))
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    idx = codec.encode_batch(x.add(1).div(2)).long()
    z0 = table[idx].permute(0, 3, 1, 2).contiguous()
    model = codec.model.train()
    model.requires_grad_(False)
    params = [p for n, p in model.named_parameters() if n.startswith(("post_quant_conv", "decoder."))]
    for p in params:
        p.requires_grad_(True)
    lps = [copy.deepcopy(get_lpips(n)) for n in ("alex", "vgg")]  # converted below: not the cached metric nets

    def step(precision: str, fmt) -> torch.Tensor:
        for p in params:
            p.grad = None
        loss, _ = reconstruction_loss(model, z0.contiguous(memory_format=fmt), x.contiguous(memory_format=fmt),
                                      lps, 1.0, precision)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in params])

    per: dict[str, dict[str, float]] = {}
    ref = None
    for precision, cl in SETTINGS:
        fmt = torch.channels_last if cl else torch.contiguous_format
        model.to(memory_format=fmt)
        for lp in lps:
            lp.to(memory_format=fmt)
        g = step(precision, fmt).clone()
        ref = g if ref is None else ref
        per[_name(precision, cl)] = {
            "step_s": median_s(lambda precision=precision, fmt=fmt: step(precision, fmt), cfg.repeats, warmup=0),
            "grad_cosine_vs_fp32": float(torch.nn.functional.cosine_similarity(g.double(), ref.double(), dim=0)),
        }
    base = per["fp32"]["step_s"]
    summary: dict[str, float] = {}
    for name, r in per.items():
        summary[f"step_s_{name}"] = r["step_s"]
        if name != "fp32":
            summary[f"speedup_{name}"] = base / r["step_s"]
            summary[f"grad_cosine_{name}"] = r["grad_cosine_vs_fp32"]
    return {"summary": summary, "settings": per, "batch": b, "crop": side, "image": src,
            "loss": "L1 + mean(LPIPS-Alex, LPIPS-VGG)", "trained": "post_quant_conv + decoder",
            "torch_threads": torch.get_num_threads()}
