"""A loss-aware decoder: fine-tune post_quant_conv + decoder on concealed index maps (encoder, codebook fixed).

Each step decodes a batch of ``window × window`` latent maps of training
crops.  A fraction ``clean_fraction`` of them are clean (the sent indices'
codewords: loss-free quality is trained too); in the others a loss mask of a
random shape (``shapes``: scattered / row bursts / packet-interleaved, see
:func:`codec.conceal.masks.shaped_loss_mask`) and fraction
U(``loss_min``, ``loss_max``) is filled by the ``filler`` concealment method
(a registry name: ``latent_avg_soft`` is cheap; ``bidir_soft`` runs the shipped
bidirectional transformer), and the decoder is trained to turn that map into
the *original* crop: ``|x − x̂|₁ + w_p·LPIPS(x, x̂)``, the codec's
reconstruction loss without the codebook terms (the quantizer is fixed).

Only decoder-side weights change, so index maps, bitstreams, coder priors
and concealers are those of the codec; the result is a decoder variant
(:mod:`codec.conceal.decoder_variant`) users pick with ``decoder="robust"``
or a file.  The run is resumable: ``OUT.train/state.pt`` (weights, optimizer,
step, generator state) every ``ckpt_every`` steps; the training crops'
index maps are cached in ``OUT.train/indices.pt``.

Entry point: ``train_robust_decoder(cfg)`` / ``vqsim train-robust-decoder
--config experiments/configs/train/robust_decoder.yaml``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..checkpoint import save_atomic
from ..errors import CheckpointError, ParameterError


@dataclass
class RobustDecoderConfig:
    """Settings of one robust-decoder fine-tune (units: steps, latent positions)."""

    out: str = "runs/robust_decoder/default_robustdec_1024.pt"
    codec: str = "default"
    codebook_size: int = 1024
    data: list[str] = field(default_factory=lambda: ["../shared/data/train256_part1.tar",
                                                     "../shared/data/train256_part2.tar"])
    max_images: int | None = None
    window: int = 16                       # latent window side (pixel crop window·f)
    steps: int = 3000
    batch_size: int = 8
    lr: float = 5e-5
    warmup: int = 50
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"                # perceptual loss: "alex", "vgg" or "alex+vgg" (mean of the two)
    parts: list[str] = field(default_factory=lambda: ["post_quant_conv", "decoder"])
    clean_fraction: float = 0.25
    loss_min: float = 0.05
    loss_max: float = 0.5
    shapes: list[str] = field(default_factory=lambda: ["scattered", "rows", "interleaved"])
    filler: str = "latent_avg_soft"
    filler_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    log_every: int = 25
    ckpt_every: int = 100
    threads: int | None = None
    device: str | None = None
    # a second stage: when OUT.train/state.pt does not exist yet, start from this saved state of another run
    # (its weights, optimizer, step, generator state and validation rows) instead of from the codec's decoder
    resume_from: str | None = None
    precision: str = "fp32"                # "bf16": decoder + LPIPS under bf16 autocast (losses.decoder_autocast)
    channels_last: bool = False            # NHWC layout for the decoder and LPIPS nets (faster convolutions on CPU)
    # validation on unseen photos (off when val is None or val_every is 0): loss-free and at each of val_losses
    # (scattered loss filled by val_filler, fixed masks), metrics against the original; OUT.train/best.pt is the
    # decoder file of the lowest mean of select_on (names: a metric for loss-free, METRIC@LOSS for a loss level)
    val: str | None = None
    val_images: int = 16
    val_every: int = 0
    val_losses: list[float] = field(default_factory=lambda: [0.2])
    val_filler: str = "latent_avg_soft"
    val_filler_options: dict[str, Any] = field(default_factory=dict)
    val_metrics: list[str] = field(default_factory=lambda: ["lpips_alex", "lpips_vgg", "dists"])
    select_on: list[str] = field(default_factory=lambda: ["dists", "lpips_vgg"])

    def __post_init__(self) -> None:
        from ..conceal import CONCEAL_METHODS, LOSS_SHAPES

        for name in ("steps", "batch_size", "window", "codebook_size", "log_every", "ckpt_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"{name} must be an int >= 1, got {v!r}")
        if not self.lr > 0:
            raise ParameterError(f"lr must be > 0, got {self.lr}")
        if self.perceptual_weight < 0:
            raise ParameterError(f"perceptual_weight must be >= 0, got {self.perceptual_weight}")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ParameterError(f"clean_fraction must be in [0, 1], got {self.clean_fraction}")
        if not 0.0 <= self.loss_min <= self.loss_max <= 1.0:
            raise ParameterError(f"need 0 <= loss_min <= loss_max <= 1, got {self.loss_min}, {self.loss_max}")
        bad = [s for s in self.shapes if s not in LOSS_SHAPES]
        if bad or not self.shapes:
            raise ParameterError(f"shapes must be a non-empty list of {LOSS_SHAPES}, got {self.shapes}")
        if self.filler not in CONCEAL_METHODS:
            raise ParameterError(f"filler must be a concealment method ({', '.join(CONCEAL_METHODS)}), "
                                 f"got {self.filler!r}")
        from .losses import check_lpips_net, check_precision

        check_precision(self.precision)
        check_lpips_net(self.lpips_net)
        for p in self.parts:
            if not (p == "post_quant_conv" or p == "decoder" or p.startswith("decoder.")):
                raise ParameterError(f"parts may only name post_quant_conv or decoder modules, got {p!r}")
        from .loop import VAL_METRICS

        if isinstance(self.val_every, bool) or not isinstance(self.val_every, int) or self.val_every < 0:
            raise ParameterError(f"val_every must be an int >= 0 (0 = off), got {self.val_every!r}")
        if isinstance(self.val_images, bool) or not isinstance(self.val_images, int) or self.val_images < 1:
            raise ParameterError(f"val_images must be an int >= 1, got {self.val_images!r}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v < 1.0 for v in self.val_losses):
            raise ParameterError(f"val_losses must be fractions in (0, 1), got {self.val_losses}")
        if self.val_filler not in CONCEAL_METHODS:
            raise ParameterError(f"val_filler must be a concealment method, got {self.val_filler!r}")
        bad = [m for m in self.val_metrics if m not in VAL_METRICS]
        if bad or not self.val_metrics:
            raise ParameterError(f"val_metrics must be a non-empty subset of {VAL_METRICS}, got {self.val_metrics}")
        known = set(self.val_metrics) | {f"{m}@{val_key(v)}" for m in self.val_metrics for v in self.val_losses}
        if not self.select_on or any(k not in known for k in self.select_on):
            raise ParameterError(f"select_on must name validated scores ({', '.join(sorted(known))}), "
                                 f"got {self.select_on}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "RobustDecoderConfig":
        import yaml

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config not found: {p}")
        d = yaml.safe_load(p.read_text()) or {}
        if not isinstance(d, dict):
            raise ParameterError(f"{p}: a robust-decoder config must be a mapping")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ParameterError(f"{p}: unknown key(s) {bad}; allowed: {sorted(known)}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**d)


def _crop_indices(codec, cfg: RobustDecoderConfig, log) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices (N, s, s) int64, images (N, 3, s·f, s·f) uint8) of centre crops of the training data."""
    from .data import load_image_pool

    f = codec.downsample_factor
    side = cfg.window * f
    pool = load_image_pool(list(cfg.data), side)
    if cfg.max_images:
        pool = pool[:int(cfg.max_images)]
    crops = _centre_crops(pool, side)
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    t0 = time.time()
    idx = []
    for i in range(0, len(crops), 16):
        idx.append(codec.encode_batch(images[i:i + 16].float() / 255.0).cpu())
    log(f"encoded {len(crops)} crops of {side}x{side} in {time.time() - t0:.1f} s")
    return torch.cat(idx), images


def _trainable(model, parts: list[str]) -> dict[str, torch.nn.Parameter]:
    named = dict(model.named_parameters())
    chosen = {k: p for k, p in named.items() if any(k == q or k.startswith(q + ".") for q in parts)
              and not k.startswith("decoder_codebook")}
    missing = [q for q in parts if not any(k == q or k.startswith(q + ".") for k in named)]
    if missing:
        raise ParameterError(f"parts not in the model: {missing}")
    return chosen


def corrupt_latents(codec, indices: np.ndarray, cfg: RobustDecoderConfig, rng: np.random.Generator, table: np.ndarray,
                    model=None) -> tuple[np.ndarray, np.ndarray]:
    """One training input: (latent map (s, s, D) float32, lost mask) — clean with probability ``clean_fraction``."""
    from ..conceal import conceal, shaped_loss_mask
    from ..types import IndexMap

    s = indices.shape
    if rng.random() < cfg.clean_fraction:
        return table[indices].astype(np.float32), np.zeros(s, dtype=bool)
    frac = float(rng.uniform(cfg.loss_min, cfg.loss_max))
    shape = cfg.shapes[int(rng.integers(len(cfg.shapes)))]
    lost = shaped_loss_mask(s, frac, shape, rng)
    if not lost.any():
        return table[indices].astype(np.float32), lost
    f = codec.downsample_factor
    imap = IndexMap(np.where(lost, 0, indices), codec.codebook_size, (s[0] * f, s[1] * f), codec.codebook_id)
    opts = dict(cfg.filler_options)
    if model is not None:
        opts.setdefault("window", int(getattr(model, "meta", {}).get("window", 16)))
    res = conceal(imap, lost, cfg.filler, model=model, codebook=codec.codebook, decoder_codebook=table,
                  rng=torch.Generator().manual_seed(int(rng.integers(2 ** 62))), **opts)
    lat = res.latents if res.latents is not None else table[res.indices.astype(np.int64)].astype(np.float32)
    return np.asarray(lat, dtype=np.float32), lost


def val_key(loss: float) -> str:
    """``0.2`` → ``"20"``: the suffix of a validation score at that loss fraction (``dists@20``)."""
    return f"{100 * float(loss):g}"


@dataclass
class ValSet:
    """What every validation of a run reuses: the decoder inputs of the validation crops, loss-free (key ``""``)
    and at each loss fraction (``"@20"``), (N, D, s, s) float32, and the originals' prepared metric sides."""

    inputs: dict[str, torch.Tensor]
    lpips_ref: dict[str, list[torch.Tensor]]
    dists_ref: Any


@torch.no_grad()
def prepare_val(codec, cfg: RobustDecoderConfig, table: np.ndarray, filler_model=None) -> ValSet:
    """Centre crops (the training windows' side) of the first ``val_images`` photos of ``cfg.val`` (sorted by
    name; photos smaller than a window are skipped), their decoder inputs loss-free and with each of
    ``cfg.val_losses`` of scattered positions lost and filled by ``cfg.val_filler`` (masks seeded per crop), and
    the originals' LPIPS features / DISTS reference.  The encoder, codebook and decoder table stay fixed during a
    run, so all of this is computed once."""
    from ..conceal import conceal, shaped_loss_mask
    from ..image import list_images, load_image
    from ..metrics import dists_reference, lpips_features
    from ..types import IndexMap

    if cfg.val is None:
        raise ParameterError("val: no validation images configured")
    f = codec.downsample_factor
    side = cfg.window * f
    photos = [load_image(p) for p in list_images(cfg.val)[: cfg.val_images]]
    photos = [a for a in photos if min(a.shape[:2]) >= side]
    if not photos:
        raise ParameterError(f"val: no photo in {cfg.val} has a {side}x{side} centre crop")
    images = torch.from_numpy(np.stack(_centre_crops(photos, side))).permute(0, 3, 1, 2).float().div(255)
    val_idx = codec.encode_batch(images).cpu().numpy()
    lats: dict[str, list[np.ndarray]] = {"": [table[idx].astype(np.float32) for idx in val_idx]}
    for loss in cfg.val_losses:
        rows = lats.setdefault("@" + val_key(loss), [])
        for i, idx in enumerate(val_idx):
            lost = shaped_loss_mask(idx.shape, float(loss), "scattered",
                                    np.random.default_rng([i, int(round(1000 * float(loss)))]))
            imap = IndexMap(np.where(lost, 0, idx), codec.codebook_size, (idx.shape[0] * f, idx.shape[1] * f),
                            codec.codebook_id)
            opts = dict(cfg.val_filler_options)
            if filler_model is not None:
                opts.setdefault("window", int(getattr(filler_model, "meta", {}).get("window", 16)))
            res = conceal(imap, lost, cfg.val_filler, model=filler_model, codebook=codec.codebook,
                          decoder_codebook=table, rng=torch.Generator().manual_seed(i), **opts)
            lat = res.latents if res.latents is not None else table[res.indices.astype(np.int64)]
            rows.append(np.asarray(lat, dtype=np.float32))
    device = codec.device
    x = images.to(device)
    nets = [m.split("_")[1] for m in cfg.val_metrics if m.startswith("lpips_")]
    return ValSet(inputs={k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).contiguous() for k, v in lats.items()},
                  lpips_ref={n: lpips_features(x, n, device) for n in nets},
                  dists_ref=dists_reference(x, device) if "dists" in cfg.val_metrics else None)


@torch.no_grad()
def validate_robust(model, cfg: RobustDecoderConfig, vs: ValSet, batch_size: int = 8) -> dict[str, float]:
    """Scores of the decoder side now being trained on the validation crops of :func:`prepare_val`:
    ``val_<metric>`` loss-free and ``val_<metric>@<loss %>`` under loss, each against the original crop;
    ``val_score`` is the mean of ``cfg.select_on``.  Runs in fp32, eval mode."""
    from ..metrics import dists, lpips_features, lpips_from_features

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    out: dict[str, float] = {}
    for suffix, z_all in vs.inputs.items():
        rec = torch.cat([((model.decode(z.to(device).contiguous(memory_format=fmt)).float() + 1) / 2).clamp(0, 1)
                         for z in z_all.split(batch_size)])
        for m in cfg.val_metrics:
            if m == "dists":
                v = dists(None, rec, device, ref=vs.dists_ref)
            else:
                net = m.split("_")[1]
                v = lpips_from_features(vs.lpips_ref[net], lpips_features(rec, net, device), net)
            out[f"val_{m}{suffix}"] = float(v.mean())
    if was_training:
        model.train()
    out["val_score"] = float(np.mean([out[f"val_{k}"] for k in cfg.select_on]))
    return out


def _centre_crops(arrays: list[np.ndarray], side: int) -> list[np.ndarray]:
    """The ``side`` × ``side`` centre crop of each uint8 (H, W, 3) array (each at least ``side`` on both axes)."""
    out = []
    for a in arrays:
        y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        out.append(np.ascontiguousarray(a[y:y + side, x:x + side]))
    return out


def _fixed_tensors(model) -> dict[str, torch.Tensor]:
    """The decoder-side tensors a run reads but does not train and that a later codec file may change: a reduced
    size's fine-tuned decoder codebook (``decoder_codebook``, (S, D)); empty at the full size."""
    dcb = getattr(model, "decoder_codebook", None)
    return {} if dcb is None else {"decoder_codebook": dcb.weight.detach().float().cpu().clone()}


def _restore_fixed(model, fixed: dict | None, log: Callable[[str], None]) -> bool:
    """Put a saved state's fixed tensors back into ``model`` (the run goes on against the decoder codebook it
    started with, even if the codec file's fine-tuned size has been rebuilt since); True when one differed."""
    if not fixed or "decoder_codebook" not in fixed or getattr(model, "decoder_codebook", None) is None:
        return False
    w = model.decoder_codebook.weight
    v = torch.as_tensor(fixed["decoder_codebook"]).to(w.device, w.dtype)
    if tuple(v.shape) != tuple(w.shape):
        raise CheckpointError(f"saved decoder_codebook has shape {tuple(v.shape)}, the codec's {tuple(w.shape)}")
    if torch.equal(v, w.detach()):
        return False
    w.data.copy_(v)
    log("the codec's fine-tuned decoder codebook changed since this run started: the run keeps its own")
    return True


def train_robust_decoder(cfg: RobustDecoderConfig, *, resume: bool = False, max_minutes: float | None = None,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune the decoder side of ``cfg.codec`` at ``cfg.codebook_size`` on concealed maps; write ``cfg.out``.

    Returns ``{"out", "step", "done", "history"}``; ``done`` is False when
    ``max_minutes`` stopped it early (the state is saved; ``resume=True`` continues).
    """
    from ..checkpoint import read_checkpoint
    from ..conceal import MODEL_KIND
    from ..conceal.soft import decoder_table
    from ..zoo import load_codec, load_concealer
    from .losses import loss_nets, reconstruction_loss

    out = Path(cfg.out)
    work = out.with_name(out.name + ".train")
    state_path = work / "state.pt"
    if state_path.exists() and not resume:
        raise ParameterError(f"{state_path} exists: pass --resume to continue it, or choose another out")
    work.mkdir(parents=True, exist_ok=True)
    codec = load_codec(cfg.codec, cfg.codebook_size, device=cfg.device)
    device = codec.device
    cache = work / "indices.pt"
    key = json.dumps([codec.codebook_id, cfg.data, cfg.max_images, cfg.window])
    # a second stage reads its first stage's cache of the same crops rather than encoding them again
    caches = [cache] + ([Path(cfg.resume_from).with_name("indices.pt")] if cfg.resume_from else [])
    for c in caches:
        ck = read_checkpoint(c) if c.exists() else None
        if ck is not None and ck.get("key") == key:
            idx_all, images = ck["indices"], ck["images"]
            break
    else:
        idx_all, images = _crop_indices(codec, cfg, log)
        torch.save({"indices": idx_all, "images": images, "key": key}, cache)
    n = len(idx_all)
    table = decoder_table(codec)
    kind = MODEL_KIND.get(cfg.filler)
    filler_model = load_concealer(codec.name, cfg.codebook_size, kind, device="cpu") if kind else None
    model = codec.model
    model.train()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    model.requires_grad_(False)
    params = _trainable(model, list(cfg.parts))
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr, betas=(0.5, 0.9))
    rng = np.random.default_rng(cfg.seed)
    step, history, val_history = 0, [], []
    start = state_path if state_path.exists() else Path(cfg.resume_from) if cfg.resume_from else None
    if start is not None and start != state_path and not start.is_file():
        raise FileNotFoundError(f"resume_from: no saved state at {start}")
    if start is not None and (resume or start != state_path):
        st = read_checkpoint(start)
        own = dict(model.named_parameters())
        for k, v in st["weights"].items():
            own[k].data.copy_(v.to(device))
        opt.load_state_dict(st["opt"])
        step, history = int(st["step"]), list(st["history"])
        val_history = list(st.get("val_history", []))
        rng.bit_generator.state = json.loads(st["rng"])
        if _restore_fixed(model, st.get("fixed"), log):
            table = decoder_table(codec)
        log(f"resumed at step {step}" + ("" if start == state_path else f" from {start}"))
    fixed = _fixed_tensors(model)

    def decoder_weights() -> dict[str, torch.Tensor]:
        """What a decoder file holds: the trained tensors, and the fixed ones they were trained against."""
        return {**fixed, **{k: p.detach() for k, p in params.items()}}
    lps = loss_nets(cfg.lpips_net, cfg.perceptual_weight, device)
    if cfg.channels_last:  # own copies: the cached metric nets stay as every other caller expects them
        import copy

        lps = [copy.deepcopy(lp).to(memory_format=fmt) for lp in lps]

    def save_state() -> None:
        save_atomic({"weights": {k: p.detach().cpu().clone() for k, p in params.items()}, "opt": opt.state_dict(),
                     "fixed": fixed, "step": step, "history": history, "val_history": val_history,
                     "rng": json.dumps(rng.bit_generator.state), "config": asdict(cfg)}, state_path)

    validating = cfg.val is not None and cfg.val_every > 0
    if validating:
        vkind = MODEL_KIND.get(cfg.val_filler)
        val_model = (filler_model if vkind == kind else load_concealer(codec.name, cfg.codebook_size, vkind,
                                                                       device="cpu")) if vkind else None
        val_set = prepare_val(codec, cfg, table, val_model)
        log(f"validation: {len(val_set.inputs[''])} crops of {cfg.val}, every {cfg.val_every} steps, "
            f"select on {cfg.select_on}")
        best = min((r["val_score"] for r in val_history if r.get("select_on") == list(cfg.select_on)
                    and r.get("val_filler", "latent_avg_soft") == cfg.val_filler), default=float("inf"))

    def run_validation() -> None:
        nonlocal best
        row = {"step": step, **validate_robust(model, cfg, val_set),
               "select_on": list(cfg.select_on), "val_filler": cfg.val_filler}
        val_history.append(row)
        log(json.dumps(row))
        if row["val_score"] < best:
            best = row["val_score"]
            _write_decoder_file(cfg, codec, decoder_weights(), step, history,
                                done=False, path=work / "best.pt", extra={"val": row})

    if validating and best == float("inf") and step < cfg.steps:  # first point: the decoder it starts from
        run_validation()
    t_start, acc, acc_n = time.time(), 0.0, 0
    done = True
    while step < cfg.steps:
        if max_minutes is not None and time.time() - t_start > 60 * max_minutes:
            done = False
            break
        lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
        if step >= cfg.warmup:
            lr *= 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        b = rng.integers(0, n, size=cfg.batch_size)
        lats, fracs = [], []
        for i in b.tolist():
            lat, lost = corrupt_latents(codec, idx_all[i].numpy(), cfg, rng, table, filler_model)
            lats.append(lat)
            fracs.append(float(lost.mean()))
        z = torch.from_numpy(np.stack(lats)).permute(0, 3, 1, 2).to(device).contiguous(memory_format=fmt)
        x = images[torch.from_numpy(b)].to(device).float().div(127.5).sub(1).contiguous(memory_format=fmt)
        loss, _ = reconstruction_loss(model, z, x, lps, cfg.perceptual_weight, cfg.precision)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += float(loss.detach())
        acc_n += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            row = {"step": step, "loss": acc / acc_n, "lr": lr, "mean_lost": float(np.mean(fracs)),
                   "wall_s": round(time.time() - t_start, 1)}
            history.append(row)
            log(json.dumps(row))
            acc, acc_n = 0.0, 0
        if validating and (step % cfg.val_every == 0 or step == cfg.steps):
            run_validation()
        if step % cfg.ckpt_every == 0:
            save_state()
    save_state()
    if done:
        _write_decoder_file(cfg, codec, decoder_weights(), step, history, done=True)
        log(json.dumps({"done": str(out), "step": step}))
    return {"out": str(out), "step": step, "done": done, "history": history}


def _write_decoder_file(cfg: RobustDecoderConfig, codec, weights: dict, step: int, history: list,
                        done: bool, path: Path | None = None, extra: dict | None = None) -> Path:
    """``path`` (default ``cfg.out``) = {"weights": fp16 decoder side, "meta": {codebook_id, codec_steps, steps,
    done, ...}} (written to a temporary file, then renamed)."""
    from ..zoo import checkpoint_meta

    out = Path(cfg.out)
    meta = {"name": out.stem, "codec": codec.name, "codebook_id": codec.codebook_id,
            "codec_steps": checkpoint_meta(cfg.codec).get("steps"), "steps": step, "done": done,
            "filler": cfg.filler, "config": asdict(cfg), "final_loss": history[-1]["loss"] if history else None,
            **(extra or {})}
    return save_atomic({"weights": {k: v.detach().cpu().half().clone() for k, v in weights.items()},
                        "meta": meta}, path or out)


def export_robust_decoder(cfg: RobustDecoderConfig) -> dict[str, Any]:
    """Write ``cfg.out`` from the saved state of a (running or stopped) fine-tune, without training: an
    unfinished run can be evaluated while it goes on (``meta.done`` is False until ``cfg.steps``).
    Returns ``{"out", "step", "done"}``; FileNotFoundError when no state was saved yet."""
    from ..checkpoint import read_checkpoint
    from ..zoo import load_codec

    state_path = Path(cfg.out).with_name(Path(cfg.out).name + ".train") / "state.pt"
    if not state_path.exists():
        raise FileNotFoundError(f"no saved state to export: {state_path} (train first; a state is saved every "
                                f"ckpt_every = {cfg.ckpt_every} steps)")
    st = read_checkpoint(state_path)
    codec = load_codec(cfg.codec, cfg.codebook_size, device="cpu")
    step = int(st["step"])
    fixed = st.get("fixed") or _fixed_tensors(codec.model)  # states from before "fixed" was kept: the codec's
    out = _write_decoder_file(cfg, codec, {**fixed, **dict(st["weights"])}, step, list(st["history"]),
                              done=step >= cfg.steps)
    return {"out": str(out), "step": step, "done": step >= cfg.steps}
