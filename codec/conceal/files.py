"""Transformer files: save / load a GPT in the project's format (readable with ``weights_only=True``).

Format: ``{"config": dict, "state_dict": {...}, "meta": {...}, "format": "vqsim-transformer-1"}``;
``load_transformer`` returns the model with the dict as ``model.meta``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .model import GPT, GPTConfig


def check_state_dict(model: GPT, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming missing / unexpected / mis-shaped keys."""
    from ..checkpoint import check_state_dict as _check

    _check(model, sd, what=f"transformer ({source})")


def torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with clear CheckpointErrors (``codec.checkpoint.read_checkpoint``)."""
    from ..checkpoint import read_checkpoint

    return read_checkpoint(path)


_META_SCALARS = (str, int, float, bool, type(None))


def _check_meta(obj: Any, where: str = "meta") -> None:
    """Only types ``torch.load(weights_only=True)`` accepts.

    That is: dict (str keys), list, tuple, str, int, float, bool, None.
    """
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, got {k!r}")
            _check_meta(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_meta(v, f"{where}[{i}]")
    elif not isinstance(obj, _META_SCALARS):
        raise TypeError(
            f"{where}: unsupported type {type(obj).__name__} (allowed: dict, list, str, int, float, bool, None)"
        )


def save_transformer(path: str | Path, model: GPT, meta: dict[str, Any] | None = None, *, half: bool = False) -> Path:
    """Write ``{"config", "state_dict", "meta"}`` (readable with ``weights_only=True``).

    ``half=True`` stores floating tensors as float16 (half the size; loading
    converts back to float32).  ``meta`` holds plain values only (e.g.
    ``{"kind": "ar", "codebook_size": 1024, "sos_token": 0, "mask_token": 1024}``).
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    meta = dict(meta or {})
    _check_meta(meta)
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        sd[k] = v.half() if (half and v.is_floating_point()) else v.clone()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"config": model.config.to_dict(), "state_dict": sd, "meta": meta, "format": "vqsim-transformer-1"}, tmp)
    tmp.replace(p)
    return p


def load_transformer(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """Read a file written by :func:`save_transformer`: the model in eval mode (float32).

    The file's ``meta`` dict is attached as ``model.meta``; a ``sos_token``
    in it also becomes ``model.sos_token`` (read by the AR concealment).
    """
    obj = torch_load(path)
    if not isinstance(obj, dict) or "config" not in obj or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a vqsim transformer file (needs 'config' and 'state_dict')")
    try:
        cfg = GPTConfig.from_dict(dict(obj["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad transformer config: {e}") from e
    from ..checkpoint import build_checked

    sd = obj["state_dict"]
    model = build_checked(lambda: GPT(cfg), sd, f"transformer ({path})")  # shapes checked before allocating
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, strict=True)
    meta = dict(obj.get("meta") or {})
    model.meta = meta
    if isinstance(meta.get("sos_token"), int):
        model.sos_token = int(meta["sos_token"])  # used by the AR concealment (codec.conceal.ar)
    return model.to(device).eval()
