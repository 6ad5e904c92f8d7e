"""Short fine-tune of K-means-reduced codebooks (the paper's "with fine-tune"), decoder side.

The paper reduces a trained codebook (K codewords) to S < K by K-means and
then fine-tunes briefly with the codec's losses. vqsim fine-tunes the decoder
side only and keeps the encoder and the K-means codebook fixed:

* trained, per size S: a decoder codebook E_dec (S, D) initialised from the
  K-means centroids, plus the decoder-side modules of ``FinetuneConfig.parts``.
  The default (and the shipped ``default`` sizes) trains E_dec alone
  (``parts=[]``); the recipe before 2026-12-08 also trained ``FINETUNE_PARTS``
  (``post_quant_conv``, ``decoder.conv_in``, ``decoder.mid.block_1``): with a
  decoder trained on soft latents that bought LPIPS at K <= 16 but cost DISTS
  and LPIPS-VGG on unseen photos (docs/training.md);
* fixed: encoder, ``quant_conv`` and the K-means codebook, so an image has the
  same index map with and without fine-tuning. Bitstreams, the arithmetic
  coder's priors and the concealment transformers are therefore shared by
  both variants, and a fine-tuned size costs only its decoder-side weights
  (S × D values with ``parts=[]``; about 0.37 M parameters, 0.75 MB in fp16,
  with ``FINETUNE_PARTS`` for ``default``).

Loss: the reconstruction part of the codec's training loss,
``|x − x̂|₁ + w_p · LPIPS(x, x̂)`` (the codebook/commitment terms vanish: the
quantizer is fixed; no GAN term, as in the shipped codec's training).

Data: the training images' pre-quantization latents h are computed once
(encoder frozen) and shared by all sizes; each step decodes random
``window × window`` blocks of the index maps and compares them with the
matching ``window·f``-pixel regions of the images.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from ..errors import ParameterError
from ..vqgan import VQModel
from .losses import check_lpips_net, loss_nets, reconstruction_loss

#: Decoder-side modules of the recipe before 2026-12-08 (state_dict prefixes, besides the decoder codebook); the
#: default now trains the decoder codebook alone (``FinetuneConfig.parts == []``).
FINETUNE_PARTS: tuple[str, ...] = ("post_quant_conv", "decoder.conv_in", "decoder.mid.block_1")


@dataclass
class FinetuneConfig:
    """Settings of one fine-tune per reduced size (units: steps, latent positions)."""

    steps: int = 150
    batch_size: int = 8
    window: int = 8               # latent window side; the pixel crop is window·f
    lr: float = 1e-3
    warmup: int = 20
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"
    parts: list[str] = field(default_factory=list)  # [] = the decoder codebook only (the shipped recipe)
    seed: int = 0
    log_every: int = 25

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "window"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ParameterError(f"lr must be > 0, got {self.lr}")
        if self.perceptual_weight < 0:
            raise ParameterError(f"perceptual_weight must be >= 0, got {self.perceptual_weight}")
        check_lpips_net(self.lpips_net)
        for p in self.parts:
            if not (p == "post_quant_conv" or p.startswith("decoder")):
                raise ParameterError(f"parts may only name post_quant_conv or decoder modules, got {p!r}")


@torch.no_grad()
def encode_latents(model: VQModel, images: list[np.ndarray], batch: int = 16, device=None) -> torch.Tensor:
    """Pre-quantization latents h (N, D, H/f, W/f), float32 on CPU, of same-size uint8 images."""
    if not images:
        raise ParameterError("no images to encode")
    shapes = {tuple(a.shape) for a in images}
    if len(shapes) != 1:
        raise ParameterError(f"fine-tune images must share one size, got {sorted(shapes)[:3]}")
    H, W = images[0].shape[:2]
    f = model.downsample_factor
    if H % f or W % f:
        raise ParameterError(f"image size {H}x{W} must be a multiple of the downsampling factor {f}")
    device = torch.device(device or "cpu")
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack(images[i:i + batch])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        out.append(model.encode_pre_quant(x.to(device)).float().cpu())
    return torch.cat(out)


def _select_params(model: VQModel, parts: list[str]) -> dict[str, nn.Parameter]:
    named = dict(model.named_parameters())
    chosen = {k: p for k, p in named.items() if any(k == q or k.startswith(q + ".") for q in parts)}
    missing = [q for q in parts if not any(k == q or k.startswith(q + ".") for k in named)]
    if missing:
        raise ParameterError(f"fine-tune parts not in the model: {missing}")
    return chosen


def finetune_size(base: VQModel, codebook: torch.Tensor, latents: torch.Tensor, images: torch.Tensor,
                  cfg: FinetuneConfig, *, lpips_nets: list | None = None, device=None,
                  log: Callable[[str], None] = print) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Fine-tune the decoder side of one reduced codebook.

    Args:
        base: the trained VQGAN (its weights are not modified).
        codebook: (S, D) K-means codebook; it defines the indices and stays fixed.
        latents: (N, D, h, w) pre-quantization latents of the training images.
        images: (N, 3, h·f, w·f) uint8 training images matching ``latents``.
        cfg: settings; ``lpips_nets`` the ``lpips.LPIPS`` nets whose mean is the perceptual term (those of
            ``cfg.lpips_net`` when None).

    Returns:
        (weights, log rows): ``weights`` holds ``decoder_codebook`` and the
        state_dict entries of ``cfg.parts`` (float32, CPU), ready for
        ``VQModel.with_codebook(codebook, finetuned=weights)``.
    """
    device = torch.device(device or "cpu")
    f = base.downsample_factor
    n, D, h, w = latents.shape
    if images.shape != (n, 3, h * f, w * f):
        raise ParameterError(f"images {tuple(images.shape)} do not match latents {tuple(latents.shape)} at f={f}")
    win = int(cfg.window)
    if win > min(h, w):
        raise ParameterError(f"window {win} exceeds the latent map {h}x{w}")
    # the decoder codebook starts from the codewords the plain reduced decoder sees (unit rows for l2 codebooks)
    start = base.with_codebook(codebook).quantize.codewords().detach().float().cpu()
    model = base.with_codebook(codebook, finetuned={"decoder_codebook": start})
    model.decoder = copy.deepcopy(base.decoder)  # trained in place: the base model stays untouched
    model.post_quant_conv = copy.deepcopy(base.post_quant_conv)
    model = model.to(device).train()
    model.requires_grad_(False)
    params = _select_params(model, list(cfg.parts))
    model.decoder_codebook.weight.requires_grad_(True)
    for p in params.values():
        p.requires_grad_(True)
    trainable = [model.decoder_codebook.weight, *params.values()]
    opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.5, 0.9))
    with torch.no_grad():
        idx_all = model.quantize.indices(latents.to(device)).cpu()  # (n, h, w), fixed
    lps = loss_nets(cfg.lpips_net, cfg.perceptual_weight, device) if lpips_nets is None else list(lpips_nets)
    rng = np.random.default_rng(cfg.seed)
    rows: list[dict] = []
    acc, t0 = 0.0, time.time()
    for step in range(int(cfg.steps)):
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        lr *= 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) if step >= cfg.warmup else 1.0
        for g in opt.param_groups:
            g["lr"] = lr
        b = rng.integers(0, n, size=cfg.batch_size)
        ys = rng.integers(0, h - win + 1, size=cfg.batch_size)
        xs = rng.integers(0, w - win + 1, size=cfg.batch_size)
        idx = torch.stack([idx_all[i, y:y + win, x:x + win] for i, y, x in zip(b, ys, xs, strict=False)]).to(device)
        x = torch.stack(
            [images[i, :, y * f:(y + win) * f, x_ * f:(x_ + win) * f] for i, y, x_ in zip(b, ys, xs, strict=False)]
        )
        x = x.to(device).float().div(127.5).sub(1)
        loss, _ = reconstruction_loss(model, model.lookup(idx), x, lps, cfg.perceptual_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc += float(loss.detach())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            k = (step % cfg.log_every) + 1
            row = {"step": step + 1, "loss": acc / k, "lr": lr, "wall_s": round(time.time() - t0, 1)}
            rows.append(row)
            log(json.dumps(row))
            acc = 0.0
    weights = {"decoder_codebook": model.decoder_codebook.weight.detach().float().cpu().clone()}
    weights.update({k: p.detach().float().cpu().clone() for k, p in params.items()})
    return weights, rows


def finetune_model(
    model_path: str | Path,
    out: str | Path,
    data: list[str],
    sizes: list[int] | None = None,
    cfg: FinetuneConfig | None = None,
    *,
    max_images: int | None = None,
    device=None,
    log: Callable[[str], None] = print,
) -> Path:
    """Fine-tune every reduced size of a shipped-format model and write the model with them.

    Per-size results are kept in ``OUT.ft/{S}.pt`` as they finish, so an
    interrupted run resumes at the next size, and runs with disjoint
    ``sizes`` may share OUT in parallel; the output file is the input model
    plus ``decoders[S]`` for every size finished in ``OUT.ft`` (see ``codec.zoo``).
    """
    from ..checkpoint import load_vqgan, read_checkpoint, save_vqgan
    from .data import load_image_pool

    cfg = cfg or FinetuneConfig()
    model, extras = load_vqgan(model_path)
    codebooks = {int(s): torch.as_tensor(c).float() for s, c in extras["codebooks"].items()}
    sizes = sorted(codebooks, reverse=True) if sizes is None else [int(s) for s in sizes]
    for s in sizes:
        if s not in codebooks:
            raise ParameterError(f"model {model_path} has no K-means codebook of size {s} (has {sorted(codebooks)})")
    out = Path(out)
    work = out.with_name(out.name + ".ft")
    work.mkdir(parents=True, exist_ok=True)
    todo = [s for s in sizes if not (work / f"{s}.pt").exists()]
    if todo:
        f = model.downsample_factor
        pool = load_image_pool(list(data), 2 * f)
        side = min(min(a.shape[:2]) for a in pool) // f * f
        crops = []
        for a in pool:  # centre side×side crops
            y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
            crops.append(np.ascontiguousarray(a[y : y + side, x : x + side]))
        pool = crops
        if max_images:
            pool = pool[:max_images]
        t0 = time.time()
        latents = encode_latents(model, pool, device=device)
        images = torch.from_numpy(np.stack(pool)).permute(0, 3, 1, 2).contiguous()
        log(f"encoded {len(pool)} images of {side}x{side} in {time.time() - t0:.1f} s")
        lp = loss_nets(cfg.lpips_net, cfg.perceptual_weight, device)
        for s in todo:
            t0 = time.time()
            log(f"fine-tuning size {s} ({cfg.steps} steps)")
            w, rows = finetune_size(model, codebooks[s], latents, images, cfg, lpips_nets=lp, device=device, log=log)
            tmp = work / f"{s}.pt.tmp"
            torch.save({"weights": w, "log": rows, "config": asdict(cfg), "wall_s": time.time() - t0}, tmp)
            tmp.replace(work / f"{s}.pt")
    decoders: dict[int, dict[str, torch.Tensor]] = {int(k): v for k, v in extras["decoders"].items()}
    ft_meta: dict[str, dict] = {}
    done = sorted(set(sizes) | {s for s in codebooks if (work / f"{s}.pt").exists()}, reverse=True)
    for s in done:  # also sizes finished by another run on the same OUT (e.g. sizes split over processes)
        ck = read_checkpoint(work / f"{s}.pt")
        decoders[s] = ck["weights"]
        ft_meta[str(s)] = {
            "steps": ck["config"]["steps"],
            "parts": ["decoder_codebook", *ck["config"]["parts"]],
            "wall_s": round(float(ck["wall_s"]), 1),
            "final_loss": ck["log"][-1]["loss"] if ck["log"] else None,
        }
    meta = {**extras["meta"], "finetune": {**extras["meta"].get("finetune", {}), **ft_meta}}
    # sizes fine-tuned here are no longer ones fine-tuned from a decoder that a splice has since replaced
    stale = [s for s in meta.pop("finetuned_from_previous_decoder", []) if int(s) not in done]
    if stale:
        meta["finetuned_from_previous_decoder"] = stale
    return save_vqgan(out, model, codebooks=codebooks, priors=extras["priors"], decoders=decoders, meta=meta, half=True)
