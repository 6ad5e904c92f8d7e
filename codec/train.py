"""Training of a VQGAN codec (``vqsim train-codec``), resumable.

Losses follow taming-transformers' ``VQLPIPSWithDiscriminator`` and the paper:

    L = |x − x̂|₁ + w_p · LPIPS(x, x̂) + L_codebook(β) + λ · d_factor · L_G
    λ = ‖∇_{W_last} L_rec‖ / (‖∇_{W_last} L_G‖ + 1e-4), clamped to [0, 1e4]

where W_last is the decoder's last conv, L_G = −mean(D(x̂)) and the
discriminator (PatchGAN, ``NLayerDiscriminator``) is trained with the hinge
loss; both GAN terms switch on at ``disc_start`` steps.  Codewords unused for
``restart_every`` steps are restarted on random encoder outputs of the current
batch (dead-codeword restarts), and usage is logged.

Data: random crops (+ horizontal flips) of JPEG/PNG images from folders or
``.tar`` archives (e.g. ``../shared/data/train256_part{1,2}.tar``), decoded
once into memory.  Checkpoints (``last.pt``) hold model, discriminator,
optimizers, step and RNG state; ``resume=True`` continues exactly there.
"""
from __future__ import annotations

import io
import json
import math
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .vqgan import VQGANConfig, VQModel


@dataclass
class TrainConfig:
    """Codec training settings (units: steps, pixels)."""

    data: list[str] = field(default_factory=lambda: ["../shared/data/train256_part1.tar", "../shared/data/train256_part2.tar"])
    val: str | None = "../shared/data/val"
    out: str = "runs/codec"
    model: dict = field(default_factory=dict)   # VQGANConfig fields
    steps: int = 10000
    batch_size: int = 8
    crop: int = 128
    lr: float = 2e-4
    warmup: int = 200
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"
    disc_start: int = 10 ** 9                   # step at which the GAN terms switch on
    disc_weight: float = 0.8
    disc_layers: int = 2
    restart_every: int = 100                    # dead-codeword restart period (0 = off)
    freeze: list[str] = field(default_factory=list)  # VQModel parts not trained, e.g. ["encoder", "quant_conv", "quantize"]
    log_every: int = 25
    ckpt_every: int = 200
    val_every: int = 1000
    val_images: int = 16
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    max_minutes: float | None = None            # stop (with checkpoint) after this wall time


# --------------------------------------------------------------------------- data
def load_image_pool(sources: list[str], min_side: int) -> list[np.ndarray]:
    """Decode every image in folders / tar archives into uint8 (H, W, 3) arrays."""
    pool: list[np.ndarray] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"training data not found: {p}")
        if p.suffix == ".tar":
            with tarfile.open(p) as tf:
                for m in tf:
                    if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg", ".png")):
                        data = tf.extractfile(m).read()
                        pool.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        else:
            from .image import list_images, load_image

            pool.extend(load_image(q) for q in list_images(p))
    pool = [a for a in pool if min(a.shape[:2]) >= min_side]
    if not pool:
        raise ValueError(f"no training image of at least {min_side} px in {sources}")
    return pool


def random_crops(pool: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """n random size×size crops with random horizontal flips → float (n,3,size,size) in [-1, 1]."""
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for b, i in enumerate(rng.integers(0, len(pool), size=n)):
        a = pool[i]
        y = rng.integers(0, a.shape[0] - size + 1)
        x = rng.integers(0, a.shape[1] - size + 1)
        c = a[y:y + size, x:x + size]
        out[b] = c[:, ::-1] if rng.random() < 0.5 else c
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


# --------------------------------------------------------------------------- discriminator
class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / taming), BatchNorm, LeakyReLU 0.2."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.main = nn.Sequential(*seq)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, scale: float) -> torch.Tensor:
    """λ = ‖∇L_rec‖ / (‖∇L_G‖ + 1e-4) at the decoder's last layer, clamped to [0, 1e4], times ``scale``."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = torch.norm(g_rec) / (torch.norm(g_gan) + 1e-4)
    return torch.clamp(w, 0.0, 1e4).detach() * scale


# --------------------------------------------------------------------------- training
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
def validate(model: VQModel, images: list[np.ndarray], device: torch.device, crop: int = 256) -> dict[str, float]:
    """Mean LPIPS (alex) and PSNR over centre crops of validation images; codebook usage."""
    from .metrics import lpips_distance, psnr

    model.eval()
    ls, ps, used = [], [], set()
    for a in images:
        h, w = a.shape[:2]
        s = min(crop, h, w) // model.downsample_factor * model.downsample_factor
        y, x = (h - s) // 2, (w - s) // 2
        t = torch.from_numpy(np.ascontiguousarray(a[y:y + s, x:x + s])).permute(2, 0, 1)[None].float().div(255).to(device)
        rec, _, idx = model(t * 2 - 1)
        rec = ((rec + 1) / 2).clamp(0, 1)
        ls.append(float(lpips_distance(t, rec, net="alex").mean()))
        ps.append(float(psnr(t, rec).mean()))
        used.update(idx.flatten().tolist())
    model.train()
    return {"val_lpips_alex": float(np.mean(ls)), "val_psnr": float(np.mean(ps)), "val_codebook_used": len(used)}


def train_codec(cfg: TrainConfig, resume: bool = True, log=print) -> Path:
    """Train (or continue training) a VQGAN; returns the path of the last checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    mcfg = VQGANConfig.from_dict(cfg.model)
    if cfg.crop % mcfg.downsample_factor:
        raise ValueError(f"crop {cfg.crop} must be a multiple of the downsampling factor {mcfg.downsample_factor}")

    torch.manual_seed(cfg.seed)
    model = VQModel(mcfg).to(device)
    disc = NLayerDiscriminator(n_layers=cfg.disc_layers).to(device)
    for part in cfg.freeze:
        if part not in ("encoder", "quant_conv", "quantize", "post_quant_conv", "decoder"):
            raise ValueError(f"freeze: unknown part {part!r}; allowed: encoder, quant_conv, quantize, post_quant_conv, decoder")
        getattr(model, part).requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, wall = 0, 0.0
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        disc.load_state_dict(ck["disc"])
        try:
            opt.load_state_dict(ck["opt"])
        except ValueError:  # the set of trained parameters changed (cfg.freeze): fresh optimizer state
            log("optimizer state not restored: trained parameters differ from the checkpoint's")
        opt_d.load_state_dict(ck["opt_d"])
        step, wall = ck["step"], ck.get("wall_s", 0.0)
        rng.bit_generator.state = ck["np_rng"]
        gen.set_state(ck["torch_gen"])
        log(f"resumed from {ckpt_path} at step {step}")
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "model": mcfg.to_dict()}, indent=2))

    log(f"loading data from {cfg.data}")
    pool = load_image_pool(cfg.data, cfg.crop)
    val_pool = load_image_pool([cfg.val], 64)[: cfg.val_images] if cfg.val else []
    log(f"{len(pool)} training images, {len(val_pool)} validation images, device {device}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters")
    lp = None
    if cfg.perceptual_weight > 0:
        from .metrics import get_lpips

        lp = get_lpips(cfg.lpips_net, device=device)
    last_layer = model.decoder.conv_out.weight
    usage = torch.zeros(mcfg.n_embed, dtype=torch.long)
    logf = open(out / "log.jsonl", "a")

    def save() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "disc": disc.state_dict(), "opt": opt.state_dict(),
                    "opt_d": opt_d.state_dict(), "step": step, "wall_s": wall, "np_rng": rng.bit_generator.state,
                    "torch_gen": gen.get_state(), "config": mcfg.to_dict()}, tmp)
        tmp.replace(ckpt_path)

    model.train()
    t_start = time.time()
    acc: dict[str, float] = {}
    while step < cfg.steps:
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, cfg)
        x = random_crops(pool, cfg.batch_size, cfg.crop, rng).to(device)
        h = model.encode_pre_quant(x)
        z_q, qloss, idx = model.quantize(h)
        xr = model.decode(z_q)
        rec = (x - xr).abs().mean()
        if lp is not None:
            rec = rec + cfg.perceptual_weight * lp(x, xr).mean()  # lpips.LPIPS takes [-1, 1]
        loss = rec + qloss
        gan_on = step >= cfg.disc_start
        if gan_on:
            g_loss = -disc(xr).mean()
            lam = adaptive_weight(rec, g_loss, last_layer, cfg.disc_weight)
            loss = loss + lam * g_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if gan_on:
            d_loss = hinge_d_loss(disc(x.detach()), disc(xr.detach()))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            acc["d_loss"] = acc.get("d_loss", 0.0) + float(d_loss)
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
            row = {"step": step, "lr": _lr_at(step, cfg), "wall_s": round(wall, 1),
                   **{k: (v / cfg.log_every if k not in ("restarted", "used") else v) for k, v in acc.items()}}
            log(json.dumps(row))
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            acc = {}
        if val_pool and (step % cfg.val_every == 0 or step == cfg.steps):
            row = {"step": step, **validate(model, val_pool, device)}
            log(json.dumps(row))
            logf.write(json.dumps(row) + "\n")
            logf.flush()
        timed_out = cfg.max_minutes is not None and time.time() - t_start > 60 * cfg.max_minutes
        if step % cfg.ckpt_every == 0 or step == cfg.steps or timed_out:
            save()
        if timed_out:
            log(f"stopping after {cfg.max_minutes} min at step {step} (resume to continue)")
            break
    logf.close()
    return ckpt_path
