"""The codec a resolved config names (per codebook size), and the device its metrics run on."""
from __future__ import annotations

from typing import Any, Mapping


def _device(name: str | None):
    return None if name in (None, "auto") else name


def _full_size(path: str) -> int:
    from codec.zoo import load_base_model

    return load_base_model(str(path), None)[0].codebook_size


def load_sweep_codec(cfg: Mapping[str, Any], S: int):
    from codec.zoo import load_codec

    c = cfg["codec"]
    ft = {"auto": None, "true": True, "false": False}[c.get("finetuned", "auto")]
    codec = load_codec(c["path"], S, device=_device(c["device"]), coder=c["coder"], kmeans_seed=c["kmeans_seed"],
                       finetuned=ft if S is not None and S != _full_size(c["path"]) else None)
    codec.name = c["name"]  # codebook_id "<name>/<S>" also for checkpoints given by path
    return codec


def metric_device(cfg: Mapping[str, Any], codec) -> Any:
    d = cfg["metrics"]["device"]
    return codec.device if d == "auto" else d

