"""The decode + score stage of a unit: its distinct concealed maps decoded and scored in one batch.

Every reconstruction is scored against the original image and against the loss-free reconstruction
(``*_vs_lossfree``): LPIPS per configured net (lower is better), PSNR in dB, and unless
``metrics.structural`` is off SSIM and MS-SSIM (MS-SSIM only where the short side allows it).
A map equal to the sent one is not decoded: it *is* the loss-free reconstruction.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .codecs import metric_device
from .context import TrialContext
from .encode_cache import EncodedImage
from .plan import Unit

__all__ = ["BatchScores", "batch_metrics", "identity_metrics", "score_maps"]


def batch_metrics(orig, recs, nets: Sequence[str], device, structural: bool = True, ref=None,
                  lpips_ref: Mapping[str, Any] | None = None, lpips_recs: Mapping[str, Any] | None = None
                  ) -> dict[str, np.ndarray]:
    """Metrics of N reconstructions (N, 3, H, W) against one image (1, 3, H, W), all float [0, 1].

    ``structural=False`` leaves out SSIM and MS-SSIM (the costly part on CPU). Precomputed parts,
    reused across references and units (the numbers are the same as without them):
    ``ref`` = ``codec.metrics.prepare_reference(orig)``; ``lpips_ref`` / ``lpips_recs`` = {net:
    ``codec.metrics.lpips_features``} of ``orig`` / ``recs``."""
    from codec.metrics import lpips_distance, lpips_from_features, psnr, ssim_and_ms_ssim

    x = orig.expand(recs.shape[0], -1, -1, -1)
    out = {}
    for n in nets:
        if lpips_ref is not None and lpips_recs is not None:
            d = lpips_from_features(lpips_ref[n], lpips_recs[n], n)
        else:
            d = lpips_distance(x, recs, net=n, device=device)
        out[f"lpips_{n}"] = d.double().cpu().numpy()
    out["psnr"] = psnr(x, recs).cpu().numpy()
    if not structural:
        return out
    s, ms = ssim_and_ms_ssim(x, recs, ref=ref)  # x is passed too, so a wrong cache entry raises
    out["ssim"] = s.cpu().numpy()
    if ms is not None:  # None exactly when the short side < MS_SSIM_MIN_SIZE
        out["ms_ssim"] = ms.cpu().numpy()
    return out


def identity_metrics(keys: Iterable[str]) -> dict[str, float]:
    """Metrics of an image against itself."""
    return {k: (0.0 if k.startswith("lpips") else math.inf if k == "psnr" else 1.0) for k in keys}


@dataclass
class BatchScores:
    """The scores of a unit's concealed maps.

    Attributes:
        enc: the unit's encoded image.  metric_keys: the metric names of a row (``enc.metrics`` less the
        structural ones when they are off).  distinct: {map bytes: position in the batch} of the maps
        that differ from the sent one.  vs_original / vs_lossfree: {metric: (n,) array} of the batch.
        images: the batch's uint8 (H, W, 3) reconstructions.  decode_s / metrics_s: wall time of the batch.
    """

    enc: EncodedImage
    metric_keys: list[str]
    distinct: dict[bytes, int] = field(default_factory=dict)
    vs_original: dict[str, np.ndarray] = field(default_factory=dict)
    vs_lossfree: dict[str, np.ndarray] = field(default_factory=dict)
    images: list[np.ndarray] = field(default_factory=list)
    decode_s: float = 0.0
    metrics_s: float = 0.0

    def of(self, idx: np.ndarray, latents: np.ndarray | None = None, decoder: str = "plain"
           ) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
        """(metrics vs the original, metrics vs the loss-free reconstruction, uint8 image) of one map
        (``latents``: a soft method's decoder input, which is what was decoded) decoded by ``decoder``."""
        j = self.distinct.get(_key(idx, latents, decoder))
        if j is None:  # identical to the sent map, plain decoder: the loss-free reconstruction
            return ({k: float(self.enc.metrics[k]) for k in self.metric_keys}, identity_metrics(self.metric_keys),
                    self.enc.lossfree)
        return ({k: float(v[j]) for k, v in self.vs_original.items()},
                {k: float(v[j]) for k, v in self.vs_lossfree.items()}, self.images[j])


def _key(idx: np.ndarray, latents: np.ndarray | None, decoder: str = "plain") -> bytes:
    k = idx.tobytes() if latents is None else b"soft:" + np.ascontiguousarray(latents, np.float32).tobytes()
    return k if decoder == "plain" else decoder.encode() + b"@" + k


_Groups = dict[str, tuple[list[bytes], list[np.ndarray], list[bytes], list[np.ndarray]]]


def _distinct_by_decoder(sent, maps: Sequence[np.ndarray], latents: Sequence[np.ndarray | None] | None,
                         decoders: Sequence[str] | None) -> _Groups:
    """{decoder: (index-map keys, index maps, soft keys, latent maps)} of the distinct maps to decode, in
    first-seen order; the sent map under the plain decoder is left out (it is the loss-free reconstruction)."""
    n = len(maps)
    todo: _Groups = {}
    seen: set[bytes] = set()
    for idx, lat, dec in zip(maps, latents if latents is not None else [None] * n,
                             decoders if decoders is not None else ["plain"] * n, strict=True):
        key = _key(idx, lat, dec)
        if key in seen or (dec == "plain" and lat is None and np.array_equal(idx, sent.indices)):
            continue
        seen.add(key)
        g = todo.setdefault(dec, ([], [], [], []))
        if lat is None:
            g[0].append(key)
            g[1].append(idx)
        else:
            g[2].append(key)
            g[3].append(lat)
    return todo


def _decode_groups(ctx: TrialContext, S: int, todo: _Groups, image_size, distinct: dict[bytes, int]):
    """Decode each decoder's index maps, then its latent maps (a batch each) → float (N, 3, H, W) in [0, 1];
    ``distinct`` gets each key's row."""
    import torch

    parts = []
    for dec, (ikeys, imaps, skeys, soft) in todo.items():
        dcodec = ctx.codec(S, dec)
        for k in (*ikeys, *skeys):
            distinct[k] = len(distinct)
        if imaps:
            parts.append(dcodec.decode_batch(torch.from_numpy(np.stack(imaps).astype(np.int64)), image_size))
        if soft:
            from codec.conceal import decode_latents

            parts.append(decode_latents(dcodec, np.stack(soft), image_size))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def score_maps(ctx: TrialContext, unit: Unit, enc: EncodedImage, sent, maps: Sequence[np.ndarray],
               latents: Sequence[np.ndarray | None] | None = None,
               decoders: Sequence[str] | None = None) -> BatchScores:
    """Decode each distinct map of ``maps`` once, in one batch per decoder on the codec's device, quantize to
    8-bit pixels (what a receiver displays) and score the batch against both references.
    ``latents[i]`` (soft concealment methods, ``codec.conceal.SOFT_METHODS``): decode that latent map instead
    of ``maps[i]``.  ``decoders[i]`` (default all 'plain'): the decoder variant that decodes map i; a map equal
    to the sent one is decoded only by a non-plain decoder (with the plain one it *is* the loss-free
    reconstruction).  The loss-free reference of ``*_vs_lossfree`` is always the plain decoder's."""
    import torch

    from codec.image import to_tensor
    from codec.metrics import lpips_features

    cfg = ctx.cfg
    p = unit.params
    S = p["codebook_size"]
    codec = ctx.codec(S)
    structural = cfg["metrics"].get("structural", True)
    out = BatchScores(enc, [k for k in enc.metrics if structural or k not in ("ssim", "ms_ssim")])
    todo = _distinct_by_decoder(sent, maps, latents, decoders)
    if not todo:
        return out
    nets = cfg["metrics"]["nets"]
    dev = metric_device(cfg, codec)
    t0 = time.perf_counter()
    with torch.no_grad():
        x = _decode_groups(ctx, S, todo, enc.image_size, out.distinct)
        x = torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0  # what a receiver displays: 8-bit pixels
    out.decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    # contiguous NCHW everywhere: the memory layout picks the conv kernels, which round differently
    x = x.contiguous()
    orig = to_tensor(ctx.images[p["image_hash"]]).to(x.device).contiguous()
    lf = to_tensor(enc.lossfree).to(x.device).contiguous()
    ref_o = ctx.ssim_ref(f"orig/{p['image_hash']}", orig) if structural else None
    ref_l = ctx.ssim_ref(f"lossfree/{S}/{p['image_hash']}", lf) if structural else None
    feats = {n: lpips_features(x, n, dev) for n in nets}  # the reconstructions' features, for both references
    lp_o = {n: ctx.lpips_ref(f"orig/{p['image_hash']}", orig, n, dev) for n in nets}
    lp_l = {n: ctx.lpips_ref(f"lossfree/{S}/{p['image_hash']}", lf, n, dev) for n in nets}
    out.vs_original = batch_metrics(orig, x, nets, dev, structural, ref_o, lp_o, feats)
    out.vs_lossfree = batch_metrics(lf, x, nets, dev, structural, ref_l, lp_l, feats)
    out.images = [a for a in (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()]
    out.metrics_s = time.perf_counter() - t0
    return out
