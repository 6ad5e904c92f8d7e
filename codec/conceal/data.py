"""Training data for the concealment transformers: augmented index maps of photos, cached on disk.

One photo gives many different index maps: the encoder is not equivariant to
pixel shifts that are not multiples of its downsampling factor f (16), nor to
mirroring, so each *variant* ``(dy, dx, flip)`` — mirror the image left–right
if ``flip``, then drop its first ``dy`` rows and ``dx`` columns — is a new
map of the same content.  The encoder runs once per variant; the pre-quant
latents are then quantized with the codebook of every requested size (the
reduced sizes share the encoder), so K = 1024 and K = 128 data cost one
encoding.

Layout on disk (``out`` folder, one sub-folder per codebook size)::

    out/K{K}/v{variant:02d}-p{part}of{parts}.npz   indices (int16, concatenated),
                                                   shapes (N, 2), photo (N,) photo ids

Each file is written atomically when its (variant, part) is complete, so an
interrupted build resumes at the first missing file and several processes
(``part``/``parts``, photos split by index modulo ``parts``) can share the
work.  :func:`load_index_dataset` reads a size's folder back as maps plus the
photo id of each map, so a held-out split can keep all variants of a photo
on one side.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ParameterError

#: default variants: shifts of half a latent cell and mirroring (4 maps per photo)
DEFAULT_VARIANTS: tuple[tuple[int, int, bool], ...] = ((0, 0, False), (0, 0, True), (8, 8, False), (8, 8, True))


def parse_variants(spec: str) -> tuple[tuple[int, int, bool], ...]:
    """``"0,0;0,0,f;8,8"`` → ((0, 0, False), (0, 0, True), (8, 8, False)); ``f`` = mirrored."""
    out = []
    for item in spec.split(";"):
        parts = [p.strip() for p in item.split(",") if p.strip()]
        flip = bool(parts) and parts[-1] == "f"
        nums = parts[:-1] if flip else parts
        if len(nums) != 2 or not all(n.isdigit() for n in nums):
            raise ParameterError(f"variant {item!r} must be 'dy,dx' or 'dy,dx,f' with non-negative integer shifts")
        out.append((int(nums[0]), int(nums[1]), flip))
    if not out:
        raise ParameterError("no variants given")
    return tuple(out)


def variant_image(image: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    """The (H, W, 3) image mirrored (if ``flip``) and with its first ``dy`` rows / ``dx`` columns removed."""
    im = image[:, ::-1] if flip else image
    return np.ascontiguousarray(im[dy:, dx:])


def _part_name(variant: int, part: int, parts: int) -> str:
    return f"v{variant:02d}-p{part}of{parts}.npz"


def build_index_dataset(codecs: Sequence, images: Sequence[str | Path], out: str | Path, *,
                        variants: Sequence[tuple[int, int, bool]] = DEFAULT_VARIANTS, part: int = 0, parts: int = 1,
                        log: Callable[[str], None] | None = print) -> dict[str, float]:
    """Encode every variant of every photo (this process's share) and store the index maps of each codec.

    Args:
        codecs: ``VQGANCodec`` objects sharing one encoder (e.g. ``load_codec("default", S)``
            for several S); each gets its own ``K{S}`` folder.
        images: photo paths; photo id = position in this list (keep the order fixed).
        out: dataset folder.
        variants: ``(dy, dx, flip)`` tuples (pixels).
        part, parts: this process encodes photos ``i`` with ``i % parts == part``.

    Returns counts: photos, maps and tokens written by this call, seconds.
    """
    import torch
    from tqdm.auto import tqdm

    from ..image import load_image, to_tensor

    if not codecs:
        raise ParameterError("no codec given")
    if not 0 <= part < parts:
        raise ParameterError(f"part must be in [0, {parts}), got {part}")
    enc = codecs[0]
    sizes = [c.codebook_size for c in codecs]
    if len(set(sizes)) != len(sizes):
        raise ParameterError(f"codebook sizes must differ, got {sizes}")
    out = Path(out)
    for s in sizes:
        (out / f"K{s}").mkdir(parents=True, exist_ok=True)
    ids = list(range(part, len(images), parts))
    paths = [Path(images[i]) for i in ids]
    (out / "images.json").write_text(json.dumps([str(p) for p in images]))
    t0, n_maps, n_tok = time.time(), 0, 0
    for v, (dy, dx, flip) in enumerate(variants):
        files = [out / f"K{s}" / _part_name(v, part, parts) for s in sizes]
        if all(f.exists() for f in files):
            continue
        maps: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
        photo = []
        bar = tqdm(zip(ids, paths, strict=False), total=len(ids), desc=f"variant {v + 1}/{len(variants)}", unit="photo",
                   disable=log is None, leave=False)
        for pid, p in bar:
            im = variant_image(load_image(p), dy, dx, flip)
            if min(im.shape[:2]) < enc.downsample_factor:
                continue
            h = enc.encode_latents(to_tensor(im))
            with torch.no_grad():
                for c in codecs:
                    maps[c.codebook_size].append(c.model.quantize.indices(h)[0].cpu().numpy().astype(np.int16))
            photo.append(pid)
        for s, f in zip(sizes, files, strict=False):
            tmp = f.with_name(f.name + ".tmp.npz")
            np.savez(tmp, indices=np.concatenate([m.reshape(-1) for m in maps[s]]),
                     shapes=np.array([m.shape for m in maps[s]], dtype=np.int64).reshape(-1, 2),
                     photo=np.array(photo, dtype=np.int64))
            tmp.replace(f)
        tokens = int(sum(m.size for m in maps[sizes[0]]))
        n_maps += len(photo)
        n_tok += tokens
        if log:
            log(json.dumps({"event": "variant_done", "variant": v, "dy": dy, "dx": dx, "flip": flip, "part": part,
                            "maps": len(photo), "tokens": tokens,
                            "seconds": round(time.time() - t0, 1)}))
    return {"photos": len(paths), "maps": n_maps, "tokens": n_tok, "seconds": time.time() - t0}


@dataclass
class IndexDataset:
    """Index maps of one codebook size with the photo each came from."""

    maps: list[np.ndarray]   # (h, w) int16 each
    photo: np.ndarray        # (N,) photo id of each map
    variant: np.ndarray      # (N,) variant number of each map

    @property
    def tokens(self) -> int:
        return int(sum(m.size for m in self.maps))


def load_index_dataset(folder: str | Path, variants: Sequence[int] | None = None) -> IndexDataset:
    """Read every part file of a ``K{S}`` folder (optionally only some variant numbers), in a fixed order."""
    folder = Path(folder)
    files = sorted(folder.glob("v*-p*of*.npz"))
    if not files:
        raise FileNotFoundError(f"no index-map files (v*-p*of*.npz) in {folder}")
    maps, photo, var = [], [], []
    for f in files:
        v = int(f.name[1:3])
        if variants is not None and v not in variants:
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                flat, shapes, ph = z["indices"], z["shapes"], z["photo"]
        except (OSError, ValueError, KeyError) as e:
            raise ParameterError(f"{f}: not a readable index-map file ({e}); delete it and rebuild that part") from e
        o = 0
        for (h, w), p in zip(shapes, ph, strict=False):
            maps.append(flat[o:o + h * w].reshape(h, w))      # int16 view; the trainer converts once
            o += h * w
            photo.append(int(p))
            var.append(v)
    if not maps:
        raise FileNotFoundError(f"no maps of variants {list(variants or [])} in {folder}")
    return IndexDataset(maps, np.array(photo, dtype=np.int64), np.array(var, dtype=np.int64))
