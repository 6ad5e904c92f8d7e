"""The files a resolved sweep config needs: the codec checkpoint (its K and SHA-256) and the concealment models."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ._checks import err


def codec_sizes(cfg: Mapping[str, Any]) -> list[int]:
    """The codebook sizes a resolved, resource-checked config uses (from codec.codebook_sizes or pairs)."""
    if cfg.get("pairs"):
        return sorted({p["codebook_size"] for p in cfg["pairs"]}, reverse=True)
    return list(cfg["codec"]["codebook_sizes"])


def check_resources(cfg: dict) -> list[str]:
    """Check the files a resolved config needs; fills in the codec's path, SHA-256, K and name.

    Returns notes (e.g. concealment methods dropped under ``on_missing_model: skip``).
    Raises ConfigError for a missing codec model, a codebook size above K, or
    a missing concealment model (unless skipped).
    """
    from codec.conceal import MODEL_KIND
    from codec.errors import ModelNotFoundError
    from codec.zoo import _load_base, concealer_path, file_sha256, resolve_model_path

    notes: list[str] = []
    c = cfg["codec"]
    try:
        name, path = resolve_model_path(c["model"])
    except ModelNotFoundError as e:
        raise err("codec.model", str(e)) from None
    try:
        base, _ = _load_base(str(path), None)
    except Exception as e:  # CheckpointError and friends: one line for the user
        raise err("codec.model", f"cannot load {path}: {e}") from None
    K = int(base.codebook_size)
    c.update({"name": name, "path": str(Path(path).resolve()), "sha256": file_sha256(path), "K": K,
              "downsample_factor": int(base.downsample_factor)})
    if c["codebook_sizes"] == [None]:
        c["codebook_sizes"] = [K] if not cfg.get("pairs") else []
    for where, sizes in (("codec.codebook_sizes", c["codebook_sizes"]),
                         ("pairs", [p["codebook_size"] for p in cfg.get("pairs") or []])):
        for s in sizes:
            if not 2 <= s <= K:
                raise err(where, f"codebook size {s} not available: model {name!r} has K={K}; allowed: 2 … {K}")
    conc = cfg["concealment"]
    keep = []
    for m in conc["methods"]:
        kind = MODEL_KIND.get(m)
        if kind is None:
            keep.append(m)
            continue
        missing = []
        for s in codec_sizes(cfg):
            tmpl = conc["models"].get(kind)
            p = Path(tmpl.format(size=s)) if tmpl else concealer_path(name, s, kind)
            if not p.exists():
                missing.append(str(p))
        if not missing:
            keep.append(m)
            continue
        msg = (f"concealment method {m!r} needs a {kind!r} transformer for {name}, missing: {', '.join(missing)} "
               f"(ship one, set concealment.models.{kind} to a path template with {{size}}, or use a baseline: "
               "latent_avg, neighbor, mean, none)")
        if conc["on_missing_model"] == "error":
            raise err("concealment.methods", msg)
        notes.append(f"skipped {msg}")
    if not keep:
        raise err("concealment.methods", "no concealment method left to run")
    conc["methods"] = keep
    return notes
