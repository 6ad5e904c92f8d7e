"""Turn a training checkpoint into a shippable model file (``codec/weights/NAME.pt``).

The file holds the VQGAN (fp16 storage), the K-means reductions of its
codebook to every size in ``codec.kmeans.REDUCED_SIZES`` below K (seeded, the
paper's "w/o fine-tune" codebooks), and for every size the codeword counts
over the training images' index maps: the arithmetic coder's prior, which
both ends share, so it costs nothing in the bitstream.

:func:`splice_decoder` is the path for a decoder-only fine-tune (encoder, ``quant_conv`` and codebook frozen):
it puts the new decoder side into an existing model file and keeps everything else, so bitstreams, coder priors,
index data and concealers built on that file stay valid.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import read_checkpoint, save_atomic, save_vqgan
from ..kmeans import kmeans_codebook, reduced_sizes
from ..vqgan import VQGANConfig, VQModel


def model_from_training_checkpoint(path: str | Path) -> tuple[VQModel, dict[str, Any]]:
    """The VQGAN inside a ``codec.train.loop`` checkpoint (``last.pt``), plus its step / wall time."""
    ck = read_checkpoint(path)
    if "model" not in ck or "config" not in ck:
        from ..errors import CheckpointError

        raise CheckpointError(f"{path} is not a vqsim training checkpoint (needs 'model' and 'config')")
    from ..checkpoint import build_checked, load_state_dict_checked
    from ..errors import CheckpointError

    try:
        cfg = VQGANConfig.from_dict(ck["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has no valid VQGAN config ({e})") from None
    model = build_checked(lambda: VQModel(cfg), ck["model"], f"training checkpoint {Path(path).name}")
    load_state_dict_checked(model, ck["model"], f"training checkpoint {Path(path).name}")
    return model.eval(), {"steps": int(ck.get("step", 0)), "train_wall_s": float(ck.get("wall_s", 0.0))}


@torch.no_grad()
def index_counts(
    model: VQModel, images: list[np.ndarray], sizes: dict[int, torch.Tensor], batch: int = 16
) -> dict[int, torch.Tensor]:
    """Codeword usage counts per codebook size over the images (each image encoded once)."""
    counts = {s: torch.zeros(s, dtype=torch.int64) for s in sizes}
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack(images[i : i + batch])).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        h = model.encode_pre_quant(x)
        for s, cb in sizes.items():
            q = model.quantize if s == model.codebook_size else model.with_codebook(cb).quantize
            counts[s] += torch.bincount(q.indices(h).flatten(), minlength=s)
    return counts


def export_model(
    train_ckpt: str | Path,
    out: str | Path,
    prior_images: list[np.ndarray],
    *,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    log=print,
) -> Path:
    """Write the shippable model file; returns its path."""
    model, info = model_from_training_checkpoint(train_ckpt)
    K = model.codebook_size
    cb = model.quantize.codewords().detach().float().cpu()
    codebooks: dict[int, torch.Tensor] = {}
    for s in reduced_sizes(K):
        t0 = time.perf_counter()
        res = kmeans_codebook(cb.numpy(), s, seed=seed)
        codebooks[s] = torch.from_numpy(res.centroids)
        log(f"K-means {K} -> {s}: {res.iterations} iterations, {time.perf_counter() - t0:.2f} s")
    counts = index_counts(model, prior_images, {K: cb, **codebooks})
    used = int((counts[K] > 0).sum())
    log(f"codebook usage on {len(prior_images)} prior images: {used}/{K} codewords")
    meta = {**info, "codebook_used": used, "kmeans_seed": seed, "prior_images": len(prior_images), **(meta or {})}
    return save_vqgan(out, model, codebooks=codebooks, priors=counts, meta=meta, half=True)


#: the parts a decoder-only fine-tune changes; every other tensor of the model must be the base file's
DECODER_PARTS = ("post_quant_conv.", "decoder.")


def splice_decoder(train_ckpt: str | Path, base: str | Path, out: str | Path, *, log=print) -> Path:
    """Write ``out`` = model file ``base`` with its full-size decoder side (``post_quant_conv`` + decoder)
    taken from training checkpoint ``train_ckpt`` (fp16, as the project stores it), or from a decoder-variant
    file of ``vqsim train-robust-decoder`` made for ``base`` at its full codebook size (see
    :func:`_splice_variant`).

    Everything else is ``base``'s: encoder, ``quant_conv``, codebook, K-means codebooks, coder priors and the
    reduced sizes' fine-tuned decoders (``meta.finetuned_from_previous_decoder`` says they were fine-tuned from
    the decoder this replaces; ``vqsim finetune-codec`` rebuilds them).  Raises CheckpointError when the
    checkpoint's encoder side differs from ``base`` (fp16-rounded), i.e. when it was not a decoder-only fine-tune
    of that file: splicing would silently change every bitstream.
    """
    from ..errors import CheckpointError

    b = read_checkpoint(base)
    if not isinstance(b, dict) or "state_dict" not in b or "config" not in b:
        raise CheckpointError(f"{base} is not a model file in the project format")
    src = read_checkpoint(train_ckpt)
    if isinstance(src, dict) and isinstance(src.get("weights"), dict) and "model" not in src:
        return _splice_variant(src, Path(train_ckpt), b, Path(base), out, log)
    model, info = model_from_training_checkpoint(train_ckpt)
    if VQGANConfig.from_dict(b["config"]).to_dict() != model.config.to_dict():
        raise CheckpointError(f"{train_ckpt}: architecture differs from {base}")
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    base_sd = dict(b["state_dict"])
    if set(sd) != set(base_sd):
        raise CheckpointError(f"{train_ckpt}: parameter names differ from {base}")
    changed = [k for k in sd if not k.startswith(DECODER_PARTS)
               and not torch.equal(sd[k].to(base_sd[k].dtype) if sd[k].is_floating_point() else sd[k], base_sd[k])]
    if changed:
        raise CheckpointError(f"{train_ckpt} changes {len(changed)} tensor(s) outside the decoder side "
                              f"(first: {changed[0]}): not a decoder-only fine-tune of {base}; "
                              "export it with `vqsim export-codec` (no --base) instead")
    n = 0
    for k, v in sd.items():
        if k.startswith(DECODER_PARTS):
            base_sd[k] = v.half() if v.is_floating_point() else v.clone()
            n += 1
    p = _write_spliced(b, base_sd, out, {"decoder_from": Path(train_ckpt).name, "decoder_steps": info["steps"],
                                         "decoder_train_wall_s": info["train_wall_s"]})
    log(f"{n} decoder-side tensors from {train_ckpt} (step {info['steps']}) into {base}'s file -> {p}")
    return p


def _splice_variant(src: dict, path: Path, b: dict, base: Path, out: str | Path, log) -> Path:
    """:func:`splice_decoder` from a decoder-variant file ``{"weights", "meta"}``: its tensors must be exactly the
    base's full-size decoder side (same names and shapes), made for the base's codec at its full codebook size
    (``meta.codebook_id``) and encoder (``meta.codec_steps`` = the base's ``meta.steps``); else CheckpointError."""
    from ..errors import CheckpointError

    meta_b = dict(b.get("meta") or {})
    meta_v = dict(src.get("meta") or {})
    K = int(VQGANConfig.from_dict(b["config"]).n_embed)
    cid = meta_v.get("codebook_id")
    if cid is None or not str(cid).endswith(f"/{K}"):
        raise CheckpointError(f"{path}: decoder variant made for {cid!r}, not for {base.name}'s full codebook "
                              f"(K = {K}); only a full-size decoder side can be spliced")
    if meta_v.get("codec_steps") != meta_b.get("steps"):
        raise CheckpointError(f"{path}: made for a codec trained {meta_v.get('codec_steps')} steps, {base.name} "
                              f"was trained {meta_b.get('steps')}: not this encoder's decoder")
    base_sd = dict(b["state_dict"])
    want = {k for k in base_sd if k.startswith(DECODER_PARTS)}
    got = set(src["weights"])
    if got != want:
        extra, missing = sorted(got - want), sorted(want - got)
        raise CheckpointError(f"{path}: tensors differ from {base.name}'s decoder side "
                              f"(extra: {extra[:3]}, missing: {missing[:3]})")
    for k in sorted(want):
        v = torch.as_tensor(src["weights"][k])
        if tuple(v.shape) != tuple(base_sd[k].shape):
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, {base.name} {tuple(base_sd[k].shape)}")
        base_sd[k] = v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu().clone()
    p = _write_spliced(b, base_sd, out, {"decoder_from": path.name, "decoder_steps": meta_v.get("steps"),
                                         "decoder_filler": meta_v.get("filler"),
                                         "decoder_recipe": "train-robust-decoder"})
    log(f"{len(want)} decoder-side tensors from decoder variant {path.name} (step {meta_v.get('steps')}) "
        f"into {base.name}'s file -> {p}")
    return p


def _write_spliced(b: dict, state_dict: dict, out: str | Path, decoder_meta: dict) -> Path:
    """Model file ``b`` with ``state_dict`` and ``decoder_meta`` added to its meta; the reduced sizes' decoders it
    keeps are marked as fine-tuned from the decoder the splice replaced."""
    meta = {**dict(b.get("meta") or {}), **decoder_meta}
    if b.get("decoders"):
        meta["finetuned_from_previous_decoder"] = sorted(int(s) for s in b["decoders"])
    return save_atomic({**b, "state_dict": state_dict, "meta": meta}, out)
