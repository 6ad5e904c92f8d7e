"""vqsim.codec: VQGAN image codec (taming-transformers compatible), index
bitstreams, K-means rate control, concealment of lost indices, metrics.

Importing ``codec`` is cheap and torch-free: the numpy-only parts
(``IndexMap``, errors, bitstream coders) load eagerly; everything that needs
torch loads on first attribute access.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import BitstreamError, CheckpointError, ModelNotFoundError, VQSimError
from .types import IndexMap, check_loss_mask

# attribute -> submodule that defines it (loaded lazily, these import torch)
_LAZY = {
    "VQModel": "codec.vqgan",
    "Encoder": "codec.vqgan",
    "Decoder": "codec.vqgan",
    "VectorQuantizer": "codec.vqgan",
    "VQGANCodec": "codec.api",
    "load_codec": "codec.zoo",
    "list_models": "codec.zoo",
    "conceal": "codec.conceal",
}

__all__ = [
    "BitstreamError", "CheckpointError", "ModelNotFoundError", "VQSimError",
    "IndexMap", "check_loss_mask", *_LAZY,
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'codec' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
