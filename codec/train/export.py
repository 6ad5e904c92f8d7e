"""Turn a training checkpoint into a shippable model file (``codec/weights/NAME.pt``).

The file holds the VQGAN (fp16 storage), the K-means reductions of its
codebook to every size in ``codec.kmeans.REDUCED_SIZES`` below K (seeded, the
paper's "w/o fine-tune" codebooks), and for every size the codeword counts
over the training images' index maps: the arithmetic coder's prior, which
both ends share, so it costs nothing in the bitstream.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import read_checkpoint, save_vqgan
from ..kmeans import kmeans_codebook, reduced_sizes
from ..vqgan import VQGANConfig, VQModel


def model_from_training_checkpoint(path: str | Path) -> tuple[VQModel, dict[str, Any]]:
    """The VQGAN inside a ``codec.train.loop`` checkpoint (``last.pt``), plus its step / wall time."""
    ck = read_checkpoint(path)
    if "model" not in ck or "config" not in ck:
        from ..errors import CheckpointError

        raise CheckpointError(f"{path} is not a vqsim training checkpoint (needs 'model' and 'config')")
    from ..checkpoint import build_checked, load_state_dict_checked
    from ..errors import CheckpointError

    try:
        cfg = VQGANConfig.from_dict(ck["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has no valid VQGAN config ({e})") from None
    model = build_checked(lambda: VQModel(cfg), ck["model"], f"training checkpoint {Path(path).name}")
    load_state_dict_checked(model, ck["model"], f"training checkpoint {Path(path).name}")
    return model.eval(), {"steps": int(ck.get("step", 0)), "train_wall_s": float(ck.get("wall_s", 0.0))}


@torch.no_grad()
def index_counts(
    model: VQModel, images: list[np.ndarray], sizes: dict[int, torch.Tensor], batch: int = 16
) -> dict[int, torch.Tensor]:
    """Codeword usage counts per codebook size over the images (each image encoded once)."""
    counts = {s: torch.zeros(s, dtype=torch.int64) for s in sizes}
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack(images[i : i + batch])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        h = model.encode_pre_quant(x)
        for s, cb in sizes.items():
            q = model.quantize if s == model.codebook_size else model.with_codebook(cb).quantize
            counts[s] += torch.bincount(q.indices(h).flatten(), minlength=s)
    return counts


def export_model(
    train_ckpt: str | Path,
    out: str | Path,
    prior_images: list[np.ndarray],
    *,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    log=print,
) -> Path:
    """Write the shippable model file; returns its path."""
    model, info = model_from_training_checkpoint(train_ckpt)
    K = model.codebook_size
    cb = model.quantize.codewords().detach().float().cpu()
    codebooks: dict[int, torch.Tensor] = {}
    for s in reduced_sizes(K):
        t0 = time.perf_counter()
        res = kmeans_codebook(cb.numpy(), s, seed=seed)
        codebooks[s] = torch.from_numpy(res.centroids)
        log(f"K-means {K} -> {s}: {res.iterations} iterations, {time.perf_counter() - t0:.2f} s")
    counts = index_counts(model, prior_images, {K: cb, **codebooks})
    used = int((counts[K] > 0).sum())
    log(f"codebook usage on {len(prior_images)} prior images: {used}/{K} codewords")
    meta = {**info, "codebook_used": used, "kmeans_seed": seed, "prior_images": len(prior_images), **(meta or {})}
    return save_vqgan(out, model, codebooks=codebooks, priors=counts, meta=meta, half=True)
