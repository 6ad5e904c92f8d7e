"""Soft-latent concealment: the decoder gets the expected codeword at a lost position, not a snapped index.

A lost position's estimate is a continuous vector in the space the decoder
reads codewords from (its *table* ``d_k``: the quantizer's codewords — unit
rows for the l2-normalised default codec — or a fine-tuned reduced size's
decoder codebook):

* ``bidir_soft`` — the bidirectional model run exactly as ``bidir_mean``
  (same committed context tokens, same index map); each lost position's
  vector is the posterior mean m = Σ_k p_k d_k of the step it was committed.
* ``ar_soft`` — the same for the sliding-window AR model (as ``ar_mean``).
* ``latent_avg_soft`` — ``latent_avg`` without snapping: ring by ring, the
  mean of the known 4-/8-neighbours' vectors.

``renorm=True`` rescales each vector to the expected norm Σ_k p_k ‖d_k‖ (for
``latent_avg_soft``: the neighbours' mean norm) — back onto the unit sphere the
decoder saw in training; ``bidir_soft_l2`` is ``bidir_soft`` with it fixed on.
A mean of unit vectors is shorter than 1; which the decoder prefers is measured
in ``docs/concealment.md``.

Each function returns ``(IndexMap, latents)``: the index map (for index
statistics and the bitstream view; at lost positions the snapped codeword)
and ``latents`` float32 (h, w, D'): the decoder input at every position
(received positions: their table row).  :func:`decode_latents` decodes it.
Torch is imported on first use.
"""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..types import IndexMap, check_loss_mask
from .baselines import NEIGHBOR_OFFSETS
from .decoding import check_codebook, check_table, import_torch, nearest_codeword


def _table(codebook, decoder_codebook, K: int) -> np.ndarray:
    """The decoder's table: ``decoder_codebook`` if given, else ``codebook``."""
    if decoder_codebook is not None:
        return check_table(decoder_codebook, K)
    if codebook is None:
        raise ParameterError("soft concealment needs codebook= (or decoder_codebook=) (K, D) codewords")
    return check_table(codebook, K)


def _check_renorm(renorm) -> bool:
    if not isinstance(renorm, (bool, np.bool_)):
        raise ParameterError(f"renorm must be True or False, got {renorm!r}")
    return bool(renorm)


def latent_map(index_map: IndexMap, lost: np.ndarray, soft: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Decoder input (h, w, D') float32: table rows of the received indices, ``soft`` (N, D') at lost ones."""
    lat = table[index_map.indices.astype(np.int64)].astype(np.float32)
    lat[lost] = soft
    return lat


def conceal_bidir_soft(index_map: IndexMap, lost_mask: np.ndarray, model, *, codebook, decoder_codebook=None,
                       renorm: bool = False, **options) -> tuple[IndexMap, np.ndarray]:
    """``bidir_mean`` whose lost positions keep the posterior-mean vector Σ p_k d_k (options: ``conceal_bidir``)."""
    from .bidir import conceal_bidir

    torch = import_torch()
    lost = check_loss_mask(lost_mask, index_map.shape)
    table = _table(codebook, decoder_codebook, index_map.codebook_size)
    spec = (torch.as_tensor(table, dtype=torch.float64), _check_renorm(renorm))
    out, soft = conceal_bidir(index_map, lost, model, codebook=codebook, estimate="mean", _soft=spec, **options)
    return out, latent_map(out, lost, soft, table)


def conceal_ar_soft(index_map: IndexMap, lost_mask: np.ndarray, model, *, codebook, decoder_codebook=None,
                    renorm: bool = False, rng=None, return_stats: bool = False, **options):
    """``ar_mean`` whose lost positions keep the posterior-mean vector (options: ``conceal_ar``).

    Returns ``(IndexMap, latents)`` or, with ``return_stats``, ``(IndexMap, stats, latents)``.
    """
    from .ar import run_ar

    torch = import_torch()
    lost = check_loss_mask(lost_mask, index_map.shape)
    table = _table(codebook, decoder_codebook, index_map.codebook_size)
    spec = (torch.as_tensor(table, dtype=torch.float64), _check_renorm(renorm))
    out, stats, soft = run_ar(index_map, lost, model, rng, True, "ar_soft", codebook=codebook, estimate="mean",
                               _soft=spec, **options)
    lat = latent_map(out, lost, soft, table)
    return (out, stats, lat) if return_stats else (out, lat)


def conceal_latent_avg_soft(index_map: IndexMap, lost_mask: np.ndarray, codebook=None, *, decoder_codebook=None,
                            connectivity: int = 4, renorm: bool = False) -> tuple[IndexMap, np.ndarray]:
    """``latent_avg`` without snapping: ring by ring, the mean of the known neighbours' vectors.

    The index map holds, at lost positions, the index whose table row is
    nearest to the vector.  With nothing received every position gets the
    table's mean row.
    """
    lost = check_loss_mask(lost_mask, index_map.shape)
    table = _table(codebook, decoder_codebook, index_map.codebook_size)
    if codebook is not None:
        check_codebook(codebook, index_map.codebook_size)
    if connectivity not in NEIGHBOR_OFFSETS:
        raise ParameterError(f"connectivity must be 4 or 8, got {connectivity!r}")
    renorm = _check_renorm(renorm)
    H, W = lost.shape
    D = table.shape[1]
    idx = index_map.indices.astype(np.int64)
    norms = np.linalg.norm(table, axis=1)
    if lost.all():
        m = table.mean(0)
        if renorm:
            m = m * norms.mean() / max(np.linalg.norm(m), 1e-12)
        soft = np.repeat(m[None], lost.sum(), 0)
    else:
        known = ~lost
        vec = np.zeros((H + 2, W + 2, D))
        vec[1:-1, 1:-1][known] = table[idx[known]]
        nrm = np.zeros((H + 2, W + 2))
        nrm[1:-1, 1:-1][known] = norms[idx[known]]
        kn = np.zeros((H + 2, W + 2))
        kn[1:-1, 1:-1] = known
        while not kn[1:-1, 1:-1].all():
            s = np.zeros((H, W, D))
            sn = np.zeros((H, W))
            c = np.zeros((H, W))
            for dy, dx in NEIGHBOR_OFFSETS[connectivity]:
                s += vec[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
                sn += nrm[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
                c += kn[1 + dy:H + 1 + dy, 1 + dx:W + 1 + dx]
            ring = (kn[1:-1, 1:-1] == 0) & (c > 0)
            v = s[ring] / c[ring][:, None]
            n_ = sn[ring] / c[ring]
            if renorm:
                v = v * (n_ / np.maximum(np.linalg.norm(v, axis=1), 1e-12))[:, None]
            vec[1:-1, 1:-1][ring] = v
            nrm[1:-1, 1:-1][ring] = n_
            kn[1:-1, 1:-1][ring] = 1
        soft = vec[1:-1, 1:-1][lost]
    if lost.any():
        idx[lost] = nearest_codeword(soft, table)
    out = index_map.with_indices(idx)
    return out, latent_map(out, lost, soft, table)


# ------------------------------------------------------------------ decoding a latent map
def decoder_table(codec) -> np.ndarray:
    """The (K, D) float32 table ``codec`` looks indices up in (a fine-tuned size's decoder codebook, if any)."""
    torch = import_torch()
    K = codec.codebook_size
    with torch.no_grad():
        z = codec.model.lookup(torch.arange(K, device=codec.device)[None, None])  # (1, D, 1, K)
    return z[0, :, 0, :].t().float().cpu().numpy()


def decode_latents(codec, latents: np.ndarray, image_size: tuple[int, int]):
    """Latent map(s) (h, w, D) or (N, h, w, D) → float (N, 3, H, W) in [0, 1] on the codec's device.

    The decoder side only (``post_quant_conv`` + decoder), as ``decode_batch``
    does after its table lookup; ``image_size`` crops the result.
    """
    torch = import_torch()
    from ..runtime import cpu_fast_path

    z = np.asarray(latents, dtype=np.float32)
    if z.ndim == 3:
        z = z[None]
    D = int(codec.model.config.embed_dim)
    if z.ndim != 4 or z.shape[-1] != D:
        raise ParameterError(f"latents must be (h, w, {D}) or (N, h, w, {D}), got {z.shape}")
    if not np.isfinite(z).all():
        raise ParameterError("latents contain non-finite values")
    H, W = (int(v) for v in image_size)
    if tuple(z.shape[1:3]) != tuple(codec.latent_shape((H, W))):
        raise ParameterError(f"latent map {z.shape[1:3]} does not fit image size {(H, W)}")
    zt = torch.from_numpy(np.ascontiguousarray(z)).to(codec.device).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad(), codec._autocast(), cpu_fast_path(codec.device):
        x = codec.model.decode(zt)
    return ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)[..., :H, :W]


def decode_concealment(codec, concealment):
    """A :class:`~codec.conceal.registry.Concealment` → float (1, 3, H, W) in [0, 1]: its latents when soft."""
    imap = concealment.index_map
    if concealment.latents is None:
        return codec.decode_indices_tensor(imap)
    codec._check_map(imap)
    return decode_latents(codec, concealment.latents, imap.image_size)
