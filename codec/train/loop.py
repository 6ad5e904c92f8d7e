"""The VQGAN codec's training loop (``vqsim train-codec``).

Settings, schedule, inits, validation, resumable checkpoints.

Loss (taming-transformers' ``VQLPIPSWithDiscriminator`` and the paper; the
terms are in ``codec.train.losses``):

    L = |x − x̂|₁ + w_p · LPIPS(x, x̂) + w_lp · L_lowpass + L_codebook(β) + λ · d_factor · L_G

The low-pass YCbCr term makes colour hard to lose at 10 bits per 16×16 block.
The discriminator (PatchGAN) is trained with the hinge loss; both GAN terms
switch on at ``disc_start`` steps (the discriminator alone first, for ``disc_warmup`` steps, so that a fresh
discriminator's random verdicts do not reach a trained decoder).  Codewords unused for ``restart_every``
steps are restarted on random encoder outputs of the current batch
(dead-codeword restarts), and usage is logged. ``kmeans_init_step``
re-initialises the whole codebook once, by K-means of encoder outputs
(data-dependent init), so that training starts with every codeword in use.

Data: random crops (``codec.train.data``).  Checkpoints (``last.pt``) hold
model, discriminator, optimizers, step and RNG state; ``resume=True``
continues exactly there.  Process-wide torch settings (thread count,
denormals) are the caller's: ``vqsim train-codec`` applies them once through
``codec.runtime.configure_cpu``; ``train_codec`` changes none of them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, ParameterError
from ..vqgan import VQGANConfig, VQModel
from .data import load_image_pool, random_crops
from .losses import (
    NLayerDiscriminator,
    adaptive_weight,
    check_lpips_net,
    check_precision,
    diff_augment,
    hinge_d_loss,
    loss_nets,
    lowpass_loss,
    reconstruction_loss,
)


@dataclass
class TrainConfig:
    """Codec training settings (units: steps, pixels)."""

    data: list[str] = field(
        default_factory=lambda: ["../shared/data/train256_part1.tar", "../shared/data/train256_part2.tar"]
    )
    val: str | None = "../shared/data/val"
    out: str = "runs/codec"
    model: dict = field(default_factory=dict)  # VQGANConfig fields
    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    warmup: int = 200
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"  # perceptual loss: "alex", "vgg" or "alex+vgg" (mean of the two)
    disc_start: int = 10**9  # step at which the discriminator starts training
    disc_warmup: int = 0  # steps after disc_start before the decoder gets the GAN term
    disc_weight: float = 0.8
    disc_layers: int = 2
    disc_augment: bool = False  # DiffAugment (colour, translation, cutout) on both of D's inputs
    restart_every: int = 100  # dead-codeword restart period (0 = off)
    lowpass_weight: float = 0.0  # weight of the f×f block-mean YCbCr L1 term (0 = off)
    chroma_weight: float = 1.0  # weight of Cb/Cr relative to Y inside the low-pass term
    kmeans_init_step: int = -1  # step at which the codebook is K-means-initialised (-1 = never)
    kmeans_init_batches: int = 8  # batches of encoder outputs the K-means init clusters
    crop_schedule: list[list[int]] = field(default_factory=list)  # [[from_step, crop, batch_size], ...]
    channels_last: bool = False  # NHWC memory layout (faster convolutions on some CPUs)
    precision: str = "fp32"  # "bf16": decoder + perceptual loss under bf16 autocast (losses.decoder_autocast)
    freeze: list[str] = field(
        default_factory=list
    )  # VQModel parts not trained, e.g. ["encoder", "quant_conv", "quantize"]
    log_every: int = 25
    ckpt_every: int = 200
    val_every: int = 1000
    val_images: int = 16
    val_metrics: list[str] = field(default_factory=lambda: ["lpips_alex"])  # of VAL_METRICS
    select_on: list[str] = field(default_factory=lambda: ["lpips_alex"])  # best.pt: lowest mean of these
    seed: int = 0
    device: str | None = None
    threads: int | None = None  # torch CPU threads, applied by the CLI (vqsim train-codec), not by train_codec
    max_minutes: float | None = None  # stop (with checkpoint) after this wall time
    init: str = "taming"  # weight init of a new model: "taming" (torch defaults) or "vp"
    init_from: str | None = None  # start (when OUT/last.pt does not exist) from this checkpoint's model


VAL_METRICS = ("lpips_alex", "lpips_vgg", "dists")


def check_train_config(cfg: TrainConfig) -> None:
    """Raise ParameterError for settings no run could use (before any model is built or data read)."""
    check_lpips_net(cfg.lpips_net)
    bad = [m for m in cfg.val_metrics if m not in VAL_METRICS]
    if bad or not cfg.val_metrics:
        raise ParameterError(
            f"val_metrics: unknown or empty {bad or cfg.val_metrics}; allowed: {', '.join(VAL_METRICS)}"
        )
    check_precision(cfg.precision)
    if cfg.disc_warmup < 0:
        raise ParameterError(f"disc_warmup must be ≥ 0 steps, got {cfg.disc_warmup}")
    missing = [m for m in cfg.select_on if m not in cfg.val_metrics]
    if missing or not cfg.select_on:
        raise ParameterError(f"select_on {cfg.select_on} must be a non-empty subset of val_metrics {cfg.val_metrics}")


def crop_at(step: int, cfg: TrainConfig) -> tuple[int, int]:
    """(crop, batch_size) in force at ``step``: the last ``crop_schedule`` entry whose from_step ≤ step."""
    crop, batch = cfg.crop, cfg.batch_size
    for entry in sorted(cfg.crop_schedule):
        if len(entry) != 3:
            raise ParameterError(f"crop_schedule entries are [from_step, crop, batch_size], got {entry}")
        if entry[0] <= step:
            crop, batch = int(entry[1]), int(entry[2])
    return crop, batch


@torch.no_grad()
def kmeans_init_codebook(model: VQModel, batches: list[torch.Tensor], seed: int) -> int:
    """Set the codebook to K-means centroids of the encoder outputs of ``batches``; returns codewords in use after."""
    from ..kmeans import kmeans_codebook

    zs = []
    for x in batches:
        h = model.encode_pre_quant(x)
        if model.quantize.l2:
            h = F.normalize(h, dim=1)
        zs.append(h.permute(0, 2, 3, 1).reshape(-1, h.shape[1]).float().cpu())
    z = torch.cat(zs)
    K = model.codebook_size
    if z.shape[0] < K:
        raise ParameterError(f"K-means init needs ≥ {K} encoder outputs, got {z.shape[0]}: raise kmeans_init_batches")
    cent = kmeans_codebook(z.numpy(), K, seed=seed, max_iter=50, init="k-means++").centroids
    w = model.quantize.embedding.weight
    w.copy_(torch.as_tensor(cent).to(w))
    return int(torch.unique(model.quantize.indices(h)).numel())


@torch.no_grad()
def variance_preserving_init(model: VQModel) -> None:
    """Init that lets absolute levels (colour) through a fresh model: every conv N(0, 1/fan_in) with zero bias,
    and the last conv of every residual branch (ResnetBlock.conv2, AttnBlock.proj_out) zero, so each block
    starts as the identity.

    With torch's default conv init each linear layer shrinks its input by about √3, and the main path
    (conv_in, down/upsampling convs, quant convs, conv_out) has about 12 of them: a fresh model passes
    ~1/700 of the input's absolute level, and the GroupNorms in the residual branches pass only
    normalised (level-free) structure. Measured on flat colours without quantization (150 steps):
    L1 0.50 (output independent of the colour) with the default init, 0.19-0.26 with this one.
    """
    from ..vqgan import AttnBlock, ResnetBlock

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ResnetBlock):
            nn.init.zeros_(m.conv2.weight)
        elif isinstance(m, AttnBlock):
            nn.init.zeros_(m.proj_out.weight)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def _restart_dead_codes(model: VQModel, usage: torch.Tensor, z_batch: torch.Tensor, gen: torch.Generator) -> int:
    """Re-initialise codewords never used since the last restart to random encoder outputs (+ tiny noise)."""
    dead = torch.nonzero(usage == 0).flatten()
    if dead.numel() == 0:
        return 0
    zf = z_batch.permute(0, 2, 3, 1).reshape(-1, z_batch.shape[1])
    pick = torch.randint(0, zf.shape[0], (dead.numel(),), generator=gen)
    with torch.no_grad():
        noise = torch.randn(dead.numel(), zf.shape[1], generator=gen) * 1e-3
        model.quantize.embedding.weight[dead] = (zf[pick].cpu() + noise).to(model.quantize.embedding.weight)
    return int(dead.numel())


@torch.no_grad()
def validate(
    model: VQModel,
    images: list[np.ndarray],
    device: torch.device,
    crop: int = 256,
    metrics: tuple[str, ...] | list[str] = ("lpips_alex",),
) -> dict[str, float]:
    """Mean PSNR, low-pass luma/chroma PSNR and the perceptual ``metrics`` (of ``VAL_METRICS``; LPIPS-Alex always)
    over centre crops of validation images; codebook usage. Keys: ``val_<metric>``."""
    from ..metrics import lowpass_psnr, lpips_distance, psnr

    model.eval()
    ls, ps, lum, chro, used = [], [], [], [], set()
    extra: dict[str, list[float]] = {m: [] for m in metrics if m != "lpips_alex"}
    for a in images:
        h, w = a.shape[:2]
        s = min(crop, h, w) // model.downsample_factor * model.downsample_factor
        y, x = (h - s) // 2, (w - s) // 2
        t = (
            torch.from_numpy(np.ascontiguousarray(a[y : y + s, x : x + s]))
            .permute(2, 0, 1)[None]
            .float()
            .div(255)
            .to(device)
        )
        rec, _, idx = model(t * 2 - 1)
        rec = ((rec + 1) / 2).clamp(0, 1)
        ls.append(float(lpips_distance(t, rec, net="alex").mean()))
        if "lpips_vgg" in extra:
            extra["lpips_vgg"].append(float(lpips_distance(t, rec, net="vgg").mean()))
        if "dists" in extra:
            from ..metrics import dists

            extra["dists"].append(float(dists(t, rec).mean()))
        ps.append(float(psnr(t, rec).mean()))
        y, c = lowpass_psnr(t, rec, model.downsample_factor)
        lum.append(float(y.mean()))
        chro.append(float(c.mean()))
        used.update(idx.flatten().tolist())
    model.train()
    return {
        "val_lpips_alex": float(np.mean(ls)),
        "val_psnr": float(np.mean(ps)),
        "val_lowpass_luma_psnr": float(np.mean(lum)),
        "val_lowpass_chroma_psnr": float(np.mean(chro)),
        "val_codebook_used": len(used),
        **{f"val_{m}": float(np.mean(v)) for m, v in extra.items()},
    }


def selection_score(val: dict[str, float], select_on: list[str]) -> float:
    """The model-selection score of a validation row: the mean of ``val_<m>`` over ``select_on`` (lower is better)."""
    return float(np.mean([val[f"val_{m}"] for m in select_on]))


def train_codec(cfg: TrainConfig, resume: bool = True, log=print) -> Path:
    """Train (or continue training) a VQGAN; returns the path of the last checkpoint."""
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    mcfg = VQGANConfig.from_dict(cfg.model)
    crops = {cfg.crop} | {int(e[1]) for e in cfg.crop_schedule}
    for c in crops:
        if c % mcfg.downsample_factor or c <= 0:
            raise ParameterError(
                f"crop {c} must be a positive multiple of the downsampling factor {mcfg.downsample_factor}"
            )
    crop_at(0, cfg)  # validates the schedule's entries
    check_train_config(cfg)

    if cfg.init not in ("taming", "vp"):
        raise ParameterError(f"init must be 'taming' or 'vp', got {cfg.init!r}")
    torch.manual_seed(cfg.seed)
    model = VQModel(mcfg)
    if cfg.init == "vp":
        variance_preserving_init(model)
    model = model.to(device)
    disc = NLayerDiscriminator(n_layers=cfg.disc_layers).to(device)
    for part in cfg.freeze:
        if part not in ("encoder", "quant_conv", "quantize", "post_quant_conv", "decoder"):
            raise ParameterError(
                f"freeze: unknown part {part!r}; allowed: encoder, quant_conv, quantize, post_quant_conv, decoder"
            )
        getattr(model, part).requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, wall = 0, 0.0
    from ..checkpoint import check_state_dict, read_checkpoint  # weights only, one-line CheckpointErrors

    if resume and ckpt_path.exists():
        ck = read_checkpoint(ckpt_path)
        try:
            check_state_dict(model, ck["model"], f"resume ({ckpt_path})")
            model.load_state_dict(ck["model"])
            disc.load_state_dict(ck["disc"])
            try:
                opt.load_state_dict(ck["opt"])
            except ValueError:  # the set of trained parameters changed (cfg.freeze): fresh optimizer state
                log("optimizer state not restored: trained parameters differ from the checkpoint's")
            opt_d.load_state_dict(ck["opt_d"])
            step, wall = int(ck["step"]), float(ck.get("wall_s", 0.0))
            rng.bit_generator.state = ck["np_rng"]
            gen.set_state(ck["torch_gen"])
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(
                f"{ckpt_path} is not a train-codec checkpoint of this model ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:160]}); use --no-resume or another --out"
            ) from None
        log(f"resumed from {ckpt_path} at step {step}")
    elif cfg.init_from:
        src = Path(cfg.init_from)
        if not src.exists():
            raise FileNotFoundError(f"init_from checkpoint not found: {src}")
        ck = read_checkpoint(src)
        if isinstance(ck, dict) and ck.get("format") is not None and "state_dict" in ck:
            # a shipped model file (export-codec): fp16 weights, training step in its meta
            from ..checkpoint import load_vqgan

            shipped, _ = load_vqgan(src)
            ck = {
                "model": {k: v.float() for k, v in shipped.state_dict().items()},
                "step": int(ck.get("meta", {}).get("steps", 0)),
                "wall_s": float(ck.get("meta", {}).get("train_wall_s", 0.0)),
            }
        if not isinstance(ck, dict) or "model" not in ck:
            raise ParameterError(
                f"init_from {src} has no 'model' entry (a train-codec checkpoint, best.pt, model.pt "
                "or a shipped model file)"
            )
        from ..vqgan import is_extra_decoder_key, load_grown_decoder

        grow = (isinstance(ck["model"], dict) and mcfg.decoder_extra_blocks > 0
                and not any(is_extra_decoder_key(mcfg, k) for k in ck["model"]))
        if grow:  # a deeper decoder on a trained model: its extra blocks start as the identity
            n_new = load_grown_decoder(model, ck["model"])
            log(f"decoder grown by {mcfg.decoder_extra_blocks} block(s) per level ({n_new} new tensors, identity)")
        elif isinstance(ck["model"], dict):
            check_state_dict(model, ck["model"], f"init_from ({src})")
        try:
            if not grow:
                model.load_state_dict(ck["model"])
            step, wall = int(ck.get("step", 0)), float(ck.get("wall_s", 0.0))
        except (TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(
                f"init_from {src} does not fit this model ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
            ) from None
        log(f"initialised from {src} (step {step}); fresh optimizer state")
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "model": mcfg.to_dict()}, indent=2))

    log(f"loading data from {cfg.data}")
    pool = load_image_pool(cfg.data, max(crops))
    val_pool = load_image_pool([cfg.val], 64)[: cfg.val_images] if cfg.val else []
    log(
        f"{len(pool)} training images, {len(val_pool)} validation images, device {device}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters"
    )
    lps = loss_nets(cfg.lpips_net, cfg.perceptual_weight, device)
    last_layer = model.decoder.conv_out.weight
    usage = torch.zeros(mcfg.n_embed, dtype=torch.long)
    logf = open(out / "log.jsonl", "a")
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
        disc.to(memory_format=torch.channels_last)
    best_path = out / "best.pt"
    best = math.inf
    if best_path.exists():
        prev = read_checkpoint(best_path)
        if prev.get("select_on", ["lpips_alex"]) == list(cfg.select_on):
            best = float(prev.get("val_score", prev["val_lpips_alex"]))
        else:
            log(
                f"best.pt was selected on {prev.get('select_on', ['lpips_alex'])}, this run on {cfg.select_on}: "
                "the next validation replaces it"
            )

    def log_row(row: dict) -> None:
        log(json.dumps(row))
        logf.write(json.dumps(row) + "\n")
        logf.flush()

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "disc": disc.state_dict(),
                "opt": opt.state_dict(),
                "opt_d": opt_d.state_dict(),
                "step": step,
                "wall_s": wall,
                "np_rng": rng.bit_generator.state,
                "torch_gen": gen.get_state(),
                "config": mcfg.to_dict(),
            },
            tmp,
        )
        tmp.replace(ckpt_path)

    def save_model_only(path: Path) -> None:  # what a GPU run hands back (< 16 MB): model, config, step
        tmp = path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "step": step, "wall_s": wall, "config": mcfg.to_dict()}, tmp)
        tmp.replace(path)

    def save_best(val: dict) -> None:  # model only: what export-codec needs, for the best validation LPIPS so far
        tmp = best_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "step": step,
                "wall_s": wall,
                "config": mcfg.to_dict(),
                "val_lpips_alex": val["val_lpips_alex"],
                "val": val,
                "select_on": list(cfg.select_on),
                "val_score": selection_score(val, cfg.select_on),
            },
            tmp,
        )
        tmp.replace(best_path)

    def d_in(t: torch.Tensor) -> torch.Tensor:  # what the discriminator sees
        return diff_augment(t, gen) if cfg.disc_augment else t

    model.train()
    t_start = time.time()
    acc: dict[str, float] = {"_wall0": wall}
    while step < cfg.steps:
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        crop, batch = crop_at(step, cfg)
        x = random_crops(pool, batch, crop, rng).to(device, memory_format=fmt)
        if step == cfg.kmeans_init_step and "quantize" not in cfg.freeze:
            extra = [
                random_crops(pool, batch, crop, rng).to(device, memory_format=fmt)
                for _ in range(max(0, cfg.kmeans_init_batches - 1))
            ]
            n_used = kmeans_init_codebook(model, [x, *extra], cfg.seed)
            log_row({"step": step, "kmeans_init": True, "used_in_batch": n_used})
        h = model.encode_pre_quant(x)
        z_q, qloss, idx = model.quantize(h)
        rec, xr = reconstruction_loss(model, z_q, x, lps, cfg.perceptual_weight, cfg.precision)
        if cfg.lowpass_weight > 0:
            # [-1, 1] inputs: halve to express the term in [0, 1] units like the metric
            rec = rec + cfg.lowpass_weight * 0.5 * lowpass_loss(x, xr, mcfg.downsample_factor, cfg.chroma_weight)
        loss = rec + qloss
        gan_on = step >= cfg.disc_start
        if gan_on and step >= cfg.disc_start + cfg.disc_warmup:
            g_loss = -disc(d_in(xr)).mean()
            lam = adaptive_weight(rec, g_loss, last_layer, cfg.disc_weight)
            loss = loss + lam * g_loss
            acc["gan_lambda"] = acc.get("gan_lambda", 0.0) + float(lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if gan_on:
            d_loss = hinge_d_loss(disc(d_in(x.detach())), disc(d_in(xr.detach())))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            acc["d_loss"] = acc.get("d_loss", 0.0) + d_loss.item()
        usage += torch.bincount(idx.flatten().cpu(), minlength=mcfg.n_embed)
        step += 1
        wall += time.time() - t0
        for k, v in (("loss", loss.item()), ("rec", rec.item()), ("qloss", qloss.item())):
            acc[k] = acc.get(k, 0.0) + v
        if cfg.restart_every and "quantize" not in cfg.freeze and step % cfg.restart_every == 0:
            n_dead = _restart_dead_codes(model, usage, h.detach(), gen)
            acc["restarted"] = n_dead
            acc["used"] = int((usage > 0).sum())
            usage.zero_()
        if step % cfg.log_every == 0:
            sps = cfg.log_every / max(1e-9, wall - acc.pop("_wall0", 0.0))
            eta_s = (cfg.steps - step) / max(sps, 1e-9)
            if cfg.max_minutes is not None:  # this sitting ends at whichever comes first
                eta_s = min(eta_s, max(0.0, 60 * cfg.max_minutes - (time.time() - t_start)))
            row = {
                "step": step,
                "lr": _lr_at(step, cfg),
                "wall_s": round(wall, 1),
                "crop": crop,
                "batch": batch,
                "steps_per_s": round(sps, 3),
                "eta_min": round(eta_s / 60, 1),  # to the end of the schedule or of this sitting
                **{k: (v / cfg.log_every if k not in ("restarted", "used") else v) for k, v in acc.items()},
            }
            log_row(row)
            acc = {"_wall0": wall}
        timed_out = cfg.max_minutes is not None and time.time() - t_start > 60 * cfg.max_minutes
        if val_pool and (step % cfg.val_every == 0 or step == cfg.steps or timed_out):  # every sitting ends validated
            val = validate(model, val_pool, device, metrics=cfg.val_metrics)
            score = selection_score(val, cfg.select_on)
            log_row({"step": step, "wall_s": round(wall, 1), **val, "val_score": score})
            if score < best:
                best = score
                save_best(val)
        if step % cfg.ckpt_every == 0 or step == cfg.steps or timed_out:
            save()
            save_model_only(out / "model.pt")
        if timed_out:
            log(f"stopping after {cfg.max_minutes} min at step {step} (resume to continue)")
            break
    logf.close()
    return ckpt_path
