"""Official taming-transformers checkpoints: infer a GPTConfig from a minGPT state_dict and load its weights."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import CheckpointError, ParameterError
from .files import torch_load
from .model import GPT, GPTConfig

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


def config_from_state_dict(sd: dict[str, torch.Tensor], n_head: int, causal: bool | None = None) -> GPTConfig:
    """Infer a :class:`GPTConfig` from a (prefix-free) minGPT state_dict.

    vocab_size and n_embd from ``tok_emb.weight`` (V, C), block_size from
    ``pos_emb`` (1, T, C), n_layer from the ``blocks.N.`` keys, ``n_unmasked``
    and ``causal`` from the mask buffer (if present).  ``n_head`` cannot be
    inferred from shapes and must be given.
    """
    for key in ("tok_emb.weight", "pos_emb"):
        if key not in sd:
            raise CheckpointError(f"state_dict has no {key!r}; found keys {sorted(sd)[:8]}")
    V, C = sd["tok_emb.weight"].shape
    if sd["pos_emb"].ndim != 3:
        raise CheckpointError(f"pos_emb must be (1, T, C), got {tuple(sd['pos_emb'].shape)}")
    T = int(sd["pos_emb"].shape[1])
    layers = {int(m.group(1)) for k in sd if (m := _BLOCK_KEY.match(k))}
    if not layers:
        raise CheckpointError("state_dict has no blocks.N.* keys")
    n_unmasked = 0
    mask = sd.get("blocks.0.attn.mask")
    if mask is not None and mask.ndim == 4:
        m = mask[0, 0] != 0
        full = bool(m.all())
        if causal is None:
            causal = not full
        if causal:
            n = 0
            while n < m.shape[0] and bool(m[: n + 1, : n + 1].all()):
                n += 1
            n_unmasked = n if n > 1 else 0
    if causal is None:
        causal = True
    try:
        return GPTConfig(vocab_size=int(V), block_size=T, n_layer=max(layers) + 1, n_head=int(n_head),
                         n_embd=int(C), n_unmasked=n_unmasked, causal=bool(causal))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot build a GPT config from the checkpoint: {e}") from e


def load_gpt_from_taming_ckpt(path: str | Path, n_head: int, *, prefix: str = "transformer.") -> GPT:
    """Load the ``transformer.*`` weights of an official taming ``Net2NetTransformer`` checkpoint.

    Reads ``torch.load(path, map_location="cpu", weights_only=True)["state_dict"]``
    (a Lightning file) or a bare state_dict, strips ``prefix``, infers the
    config from the shapes (see :func:`config_from_state_dict`; taming's
    ImageNet transformers use ``n_head=16``) and loads strictly.  Returns the
    model in eval mode.  Raises CheckpointError naming missing / unexpected keys.
    """
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ParameterError(f"n_head must be a positive int, got {n_head!r}")
    obj = torch_load(path)
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: no state_dict found")
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not sub:
        raise CheckpointError(f"{path}: no keys start with {prefix!r} (found e.g. {sorted(sd)[:5]})")
    cfg = config_from_state_dict(sub, n_head)
    from ..checkpoint import build_checked

    model = build_checked(lambda: GPT(cfg), sub, f"transformer ({path})")  # shapes checked before allocating
    model.load_state_dict({k: v.float() for k, v in sub.items()}, strict=True)
    return model.eval()
