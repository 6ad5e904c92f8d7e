"""Scoring: metrics of a batch of reconstructions against one reference image, and of an image against itself."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["_batch_metrics", "_identity_metrics"]


def _batch_metrics(orig, recs, nets: Sequence[str], device, structural: bool = True, ref=None,
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


def _identity_metrics(keys: Iterable[str]) -> dict[str, float]:
    """Metrics of an image against itself."""
    return {k: (0.0 if k.startswith("lpips") else math.inf if k == "psnr" else 1.0) for k in keys}

