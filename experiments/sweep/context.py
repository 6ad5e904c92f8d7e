"""Per-worker state of the trial runner: codecs, codebooks, concealment models and metric references.

A :class:`TrialContext` is owned by whoever runs the units: the local executor builds one per sweep
and shares it between its threads; a Dask worker's plugin builds one per sweep for that worker
(:mod:`experiments.sweep.dask_executor`).  Nothing is kept at module level.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ..config.resources import concealer_file, decoder_file
from .codecs import load_sweep_codec
from .encode_cache import EncodedImage

__all__ = ["TrialContext", "SweepInputs", "load_tile_coder"]


class TrialContext:
    """State of the trial runner: codecs, codebooks, concealment models and metric references, loaded lazily.

    Thread-safe: the threads of one worker share it (models and references are built once).

    Args:
        cfg: resolved, resource-checked config.
        images: {image hash: uint8 pixels}.
        encoded: output of :func:`prepare_encodings`.
    """

    def __init__(self, cfg: Mapping[str, Any], images: Mapping[str, np.ndarray], encoded: Mapping[str, EncodedImage]):
        self.cfg = cfg
        self.images = images
        self.encoded = encoded
        self._codecs: dict[tuple[int, str], Any] = {}
        self._codebooks: dict[int, np.ndarray] = {}
        self._models: dict[tuple[str, int], Any] = {}
        self._ssim_refs: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lpips_refs: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()

    def _cached(self, store: OrderedDict, key: tuple, size: int, build: Callable[[], Any]) -> Any:
        """``store[key]``, built with ``build()`` on a miss; ``store`` keeps the ``size`` most recent keys."""
        with self._lock:
            value = store.get(key)
            if value is not None:
                store.move_to_end(key)
                return value
        value = build()  # outside the lock: other threads keep working meanwhile
        with self._lock:
            store[key] = value
            while len(store) > size:
                store.popitem(last=False)
        return value

    def lpips_ref(self, key: str, img, net: str, device):
        """``codec.metrics.lpips_features(img, net)`` of a reference, kept for the 4 most recent
        (key, net, device) (≈ 10 MB each for a Kodak image with AlexNet, ≈ 200 MB with VGG)."""
        from codec.metrics import lpips_features

        return self._cached(self._lpips_refs, (key, net, str(device)), 4, lambda: lpips_features(img, net, device))

    def ssim_ref(self, key: str, img):
        """``codec.metrics.prepare_reference(img)`` for SSIM / MS-SSIM, kept for the 8 most recent
        (key, device): units run size by size and image by image, so they almost always hit (≈ 28 MB each
        for a Kodak image)."""
        from codec.metrics import prepare_reference

        return self._cached(self._ssim_refs, (key, str(img.device)), 8, lambda: prepare_reference(img))

    def codec(self, S: int, decoder: str = "plain"):
        """The codec of size S, decoding with ``decoder`` ('plain' | 'robust': its decoder-side file,
        :func:`experiments.config.resources.decoder_file`); encoder and codebook are the same."""
        with self._lock:
            if (S, decoder) not in self._codecs:
                if decoder == "plain":
                    self._codecs[(S, decoder)] = load_sweep_codec(self.cfg, S)
                else:
                    from codec.conceal.decoder_variant import with_decoder_variant

                    self._codecs[(S, decoder)] = with_decoder_variant(self.codec(S),
                                                                      str(decoder_file(self.cfg, S, decoder)))
            return self._codecs[(S, decoder)]

    def codebook(self, S: int) -> np.ndarray:
        with self._lock:
            if S not in self._codebooks:
                self._codebooks[S] = self.codec(S).codebook
            return self._codebooks[S]

    def concealer(self, kind: str, S: int):
        with self._lock:
            key = (kind, S)
            if key not in self._models:
                from codec.conceal import load_transformer

                dev = self.codec(S).device
                # the zoo's file (what codec.zoo.load_concealer reads) unless a path template is configured
                m = load_transformer(concealer_file(self.cfg, S, kind), device=dev)
                if isinstance(m, tuple):  # (model, meta)
                    m = m[0]
                self._models[key] = m.to(dev).eval()
            return self._models[key]

    def tile_coder(self, S: int):
        """The ``tf_tile`` packet coder of size S (:func:`load_tile_coder`), built once."""
        with self._lock:
            key = ("tf_tile", S)
            if key not in self._models:
                self._models[key] = load_tile_coder(self.cfg, S)
            return self._models[key]


def load_tile_coder(cfg: Mapping[str, Any], S: int):
    """The ``tf_tile`` packet coder of a resolved config at size S: its 'ar' transformer (the configured path
    template, else the zoo's file) on the CPU in float32 (what makes both ends' probabilities agree bit for bit)."""
    from codec.conceal import load_transformer
    from codec.entropy.tf_ar import TileContextCoder

    m = load_transformer(concealer_file(cfg, S, "ar"), device="cpu")
    if isinstance(m, tuple):  # (model, meta)
        m = m[0]
    return TileContextCoder(m.float().eval(), S)


@dataclass(frozen=True)
class SweepInputs:
    """What every worker needs to run the units of one sweep run (sent to each worker once).

    Attributes:
        key: unique per run (config hash, pid, start time): names the run's per-worker state.
        cfg: resolved, resource-checked config.  images: {image hash: uint8 pixels}.
        encoded: output of :func:`prepare_encodings`.
    """

    key: str
    cfg: Mapping[str, Any]
    images: Mapping[str, np.ndarray]
    encoded: Mapping[str, EncodedImage]

    def context(self) -> TrialContext:
        """A new (empty) context for these inputs; its owner builds it once and reuses it for every unit."""
        return TrialContext(self.cfg, self.images, self.encoded)
