"""Interleaving: which positions of an h×w index map each packet carries.

Positions are flat raster indices q = r·w + c of the h×w map, N = h·w.  An
interleaver with P packets produces

* ``order`` — a permutation of 0 … N−1, and
* ``bounds`` — P+1 offsets with packet j carrying ``order[bounds[j]:bounds[j+1]]``.

Except for ``tile``, the split is *balanced*: packet j carries n_j = ⌊N/P⌋ + [j < N mod P]
positions, so the whole assignment is a function of (scheme, seed, P, h, w)
alone — exactly the fields every packet header carries, which lets a receiver
know which positions a lost packet held.

Schemes:

* ``raster``       — contiguous runs of raster order (a lost packet = a band of rows).
* ``block``        — stride interleaving: packet j takes positions j, j+P, j+2P, …
                     (a lost packet = every P-th position).
* ``random``       — a seeded pseudo-random permutation
                     ``np.random.default_rng(seed).permutation(N)``, split into runs.
* ``checkerboard`` — positions grouped by the coset (r mod 2, c mod 2) of the 2×2
                     lattice, in the coset order (0,0), (1,1), (0,1), (1,0), raster
                     order inside a coset, then split into runs.  The first half of
                     the order is the black squares of a checkerboard, so with P = 2
                     the 4-neighbours of every index travel in the other packet, and
                     with P ≥ 4 (packets not straddling cosets) all 8 neighbours do.
* ``tile``         — packet j carries the j-th rectangle (raster order of rectangles) of a
                     grid of th×tw tiles, its positions in raster order inside the tile (a lost
                     packet = a th×tw hole; edge tiles are smaller).  The tile shape travels in
                     the ``seed`` field (:func:`tile_seed`: ``th << 16 | tw``) and P must be the
                     grid's tile count ⌈h/th⌉·⌈w/tw⌉.  The only scheme whose split is not
                     balanced; the one the context coder ``tf_tile`` needs (a tile is a small
                     image coded on its own, so spatial context stays inside the packet).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from codec.errors import ParameterError

SCHEMES: tuple[str, ...] = ("raster", "block", "random", "checkerboard", "tile")
"""Interleaving schemes; the position in this tuple is the header code."""


def balanced_bounds(num_positions: int, num_packets: int) -> np.ndarray:
    """Offsets (P+1,) of a balanced split of N positions into P runs (first N mod P runs one longer)."""
    N, P = int(num_positions), int(num_packets)
    if not 1 <= P <= N:
        raise ParameterError(f"num_packets must be in [1, {N}] for {N} positions, got {num_packets}")
    q, r = divmod(N, P)
    sizes = np.full(P, q, dtype=np.int64)
    sizes[:r] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def tile_seed(tile_h: int, tile_w: int) -> int:
    """The ``seed`` field that names a th×tw tile grid for the ``tile`` scheme (``th << 16 | tw``)."""
    th, tw = int(tile_h), int(tile_w)
    if not (1 <= th < 1 << 16 and 1 <= tw < 1 << 16):
        raise ParameterError(f"tile sides must be in [1, 65535], got {th}×{tw}")
    return th << 16 | tw


def tile_shape(seed: int) -> tuple[int, int]:
    """Inverse of :func:`tile_seed`: (th, tw); ParameterError when a side is 0."""
    th, tw = int(seed) >> 16, int(seed) & 0xFFFF
    if th < 1 or tw < 1:
        raise ParameterError(f"tile seed {seed:#x} names a {th}×{tw} tile (both sides must be ≥ 1)")
    return th, tw


def tile_boxes(h: int, w: int, tile_h: int, tile_w: int) -> np.ndarray:
    """int64 (P, 4) of (top, left, rows, cols) of each tile of an h×w map, in transmission order."""
    tops, lefts = np.arange(0, h, tile_h), np.arange(0, w, tile_w)
    tt, ll = np.meshgrid(tops, lefts, indexing="ij")
    t, lf = tt.reshape(-1), ll.reshape(-1)
    return np.stack([t, lf, np.minimum(tile_h, h - t), np.minimum(tile_w, w - lf)], axis=1).astype(np.int64)


@dataclass(frozen=True)
class Interleaving:
    """Assignment of the N = h·w positions to P packets.

    Attributes:
        order: int64 (N,), permutation of the flat positions in transmission order.
        bounds: int64 (P+1,), packet j carries ``order[bounds[j]:bounds[j+1]]``.
        packet_of: int32 (N,), packet_of[q] = packet carrying flat position q.
    """

    scheme: str
    h: int
    w: int
    num_packets: int
    seed: int
    order: np.ndarray
    bounds: np.ndarray
    packet_of: np.ndarray

    def positions(self, j: int) -> np.ndarray:
        """Flat positions (int64) carried by packet j, in payload order."""
        if not 0 <= j < self.num_packets:
            raise IndexError(f"packet {j} out of range [0, {self.num_packets})")
        return self.order[self.bounds[j]:self.bounds[j + 1]]

    def lost_mask(self, lost_packets: np.ndarray) -> np.ndarray:
        """(h, w) bool mask of the positions carried by the lost packets.

        Args:
            lost_packets: bool (P,) (True = packet lost) or an int array of packet numbers.
        """
        lp = np.asarray(lost_packets)
        if lp.dtype == np.bool_:
            if lp.shape != (self.num_packets,):
                raise ParameterError(f"lost_packets mask must have shape ({self.num_packets},), got {lp.shape}")
            pm = lp
        else:
            pm = np.zeros(self.num_packets, dtype=bool)
            pm[lp.astype(np.int64)] = True
        mask: np.ndarray = pm[self.packet_of].reshape(self.h, self.w)
        return mask


def _order(scheme: str, h: int, w: int, P: int, seed: int) -> np.ndarray:
    N = h * w
    if scheme == "raster":
        return np.arange(N, dtype=np.int64)
    if scheme == "block":
        q = np.arange(N, dtype=np.int64)
        return np.argsort(q % P, kind="stable")
    if scheme == "random":
        return np.random.default_rng(seed).permutation(N).astype(np.int64)
    if scheme == "checkerboard":
        r, c = np.divmod(np.arange(N, dtype=np.int64), w)
        coset_rank = np.array([0, 2, 3, 1])  # (r%2, c%2) -> rank: (0,0)=0, (1,1)=1, (0,1)=2, (1,0)=3
        return np.argsort(coset_rank[(r % 2) * 2 + (c % 2)], kind="stable")
    raise ParameterError(f"interleave scheme must be one of {SCHEMES}, got {scheme!r}")


class _ByteBoundedCache:
    """LRU of Interleavings bounded by the bytes of their arrays (thread-safe).

    A count-bounded cache (``lru_cache(256)``) let 20 packets claiming
    4096×4096 maps hold 3.9 GB; here the total stays ≤ ``max_bytes`` and an
    entry larger than ``max_bytes / 4`` is never kept.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[Any, ...], Interleaving] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(il: Interleaving) -> int:
        return il.order.nbytes + il.bounds.nbytes + il.packet_of.nbytes

    def get(self, key: tuple[Any, ...]) -> Interleaving | None:
        with self._lock:
            il = self._items.get(key)
            if il is not None:
                self._items.move_to_end(key)
            return il

    def put(self, key: tuple[Any, ...], il: Interleaving) -> None:
        size = self._size(il)
        if size > self.max_bytes // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = il
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._items), "bytes": self._bytes, "max_bytes": self.max_bytes}

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE_MAX_BYTES = 64 << 20
"""Bytes of interleaver arrays kept between calls (a Kodak map's three arrays take 25 kB)."""
_CACHE = _ByteBoundedCache(CACHE_MAX_BYTES)


def cache_info() -> dict[str, int]:
    """Entries and bytes held by the interleaver cache (bounded by ``CACHE_MAX_BYTES``)."""
    return _CACHE.info()


def interleave(scheme: str, h: int, w: int, num_packets: int, seed: int = 0) -> Interleaving:
    """The position → packet assignment for (scheme, h, w, P, seed); cached, arrays read-only.

    Results are kept in an LRU cache bounded in bytes (``CACHE_MAX_BYTES``), so
    hostile headers claiming huge maps cannot grow memory across calls.

    Raises:
        ValueError: unknown scheme, non-positive h / w, P outside [1, h·w],
            seed outside [0, 2^32).
    """
    key = (scheme, int(h), int(w), int(num_packets), int(seed))
    il = _CACHE.get(key)
    if il is None:
        il = _build(scheme, *key[1:])
        _CACHE.put(key, il)
    return il


def _tiles(h: int, w: int, P: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Order and bounds of the ``tile`` scheme (the tile shape from ``seed``, P checked against the grid)."""
    th, tw = tile_shape(seed)
    boxes = tile_boxes(h, w, th, tw)
    if P != len(boxes):
        raise ParameterError(f"a {h}×{w} map in {th}×{tw} tiles has {len(boxes)} packets, not {P}")
    grid = np.arange(h * w, dtype=np.int64).reshape(h, w)
    order = np.concatenate([grid[t:t + r, lf:lf + c].reshape(-1) for t, lf, r, c in boxes])
    return order, np.concatenate([[0], np.cumsum(boxes[:, 2] * boxes[:, 3])]).astype(np.int64)


def _build(scheme: str, h: int, w: int, num_packets: int, seed: int) -> Interleaving:
    h, w, P, seed = int(h), int(w), int(num_packets), int(seed)
    if scheme not in SCHEMES:
        raise ParameterError(f"interleave scheme must be one of {SCHEMES}, got {scheme!r}")
    if h < 1 or w < 1:
        raise ParameterError(f"h and w must be ≥ 1, got h={h}, w={w}")
    if not 0 <= seed < 2**32:
        raise ParameterError(f"interleave seed must be in [0, 2^32), got {seed}")
    N = h * w
    if scheme == "tile":
        order, bounds = _tiles(h, w, P, seed)
    else:
        bounds = balanced_bounds(N, P)
        order = _order(scheme, h, w, P, seed)
    packet_of = np.empty(N, dtype=np.int32)
    packet_of[order] = np.repeat(np.arange(P, dtype=np.int32), np.diff(bounds))
    for a in (order, bounds, packet_of):
        a.setflags(write=False)
    return Interleaving(scheme, h, w, P, seed, order, bounds, packet_of)
