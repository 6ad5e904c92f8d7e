"""One interface to every concealment method: names, allowed options, model kinds, dispatch."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..types import IndexMap
from .ar import conceal_ar, conceal_ar_naive
from .baselines import conceal_latent_avg, conceal_mean, conceal_neighbor, conceal_none
from .bidir import conceal_bidir

CONCEAL_METHODS = ("ar", "ar_naive", "ar_mean", "bidir", "bidir_mean", "mean", "neighbor", "latent_avg", "none")
#: model methods and the transformer kind each needs ("*_mean": the same model with estimate="mean")
MODEL_KIND = {"ar": "ar", "ar_naive": "ar", "ar_mean": "ar", "bidir": "bidir", "bidir_mean": "bidir"}


_AR_OPTS = ("window", "sos_token", "context", "rule", "sample", "temperature", "top_k", "tie_tol", "estimate",
            "return_stats")
_OPTIONS = {
    "ar": _AR_OPTS + ("max_tokens",),
    "ar_naive": _AR_OPTS,
    "ar_mean": tuple(o for o in _AR_OPTS if o not in ("sample", "estimate")) + ("max_tokens",),
    "bidir": ("window", "steps", "sample", "temperature", "top_k", "max_tokens", "estimate"),
    "bidir_mean": ("window", "steps", "temperature", "top_k", "max_tokens"),
    "mean": (),
    "neighbor": (),
    "latent_avg": ("connectivity",),
    "none": ("fill_value",),
}


def conceal(index_map: IndexMap, lost_mask: np.ndarray, method: str = "ar", *, model=None, codebook=None,
            rng=None, **options) -> IndexMap:
    """Conceal the lost indices of ``index_map`` (``lost_mask`` True = lost) with ``method``.

    Args:
        index_map: received map; values at lost positions are ignored (except by ``none``).
        lost_mask: bool (h, w).
        method: one of ``CONCEAL_METHODS``.
        model: GPT for ``ar`` / ``ar_naive`` (causal, vocab K or K+1) and
            ``bidir`` (bidirectional, vocab K+1).
        codebook: (K, D) codewords for ``mean``, ``latent_avg`` (and the
            all-lost fallback of ``neighbor``), and for the model methods'
            ``estimate="mean"``.
        rng: torch or numpy Generator; needed only when sampling.
        options: method-specific (see the ``conceal_*`` functions); unknown
            options raise ``ValueError`` listing the allowed ones.

    Returns a new IndexMap (received indices untouched).
    """
    if not isinstance(index_map, IndexMap):
        raise TypeError(f"index_map must be an IndexMap, got {type(index_map).__name__}")
    if method not in CONCEAL_METHODS:
        raise ParameterError(f"unknown concealment method {method!r}; allowed: {', '.join(CONCEAL_METHODS)}")
    bad = sorted(set(options) - set(_OPTIONS[method]))
    if bad:
        raise ParameterError(f"unknown option(s) {bad} for method {method!r}; allowed: {list(_OPTIONS[method]) or '(no options)'}")
    if method in ("ar_mean", "bidir_mean"):
        method = method[:-5]
        options["estimate"] = "mean"
    if method in ("ar", "ar_naive", "bidir") and options.get("estimate", "mode") == "mean":
        options["codebook"] = codebook
    if method == "ar":
        return conceal_ar(index_map, lost_mask, model, rng=rng, **options)
    if method == "ar_naive":
        return conceal_ar_naive(index_map, lost_mask, model, rng=rng, **options)
    if method == "bidir":
        return conceal_bidir(index_map, lost_mask, model, rng=rng, **options)
    if method == "mean":
        return conceal_mean(index_map, lost_mask, codebook)
    if method == "neighbor":
        return conceal_neighbor(index_map, lost_mask, codebook)
    if method == "latent_avg":
        return conceal_latent_avg(index_map, lost_mask, codebook, **options)
    return conceal_none(index_map, lost_mask, **options)
