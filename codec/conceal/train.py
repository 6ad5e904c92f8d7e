"""Training of the concealment transformers (``vqsim train-transformer``), resumable.

Data: h×w index maps of one codebook (K codewords), e.g. produced by the
codec from training images (:func:`load_or_encode_index_maps` caches them in
an ``.npz``).  Each step draws B random s×s windows (s = ``window``, 16)
that fit inside a map (maps smaller than s in a dimension are skipped),
mirrored left–right with probability ½ (``hflip``).

``kind="ar"`` (the paper): a causal GPT with vocabulary K+1 ([mask] = K)
reads ``[sos] + w[0 … n−2]`` (sos = 0, as taming's unconditional models)
and predicts w[0 … n−1] (n = s²) with cross-entropy over all positions.
Context masking: per window a ratio α ~ U(0, α_max) is drawn and
⌊α·(n−1)⌋ of the n−1 context tokens (never the sos) are replaced by
[mask]; targets are always the true tokens — so the model learns to predict
with lost context.

``kind="bidir"`` (MaskGIT): a bidirectional GPT (vocabulary K+1) reads w
with a random subset masked — ratio r = cos(π/2·u), u ~ U(0, 1), at least
one token — and the loss is the cross-entropy on the masked positions only.

Optimiser: AdamW (β = (0.9, 0.95), weight decay on Linear weights only, as
minGPT), linear warm-up then cosine decay to ``min_lr_ratio``·lr, gradient
clipping.  Every random draw of step t comes from generators seeded with
(seed, t), so a resumed run sees the same data as an uninterrupted one;
``out`` + ``.train`` holds model, optimiser, step and history, and
``resume=True`` continues from it.  A held-out split of the maps (by map)
gives the logged evaluation loss and accuracy.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ParameterError
from .files import save_transformer
from .model import GPT, GPTConfig

KINDS = ("ar", "bidir")


@dataclass
class TransformerTrainConfig:
    """Settings of :func:`train_transformer` (units: optimiser steps, windows, tokens)."""

    kind: str = "ar"
    window: int = 16
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.0
    steps: int = 20000
    batch_size: int = 32
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup: int = 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    mask_ratio_max: float = 0.5      # α_max of the AR context masking
    #: bidir masking ratio law: None = MaskGIT's cosine schedule r = cos(π/2·u);
    #: (lo, hi) = r ~ U(lo, hi) (concentrates training on the loss rates concealment meets)
    bidir_mask_range: tuple[float, float] | None = None
    #: "fp32", or "bf16": forward/backward under bfloat16 autocast (weights and optimiser stay float32);
    #: 1.5× faster per step on an AVX512-BF16 CPU; evaluation always runs in float32
    precision: str = "fp32"
    hflip: bool = True
    holdout: float = 0.1             # fraction of maps held out for evaluation
    eval_every: int = 500
    eval_windows: int = 256
    log_every: int = 50
    ckpt_every: int = 1000
    seed: int = 0
    sos_token: int = 0
    device: str | None = None
    save_half: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("window", "n_layer", "n_head", "n_embd", "steps", "batch_size", "eval_windows",
                     "log_every", "eval_every", "ckpt_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"{name} must be a positive int, got {v!r}")
        if self.window < 2:
            raise ParameterError(f"window must be ≥ 2, got {self.window}")
        if self.n_embd % self.n_head:
            raise ParameterError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not self.lr > 0:
            raise ParameterError(f"lr must be > 0, got {self.lr}")
        if self.warmup < 0:
            raise ParameterError(f"warmup must be ≥ 0, got {self.warmup}")
        for name, lo, hi in (("dropout", 0.0, 1.0), ("mask_ratio_max", 0.0, 1.0), ("holdout", 0.0, 1.0),
                             ("min_lr_ratio", 0.0, 1.0)):
            v = float(getattr(self, name))
            if not lo <= v <= hi or (name == "dropout" and v >= 1.0):
                raise ParameterError(f"{name} must be in [{lo}, {hi}{')' if name == 'dropout' else ']'}, got {v}")
        if self.precision not in ("fp32", "bf16"):
            raise ParameterError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.bidir_mask_range is not None:
            lo, hi = (float(v) for v in self.bidir_mask_range)
            if not 0.0 < lo <= hi <= 1.0:
                raise ParameterError(f"bidir_mask_range must satisfy 0 < lo ≤ hi ≤ 1, got {self.bidir_mask_range}")
            self.bidir_mask_range = (lo, hi)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ParameterError("weight_decay and grad_clip must be ≥ 0")

    def model_config(self, K: int) -> GPTConfig:
        """vocab K+1 ([mask] = K), block s², causal for ``ar``."""
        return GPTConfig(vocab_size=K + 1, block_size=self.window ** 2, n_layer=self.n_layer, n_head=self.n_head,
                         n_embd=self.n_embd, embd_pdrop=self.dropout, resid_pdrop=self.dropout,
                         attn_pdrop=self.dropout, causal=self.kind == "ar")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TransformerTrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    model: GPT
    history: list[dict[str, Any]] = field(default_factory=list)
    step: int = 0
    path: Path | None = None


# --------------------------------------------------------------------------- data
def _check_maps(index_maps: Sequence[np.ndarray], K: int, window: int) -> tuple[list[np.ndarray], list[int]]:
    """The maps at least ``window`` on both sides (int64), and their positions in ``index_maps``."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 2:
        raise ParameterError(f"K must be an int ≥ 2, got {K!r}")
    maps, keep = [], []
    for n, m in enumerate(index_maps):
        a = np.asarray(getattr(m, "indices", m))
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise ParameterError(f"index map {n} must be a 2-D integer array, got {a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= K):
            raise ParameterError(f"index map {n} has values outside [0, {K})")
        if a.shape[0] >= window and a.shape[1] >= window:
            maps.append(a.astype(np.int64))
            keep.append(n)
    if not maps:
        raise ParameterError(f"no index map is at least {window}×{window} (got {len(index_maps)} maps)")
    return maps, keep


def data_fingerprint(maps: Sequence[np.ndarray]) -> str:
    """sha1 of the maps' shapes and contents (to refuse resuming on other data)."""
    h = hashlib.sha1()
    for m in maps:
        h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(m, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


class WindowSampler:
    """Random s×s crops of a list of maps; each crop position equally likely (maps weighted by crop count)."""

    def __init__(self, maps: Sequence[np.ndarray], window: int, hflip: bool) -> None:
        self.maps, self.s, self.hflip = list(maps), int(window), bool(hflip)
        self.n_pos = np.array([(m.shape[0] - self.s + 1) * (m.shape[1] - self.s + 1) for m in self.maps], float)
        self.p = self.n_pos / self.n_pos.sum()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, s·s) int64 windows in raster order."""
        s = self.s
        which = rng.choice(len(self.maps), size=n, p=self.p)
        out = np.empty((n, s, s), dtype=np.int64)
        flips = rng.random(n) < 0.5 if self.hflip else np.zeros(n, bool)
        for b, mi in enumerate(which):
            m = self.maps[mi]
            y = int(rng.integers(0, m.shape[0] - s + 1))
            x = int(rng.integers(0, m.shape[1] - s + 1))
            w = m[y:y + s, x:x + s]
            out[b] = w[:, ::-1] if flips[b] else w
        return out.reshape(n, s * s)


def make_batch(windows: torch.Tensor, kind: str, K: int, sos: int, mask_ratio_max: float,
               gen: torch.Generator, bidir_mask_range: tuple[float, float] | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, targets and loss weights (B, n) for one batch of windows (B, n).

    ``ar``: inputs = [sos] + w[:-1] with ⌊α_b·(n−1)⌋ context tokens → [mask]
    (α_b ~ U(0, mask_ratio_max)), targets = w, weights 1.
    ``bidir``: ⌈r_b·n⌉ ≥ 1 random tokens → [mask], r_b = cos(π/2·u_b) with
    u_b ~ U(0, 1), or r_b ~ U(lo, hi) with ``bidir_mask_range``; weights 1 on them.
    """
    B, n = windows.shape
    mask_id = K
    if kind == "ar":
        inp = torch.cat((torch.full((B, 1), sos, dtype=torch.long), windows[:, :-1]), 1)
        alpha = torch.rand(B, generator=gen) * mask_ratio_max
        k = torch.floor(alpha * (n - 1)).long()
        scores = torch.rand(B, n - 1, generator=gen)
        rank = scores.argsort(1).argsort(1)                       # random rank of each context token
        masked = rank < k[:, None]
        inp[:, 1:] = torch.where(masked, torch.full_like(inp[:, 1:], mask_id), inp[:, 1:])
        return inp, windows, torch.ones(B, n)
    u = torch.rand(B, generator=gen)
    if bidir_mask_range is None:
        r = torch.cos(math.pi / 2 * u)
    else:
        lo, hi = bidir_mask_range
        r = lo + (hi - lo) * u
    k = torch.clamp(torch.ceil(r * n), min=1).long()
    rank = torch.rand(B, n, generator=gen).argsort(1).argsort(1)
    masked = rank < k[:, None]
    inp = torch.where(masked, torch.full_like(windows, mask_id), windows)
    return inp, windows, masked.float()


def _step_seed(seed: int, step: int, stream: int) -> int:
    """A 63-bit seed for stream ``stream`` of step ``step`` (step −1 = set-up draws)."""
    return int(np.random.SeedSequence([int(seed), int(step) + 1, int(stream)]).generate_state(1, np.uint64)[0] >> 1)


def lr_at(step: int, cfg: TransformerTrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from lr to min_lr_ratio·lr at ``steps``."""
    if cfg.warmup and step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _optimizer(model: GPT, cfg: TransformerTrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on Linear weights only (not biases, LayerNorm, embeddings, pos_emb)."""
    decay, no_decay = [], []
    for _mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            (decay if isinstance(m, torch.nn.Linear) and pn == "weight" else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def _pos_ids(window: int, device) -> torch.Tensor:
    return torch.arange(window * window, device=device)


@torch.no_grad()
def evaluate(model: GPT, windows: np.ndarray, cfg: TransformerTrainConfig, K: int, device) -> dict[str, float]:
    """Held-out loss and accuracy.

    ``ar``: no context masking (every context token true); accuracy = argmax
    over the K codewords equals the target, over all positions.  ``bidir``:
    a fixed 50 % random mask (seeded), loss/accuracy on masked positions.
    """
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(_step_seed(cfg.seed, -1, 7))
    w = torch.from_numpy(windows)
    if cfg.kind == "ar":
        inp, tgt, wt = make_batch(w, "ar", K, cfg.sos_token, 0.0, gen)
    else:
        B, n = w.shape
        rank = torch.rand(B, n, generator=gen).argsort(1).argsort(1)
        masked = rank < n // 2
        inp, tgt, wt = torch.where(masked, torch.full_like(w, K), w), w, masked.float()
    tot_loss = tot_acc = tot_w = 0.0
    for s in range(0, len(inp), 64):
        x, y, m = inp[s:s + 64].to(device), tgt[s:s + 64].to(device), wt[s:s + 64].to(device)
        logits = model(x)[..., :K]
        ce = F.cross_entropy(logits.reshape(-1, K), y.reshape(-1), reduction="none").view_as(m)
        tot_loss += float((ce * m).sum())
        tot_acc += float(((logits.argmax(-1) == y).float() * m).sum())
        tot_w += float(m.sum())
    if was:
        model.train()
    return {"eval_loss": tot_loss / max(tot_w, 1.0), "eval_acc": tot_acc / max(tot_w, 1.0)}


def train_state_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.name + ".train")


# --------------------------------------------------------------------------- training
def train_transformer(
    index_maps: Sequence[np.ndarray],
    K: int,
    cfg: TransformerTrainConfig | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    stop_after: int | None = None,
    groups: Sequence[int] | None = None,
    max_minutes: float | None = None,
) -> TrainResult:
    """Train (or continue) a concealment transformer on index maps of a K-codeword codebook.

    Args:
        index_maps: 2-D integer arrays (or IndexMaps) with values in [0, K).
        K: codebook size; the model's vocabulary is K+1 ([mask] = K).
        cfg: settings (default :class:`TransformerTrainConfig`).
        out: model file written at every ``ckpt_every`` steps and at the end
            (:func:`codec.conceal.save_transformer`, meta: kind,
            codebook_size, sos_token, mask_token, window, step, eval
            metrics + ``meta``); the training state goes to ``out.train``.
        resume: continue from ``out.train`` (same model shape, K and data).
        log: called with one JSON line per log / eval event (None = silent).
        stop_after: stop (with a checkpoint) once this step is reached, e.g.
            to train in pieces; the schedule still follows ``cfg.steps``.
        groups: one id per map (e.g. the photo it was encoded from): the
            held-out split takes whole groups, so no variant of a held-out
            photo is trained on (default: every map its own group).
        max_minutes: stop (with a checkpoint) after this much wall time; the
            schedule still follows ``cfg.steps``, so a resumed run continues it.

    Returns the model (eval mode), history (list of logged dicts), final step, path.
    """
    cfg = cfg or TransformerTrainConfig()
    if groups is not None and len(groups) != len(index_maps):
        raise ParameterError(f"groups has {len(groups)} entries for {len(index_maps)} index maps")
    maps, keep = _check_maps(index_maps, K, cfg.window)
    gid = np.asarray(groups if groups is not None else np.arange(len(index_maps)), dtype=np.int64)[keep]
    K = int(K)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fp = data_fingerprint(maps)
    # held-out split by group (deterministic): whole groups (photos) go to one side
    uniq = np.unique(gid)
    order = np.random.default_rng(_step_seed(cfg.seed, -1, 1)).permutation(len(uniq))
    n_hold = int(round(cfg.holdout * len(uniq))) if len(uniq) > 1 else 0
    n_hold = min(n_hold, len(uniq) - 1)
    held = np.isin(gid, uniq[order[:n_hold]])
    hold = [m for m, h in zip(maps, held, strict=False) if h]
    train = [m for m, h in zip(maps, held, strict=False) if not h]
    sampler = WindowSampler(train, cfg.window, cfg.hflip)
    eval_src = WindowSampler(hold if hold else train, cfg.window, False)
    eval_windows = eval_src.sample(cfg.eval_windows, np.random.default_rng(_step_seed(cfg.seed, -1, 2)))

    torch.manual_seed(_step_seed(cfg.seed, -1, 3))
    model = GPT(cfg.model_config(K)).to(device)
    opt = _optimizer(model, cfg)
    step, history = 0, []
    state_path = train_state_path(out) if out is not None else None
    if resume:
        if state_path is None or not state_path.exists():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        from ..checkpoint import read_checkpoint  # weights only; a bad file is a one-line CheckpointError

        st = read_checkpoint(state_path)
        try:
            saved = TransformerTrainConfig.from_dict(st.get("train_config", {}))
            saved.model_config(int(st.get("K", -1)))
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{state_path} is not a train-transformer state file ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:160]})") from None
        if saved.model_config(int(st.get("K", -1))) != cfg.model_config(K):
            raise CheckpointError(f"{state_path}: model/codebook settings differ from the checkpoint "
                                  f"(saved {saved.model_config(int(st.get('K', -1)))})")
        if st.get("data") != fp:
            raise CheckpointError(f"{state_path}: trained on other index maps (fingerprint {st.get('data')} ≠ {fp})")
        try:
            from ..checkpoint import check_state_dict

            check_state_dict(model, st["state_dict"], f"resume ({state_path})")
            model.load_state_dict(st["state_dict"])
            opt.load_state_dict(st["optimizer"])
            step, history = int(st["step"]), list(st.get("history", []))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{state_path} is not a train-transformer state file of this model "
                                  f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
        if log:
            log(json.dumps({"event": "resumed", "step": step, "from": str(state_path)}))
    n_params = model.num_params()
    if log and step == 0:
        log(json.dumps({"event": "start", "kind": cfg.kind, "K": K, "params": n_params, "device": str(device),
                        "train_maps": len(train), "heldout_maps": len(hold),
                        "train_tokens": int(sum(m.size for m in train)), "heldout_groups": int(n_hold)}))

    def save() -> None:
        if out is None:
            return
        info = {"kind": cfg.kind, "codebook_size": K, "sos_token": cfg.sos_token, "mask_token": K,
                "window": cfg.window, "step": step, "data": fp, **(meta or {})}
        evals = [h for h in history if "eval_loss" in h]
        if evals:
            info.update({k: evals[-1][k] for k in ("eval_loss", "eval_acc")})
        save_transformer(out, model, info, half=cfg.save_half)
        tmp = state_path.with_name(state_path.name + ".tmp")
        torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "history": history, "train_config": asdict(cfg), "K": K, "data": fp}, tmp)
        tmp.replace(state_path)

    model.train()
    acc_loss, acc_n, t0 = 0.0, 0, time.time()
    deadline = None if max_minutes is None else time.time() + 60.0 * float(max_minutes)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        end = cfg.steps if stop_after is None else min(cfg.steps, int(stop_after))
        while step < end:
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            rng = np.random.default_rng(_step_seed(cfg.seed, step, 0))
            gen = torch.Generator().manual_seed(_step_seed(cfg.seed, step, 1))
            if cfg.dropout > 0:
                torch.manual_seed(_step_seed(cfg.seed, step, 2))
            w = torch.from_numpy(sampler.sample(cfg.batch_size, rng))
            inp, tgt, wt = make_batch(w, cfg.kind, K, cfg.sos_token, cfg.mask_ratio_max, gen, cfg.bidir_mask_range)
            inp, tgt, wt = inp.to(device), tgt.to(device), wt.to(device)
            sel = None
            if cfg.kind == "bidir":
                # the loss reads only masked positions: run the head (and the last block's query path) there
                n_max = int(wt.sum(1).max())
                sel = torch.argsort(wt, dim=1, descending=True, stable=True)[:, :n_max]
                tgt, wt = tgt.gather(1, sel), wt.gather(1, sel)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                logits = model(inp, logits_at=sel)
            logits = logits.float()
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="none")
            loss = (ce * wt.reshape(-1)).sum() / wt.sum().clamp(min=1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            acc_loss += loss.item()
            acc_n += 1
            if step % cfg.log_every == 0 or step == end:
                row = {"step": step, "loss": acc_loss / acc_n, "lr": lr, "s_per_step": (time.time() - t0) / acc_n}
                history.append(row)
                if log:
                    log(json.dumps(row))
                acc_loss, acc_n, t0 = 0.0, 0, time.time()
            if step % cfg.eval_every == 0 or step == end:
                row = {"step": step, **evaluate(model, eval_windows, cfg, K, device),
                       "heldout": bool(hold)}
                history.append(row)
                if log:
                    log(json.dumps(row))
                model.train()
            out_of_time = deadline is not None and time.time() >= deadline
            if out_of_time and step % cfg.eval_every:
                history.append({"step": step, **evaluate(model, eval_windows, cfg, K, device), "heldout": bool(hold)})
                if log:
                    log(json.dumps(history[-1]))
                model.train()
            if step % cfg.ckpt_every == 0 or step == end or out_of_time:
                save()
            if out_of_time:
                if log:
                    log(json.dumps({"event": "max_minutes", "step": step}))
                break
    model.eval()
    return TrainResult(model=model, history=history, step=step, path=Path(out) if out is not None else None)


# --------------------------------------------------------------------------- index maps from images
def load_or_encode_index_maps(codec, images: Sequence[str | Path], cache_dir: str | Path,
                              log: Callable[[str], None] | None = print) -> list[np.ndarray]:
    """Encode ``images`` with ``codec`` once; cache the maps in an ``.npz`` in ``cache_dir``.

    The cache file name holds the codec's ``codebook_id`` and a hash of the
    image list (paths, sizes, modification times), so another codec or image
    set never reuses it.  Layout: ``indices`` (concatenated, int32), ``shapes``
    (N, 2), ``names``.
    """
    from ..image import load_image

    paths = [Path(p) for p in images]
    if not paths:
        raise ParameterError("no training images given")
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    cid = str(getattr(codec, "codebook_id", "codec"))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cid)
    cache = Path(cache_dir) / f"indexmaps_{safe}_{h.hexdigest()[:12]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            flat, shapes = z["indices"], z["shapes"]
        out, o = [], 0
        for hh, ww in shapes:
            out.append(flat[o:o + hh * ww].reshape(hh, ww).astype(np.int64))
            o += hh * ww
        if log:
            log(json.dumps({"event": "index_cache", "path": str(cache), "maps": len(out)}))
        return out
    maps = []
    for n, p in enumerate(paths):
        maps.append(np.asarray(codec.encode_indices(load_image(p)).indices, dtype=np.int64))
        if log and (n + 1) % 100 == 0:
            log(json.dumps({"event": "encoded", "images": n + 1, "of": len(paths)}))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez_compressed(tmp, indices=np.concatenate([m.reshape(-1) for m in maps]).astype(np.int32),
                        shapes=np.array([m.shape for m in maps], dtype=np.int64),
                        names=np.array([p.name for p in paths]))
    tmp.replace(cache)
    return maps
