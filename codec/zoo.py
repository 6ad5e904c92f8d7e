"""Model registry ("zoo"): pretrained codecs and concealment models by name.

All shipped weights live in one place, ``codec/weights/`` (weights-only
``torch.save`` files, fp16 storage, read with ``weights_only=True``):

* ``{name}.pt``: a VQGAN in the project format (``codec.checkpoint``) with its
  K-means codebooks for every reduced size and index priors for the arithmetic
  coder;
* ``{name}_{kind}_{size}.pt``: a concealment transformer (``kind`` = "ar" or
  "bidir") for that codec at that codebook size (``codec.conceal``).

``load_codec`` also accepts a path to a checkpoint: the project's format or an
official taming-transformers ``.ckpt`` (optionally with its config yaml).

Every ``load_codec`` call returns an independent model: files are read once
and cached, but each codec gets its own copy of the modules, so moving one to
another device, training or fine-tuning it leaves every other codec as it was.

A bitstream names its codebook (``"default/256"``); the receiver decides what
that name may load: ``model_for_bitstream`` accepts only registered names, so
a bitstream can never make the receiver open a file of the sender's choosing.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import BitstreamError, ModelNotFoundError, ParameterError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    file: str
    description: str


REGISTRY: dict[str, ModelInfo] = {
    "default": ModelInfo(
        "default", "default.pt",
        "VQGAN f16 (taming layout, ch 32, GroupNorm(8), l2-normalised 8-d codebook of 1024 + K-means 512…8, "
        "3.4 M parameters), trained on CPU from scratch on ../shared/data/train crops; see README model card",
    ),
}


def list_models() -> list[dict[str, Any]]:
    """Registered models with whether their weights are present."""
    return [{"name": m.name, "file": str(WEIGHTS_DIR / m.file), "present": (WEIGHTS_DIR / m.file).exists(),
             "description": m.description} for m in REGISTRY.values()]


def resolve_model_path(name_or_path: str | Path) -> tuple[str, Path]:
    """(model name, checkpoint path) for a registry name or a file path."""
    key = str(name_or_path)
    if key in REGISTRY:
        p = WEIGHTS_DIR / REGISTRY[key].file
        if not p.exists():
            raise ModelNotFoundError(f"weights of model {key!r} are missing: {p} (reinstall the package or train one with 'vqsim train-codec')")
        return key, p
    p = Path(key)
    if p.exists():
        return p.stem, p
    raise ModelNotFoundError(f"unknown model {key!r}: not a registered name ({', '.join(REGISTRY)}) nor an existing file")


def model_for_bitstream(codebook_id: str | None, model: str | Path | None = None) -> str | Path:
    """The model that decodes a bitstream whose header names ``codebook_id``.

    ``model`` (the receiver's own choice: a registered name or a checkpoint
    path) wins when given. Otherwise the model part of ``codebook_id``
    (``"default"`` of ``"default/256"``) must be a registered name: the id comes
    from the sender, and a path in it is refused, never opened.

    Raises:
        BitstreamError: no ``model`` and the bitstream names no codebook, or
            names one that is not registered.
    """
    if model is not None:
        return model
    name = (codebook_id or "").rsplit("/", 1)[0]
    if not name:
        raise BitstreamError("bitstream names no codebook; pass --model NAME_OR_CHECKPOINT")
    if name not in REGISTRY:
        shown = name if len(name) <= 60 and name.isprintable() else repr(name[:60]) + "…"
        raise BitstreamError(f"bitstream names codebook model {shown!r}, which is not a registered model "
                             f"({', '.join(REGISTRY)}); pass --model NAME_OR_CHECKPOINT to choose the decoder")
    return name


@functools.lru_cache(maxsize=4)
def _load_base(path: str, config: str | None) -> tuple[Any, dict[str, Any]]:
    from .checkpoint import load_vqgan

    return load_vqgan(path, config=config)


@functools.lru_cache(maxsize=32)
def _kmeans_codebook(path: str, config: str | None, size: int, seed: int) -> np.ndarray:
    from .kmeans import kmeans_codebook

    model, _ = _load_base(path, config)
    return kmeans_codebook(model.quantize.codewords().detach().float().cpu().numpy(), size, seed=seed).centroids


def load_codec(name_or_path: str | Path = "default", codebook_size: int | None = None, *, device=None,
               coder: str = "arith_rep", config: str | None = None, kmeans_seed: int = 0, autocast: str | None = None,
               finetuned: bool | None = None):
    """A ``VQGANCodec`` by registry name or checkpoint path.

    Args:
        name_or_path: "default" (see ``list_models()``) or a checkpoint file.
        codebook_size: S ≤ K. Below K the codebook is the K-means reduction
            of the model's codebook: shipped with the model when present,
            else computed (seeded, deterministic).
        finetuned: for S < K, decode with the shipped fine-tuned decoder side
            of that size (``codec.finetune``; same indices and bitstreams as
            without). None (default): fine-tuned when the model ships it,
            else the plain K-means model ("w/o fine-tune" in the paper);
            True: require it (ModelNotFoundError if absent); False: never.
        device: torch device (default CUDA when present, else CPU).
        coder: default entropy coder for ``compress``.
        config: taming config yaml for official checkpoints (else inferred).
    """
    from .api import VQGANCodec

    name, path = resolve_model_path(name_or_path)
    cached, extras = _load_base(str(path), None if config is None else str(config))
    base = copy.deepcopy(cached)  # every codec owns its modules (see the module docstring)
    K = base.codebook_size
    S = K if codebook_size is None else int(codebook_size)
    if not 2 <= S <= K:
        raise ParameterError(f"codebook_size must be in [2, {K}] for model {name!r}, got {codebook_size}")
    model, prior, variant = base, extras["priors"].get(K), "trained"
    if S < K:
        cb = extras["codebooks"].get(S)
        shipped_cb = cb is not None and kmeans_seed == int(extras["meta"].get("kmeans_seed", 0))
        cb = cb.float() if shipped_cb else torch.from_numpy(_kmeans_codebook(str(path), None if config is None else str(config), S, kmeans_seed))
        ft = extras["decoders"].get(S) if shipped_cb else None
        if finetuned and ft is None:
            have = sorted(int(k) for k in extras["decoders"])
            raise ModelNotFoundError(f"model {name!r} ships no fine-tuned decoder for codebook size {S} "
                                     f"(fine-tuned sizes: {have or 'none'}; K-means seed {kmeans_seed})")
        use_ft = ft is not None and finetuned is not False
        model = base.with_codebook(cb, finetuned={k: v.float() for k, v in ft.items()} if use_ft else None)
        variant = "finetuned" if use_ft else "kmeans"
        prior = extras["priors"].get(S)
    elif finetuned:
        raise ParameterError(f"codebook size {S} is the model's trained size; fine-tuned variants exist only below {K}")
    codec = VQGANCodec(model, name=name, device=device, coder=coder,
                       prior=None if prior is None else _own_copy(prior), autocast=autocast)
    codec.variant = variant
    return codec


def _own_copy(a) -> np.ndarray:
    """A numpy copy of a cached tensor or array (so no codec shares it with the cache)."""
    return a.detach().cpu().numpy().copy() if isinstance(a, torch.Tensor) else np.array(a, copy=True)


def concealer_path(codec_name: str, codebook_size: int, kind: str = "ar") -> Path:
    return WEIGHTS_DIR / f"{codec_name}_{kind}_{int(codebook_size)}.pt"


def load_concealer(codec_name: str, codebook_size: int, kind: str = "ar", device=None):
    """The shipped concealment transformer for (codec, codebook size, kind), or ModelNotFoundError."""
    p = concealer_path(codec_name, codebook_size, kind)
    if not p.exists():
        have = sorted(q.name for q in WEIGHTS_DIR.glob(f"{codec_name}_{kind}_*.pt"))
        raise ModelNotFoundError(f"no {kind!r} concealment model for {codec_name}/{codebook_size} ({p.name}); shipped: {have or 'none'}")
    from .conceal import load_transformer

    return load_transformer(p, device=device if device is not None else "cpu")
