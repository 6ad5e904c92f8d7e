"""Core value types shared by the codec and the simulator (numpy only, no torch).

``IndexMap`` is the unit the codec produces and the simulator carries: the
h×w map of VQ codebook indices of one image (one index per f×f pixel block,
f = 16 for the default models), the codebook size K it refers to, and the
pixel size of the image it came from.

A *loss mask* is a plain boolean ``numpy`` array of shape (h, w), True where
the index did not arrive.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from .errors import ParameterError

MAX_CODEBOOK_SIZE = 1 << 20  # 20-bit indices; official taming models use 1024 / 16384
DEFAULT_DOWNSAMPLING = 16
"""f of the default models: pixels per index along each side (the image size assumed for an h×w map
when none is known is (f·h, f·w))."""


@dataclass(frozen=True)
class IndexMap:
    """An h×w map of codebook indices.

    Attributes:
        indices: int32 array of shape (h, w), each value in [0, codebook_size).
            Stored as a read-only copy.
        codebook_size: K, the number of codewords the indices refer to (2 ≤ K ≤ 2^20).
        image_size: (H, W) of the image in pixels (before padding to a multiple of f).
        codebook_id: optional name of the codebook (e.g. ``"default/256"``) so a
            receiver can check it decodes with the codebook the sender used.
    """

    indices: np.ndarray
    codebook_size: int
    image_size: tuple[int, int]
    codebook_id: str | None = field(default=None)

    def __post_init__(self) -> None:
        idx = np.asarray(self.indices)
        if idx.ndim != 2:
            raise ParameterError(f"IndexMap.indices must be 2-D (h, w), got shape {idx.shape}")
        if idx.size == 0:
            raise ParameterError(f"IndexMap.indices must not be empty, got shape {idx.shape}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"IndexMap.indices must be integers, got dtype {idx.dtype}")
        K = int(self.codebook_size)
        if not 2 <= K <= MAX_CODEBOOK_SIZE:
            raise ParameterError(f"codebook_size must be in [2, {MAX_CODEBOOK_SIZE}], got {self.codebook_size}")
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= K:
            raise ParameterError(f"indices must lie in [0, {K}), got range [{lo}, {hi}]")
        H, W = (int(v) for v in self.image_size)
        if H <= 0 or W <= 0:
            raise ParameterError(f"image_size must be positive (H, W), got {self.image_size}")
        arr = np.array(idx, dtype=np.int32, copy=True)
        arr.setflags(write=False)
        object.__setattr__(self, "indices", arr)
        object.__setattr__(self, "codebook_size", K)
        object.__setattr__(self, "image_size", (H, W))

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w): latent height and width in indices."""
        h, w = self.indices.shape
        return (h, w)

    @property
    def num_indices(self) -> int:
        return int(self.indices.size)

    @property
    def bits_per_index(self) -> int:
        """ceil(log2 K): bits of one index in fixed-width packing."""
        return max(1, math.ceil(math.log2(self.codebook_size)))

    def with_indices(self, indices: np.ndarray) -> "IndexMap":
        """A copy with other indices of the same shape (e.g. after concealment)."""
        indices = np.asarray(indices)
        if indices.shape != self.indices.shape:
            raise ParameterError(f"shape {indices.shape} differs from {self.indices.shape}")
        return IndexMap(indices, self.codebook_size, self.image_size, self.codebook_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexMap):
            return NotImplemented
        return (
            self.codebook_size == other.codebook_size
            and self.image_size == other.image_size
            and self.codebook_id == other.codebook_id
            and np.array_equal(self.indices, other.indices)
        )

    __hash__ = None  # type: ignore[assignment]


def check_loss_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Validate a loss mask (True = index lost) against an index-map shape."""
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise ParameterError(f"loss mask shape {m.shape} does not match index map shape {tuple(shape)}")
    if m.dtype != np.bool_:
        raise TypeError(f"loss mask must be boolean, got dtype {m.dtype}")
    return m


def from_dict_strict(cls, d: dict, what: str):
    """``cls(**d)`` for a dataclass, with unknown keys a ValueError naming them and the allowed ones."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ParameterError(f"unknown {what} keys {unknown}; allowed: {sorted(names)}")
    return cls(**d)
