"""Sweeps: plan the trials of a config, run them (locally or on Dask), store tidy rows, resumably.

Vocabulary
----------
* **trial** — one (image, codec setting, channel point, FEC, packetization,
  seed, concealment method): transmit → conceal → decode → metrics; one row.
  Its id is the SHA-256 (16 hex digits) of its canonical parameters.
* **unit** — the trials that share everything but the method.  A unit is
  the unit of work: the image is transmitted once and every method conceals
  the *same* losses (a paired comparison), the concealed maps are decoded in
  one batch on the codec's device and scored in one batch.

Randomness
----------
The channel / interleaver draws of a unit come from
``SeedSequence([seed, *words(realization id)])`` where the realization id
hashes (image, channel point, seed): methods, FEC settings, MTUs and codebook
sizes all face the same channel draws (common random numbers), and nothing
depends on execution order or worker count.  Sampling concealment uses
``SeedSequence([seed, *words(trial id)])``.

Caching
-------
Each image is encoded once per codec setting (model SHA-256, codebook size,
K-means seed), together with its loss-free reconstruction and that
reconstruction's metrics; the result lives in memory and in
``<out>/cache/encode/*.npz``.

Storage (``<out>/``)
--------------------
``config.yaml`` (resolved config), ``provenance.json``, ``parts/part-*.parquet``
(rows, appended in small chunks, each written to a temp file and renamed —
the write-ahead log), ``results.parquet`` / ``results.csv`` (consolidated,
deduplicated, in plan order; rewritten periodically and at the end),
``examples/`` (small PNGs for the image grids), ``summary.txt``.  Rerunning
the same command skips every trial whose id is already stored.  Columns
starting with ``time_`` hold wall-clock timings; every other column is a
deterministic function of the config.

Faults
------
Every file is written by :func:`_atomic_write_bytes` (temp file, fsync,
rename, fsync of the folder), so a crash or power loss leaves each file
whole or absent.  A part file that cannot be read anyway (truncated, foreign)
is renamed ``<name>.corrupt`` with a one-line warning and its trials are
recomputed; an unreadable or inconsistent encode-cache entry is deleted and
recomputed.  A run holds ``fcntl.flock`` on ``<out>/.lock`` (which records
its pid, host and start time) from start to end: a second run into the same
folder fails at once with :class:`FolderLockedError`; the kernel releases
the lock of a killed run, so rerunning after a crash resumes.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from codec.errors import VQSimError

from .config import (MODEL_METHODS, ChannelPoint, ConfigError, check_resources, codec_sizes,
                     config_hash, expand_channels, fec_label, load_config, validate_config)

__all__ = [
    "SweepError", "FolderLockedError", "SweepImage", "Unit", "EncodedImage", "TrialContext", "ResultStore", "SweepOutcome",
    "load_images", "plan_units", "prepare_encodings", "run_unit", "run_sweep", "summary_table", "Progress",
    "read_results", "lock_folder",
    "EXECUTORS", "REPO_ROOT",
]

EXECUTORS = ("local", "dask")
REPO_ROOT = Path(__file__).resolve().parents[1]
_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "torch", "torchvision", "lpips", "simpy", "reedsolo",
             "matplotlib", "scikit-image", "pyyaml", "pillow", "dask", "distributed")


class SweepError(VQSimError, RuntimeError):
    """A sweep cannot run (bad results folder, a failing trial, executor problem)."""


class FolderLockedError(SweepError):
    """The results folder is locked by another running sweep (the message names the folder and its pid)."""


def _warn_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _reason(e: BaseException, limit: int = 160) -> str:
    """An exception as one short line: ``Type: first line of the message``."""
    text = str(e).strip().splitlines()
    line = f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _hash(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _words(hex_id: str) -> list[int]:
    """A hex id as 32-bit words, for SeedSequence entropy."""
    return [int(hex_id[i:i + 8], 16) for i in range(0, len(hex_id), 8)]


def _rng(seed: int, hex_id: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *_words(hex_id)])))


# --------------------------------------------------------------------------- images
@dataclass(frozen=True)
class SweepImage:
    """A test image after resize / crop: uint8 (H, W, 3); ``hash`` = SHA-256 of shape + pixels (12 hex)."""

    name: str
    hash: str
    pixels: np.ndarray


def _resize(a: np.ndarray, size: int | list[int]) -> np.ndarray:
    from PIL import Image

    H, W = a.shape[:2]
    if isinstance(size, int):
        s = size / min(H, W)
        new = (max(1, round(H * s)), max(1, round(W * s)))
    else:
        new = (int(size[0]), int(size[1]))
    if new == (H, W):
        return a
    return np.asarray(Image.fromarray(a).resize((new[1], new[0]), Image.LANCZOS), dtype=np.uint8)


def _crop(a: np.ndarray, crop: list[int], name: str) -> np.ndarray:
    H, W = a.shape[:2]
    h, w = crop
    if h > H or w > W:
        raise ConfigError(f"config: images.crop: {h}x{w} is larger than image {name!r} ({H}x{W} after resize)")
    t, l = (H - h) // 2, (W - w) // 2
    return np.ascontiguousarray(a[t:t + h, l:l + w])


def load_images(cfg: Mapping[str, Any]) -> list[SweepImage]:
    """The config's images, resized and cropped, checked against the metrics' minimum size."""
    from codec.image import as_uint8_image, list_images, load_image

    ic = cfg["images"]
    named: list[tuple[str, np.ndarray]] = []
    if ic["source"] == "skimage":
        import skimage.data

        for n in ic["names"]:
            named.append((n, as_uint8_image(np.asarray(getattr(skimage.data, n)()))))
    else:
        try:
            paths = list_images(ic["source"])
        except FileNotFoundError as e:
            raise ConfigError(f"config: images.source: {e}") from None
        seen: dict[str, int] = {}
        for p in paths:
            n = p.stem
            seen[n] = seen.get(n, 0) + 1
            named.append((n if seen[n] == 1 else f"{n}_{seen[n]}", load_image(p)))
    if ic["limit"]:
        named = named[: ic["limit"]]
    nets = cfg["metrics"]["nets"]
    from .config import MIN_SIDE, SSIM_MIN_SIDE

    need = max([SSIM_MIN_SIDE] + [MIN_SIDE[n] for n in nets])
    out = []
    for n, a in named:
        if ic["resize"] is not None:
            a = _resize(a, ic["resize"])
        if ic["crop"] is not None:
            a = _crop(a, ic["crop"], n)
        if min(a.shape[:2]) < need:
            raise ConfigError(f"config: images: {n!r} is {a.shape[0]}x{a.shape[1]} px; the metrics "
                              f"({', '.join('lpips_' + x for x in nets)}, ssim) need ≥ {need} px per side (images.resize / crop)")
        a = np.ascontiguousarray(a, dtype=np.uint8)
        h = hashlib.sha256(repr(a.shape).encode() + a.tobytes()).hexdigest()[:12]
        out.append(SweepImage(n, h, a))
    return out


# --------------------------------------------------------------------------- plan
@dataclass
class Unit:
    """Trials sharing everything but the concealment method.

    Attributes:
        unit_id: hash of ``params``.
        order: position in the plan (results are written in plan order).
        params: canonical parameters (JSON-able): image, codec, channel, FEC, packetization, link, seed.
        trials: (method, trial id) pairs.
        info: derived, non-identifying fields for the rows (labels, nominal loss, ...).
        example: whether to store example PNGs for the image grids.
    """

    unit_id: str
    order: int
    params: dict
    trials: list[tuple[str, str]]
    info: dict
    example: bool = False

    def pending(self, done: set[str]) -> "Unit":
        return Unit(self.unit_id, self.order, self.params, [t for t in self.trials if t[1] not in done],
                    self.info, self.example)


def _codec_fec_settings(cfg: Mapping[str, Any]) -> list[tuple[int, dict, int]]:
    """(codebook size, fec, index of the fec among those of that size)."""
    if cfg.get("pairs"):
        out, count = [], {}
        for p in cfg["pairs"]:
            S = p["codebook_size"]
            out.append((S, p["fec"], count.get(S, 0)))
            count[S] = count.get(S, 0) + 1
        return out
    return [(S, f, j) for S in cfg["codec"]["codebook_sizes"] for j, f in enumerate(cfg["fec"])]


def plan_units(cfg: Mapping[str, Any], images: Sequence[SweepImage], points: Sequence[ChannelPoint] | None = None) -> list[Unit]:
    """All units of a resolved, resource-checked config, in a cache-friendly order.

    Order: codebook size → image → channel point → FEC → (MTU, interleaver,
    coder) → seed.  Index-loss points have no packets, so FEC and
    packetization do not apply to them: one unit per (size, image, point, seed).
    """
    points = list(points) if points is not None else expand_channels(cfg["channels"])
    cc = cfg["codec"]
    methods = cfg["concealment"]["methods"]
    opts = cfg["concealment"]["options"]
    pk = cfg["packetization"]
    pk_combos = [(m, i, c) for m in pk["mtu"] for i in pk["interleave"] for c in pk["coder"]]
    settings = _codec_fec_settings(cfg)
    sizes = []
    for S, _, _ in settings:
        if S not in sizes:
            sizes.append(S)
    units: list[Unit] = []
    for S in sizes:
        fecs = [(f, j) for s, f, j in settings if s == S]
        for ii, img in enumerate(images):
            for pt in points:
                combos: list[tuple[dict, int, tuple | None, int]]
                if pt["kind"] == "index":
                    combos = [({"n": 0, "k": 0, "nsym": 0}, 0, None, 0)]
                else:
                    combos = [(f, j, c, ci) for f, j in fecs for ci, c in enumerate(pk_combos)]
                for fec, fj, pc, ci in combos:
                    for si, seed in enumerate(cfg["seeds"]):
                        params = {
                            "image": img.name, "image_hash": img.hash,
                            "codec_model": cc["name"], "codec_sha": cc["sha256"][:16], "codebook_size": S,
                            "kmeans_seed": cc["kmeans_seed"], "finetuned": cc.get("finetuned", "auto"),
                            "source_coder": cc["coder"],
                            "channel": {"model": pt["model"], **pt["params"]},
                            "fec": dict(fec),
                            "mtu": pc[0] if pc else 0, "interleave": pc[1] if pc else "none",
                            "coder": pc[2] if pc else "none",
                            "link": cfg["link"] if pc else None,
                            "pacing_bps": cfg["pacing_bps"] if pc else None,
                            "deadline_s": cfg["deadline_s"] if pc else None,
                            "seed": seed,
                        }
                        uid = _hash(params)
                        trials = [(m, _hash({**params, "method": m, "method_options": opts.get(m, {})})) for m in methods]
                        info = {"channel_label": pt["label"], "channel_family": pt["family"], "channel_kind": pt["kind"],
                                "channel_entry": pt["entry"], "loss_rate_nominal": pt["loss_rate"],
                                "burst_nominal": pt["burst"], "ber_nominal": pt["ber"],
                                "realization": _hash({"image_hash": img.hash, "channel": params["channel"], "seed": seed})}
                        example = bool(cfg["examples"]["enabled"] and ii == 0 and si == 0 and fj == 0 and ci == 0)
                        units.append(Unit(uid, len(units), params, trials, info, example))
    ids = [u.unit_id for u in units]
    if len(set(ids)) != len(ids):  # pragma: no cover - params differ by construction
        raise SweepError("internal error: duplicate unit ids in the plan")
    return units


# --------------------------------------------------------------------------- encodings
@dataclass
class EncodedImage:
    """An image encoded by one codec setting, with its loss-free reconstruction.

    Attributes:
        indices: int32 (h, w).  image_size: (H, W).
        bits_source: bits of the whole bitstream (``codec.compress_indices`` with the config's coder, header included).
        lossfree: uint8 (H, W, 3) decoded from ``indices``.
        metrics: metrics of ``lossfree`` vs the original (lpips_<net>, psnr, ssim, ms_ssim if ≥ 161 px).
    """

    indices: np.ndarray
    image_size: tuple[int, int]
    bits_source: int
    lossfree: np.ndarray
    metrics: dict[str, float]


def _device(name: str | None):
    return None if name in (None, "auto") else name


def _full_size(path: str) -> int:
    from codec.zoo import _load_base

    return _load_base(str(path), None)[0].codebook_size


def _load_codec(cfg: Mapping[str, Any], S: int):
    from codec.zoo import load_codec

    c = cfg["codec"]
    ft = {"auto": None, "true": True, "false": False}[c.get("finetuned", "auto")]
    codec = load_codec(c["path"], S, device=_device(c["device"]), coder=c["coder"], kmeans_seed=c["kmeans_seed"],
                       finetuned=ft if S is not None and S != _full_size(c["path"]) else None)
    codec.name = c["name"]  # codebook_id "<name>/<S>" also for checkpoints given by path
    return codec


def _metric_device(cfg: Mapping[str, Any], codec) -> Any:
    d = cfg["metrics"]["device"]
    return codec.device if d == "auto" else d


CACHE_VERSION = "v2"
"""Part of every encode-cache file name: v2 = bitstreams with the K/4-symbol prior weight and float32
SSIM of the loss-free reconstruction; entries of other versions are never read (they are recomputed)."""


def _cache_file(cache_dir: Path, codec_cfg: Mapping[str, Any], S: int, image_hash: str) -> Path:
    """Disk-cache entry of one (model weights, codebook size, K-means seed, coder, image)."""
    c = codec_cfg
    ft = c.get("finetuned", "auto")
    return cache_dir / f"{c['sha256'][:12]}_S{S}_ks{c['kmeans_seed']}_ft{ft}_{c['coder']}_{image_hash}_{CACHE_VERSION}.npz"


_CACHE_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)
"""What reading a damaged .npz can raise (truncated archive, bad CRC, missing member, wrong dtype, ...)."""


def _check_encoded(enc: EncodedImage, img: SweepImage, S: int) -> None:
    """Raise ValueError unless a cached encoding is consistent with its image and codebook size."""
    H, W = img.pixels.shape[:2]
    if tuple(enc.image_size) != (H, W):
        raise ValueError(f"image size {enc.image_size} ≠ {H}x{W}")
    if enc.indices.ndim != 2 or enc.indices.size == 0:
        raise ValueError(f"index map of shape {enc.indices.shape}")
    if int(enc.indices.min()) < 0 or int(enc.indices.max()) >= S:
        raise ValueError(f"indices outside [0, {S})")
    if enc.lossfree.shape != (H, W, 3) or enc.lossfree.dtype != np.uint8:
        raise ValueError(f"loss-free image of shape {enc.lossfree.shape} / {enc.lossfree.dtype}")
    if enc.bits_source <= 0:
        raise ValueError(f"bits_source = {enc.bits_source}")
    if not isinstance(enc.metrics, dict) or not all(isinstance(v, (int, float)) for v in enc.metrics.values()):
        raise ValueError("metrics are not a {name: number} mapping")


def _read_cache_entry(f: Path, img: SweepImage, S: int, log: Callable[[str], None]) -> EncodedImage | None:
    """A disk-cache entry, or None when absent; an unreadable / inconsistent one is deleted with a warning."""
    try:
        z = np.load(f, allow_pickle=False)
    except FileNotFoundError:
        return None
    except _CACHE_ERRORS as e:
        _discard_cache_entry(f, _reason(e), log)
        return None
    try:
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with z:
            enc = EncodedImage(z["indices"].astype(np.int32), tuple(int(v) for v in z["image_size"]),
                               int(z["bits_source"]), np.asarray(z["lossfree"]), json.loads(str(z["metrics"])))
        _check_encoded(enc, img, S)
    except _CACHE_ERRORS as e:
        _discard_cache_entry(f, _reason(e), log)
        return None
    return enc


def _discard_cache_entry(f: Path, reason: str, log: Callable[[str], None]) -> None:
    """Delete a damaged cache entry (it is recomputed) and say so on one line."""
    with contextlib.suppress(FileNotFoundError):
        f.unlink()
    _fsync_dir(f.parent)
    log(f"warning: encode cache entry {f} is unreadable ({reason}); deleted, the image is encoded again")


def _write_cache_entry(f: Path, enc: EncodedImage) -> None:
    """Store an encoding in the disk cache (atomically, fsynced)."""
    buf = io.BytesIO()
    np.savez(buf, indices=enc.indices, image_size=np.array(enc.image_size), bits_source=np.array(enc.bits_source),
             lossfree=enc.lossfree, metrics=np.array(json.dumps(enc.metrics)))
    _atomic_write_bytes(f, buf.getvalue())


def prepare_encodings(cfg: Mapping[str, Any], images: Sequence[SweepImage], cache_dir: Path | None,
                      log: Callable[[str], None] = lambda s: None) -> dict[str, EncodedImage]:
    """Encode every image once per codebook size (batched per size), using / filling the disk cache.

    A cache entry that cannot be read, or does not fit its image, is deleted (with a warning through
    ``log``) and recomputed.  Returns ``{f"{S}/{image hash}": EncodedImage}``.
    """
    import torch

    from codec.metrics import image_metrics

    nets = list(cfg["metrics"]["nets"])
    c = cfg["codec"]
    out: dict[str, EncodedImage] = {}
    for S in codec_sizes(cfg):
        todo: list[SweepImage] = []
        for img in images:
            key = f"{S}/{img.hash}"
            enc = _read_cache_entry(_cache_file(cache_dir, c, S, img.hash), img, S, log) if cache_dir else None
            if enc is not None and all(f"lpips_{n}" in enc.metrics for n in nets):
                out[key] = enc
                continue
            todo.append(img)
        if not todo:
            continue
        codec = _load_codec(cfg, S)
        log(f"encoding {len(todo)} image(s) with {codec.codebook_id} on {codec.device}")
        maps = codec.encode_many([img.pixels for img in todo])
        dev = _metric_device(cfg, codec)
        for img, imap in zip(todo, maps):
            with torch.no_grad():
                rec = codec.decode_indices(imap)
            bits = 8 * len(codec.compress_indices(imap))
            rec = np.ascontiguousarray(rec)
            m = image_metrics(img.pixels, rec, nets=tuple(nets), device=dev)
            enc = EncodedImage(np.asarray(imap.indices, dtype=np.int32), imap.image_size, bits, rec, m)
            out[f"{S}/{img.hash}"] = enc
            if cache_dir is not None:
                _write_cache_entry(_cache_file(cache_dir, c, S, img.hash), enc)
    return out


# --------------------------------------------------------------------------- trial context
class TrialContext:
    """Per-process state of the trial runner: codecs, codebooks and concealment models, loaded lazily.

    Args:
        cfg: resolved, resource-checked config.
        images: {image hash: uint8 pixels}.
        encoded: output of :func:`prepare_encodings`.
    """

    def __init__(self, cfg: Mapping[str, Any], images: Mapping[str, np.ndarray], encoded: Mapping[str, EncodedImage]):
        self.cfg = cfg
        self.images = images
        self.encoded = encoded
        self._codecs: dict[int, Any] = {}
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

    def codec(self, S: int):
        with self._lock:
            if S not in self._codecs:
                self._codecs[S] = _load_codec(self.cfg, S)
            return self._codecs[S]

    def codebook(self, S: int) -> np.ndarray:
        with self._lock:
            if S not in self._codebooks:
                self._codebooks[S] = self.codec(S).codebook
            return self._codebooks[S]

    def concealer(self, kind: str, S: int):
        with self._lock:
            key = (kind, S)
            if key not in self._models:
                from codec.transformer import load_transformer
                from codec.zoo import concealer_path

                dev = self.codec(S).device
                tmpl = self.cfg["concealment"]["models"].get(kind)
                # the zoo's file (what codec.zoo.load_concealer reads) unless a path template is configured
                path = tmpl.format(size=S) if tmpl else concealer_path(self.cfg["codec"]["name"], S, kind)
                m = load_transformer(path, device=dev)
                if isinstance(m, tuple):  # (model, meta)
                    m = m[0]
                self._models[key] = m.to(dev).eval()
            return self._models[key]


_CONTEXTS: dict[str, TrialContext] = {}
_CONTEXT_LOCK = threading.Lock()


def _context_from_payload(payload: Mapping[str, Any]) -> TrialContext:
    """The process-wide context for a payload (built once per process and config hash)."""
    key = payload["key"]
    with _CONTEXT_LOCK:
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            # a Dask worker process is a process the CLI did not configure: same CPU settings here
            from codec.runtime import configure_cpu

            threads = payload["cfg"]["execution"]["torch_threads"]
            configure_cpu(int(threads) if threads else None)
            ctx = TrialContext(payload["cfg"], payload["images"], payload["encoded"])
            _CONTEXTS.clear()  # one sweep per process at a time
            _CONTEXTS[key] = ctx
        return ctx


# --------------------------------------------------------------------------- one unit
@dataclass
class UnitResult:
    unit_id: str
    rows: list[dict]
    files: dict[str, bytes] = field(default_factory=dict)


def _png(a: np.ndarray, max_side: int) -> bytes:
    from PIL import Image

    im = Image.fromarray(a)
    H, W = a.shape[:2]
    if max(H, W) > max_side:
        s = max_side / max(H, W)
        im = im.resize((max(1, round(W * s)), max(1, round(H * s))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _lost_overlay(lossfree: np.ndarray, lost: np.ndarray, f: int) -> np.ndarray:
    """The loss-free image with every lost f×f block blended 65 % with red (the lost-index map)."""
    H, W = lossfree.shape[:2]
    m = np.kron(lost.astype(np.uint8), np.ones((f, f), np.uint8))[:H, :W].astype(bool)
    out = lossfree.astype(np.float32)
    out[m] = 0.35 * out[m] + 0.65 * np.array([255.0, 0.0, 0.0], np.float32)
    return out.round().astype(np.uint8)


def _index_channel(sent, params: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Drop indices directly: mode 'exact' loses round(rate·N) positions uniformly, 'iid' each with prob. rate."""
    from sim.record import run_lengths

    h, w = sent.shape
    N = h * w
    ch = params["channel"]
    rate, mode = float(ch["rate"]), ch.get("mode", "exact")
    if mode == "exact":
        lost = np.zeros(N, dtype=bool)
        lost[rng.permutation(N)[: int(round(rate * N))]] = True
    else:
        lost = rng.random(N) < rate
    bursts = run_lengths(lost)
    n_lost = int(lost.sum())
    stats = {"packets_sent": 0, "data_packets": 0, "parity_packets": 0, "delivered": 0, "channel_lost": 0,
             "queue_dropped": 0, "corrupted": 0, "late": 0, "rs_corrected": 0, "bit_errors": 0,
             "data_lost_before_fec": 0, "recovered_fec": 0, "data_lost": 0, "lost_indices": n_lost,
             "num_indices": N, "loss_ratio": n_lost / N, "num_bursts": int(bursts.size),
             "mean_burst": float(bursts.mean()) if bursts.size else 0.0,
             "max_burst": int(bursts.max()) if bursts.size else 0, "latency_p50": math.nan,
             "latency_p95": math.nan, "latency_p99": math.nan, "latency_max": math.nan, "completion_s": math.nan}
    return lost.reshape(h, w), stats


def _transmit(ctx: TrialContext, unit: Unit, sent) -> tuple[Any, np.ndarray, dict]:
    """(received IndexMap, lost mask, flat transmission stats) of a unit; deterministic in its realization id."""
    from channels.base import BitErrorModel
    from channels.factory import from_spec
    from sim.fec import ErasureFEC
    from sim.network import LinkConfig, NetworkSimulator
    from sim.packet import REASONS

    p = unit.params
    rng = _rng(p["seed"], unit.info["realization"])
    if unit.info["channel_kind"] == "index":
        lost, stats = _index_channel(sent, p, rng)
        received = sent.with_indices(np.where(lost, 0, sent.indices))
        bits = ctx.encoded[f"{p['codebook_size']}/{p['image_hash']}"].bits_source
        stats.update({"payload_bits": bits, "header_bits": 0, "fec_bits": 0, "rs_bits": 0, "link_overhead_bits": 0,
                      "total_bits": bits, **{f"drop_{r}": 0 for r in REASONS}, "reordered": 0})
        return received, lost, stats
    ch = from_spec(p["channel"])
    loss, bit = (None, ch) if isinstance(ch, BitErrorModel) else (ch, None)
    il_seed = int(rng.integers(0, 2**32))
    sim = NetworkSimulator(link=LinkConfig(**p["link"]), channel=loss, bit_channel=bit, rng=rng)
    f = p["fec"]
    codec = ctx.codec(p["codebook_size"])
    rec = sim.send(sent, mtu=p["mtu"], interleave=p["interleave"], seed=il_seed, coder=p["coder"],
                   fec=ErasureFEC(f["n"], f["k"]) if f["n"] else None, inpacket_nsym=f["nsym"],
                   pacing_bps=p["pacing_bps"], deadline_s=p["deadline_s"],
                   prior=codec.prior if p["coder"].startswith("arith") else None, image_id=0)
    stats = rec.to_row()
    for k in ("image_id", "start_s"):
        stats.pop(k, None)
    return rec.received, np.asarray(rec.lost_mask, dtype=bool), stats


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


def _num_value(v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, str) or v is None:
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    return json.dumps(v)


def _param_columns(unit: Unit) -> dict[str, Any]:
    p, info = unit.params, unit.info
    f = p["fec"]
    ch = p["channel"]
    link = p["link"] or {}
    row: dict[str, Any] = {
        "unit_id": unit.unit_id,
        "image": p["image"], "image_hash": p["image_hash"],
        "codec_model": p["codec_model"], "codec_sha": p["codec_sha"], "codebook_size": int(p["codebook_size"]),
        "kmeans_seed": int(p["kmeans_seed"]), "finetuned": p.get("finetuned", "auto"), "source_coder": p["source_coder"],
        "channel": str(ch["model"]), "channel_label": info["channel_label"], "channel_family": info["channel_family"],
        "channel_kind": info["channel_kind"], "channel_entry": int(info["channel_entry"]),
        "channel_params": json.dumps({k: v for k, v in ch.items() if k != "model"}, sort_keys=True),
        "loss_rate_nominal": float(info["loss_rate_nominal"]), "burst_nominal": float(info["burst_nominal"]),
        "ber_nominal": float(info["ber_nominal"]),
        "fec": fec_label(f), "fec_n": int(f["n"]), "fec_k": int(f["k"]), "fec_nsym": int(f["nsym"]),
        "fec_rate": (f["k"] / f["n"]) if f["n"] else 1.0,
        "mtu": int(p["mtu"]), "interleave": p["interleave"], "coder": p["coder"],
        "link_bandwidth_bps": float(link.get("bandwidth_bps", math.nan)),
        "link_propagation_s": float(link.get("propagation_s", math.nan)),
        "link_jitter": str(link.get("jitter", "none")), "link_jitter_s": float(link.get("jitter_s", math.nan)),
        "link_queue_packets": float(link["queue_packets"]) if link.get("queue_packets") is not None else math.nan,
        "link_queue_bytes": float(link["queue_bytes"]) if link.get("queue_bytes") is not None else math.nan,
        "link_overhead_bytes": float(link.get("overhead_bytes", math.nan)),
        "pacing_bps": float(p["pacing_bps"]) if p["pacing_bps"] is not None else math.nan,
        "deadline_s": float(p["deadline_s"]) if p["deadline_s"] is not None else math.nan,
        "seed": int(p["seed"]),
    }
    for k, v in ch.items():
        if k != "model":
            row[f"ch_{k}"] = _num_value(v)
    return row


def run_unit(unit: Unit, ctx: TrialContext) -> UnitResult:
    """Run the (pending) trials of one unit: transmit once, conceal per method, decode + score in one batch."""
    import torch

    from codec.conceal import conceal
    from codec.types import IndexMap

    cfg = ctx.cfg
    t_unit = time.perf_counter()
    p = unit.params
    S = p["codebook_size"]
    enc = ctx.encoded[f"{S}/{p['image_hash']}"]
    codec = ctx.codec(S)
    sent = IndexMap(enc.indices, S, enc.image_size, codec.codebook_id)

    t0 = time.perf_counter()
    received, lost, tx = _transmit(ctx, unit, sent)
    t_tx = time.perf_counter() - t0

    opts_all = cfg["concealment"]["options"]
    concealed: list[np.ndarray] = []
    t_conceal: list[float] = []
    for method, trial_id in unit.trials:
        t0 = time.perf_counter()
        if not lost.any():
            out = received.indices
        else:
            kind = MODEL_METHODS.get(method)
            model = ctx.concealer(kind, S) if kind else None
            cm = conceal(received, lost, method, model=model, codebook=ctx.codebook(S),
                         rng=_rng(p["seed"], trial_id), **opts_all.get(method, {}))
            out = cm.indices
        concealed.append(np.asarray(out, dtype=np.int32))
        t_conceal.append(time.perf_counter() - t0)

    # decode + score each distinct concealed map once, in one batch on the codec's device
    distinct: dict[bytes, int] = {}
    todo: list[np.ndarray] = []
    for idx in concealed:
        key = idx.tobytes()
        if key not in distinct and not np.array_equal(idx, sent.indices):
            distinct[key] = len(todo)
            todo.append(idx)
    nets = cfg["metrics"]["nets"]
    structural = cfg["metrics"].get("structural", True)
    dev = _metric_device(cfg, codec)
    t0 = time.perf_counter()
    decoded_u8: list[np.ndarray] = []
    m_orig: dict[str, np.ndarray] = {}
    m_lf: dict[str, np.ndarray] = {}
    t_dec = t_met = 0.0
    if todo:
        with torch.no_grad():
            x = codec.decode_batch(torch.from_numpy(np.stack(todo).astype(np.int64)), enc.image_size)
            x = torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0  # what a receiver displays: 8-bit pixels
        t_dec = time.perf_counter() - t0
        t0 = time.perf_counter()
        from codec.image import to_tensor

        # contiguous NCHW everywhere: the memory layout picks the conv kernels, which round differently
        x = x.contiguous()
        orig = to_tensor(ctx.images[p["image_hash"]]).to(x.device).contiguous()
        lf = to_tensor(enc.lossfree).to(x.device).contiguous()
        ref_o = ctx.ssim_ref(f"orig/{p['image_hash']}", orig) if structural else None
        ref_l = ctx.ssim_ref(f"lossfree/{S}/{p['image_hash']}", lf) if structural else None
        from codec.metrics import lpips_features

        feats = {n: lpips_features(x, n, dev) for n in nets}  # the reconstructions' features, for both references
        lp_o = {n: ctx.lpips_ref(f"orig/{p['image_hash']}", orig, n, dev) for n in nets}
        lp_l = {n: ctx.lpips_ref(f"lossfree/{S}/{p['image_hash']}", lf, n, dev) for n in nets}
        m_orig = _batch_metrics(orig, x, nets, dev, structural, ref_o, lp_o, feats)
        m_lf = _batch_metrics(lf, x, nets, dev, structural, ref_l, lp_l, feats)
        decoded_u8 = [a for a in (x * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()]
        t_met = time.perf_counter() - t0
    n_dec = max(1, len(todo))

    H, W = enc.image_size
    pix = H * W
    base = _param_columns(unit)
    base["codec_variant"] = getattr(ctx.codec(S), "variant", "custom")
    n_lost = int(lost.sum())
    tx = dict(tx)
    tx_row = {**tx, "bits_source": int(enc.bits_source), "bpp": enc.bits_source / pix,
              "total_bpp": tx["total_bits"] / pix,
              "packet_loss_ratio": ((tx["packets_sent"] - tx["delivered"]) / tx["packets_sent"]) if tx["packets_sent"] else math.nan,
              "image_h": H, "image_w": W, "latent_h": sent.shape[0], "latent_w": sent.shape[1]}
    lf_cols = {f"lossfree_{k}": float(v) for k, v in enc.metrics.items()}
    files: dict[str, bytes] = {}
    ex_dir = ""
    if unit.example:
        max_side = cfg["examples"]["max_side"]
        root = f"examples/{p['image']}_S{S}"
        ex_dir = f"{root}/{unit.unit_id}"
        files[f"{root}/original.png"] = _png(ctx.images[p["image_hash"]], max_side)
        files[f"{root}/lossfree.png"] = _png(enc.lossfree, max_side)
        files[f"{ex_dir}/lost.png"] = _png(_lost_overlay(enc.lossfree, lost, codec.downsample_factor), max_side)

    rows = []
    metric_keys = [k for k in enc.metrics if structural or k not in ("ssim", "ms_ssim")]
    for (method, trial_id), idx, tc in zip(unit.trials, concealed, t_conceal):
        j = distinct.get(idx.tobytes())
        if j is None:  # identical to the sent map: the loss-free reconstruction
            mo = {k: float(enc.metrics[k]) for k in metric_keys}
            ml = _identity_metrics(metric_keys)
            img_u8 = enc.lossfree
        else:
            mo = {k: float(v[j]) for k, v in m_orig.items()}
            ml = {k: float(v[j]) for k, v in m_lf.items()}
            img_u8 = decoded_u8[j]
        if unit.example:
            files[f"{ex_dir}/{method}.png"] = _png(img_u8, cfg["examples"]["max_side"])
        wrong = idx != sent.indices
        row = {"trial_id": trial_id, **base, "method": method,
               "method_options": json.dumps(opts_all.get(method, {}), sort_keys=True),
               **tx_row,
               "index_error_ratio": float(wrong.mean()),
               "concealed_exact_ratio": float((~wrong[lost]).mean()) if n_lost else math.nan,
               **mo, **{f"{k}_vs_lossfree": v for k, v in ml.items()}, **lf_cols,
               "example_dir": ex_dir,
               "time_transmit_s": t_tx, "time_conceal_s": tc, "time_decode_s": t_dec / n_dec,
               "time_metrics_s": t_met / n_dec}
        rows.append(row)
    t_all = time.perf_counter() - t_unit
    for r in rows:
        r["time_unit_s"] = t_all
    return UnitResult(unit.unit_id, rows, files)


# --------------------------------------------------------------------------- storage
_TMP_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    """Make the creations / renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """``mkdir -p folder``, fsyncing the parent of each folder it creates."""
    missing: list[Path] = []
    d = folder
    while not d.is_dir():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        _fsync_dir(d.parent)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: temp file, fsync, rename onto ``path``, fsync of the folder.

    The one way the sweep writes files (parts, results, provenance, config, summary, cache, examples),
    so after a crash or a power loss every file is either its old or its new version, never a prefix.
    """
    path = Path(path)
    _make_dirs(path.parent)
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _remove_stale_temps(out: Path) -> None:
    """Delete the temp files a killed run left behind (call only while holding the folder's lock)."""
    for d in (out, out / "parts", out / "cache" / "encode"):
        if d.is_dir():
            for f in d.glob(f"{_TMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    f.unlink()


def _quarantine(path: Path, reason: str, log: Callable[[str], None]) -> None:
    """Rename an unreadable part file to ``<name>.corrupt`` (kept for inspection) and warn on one line."""
    dest = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return  # moved aside meanwhile
    except OSError as e:
        log(f"warning: part file {path} is unreadable ({reason}) and could not be moved aside ({_reason(e)}); "
            "skipping it, its trials will be recomputed")
        return
    _fsync_dir(path.parent)
    log(f"warning: part file {path} is unreadable ({reason}); renamed to {dest.name}, its trials will be recomputed")


def _order_columns(df):
    """Parameters first (channel parameters ``ch_*`` after ``channel_params``), measures next, ``time_*`` last."""
    cols = list(df.columns)
    ch = [c for c in cols if c.startswith("ch_")]
    tm = [c for c in cols if c.startswith("time_")]
    rest = [c for c in cols if c not in ch and c not in tm]
    i = rest.index("channel_params") + 1 if "channel_params" in rest else len(rest)
    return df[rest[:i] + ch + rest[i:] + tm]


class ResultStore:
    """Rows of a results folder: ``parts/part-*.parquet`` chunks (atomic) → ``results.parquet`` / ``results.csv``.

    A part that cannot be read is quarantined (renamed ``<name>.corrupt``, one warning through ``log``,
    default stderr): its rows count as not done, so the next run recomputes exactly those trials.
    """

    def __init__(self, folder: str | Path, log: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"
        self.log = log or _warn_stderr
        self._stamp = f"{time.time_ns():x}-{os.getpid()}"
        self._seq = 0

    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.exists() else []

    def read_part(self, f: Path):
        """The rows of one part file, or None if it vanished or is unreadable (then it is quarantined)."""
        import pandas as pd
        import pyarrow as pa

        try:
            df = pd.read_parquet(f)
            if "trial_id" not in df.columns:
                raise ValueError("no trial_id column")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, pa.ArrowException) as e:
            _quarantine(f, _reason(e), self.log)
            return None
        return df

    def load(self):
        """All stored rows (deduplicated by trial id), as a DataFrame."""
        import pandas as pd

        frames = [self.read_part(f) for f in self.part_files()]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True)
        return df.drop_duplicates("trial_id", keep="first").reset_index(drop=True)

    def done_ids(self) -> set[str]:
        """Ids of the stored trials (whole parts are read, so a damaged one is found before the run, not after)."""
        df = self.load()
        return set(df["trial_id"].tolist()) if len(df) else set()

    def append(self, rows: list[dict]) -> Path | None:
        """Write rows as one new chunk (temp file, fsync, rename: a chunk is either complete or absent)."""
        if not rows:
            return None
        import pandas as pd

        self._seq += 1
        path = self.parts / f"part-{self._stamp}-{self._seq:06d}.parquet"
        buf = io.BytesIO()
        pd.DataFrame(rows).to_parquet(buf, index=False)
        _atomic_write_bytes(path, buf.getvalue())
        return path

    def consolidate(self, order: Mapping[str, int] | None = None):
        """Rewrite results.parquet and results.csv from the chunks (dedup; plan order when given)."""
        df = self.load()
        if len(df) and order is not None:
            pos = df["trial_id"].map(lambda t: order.get(t, len(order)))
            df = df.assign(_pos=pos).sort_values(["_pos", "trial_id"], kind="stable").drop(columns="_pos")
            df = df.reset_index(drop=True)
        df = _order_columns(df)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        _atomic_write_bytes(self.folder / "results.parquet", buf.getvalue())
        _atomic_write_bytes(self.folder / "results.csv", df.to_csv(index=False).encode())
        return df


def read_results(folder: str | Path):
    """The rows of a results folder (results.parquet, else the chunks)."""
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder not found: {folder}")
    f = folder / "results.parquet"
    store = ResultStore(folder)
    has_parts = bool(store.part_files())
    cons = _read_consolidated(f, rebuild=has_parts)
    if has_parts:
        df = store.load()
        return cons if cons is not None and len(cons) == len(df) else df
    if cons is not None:
        return cons
    raise FileNotFoundError(f"no results in {folder} (expected results.parquet or parts/)")


def _read_consolidated(f: Path, rebuild: bool):
    """results.parquet, or None when absent; unreadable: None with a warning if the parts can rebuild it, else SweepError."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, pa.ArrowException) as e:
        if not rebuild:
            raise SweepError(f"{f} is unreadable ({_reason(e)}) and there are no parts/ to rebuild it from") from None
        _warn_stderr(f"warning: {f} is unreadable ({_reason(e)}); using the rows of {f.parent / 'parts'}")
        return None


# --------------------------------------------------------------------------- progress
def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, s = divmod(r, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """A one-line progress bar with ETA on stderr (redrawn with \\r on a TTY, else a line every ~10 %)."""

    def __init__(self, total: int, *, stream=None, enabled: bool = True, width: int = 28, label: str = "sweep"):
        self.total = max(0, int(total))
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.label = label
        self.t0 = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_pct = -1

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        frac = self.done / self.total if self.total else 1.0
        eta = el * (1 - frac) / frac if frac > 0 else math.inf
        fill = int(round(self.width * frac))
        return (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} trials "
                f"{100 * frac:5.1f}%  elapsed {_fmt_time(el)}  ETA {_fmt_time(eta)}")

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        else:
            pct = int(100 * self.done / self.total) // 10 if self.total else 10
            if pct != self._last_pct:
                self._last_pct = pct
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- executors
def _worker_run(unit: Unit, payload: Mapping[str, Any]) -> UnitResult:
    """Dask task: run one unit with the process-wide context of the (scattered) payload."""
    return _run_checked(unit, _context_from_payload(payload))


def _run_checked(unit: Unit, ctx: TrialContext) -> UnitResult:
    try:
        return run_unit(unit, ctx)
    except VQSimError:
        raise
    except Exception as e:
        p = unit.params
        raise SweepError(f"trial unit {unit.unit_id} failed (image {p['image']}, S={p['codebook_size']}, channel "
                         f"{unit.info['channel_label']}, fec {fec_label(p['fec'])}, seed {p['seed']}, methods "
                         f"{[m for m, _ in unit.trials]}): {type(e).__name__}: {e}") from e


def _iter_local(units: Iterable[Unit], payload: dict, workers: int) -> Iterator[UnitResult]:
    """Run units in this process: sequentially, or on ``workers`` threads sharing one context.

    Threads share the loaded codec, LPIPS and concealment models (and the
    GPU); torch kernels release the GIL, so decoding and scoring run in
    parallel.  For process-level parallelism (or several machines) use the
    dask executor.
    """
    ctx = _context_from_payload(payload)
    if workers <= 1:
        for u in units:
            yield _run_checked(u, ctx)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vqsim-trial") as ex:
        it = iter(units)
        running: set = set()
        try:
            while True:
                while len(running) < 2 * workers:
                    u = next(it, None)
                    if u is None:
                        break
                    running.add(ex.submit(_run_checked, u, ctx))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        finally:
            for f in running:
                f.cancel()


@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _dask_client(workers: int, scheduler: str | None, cluster_kwargs: Mapping[str, Any] | None):
    """(client, own LocalCluster or None); a scheduler that cannot be reached is a SweepError."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SweepError("--executor dask needs dask.distributed: pip install 'vqsim[dask]'") from e
    if scheduler:
        try:
            return Client(scheduler, timeout=30), None
        except (OSError, TimeoutError) as e:
            raise SweepError(f"cannot connect to the dask scheduler {scheduler} ({_reason(e)})") from None
    kw = {"n_workers": max(1, workers), "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    kw.update(cluster_kwargs or {})
    cluster = LocalCluster(**kw)
    return Client(cluster), cluster


def _dask_result(fut, unit: Unit) -> UnitResult:
    """A finished task's result; a lost worker or a transport failure becomes a SweepError naming the unit."""
    try:
        return fut.result()
    except VQSimError:
        raise  # a failing trial, already explained by _run_checked on the worker
    except Exception as e:
        raise SweepError(f"dask task of trial unit {unit.unit_id} (image {unit.params['image']}, channel "
                         f"{unit.info['channel_label']}) failed: {_reason(e)}; the rows stored so far are kept, "
                         "rerun the same command to continue") from e


def _iter_dask(units: Iterable[Unit], payload: dict, workers: int, scheduler: str | None,
               cluster_kwargs: Mapping[str, Any] | None) -> Iterator[UnitResult]:
    """Run units as dask tasks (the payload is scattered to every worker once; ≤ 2·workers tasks in flight)."""
    from dask.distributed import as_completed

    client, cluster = _dask_client(workers, scheduler, cluster_kwargs)
    try:
        pf = client.scatter(payload, broadcast=True)
        it = iter(units)
        ac = as_completed([])
        running: dict[str, Unit] = {}

        def submit() -> None:
            u = next(it, None)
            if u is not None:
                fut = client.submit(_worker_run, u, pf, pure=False)
                running[fut.key] = u
                ac.add(fut)

        for _ in range(2 * max(1, workers)):
            submit()
        while running:
            fut = next(ac)
            res = _dask_result(fut, running.pop(fut.key))
            yield res
            submit()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- provenance
def _git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = None
    if commit:
        try:
            r = subprocess.run(["git", "--no-optional-locks", "diff-index", "--quiet", "HEAD", "--"], cwd=REPO_ROOT,
                               capture_output=True, timeout=5)
            dirty = r.returncode != 0
        except (OSError, subprocess.SubprocessError):
            pass
    return {"commit": commit, "dirty": dirty}


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _device_info(cfg: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    d = {"torch_cuda_available": torch.cuda.is_available(), "codec_device": cfg["codec"]["device"],
         "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        d["cuda_device"] = torch.cuda.get_device_name(0)
        d["cuda_version"] = torch.version.cuda
    return d


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- summary
def summary_table(df, metric: str | None = None, max_rows: int = 60) -> str:
    """Mean of the main metric per (channel family, nominal loss, FEC) × concealment method, as text.

    With several methods, followed by :func:`experiments.paired.paired_table`: each method's
    paired difference (vs the loss-free reconstruction) to the best baseline, with 95 % intervals.
    """
    if df is None or not len(df):
        return "(no results)"
    metric = metric or next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns), None)
    if metric is None:
        return "(no metric columns)"
    d = df.copy()
    d["loss"] = [f"{L:.4f}" if np.isfinite(L) else f"ber {B:.1e}" if np.isfinite(B) else "-"
                 for L, B in zip(d["loss_rate_nominal"], d["ber_nominal"])]
    idx = ["channel_family", "loss", "fec"]
    if d["codebook_size"].nunique() > 1:
        idx.insert(0, "codebook_size")
    pk = d[d["channel_kind"] != "index"]
    idx += [c for c in ("mtu", "interleave", "coder") if pk[c].nunique() > 1]
    t = d.pivot_table(index=idx, columns="method", values=metric, aggfunc="mean")
    methods = [m for m in dict.fromkeys(df["method"]) if m in t.columns]
    t = t[methods]
    t.columns.name = None
    text = t.to_string(float_format=lambda v: f"{v:.4f}", max_rows=max_rows)
    text = f"mean {metric} (rows: {', '.join(idx)}; columns: concealment method; n = {len(df)} trials)\n{text}"
    paired_metric = f"{metric}_vs_lossfree"
    if df["method"].nunique() > 1 and paired_metric in df.columns and "unit_id" in df.columns:
        from .paired import paired_table

        text += "\n\n" + paired_table(df, paired_metric, max_rows=max_rows)
    return text


# --------------------------------------------------------------------------- the sweep
@dataclass
class SweepOutcome:
    """What ``run_sweep`` did: the folder, the consolidated rows, trials run / skipped, notes, wall time."""

    out: Path
    results: Any
    n_planned: int
    n_run: int
    n_skipped: int
    complete: bool
    notes: list[str]
    wall_s: float


def _resolve(config: str | Path | Mapping[str, Any]) -> tuple[dict, list[str]]:
    raw = load_config(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    cfg = validate_config(raw)
    notes = check_resources(cfg)
    return cfg, notes


def _write_yaml(path: Path, obj: Any) -> None:
    import yaml

    _atomic_write_bytes(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True).encode())


def _lock_holder(fd: int) -> str:
    """Who holds a lock, from its lock file's record: ``pid N on HOST since START`` (or ``pid unknown``)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "pid unknown"
    return f"pid {info['pid']} on {info.get('host', '?')} since {info.get('start', '?')}"


@contextlib.contextmanager
def lock_folder(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of a results folder (``fcntl.flock`` on ``<out>/.lock``) for a ``with`` block.

    Non-blocking: if another run holds it, raises :class:`FolderLockedError` at once, naming the folder and
    the holder's pid (the lock file records pid, host and start time of the holder).  The kernel drops
    the lock when the holding process exits, however it exits, so a run killed by SIGKILL blocks nothing.
    Yields the lock file's path.
    """
    import fcntl

    out = Path(out)
    _make_dirs(out)
    path = out / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(f"results folder {out} is in use by another sweep ({_lock_holder(fd)}); wait for "
                                    "it to finish or use another --out") from None
        except OSError as e:
            raise SweepError(f"cannot lock results folder {out} ({_reason(e)})") from None
        record = json.dumps({"pid": os.getpid(), "host": platform.node(), "start": _now()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # still holding it: nobody reads a stale record
    finally:
        os.close(fd)  # releases the lock


def _read_provenance(out: Path) -> tuple[dict | None, str | None]:
    """(old provenance or None, why it could not be read or None)."""
    try:
        old = json.loads((out / "provenance.json").read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, _reason(e)
    return (old, None) if isinstance(old, dict) else (None, "not a JSON object")


def _prepare_folder(out: Path, cfg: dict, chash: str, overwrite: bool) -> dict | None:
    """Check an existing results folder belongs to this sweep; returns its old provenance (or None).

    Call it holding the folder's lock (it deletes stale temp files, and with ``overwrite`` the old results).
    """
    _remove_stale_temps(out)
    old, why = _read_provenance(out)
    has_rows = (out / "parts").exists() and any((out / "parts").glob("part-*.parquet"))
    if has_rows and not overwrite:
        if why is not None:
            raise SweepError(f"results folder {out} has rows but its provenance.json is unreadable ({why}), so it "
                             "cannot be matched to this sweep; use another --out, or --overwrite to start again")
        if old is None or old.get("config_hash") != chash:
            raise SweepError(
                f"results folder {out} holds a different sweep (config hash {old.get('config_hash') if old else 'unknown'}"
                f" ≠ {chash}: the config, the codec weights or the images changed); use another --out, or --overwrite "
                "to delete its results and start again")
    if overwrite:
        for sub in ("parts", "examples", "plots"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for f in ("results.parquet", "results.csv", "summary.txt", "provenance.json"):
            with contextlib.suppress(FileNotFoundError):
                (out / f).unlink()
        _fsync_dir(out)
        old = None
    return old


def _write_provenance(out: Path, prov: Mapping[str, Any]) -> None:
    _atomic_write_bytes(out / "provenance.json", json.dumps(prov, indent=2, default=str).encode())


def run_sweep(
    config: str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    max_trials: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    dask_cluster_kwargs: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> SweepOutcome:
    """Run (or resume) a sweep.

    Args:
        config: a YAML path, a bundled config name, or a raw config dict.
        out: results folder (default ``results/<name>``).
        workers: parallel workers (local: threads of this process sharing the models; dask: LocalCluster
            worker processes, one thread each).
        executor: "local" or "dask".
        scheduler: dask scheduler address (default: a LocalCluster).
        max_trials: stop submitting work once this many new trials are written (the rest stays pending).
        overwrite: delete the folder's previous results first.
        progress: draw the progress bar on stderr.
        log: where to print notes and warnings (default stderr).
        on_chunk: called as ``on_chunk(trials written this run, trials pending)`` after each chunk is stored.
        dask_cluster_kwargs: extra LocalCluster arguments (e.g. ``processes=False`` for tests).
        command: the command line, for the provenance.

    The folder is locked for the whole run (:func:`lock_folder`).  Damaged part files are quarantined and
    damaged cache entries deleted (one warning each through ``log``); their work is redone.

    Raises ConfigError (bad config, before any work), FolderLockedError (another run uses the folder),
    SweepError.
    """
    t_start = time.perf_counter()
    log = log or _warn_stderr
    if executor not in EXECUTORS:
        raise ConfigError(f"executor: unknown value {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer ≥ 1, got {workers!r}")
    if max_trials is not None and max_trials < 1:
        raise ConfigError(f"max_trials must be ≥ 1, got {max_trials}")
    if scheduler and executor != "dask":
        raise ConfigError("--scheduler only applies to --executor dask")
    cfg, notes = _resolve(config)
    for n in notes:
        log(f"note: {n}")
    images = load_images(cfg)
    cfg["images"]["resolved"] = [{"name": im.name, "hash": im.hash, "size": list(im.pixels.shape[:2])} for im in images]
    points = expand_channels(cfg["channels"])
    units = plan_units(cfg, images, points)
    chash = config_hash(cfg)
    out = Path(out) if out is not None else Path("results") / cfg["name"]
    with lock_folder(out):
        old_prov = _prepare_folder(out, cfg, chash, overwrite)
        _write_yaml(out / "config.yaml", cfg)

        store = ResultStore(out, log=log)
        done = store.done_ids()
        order = {tid: i for i, tid in enumerate(t for u in units for _, t in u.trials)}
        n_planned = len(order)
        pending = [u.pending(done) for u in units]
        pending = [u for u in pending if u.trials]
        n_pending = sum(len(u.trials) for u in pending)
        n_skipped = n_planned - n_pending

        run_info = {"start": _now(), "command": command or " ".join(sys.argv), "executor": executor,
                    "workers": workers, "scheduler": scheduler, "max_trials": max_trials,
                    "trials_planned": n_planned, "trials_already_done": n_skipped, "host": platform.node(),
                    "pid": os.getpid()}
        prov = old_prov or {"sweep": cfg["name"], "config_hash": chash, "created": run_info["start"], "runs": []}
        prov.update({"git": _git_info(), "packages": _versions(), "python": sys.version.split()[0],
                     "platform": platform.platform(), "device": _device_info(cfg), "seeds": cfg["seeds"],
                     "codec": {k: cfg["codec"][k] for k in ("name", "path", "sha256", "K", "codebook_sizes", "coder")},
                     "images": cfg["images"]["resolved"], "config_hash": chash})
        prov.setdefault("runs", []).append(run_info)
        _write_provenance(out, prov)

        log(f"sweep {cfg['name']!r}: {n_planned} trials in {len(units)} units ({len(images)} images, "
            f"{len(points)} channel points, {len(codec_sizes(cfg))} codebook size(s), {len(cfg['seeds'])} seed(s), "
            f"{len(cfg['concealment']['methods'])} method(s)); {n_skipped} already done, {n_pending} to run -> {out}")

        n_run = 0
        status = "complete"
        stack = contextlib.ExitStack()
        if pending:
            # one fixed torch thread count for encoding and every trial (CPU results depend on it)
            stack.enter_context(_torch_threads(cfg["execution"]["torch_threads"]))
            need = {(u.params["codebook_size"], u.params["image_hash"]) for u in pending}
            imgs = [im for im in images if any(h == im.hash for _, h in need)]
            encoded = prepare_encodings(cfg, imgs, out / "cache" / "encode", log)
            payload = {"key": f"{chash}-{os.getpid()}-{time.time_ns()}", "cfg": cfg,
                       "images": {im.hash: im.pixels for im in imgs}, "encoded": encoded}

            def feed() -> Iterator[Unit]:
                """The pending units, handed out lazily until max_trials trials have been submitted."""
                submitted = 0
                for u in pending:
                    if max_trials is not None and submitted >= max_trials:
                        return
                    submitted += len(u.trials)
                    yield u

            bar = Progress(n_pending if max_trials is None else min(n_pending, max_trials), enabled=progress)
            if executor == "local":
                results = _iter_local(feed(), payload, workers)
            else:
                results = _iter_dask(feed(), payload, workers, scheduler, dask_cluster_kwargs)
            stack.callback(results.close)  # on any exit: stop the workers before the final consolidation
            buf: list[dict] = []
            last_flush = last_cons = time.perf_counter()
            flush_s = cfg["execution"]["flush_every_s"]
            cons_s = cfg["execution"]["consolidate_every_s"]

            def flush() -> None:
                nonlocal buf, last_flush, n_run
                if buf:
                    store.append(buf)
                    n_run += len(buf)
                    buf = []
                last_flush = time.perf_counter()
                if on_chunk is not None:
                    on_chunk(n_run, n_pending - n_run)

            try:
                for res in results:
                    for rel, data in res.files.items():
                        f = out / rel
                        if not f.exists() or not rel.endswith(("original.png", "lossfree.png")):
                            _atomic_write_bytes(f, data)
                    buf.extend(res.rows)
                    bar.update(len(res.rows))
                    now = time.perf_counter()
                    if now - last_flush >= flush_s:
                        flush()
                    if now - last_cons >= cons_s:
                        store.consolidate(order)
                        last_cons = time.perf_counter()
                flush()
            except BaseException:
                status = "interrupted"
                with contextlib.suppress(Exception):
                    if buf:
                        store.append(buf)
                        n_run += len(buf)
                        buf = []
                raise
            finally:
                bar.close()
                stack.close()
                df = store.consolidate(order)
                run_info.update({"end": _now(), "trials_run": n_run, "status": status,
                                 "wall_s": round(time.perf_counter() - t_start, 3)})
                _write_provenance(out, prov)
        else:
            df = store.consolidate(order)
            run_info.update({"end": _now(), "trials_run": 0, "status": status,
                             "wall_s": round(time.perf_counter() - t_start, 3)})
            _write_provenance(out, prov)
        complete = len(df) >= n_planned and set(order).issubset(set(df["trial_id"])) if len(df) else n_planned == 0
        if not complete and status == "complete":
            run_info["status"] = "partial"
            _write_provenance(out, prov)
        text = summary_table(df)
        _atomic_write_bytes(out / "summary.txt", (text + "\n").encode())
    return SweepOutcome(out, df, n_planned, n_run, n_skipped, bool(complete), notes, time.perf_counter() - t_start)
