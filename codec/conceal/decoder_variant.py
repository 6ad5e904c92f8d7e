"""Decoder variants: the plain decoder, or a loss-aware ("robust") decoder side trained on concealed maps.

A decoder variant replaces only ``post_quant_conv`` and ``decoder`` (and,
optionally, a reduced size's decoder codebook): the encoder, the quantizer's
codebook and so every index map and bitstream stay those of the codec.  Files
(written by :mod:`codec.train.robust_decoder`) hold ``{"weights": {state_dict
entries}, "meta": {codec, codebook_id, codec_steps, ...}}`` and are read with
``weights_only=True``.

Variant names: ``"plain"`` (or None) — the codec as loaded; ``"robust"`` — the
file the codec's model card lists (``decoder_variants``, checked against its
SHA-256), else ``codec/weights/{codec}_robustdec_{K}.pt`` (ModelNotFoundError
when absent); anything else — a path to such a file.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, ModelNotFoundError, ParameterError

DECODER_VARIANTS = ("plain", "robust")
#: joins a concealment method and a decoder variant in one label ("bidir_soft@robust"); plain adds nothing
LABEL_SEP = "@"


def variant_label(method: str, decoder: str = "plain") -> str:
    """The label of ``method`` decoded with ``decoder``: ``method`` for plain, else ``method@decoder``."""
    return method if decoder in (None, "plain") else f"{method}{LABEL_SEP}{decoder}"


def split_variant_label(label: str) -> tuple[str, str]:
    """``"bidir_soft@robust"`` → ``("bidir_soft", "robust")``; a label without ``@`` → ``(label, "plain")``."""
    method, sep, decoder = label.partition(LABEL_SEP)
    return (method, decoder) if sep else (label, "plain")


def robust_decoder_path(codec_name: str, codebook_size: int) -> Path:
    """Where the shipped robust decoder of (codec, K) lives: its model card's file for a registered codec, else
    the naming rule ``{codec}_robustdec_{K}.pt`` in the weights folder."""
    from ..zoo import REGISTRY, WEIGHTS_DIR

    info = REGISTRY.get(codec_name)
    v = info.decoder_variant("robust", codebook_size) if info is not None else None
    if info is not None and v is not None:
        return info.weights_dir / v.file
    return WEIGHTS_DIR / f"{codec_name}_robustdec_{int(codebook_size)}.pt"


def _own_decoder_recipe(codec) -> str | None:
    """How the codec's full-size decoder was trained, when it came from ``train-robust-decoder`` (spliced in by
    ``vqsim export-codec --base``: ``meta.decoder_recipe``); None otherwise and below the full size."""
    from ..zoo import checkpoint_meta

    try:
        meta = checkpoint_meta(codec.name)
    except ModelNotFoundError:  # a codec not loaded by a registered name (a file's codec is named by its stem)
        return None
    if meta.get("decoder_recipe") != "train-robust-decoder" or codec.variant != "trained":
        return None
    return f"{meta.get('decoder_from')}, filler {meta.get('decoder_filler')}, {meta.get('decoder_steps')} steps"


def read_decoder_file(path: str | Path) -> dict:
    """A decoder-variant file → ``{"weights": ..., "meta": ...}`` (CheckpointError when it is not one)."""
    from ..checkpoint import read_checkpoint

    ck = read_checkpoint(path)
    if not isinstance(ck, dict) or not isinstance(ck.get("weights"), dict):
        raise CheckpointError(f"{path}: not a decoder-variant file (no 'weights' dict)")
    return {"weights": ck["weights"], "meta": dict(ck.get("meta") or {})}


def with_decoder_variant(codec, variant: str | Path | None = "plain"):
    """``codec`` decoding with decoder ``variant`` (a new VQGANCodec; ``codec`` is left unchanged).

    Raises ModelNotFoundError for ``"robust"`` when no robust decoder ships for
    this codec and size, FileNotFoundError for a missing path, CheckpointError
    for a file made for another codebook or with wrong shapes.
    """
    import torch

    from ..api import VQGANCodec

    if variant is None or variant == "plain":
        return codec
    if variant == "robust":
        path = robust_decoder_path(codec.name, codec.codebook_size)
        if not path.exists():
            own = _own_decoder_recipe(codec)
            raise ModelNotFoundError(
                f"no robust decoder ships for {codec.codebook_id} ({path.name}); "
                + (f"its own (plain) decoder is the loss-aware one: trained on concealed maps ({own}), so "
                   "`plain` is what `robust` would mean; another decoder file can still be passed"
                   if own else "train one with `vqsim train-robust-decoder` and pass its file"))
        from ..zoo import REGISTRY, verify_sha256

        info = REGISTRY.get(codec.name)
        v = info.decoder_variant("robust", codec.codebook_size) if info is not None else None
        if v is not None:  # a shipped file is checked against its card before it is read
            verify_sha256(path, v.sha256)
    else:
        path = Path(variant)
        if not path.is_file():
            raise FileNotFoundError(f"decoder variant {variant!r}: no such file "
                                    f"(variants: {', '.join(DECODER_VARIANTS)} or a path)")
    ck = read_decoder_file(path)
    cid = ck["meta"].get("codebook_id")
    if cid and cid != codec.codebook_id:
        raise CheckpointError(f"{path}: decoder made for {cid!r}, this codec is {codec.codebook_id!r}")
    weights = {k: torch.as_tensor(v).float() for k, v in ck["weights"].items()}
    m = codec.model
    ft = dict(weights)
    if "decoder_codebook" not in ft and getattr(m, "decoder_codebook", None) is not None:
        ft["decoder_codebook"] = m.decoder_codebook.weight.detach().cpu()
    model = m.with_codebook(m.quantize.embedding.weight.detach(), finetuned=ft)
    new = VQGANCodec(model, name=codec.name, device=codec.device, coder=codec.coder, prior=codec.prior,
                     autocast=codec.autocast)
    new.variant = f"{codec.variant}+decoder:{ck['meta'].get('name', path.stem)}"
    return new


def check_variant_name(variant: str | None) -> str | None:
    """Validate a decoder-variant argument before any work (one-line ParameterError)."""
    if variant is None or variant in DECODER_VARIANTS:
        return variant
    if not isinstance(variant, (str, Path)) or not str(variant):
        raise ParameterError(f"decoder variant must be one of {DECODER_VARIANTS} or a file path, got {variant!r}")
    return str(variant)
