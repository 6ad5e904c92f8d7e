"""The files a resolved sweep config needs: the codec checkpoint (its K and SHA-256) and the concealment models."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ._checks import err


def concealer_file(cfg: Mapping[str, Any], S: int, kind: str, name: str | None = None) -> Path:
    """The ``kind`` ('ar' | 'bidir') transformer file of codebook size S: the config's
    ``concealment.models.<kind>`` template with ``{size}``, else the zoo's file of codec ``name``
    (default: the resolved ``codec.name``)."""
    from codec.zoo import concealer_path

    tmpl = cfg["concealment"]["models"].get(kind)
    return Path(tmpl.format(size=S)) if tmpl else Path(concealer_path(name or cfg["codec"]["name"], S, kind))


def decoder_file(cfg: Mapping[str, Any], S: int, variant: str = "robust", name: str | None = None) -> Path:
    """The decoder-side file of decoder ``variant`` ('robust') at codebook size S: the config's
    ``concealment.models.robust_decoder`` template with ``{size}``, else the zoo's
    ``{codec}_robustdec_{S}.pt`` of codec ``name`` (default: the resolved ``codec.name``)."""
    from codec.conceal.decoder_variant import robust_decoder_path

    if variant != "robust":
        raise ValueError(f"decoder variant {variant!r} has no file")
    tmpl = cfg["concealment"]["models"].get("robust_decoder")
    return Path(tmpl.format(size=S)) if tmpl else Path(robust_decoder_path(name or cfg["codec"]["name"], S))


def codec_sizes(cfg: Mapping[str, Any]) -> list[int]:
    """The codebook sizes a resolved, resource-checked config uses (from codec.codebook_sizes or pairs)."""
    if cfg.get("pairs"):
        return sorted({p["codebook_size"] for p in cfg["pairs"]}, reverse=True)
    return list(cfg["codec"]["codebook_sizes"])


def check_resources(cfg: dict) -> list[str]:
    """Check the files a resolved config needs; fills in the codec's path, SHA-256, K and name.

    Returns notes (e.g. concealment methods dropped under ``on_missing_model: skip``).  Under ``skip``, a
    transformer method whose model exists for some codebook sizes only is kept and runs at those sizes:
    ``concealment.unavailable`` (added only then) maps it to the sizes it skips.
    Raises ConfigError for a missing codec model, a codebook size above K, or
    a missing concealment model (unless skipped).
    """
    from codec.conceal import MODEL_KIND
    from codec.errors import ModelNotFoundError, VQSimError
    from codec.zoo import file_sha256, load_base_model, resolve_model_path

    notes: list[str] = []
    c = cfg["codec"]
    try:
        name, path = resolve_model_path(c["model"])
    except ModelNotFoundError as e:
        raise err("codec.model", str(e)) from None
    try:
        base, _ = load_base_model(str(path), None)
    except (VQSimError, OSError) as e:  # CheckpointError, an unreadable file: one line for the user
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
        missing, missing_sizes = [], []
        for s in codec_sizes(cfg):
            p = concealer_file(cfg, s, kind, name)
            if not p.exists():
                missing.append(str(p))
                missing_sizes.append(s)
        if not missing:
            keep.append(m)
            continue
        msg = (f"concealment method {m!r} needs a {kind!r} transformer for {name}, missing: {', '.join(missing)} "
               f"(ship one, set concealment.models.{kind} to a path template with {{size}}, set "
               f"concealment.on_missing_model: skip to run it only where the model exists, or use a baseline: "
               "latent_avg, neighbor, mean, none)")
        have = [s for s in codec_sizes(cfg) if s not in missing_sizes]
        if _on_missing(cfg, "concealment.methods", msg, have, notes,
                       f"method {m!r} runs at codebook size(s) {', '.join(map(str, have))} only: no {kind!r} "
                       f"transformer for size(s) {', '.join(map(str, missing_sizes))} ({', '.join(missing)})"):
            keep.append(m)
            conc.setdefault("unavailable", {})[m] = missing_sizes
    if not keep:
        raise err("concealment.methods", "no concealment method left to run")
    conc["methods"] = keep
    _check_decoders(cfg, name, notes)
    _check_context_coders(cfg, name)
    _try_concealment(cfg, int(base.quantize.codewords().shape[1]))
    return notes


def _on_missing(cfg: dict, where: str, msg: str, have: list[int], notes: list[str], partial_note: str) -> bool:
    """``concealment.on_missing_model`` for a model missing at some sizes (``have``: the sizes that have it):
    ``error`` raises ``msg``; ``skip`` keeps it for the sizes in ``have`` (True, ``partial_note``) or drops it
    when there are none (False, noted)."""
    if cfg["concealment"]["on_missing_model"] == "error":
        raise err(where, msg)
    notes.append(partial_note if have else f"skipped {msg}")
    return bool(have)


def _check_decoders(cfg: dict, name: str, notes: list[str]) -> None:
    """Each non-plain decoder variant's file at every codebook size: present, a decoder-variant file, made for
    this codec's codebook (``codebook_id`` ``name/S``).  Records each file's SHA-256 (16 digits) in
    ``concealment.decoder_sha`` (so another robust decoder is another config).  Under ``on_missing_model: skip``
    a variant missing at some sizes runs at the others (``concealment.unavailable`` lists its labels)."""
    from codec.conceal.decoder_variant import read_decoder_file, variant_label
    from codec.errors import VQSimError
    from codec.zoo import file_sha256

    conc = cfg["concealment"]
    keep = []
    for d in conc["decoders"]:
        if d == "plain":
            keep.append(d)
            continue
        missing = []
        for S in codec_sizes(cfg):
            p = decoder_file(cfg, S, d, name)
            if not p.exists():
                missing.append(S)
                continue
            try:
                meta = read_decoder_file(p)["meta"]
            except (VQSimError, OSError) as e:
                raise err("concealment.models.robust_decoder", f"cannot load {p}: {e}") from None
            cid = meta.get("codebook_id")
            if cid and cid != f"{name}/{S}":
                raise err("concealment.models.robust_decoder",
                          f"{p} is a decoder for {cid!r}, this sweep decodes {name}/{S}")
            conc.setdefault("decoder_sha", {})[f"{d}/{S}"] = file_sha256(p)[:16]
        if not missing:
            keep.append(d)
            continue
        files = ", ".join(str(decoder_file(cfg, S, d, name)) for S in missing)
        msg = (f"decoder {d!r} needs a loss-aware decoder file for {name}, missing: {files} (train one with "
               "`vqsim train-robust-decoder`, set concealment.models.robust_decoder to a path template with {size}, "
               "or set concealment.on_missing_model: skip to decode with it only where the file exists)")
        have = [S for S in codec_sizes(cfg) if S not in missing]
        if _on_missing(cfg, "concealment.decoders", msg, have, notes,
                       f"decoder {d!r} decodes at codebook size(s) {', '.join(map(str, have))} only ({files} missing)"):
            keep.append(d)
            for m in conc["methods"]:
                conc.setdefault("unavailable", {})[variant_label(m, d)] = missing
    if not keep:
        raise err("concealment.decoders", "no decoder left to run")
    conc["decoders"] = keep


def _check_context_coders(cfg: dict, name: str) -> None:
    """A context packet coder (``tf_tile``) needs the AR transformer at every codebook size (ConfigError)."""
    from codec.entropy import CONTEXT_CODERS

    used = [c for c in cfg["packetization"]["coder"] if c in CONTEXT_CODERS]
    if not used:
        return
    missing = [str(p) for p in (concealer_file(cfg, s, "ar", name) for s in codec_sizes(cfg)) if not p.exists()]
    if missing:
        raise err("packetization.coder", f"coder {used[0]!r} codes each tile with the 'ar' transformer, missing: "
                  f"{', '.join(missing)} (use codebook sizes that ship one, e.g. 1024 and 128, or set "
                  "concealment.models.ar to a path template with {size})")


def _try_concealment(cfg: dict, dim: int) -> None:
    """Run every configured concealment method once, with its options and its transformer file(s), on a
    4×4 map: a bad option value (``steps: -1``), a file that is not a transformer or was trained for
    another codebook size is a ConfigError before any image is encoded (it used to surface only in the
    first trials). Costs one transformer load per (kind, size) and a few milliseconds."""
    import numpy as np
    import torch

    from codec.conceal import MODEL_KIND, conceal, load_transformer
    from codec.errors import VQSimError
    from codec.types import IndexMap

    conc, name = cfg["concealment"], cfg["codec"]["name"]
    sizes = codec_sizes(cfg)
    models: dict[tuple[str, int], Any] = {}
    lost = np.zeros((4, 4), dtype=bool)
    lost[1:3, 1:3] = True
    for m in conc["methods"]:
        kind = MODEL_KIND.get(m)
        for S in ([s for s in sizes if s not in conc.get("unavailable", {}).get(m, ())] if kind else sizes[:1]):
            model = None
            if kind:
                if (kind, S) not in models:
                    p = concealer_file(cfg, S, kind, name)
                    try:
                        models[(kind, S)] = load_transformer(p)
                    except (VQSimError, OSError) as e:
                        raise err(f"concealment.models.{kind}", f"cannot load {p}: {e}") from None
                model = models[(kind, S)]
            rng = np.random.default_rng(0)
            imap = IndexMap(rng.integers(0, S, (4, 4)), S, (64, 64))
            codebook = rng.standard_normal((S, dim)).astype(np.float32)
            try:
                conceal(imap, lost, m, model=model, codebook=codebook, rng=torch.Generator().manual_seed(0),
                        **conc["options"].get(m, {}))
            except (VQSimError, ValueError, TypeError, IndexError, RuntimeError) as e:
                raise err(f"concealment.options.{m}" if conc["options"].get(m) else "concealment.methods",
                          f"{m!r} at codebook size {S} fails before any work: {type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}") from None
