"""Concealment of lost VQ indices: the methods, their transformers (model, files, training) and one interface.

``conceal(index_map, lost_mask, method, ...)`` replaces the indices marked
lost (``lost_mask`` True) by estimates and returns a :class:`Concealment`
(``.index_map``, ``.indices``, ``.method``, ``.stats``).  Methods
(``CONCEAL_METHODS``), one module per family:

* ``ar`` / ``ar_naive`` (:mod:`.ar`) — the paper's sliding-window
  autoregressive transformer (taming's window rule, :mod:`.window`);
  ``ar`` is the wave-batched, cached equivalent of the naive reference.
* ``bidir`` (:mod:`.bidir`) — MaskGIT-style iterative [mask] prediction.
* ``ar_mean`` / ``bidir_mean`` — the same models with ``estimate="mean"``:
  the codeword nearest to the posterior-mean codeword Σ_k p_k e_k
  (:mod:`.decoding`).  Need ``codebook``.
* ``mean``, ``neighbor``, ``latent_avg``, ``none`` (:mod:`.baselines`).
* ``bidir_soft`` / ``bidir_soft_l2`` / ``ar_soft`` / ``latent_avg_soft``
  (:mod:`.soft`, ``SOFT_METHODS``): the decoder gets the posterior-mean
  (or neighbour-mean) vector itself, not a snapped codeword;
  ``Concealment.latents`` holds the decoder input, ``decode_concealment``
  decodes it.

:mod:`.registry` (``METHODS``) names each method, its options, the model kind it
needs and whether it reads the codebook.
Baselines need ``codebook`` (K, D); model methods need ``model`` (a
:class:`GPT`, :mod:`.model`, with vocabulary K or K+1).  The transformers:
:mod:`.files` (save / load), :mod:`.taming` (official checkpoints),
:mod:`.train` (training), :mod:`.data` (the augmented index-map dataset).

Importing this package is torch-free; the torch-backed names below
(``GPT``, ``load_transformer``, ``train_transformer``, ...) load on first access.
"""
from __future__ import annotations

import importlib
from typing import Any

from .ar import conceal_ar, conceal_ar_naive, dependency_waves
from .baselines import conceal_latent_avg, conceal_mean, conceal_neighbor, conceal_none
from .bidir import conceal_bidir
from .decoding import ESTIMATES, nearest_codeword
from .masks import LOSS_SHAPES, random_loss_mask, shaped_loss_mask
from .registry import (
    CONCEAL_METHODS,
    CONCEAL_OPTIONS,
    METHODS,
    MODEL_KIND,
    SOFT_METHODS,
    Concealment,
    ConcealMethod,
    conceal,
)
from .soft import conceal_ar_soft, conceal_bidir_soft, conceal_latent_avg_soft
from .window import AR_WINDOW_RULES, WINDOW, ar_tile_origins, window_origin

# attribute -> submodule that defines it (loaded on first access: these import torch)
_LAZY = {
    "GPT": "model",
    "GPTConfig": "model",
    "SlotKVCache": "model",
    "load_transformer": "files",
    "save_transformer": "files",
    "load_gpt_from_taming_ckpt": "taming",
    "config_from_state_dict": "taming",
    "train_transformer": "train",
    "TransformerTrainConfig": "train",
    "load_or_encode_index_maps": "train",
    "build_index_dataset": "data",
    "decode_latents": "soft",
    "decode_concealment": "soft",
    "decoder_table": "soft",
    "load_index_dataset": "data",
}

__all__ = [
    "AR_WINDOW_RULES", "CONCEAL_METHODS", "CONCEAL_OPTIONS", "ESTIMATES", "METHODS", "MODEL_KIND", "SOFT_METHODS",
    "WINDOW",
    "Concealment", "ConcealMethod", "ar_tile_origins", "conceal", "conceal_ar", "conceal_ar_naive", "conceal_bidir",
    "conceal_ar_soft", "conceal_bidir_soft", "conceal_latent_avg_soft",
    "conceal_latent_avg", "conceal_mean", "conceal_neighbor", "conceal_none", "dependency_waves", "nearest_codeword",
    "random_loss_mask", "shaped_loss_mask", "LOSS_SHAPES", "window_origin", *_LAZY,
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'codec.conceal' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
