"""The adaptive arithmetic coders ("arith", "arith_rep"): frequency model and 32-bit range coder (numpy only).

``"arith"``
    Adaptive multi-symbol range coder (integer arithmetic, 32-bit range,
    byte-wise output with carry propagation as in LZMA's range encoder).
    Model: frequency counts ``c_k``, initially 1, or ``1 + floor(W p_k)`` from
    an optional ``prior`` histogram ``p`` (normalised to sum 1). The prior
    weight ``W = prior_weight(K) = K · increment(K) / 4`` counts is worth K/4
    coded symbols (256 for K = 1024), so the data overrides it within a map.
    Chosen on the 200 validation photos (not Kodak): with the shipped
    histograms, total ``arith_rep`` bytes at W = K/10, K/4, K/2, K symbols and
    the earlier ``max_total(K) - 2K`` (≈ 4000 symbols at K = 1024, which made
    the prior cost bytes: +1.4 % at K = 1024, +5.3 % at K = 128 against no
    prior) were 131,904 / **131,552** / 132,607 / 134,503 / 137,231 at
    K = 1024 (no prior: 135,312) and 83,555 / **82,954** / 82,944 / 83,467 /
    89,314 at K = 128 (no prior: 84,784). Bitstreams of container version 1
    used the old weight, which ``decode_symbols(prior_weight=...)`` still reads.
    Symbol ``s`` is coded with probability ``c_s / sum(c)``, then
    ``c_s += increment(K)`` (16 for K ≤ 4096, else 32); when ``sum(c)`` exceeds
    ``max_total(K) = max(2^16, 4K)`` all counts are halved, rounding up so none
    reaches 0. Cumulative counts come from a Fenwick (binary indexed) tree, so
    a symbol costs O(log K) Python steps: ~3-12 ms to encode or decode a
    1536-symbol map for K = 1024..16384 (CPython 3.11, loaded 2-core box).

    Precision: after normalisation the range ``R`` is in ``[2^24, 2^32)`` and
    the coder uses ``r = floor(R / T)``, ``T = sum(c) ≤ max_total``; the
    truncation wastes at most ``-log2(1 - T/R)`` bit per symbol (≤ 0.006 bit
    for ``T ≤ 2^16``; for the largest codebooks, K = 2^20, ``T ≤ 2^22`` and
    the waste is ≤ 0.4 bit of a 20-bit symbol).

    The flush writes the value of the final interval with the most trailing
    zero bits and drops up to 4 trailing zero bytes (the decoder reads at most
    4 missing bytes as zeros), so a stream is ~1-2 bytes above the ideal code
    length. Adaptive coding pays for learning: on *uniform* indices it is
    ~7-12 % larger than ``"raw"``; on skewed maps it is ~20 % smaller than
    ``"deflate"``.

``"arith_rep"`` (optional context)
    ``"arith"`` plus a "same as previous symbol" flag (the left neighbour in
    raster order, the previous row's last index at a row start), coded with
    an adaptive binary model (counts 1/1, +1 per flag, halved at 1024). A
    repeat costs only the flag; otherwise the symbol is coded with the previous
    symbol *excluded* from the alphabet (its count is removed from the total),
    so the flag's cost is mostly won back. On maps with neighbour repeats it
    is 10-20 % smaller than ``"arith"``; without repeats ≤ 1 % larger.

The functions here take already validated arguments (``codec.entropy``
checks them); the decoder raises :class:`~codec.errors.BitstreamError` and
runs exactly ``count`` iterations, failing as soon as it would read more than
4 bytes past the end of the data.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import BitstreamError
from .alphabet import check_alphabet

__all__ = ["increment", "max_total", "prior_weight", "legacy_prior_weight", "arith_encode", "arith_decode",
           "BIT_MODEL_LIMIT"]

_TOP = 1 << 32        # range register width
_BOTTOM = 1 << 24     # renormalise (shift one byte) when range < 2^24
_MASK32 = _TOP - 1
_MAX_OVERREAD = 4     # bytes the arith decoder may read past the end (read as 0)
BIT_MODEL_LIMIT = 1024  # the repeat flag's binary model halves its counts above this sum


def max_total(alphabet_size: int) -> int:
    """Frequency-total ceiling of the adaptive model: ``max(2^16, 4K)``."""
    return max(1 << 16, 4 * check_alphabet(alphabet_size))


def increment(alphabet_size: int) -> int:
    """Count added to a symbol's frequency each time it is coded.

    Larger codebooks start with more uniform mass (K counts of 1), so they
    need a larger step to learn from a ~10^3-symbol map: 16 for K ≤ 4096, else 32
    (tuned on synthetic Zipf maps; see module docstring).
    """
    return 16 if check_alphabet(alphabet_size) <= 4096 else 32


def prior_weight(alphabet_size: int) -> int:
    """Counts a prior histogram is spread over: K/4 coded symbols' worth (``K · increment(K) / 4``)."""
    K = check_alphabet(alphabet_size)
    return max(1, min(K * increment(K) // 4, max_total(K) - 2 * K))


def legacy_prior_weight(alphabet_size: int) -> int:
    """The prior weight of container version 1 (``max_total(K) - 2K``), kept to read old bitstreams."""
    K = check_alphabet(alphabet_size)
    return max_total(K) - 2 * K


@functools.lru_cache(maxsize=8)
def _initial_state(K: int, weight: int | None, prior: bytes | None) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """(counts, Fenwick tree, total) of a fresh model; ``prior`` is a float64 histogram's bytes (or None)."""
    if prior is None:
        counts = np.ones(K, dtype=np.int64)
    else:
        p = np.frombuffer(prior, dtype=np.float64)
        counts = 1 + np.floor(p / p.sum() * weight).astype(np.int64)
    cs = np.concatenate(([0], np.cumsum(counts)))
    idx = np.arange(1, K + 1, dtype=np.int64)
    return tuple(counts.tolist()), tuple([0] + (cs[idx] - cs[idx - (idx & -idx)]).tolist()), int(cs[-1])


class _Model:
    """Adaptive frequency model over ``[0, K)``: counts plus a Fenwick tree.

    ``tree[i]`` (1-based) holds ``sum(counts[i - lowbit(i) : i])``, so the
    cumulative count ``cum(s) = sum(counts[:s])``, the inverse search and a
    point update all take O(log K) steps on plain Python ints.
    """

    __slots__ = ("K", "inc", "limit", "top", "counts", "tree", "total")

    def __init__(self, K: int, prior: np.ndarray | None, weight: int | None = None) -> None:
        self.K = K
        self.inc = increment(K)
        self.limit = max_total(K)
        self.top = 1 << (K.bit_length() - 1)  # highest power of two <= K
        # the initial state depends only on (K, weight, prior): build it once and copy it (a list copy
        # is a memcpy), so a packet's model costs ~10 ns per codeword, not ~60 ns (packet floods)
        w = None if prior is None else (prior_weight(K) if weight is None else weight)  # initial total ≤ K + w
        counts, tree, self.total = _initial_state(K, w, None if prior is None else prior.tobytes())
        self.counts, self.tree = list(counts), list(tree)

    def _build(self, counts: np.ndarray) -> None:
        cs = np.concatenate(([0], np.cumsum(counts)))
        idx = np.arange(1, self.K + 1, dtype=np.int64)
        self.tree = [0] + (cs[idx] - cs[idx - (idx & -idx)]).tolist()
        self.counts = counts.tolist()
        self.total = int(cs[-1])

    def cum(self, s: int) -> int:
        """``sum(counts[:s])``."""
        tree, c = self.tree, 0
        while s:
            c += tree[s]
            s &= s - 1
        return c

    def find(self, target: int) -> tuple[int, int]:
        """The symbol ``s`` with ``cum(s) <= target < cum(s + 1)``, and ``cum(s)``."""
        tree, K = self.tree, self.K
        s, m, rem = 0, self.top, target
        while m:
            nxt = s + m
            if nxt <= K and tree[nxt] <= rem:
                s = nxt
                rem -= tree[nxt]
            m >>= 1
        return s, target - rem

    def update(self, s: int) -> None:
        inc, tree, K = self.inc, self.tree, self.K
        self.counts[s] += inc
        i = s + 1
        while i <= K:
            tree[i] += inc
            i += i & -i
        self.total += inc
        if self.total > self.limit:  # halve, rounding up so no count reaches 0
            self._build((np.asarray(self.counts, dtype=np.int64) + 1) >> 1)


class _BitModel:
    """Adaptive binary model (counts start at 1/1, +1 per bit, halved above ``BIT_MODEL_LIMIT`` = 1024)."""

    __slots__ = ("c",)

    def __init__(self) -> None:
        self.c = [1, 1]

    def update(self, bit: int) -> None:
        c = self.c
        c[bit] += 1
        if c[0] + c[1] > BIT_MODEL_LIMIT:
            c[0], c[1] = (c[0] + 1) >> 1, (c[1] + 1) >> 1


class _RangeEncoder:
    """32-bit range encoder with carry propagation (LZMA-style byte output).

    State: ``low`` (33 bits, bit 32 = pending carry), ``rng`` in ``[2^24, 2^32)``
    after each step, the byte ``cache`` not yet written (a later carry may still
    increment it) and ``cache_size - 1`` pending 0xFF bytes behind it.
    """

    __slots__ = ("low", "rng", "cache", "cache_size", "out")

    def __init__(self) -> None:
        self.low, self.rng = 0, _MASK32
        self.cache, self.cache_size = 0, 1
        self.out = bytearray()

    def _shift_low(self) -> None:
        low = self.low
        if low < 0xFF000000 or low >= _TOP:
            carry = low >> 32
            self.out.append((self.cache + carry) & 0xFF)
            if self.cache_size > 1:
                self.out += bytes([(0xFF + carry) & 0xFF]) * (self.cache_size - 1)
            self.cache_size = 0
            self.cache = (low >> 24) & 0xFF
        self.cache_size += 1
        self.low = (low << 8) & _MASK32

    def encode(self, cum: int, freq: int, total: int) -> None:
        """Narrow to the sub-interval ``[cum, cum + freq) / total``."""
        r = self.rng // total
        self.low += r * cum
        self.rng = r * freq
        while self.rng < _BOTTOM:
            self.rng <<= 8
            self._shift_low()

    def finish(self) -> bytes:
        # the value in [low, low + rng) with the most trailing zero bits
        low, hi = self.low, self.low + self.rng
        k = 32
        while k > 0 and (((low + (1 << k) - 1) >> k) << k) >= hi:
            k -= 1
        self.low = ((low + (1 << k) - 1) >> k) << k
        for _ in range(5):
            self._shift_low()
        out = self.out
        # the first byte is the initial cache: always 0 as the interval stays in [0, 1)
        assert out[0] == 0
        del out[0]
        # the decoder reads up to _MAX_OVERREAD missing bytes as zeros
        for _ in range(_MAX_OVERREAD):
            if not out or out[-1] != 0:
                break
            out.pop()
        return bytes(out)


class _RangeDecoder:
    """Mirror of :class:`_RangeEncoder`; reads at most 4 zero bytes past the end."""

    __slots__ = ("data", "end", "pos", "code", "rng", "r")

    def __init__(self, data: bytes) -> None:
        self.end = len(data)
        self.data = data + bytes(_MAX_OVERREAD)
        self.code = int.from_bytes(self.data[:4], "big")
        self.pos = 4
        self.rng = _MASK32
        self.r = 1

    def target(self, total: int) -> int:
        """The cumulative count in ``[0, total)`` the next symbol's interval holds."""
        self.r = r = self.rng // total
        t = self.code // r
        if t >= total:
            raise BitstreamError("arith payload is corrupt (code value out of range)")
        return t

    def consume(self, cum: int, freq: int) -> None:
        """Remove the decoded sub-interval ``[cum, cum + freq)`` (same ``total``)."""
        r = self.r
        self.code -= r * cum
        self.rng = r * freq
        while self.rng < _BOTTOM:
            if self.pos >= self.end + _MAX_OVERREAD:
                raise BitstreamError(f"arith payload ends early (ran {_MAX_OVERREAD} bytes past its end)")
            self.code = ((self.code << 8) | self.data[self.pos]) & _MASK32
            self.pos += 1
            self.rng <<= 8

    def check_end(self) -> None:
        if self.pos < self.end:
            raise BitstreamError(f"arith payload has {self.end - self.pos} unused trailing bytes")


def arith_encode(s: np.ndarray, K: int, prior: np.ndarray | None, rep: bool, weight: int | None = None) -> bytes:
    """Range-code int64 symbols ``s`` in ``[0, K)``; ``rep`` adds the repeat flag ("arith_rep")."""
    model, enc = _Model(K, prior, weight), _RangeEncoder()
    flag = _BitModel()
    prev = -1
    for sym in s.tolist():
        if rep and prev >= 0:
            c = flag.c
            if sym == prev:
                enc.encode(0, c[1], c[0] + c[1])  # interval order: [repeat | new]
                flag.update(1)
                continue
            enc.encode(c[1], c[0], c[0] + c[1])
            flag.update(0)
            # code sym with prev excluded from the alphabet
            fp = model.counts[prev]
            cum = model.cum(sym)
            enc.encode(cum - fp if sym > prev else cum, model.counts[sym], model.total - fp)
        else:
            enc.encode(model.cum(sym), model.counts[sym], model.total)
        model.update(sym)
        prev = sym
    return enc.finish()


def arith_decode(data: bytes, n: int, K: int, prior: np.ndarray | None, rep: bool,
                 weight: int | None = None) -> np.ndarray:
    """Exactly ``n`` int32 symbols: the inverse of :func:`arith_encode` with the same prior and weight."""
    model, dec = _Model(K, prior, weight), _RangeDecoder(data)
    flag = _BitModel()
    out = np.empty(n, dtype=np.int32)
    prev = -1
    for j in range(n):
        if rep and prev >= 0:
            c = flag.c
            if dec.target(c[0] + c[1]) < c[1]:
                dec.consume(0, c[1])
                flag.update(1)
                out[j] = prev
                continue
            dec.consume(c[1], c[0])
            flag.update(0)
            fp = model.counts[prev]
            cum_prev = model.cum(prev)
            t = dec.target(model.total - fp)
            sym, cum = model.find(t + fp if t >= cum_prev else t)
            dec.consume(cum - fp if sym > prev else cum, model.counts[sym])
        else:
            sym, cum = model.find(dec.target(model.total))
            dec.consume(cum, model.counts[sym])
        model.update(sym)
        out[j] = prev = sym
    dec.check_end()
    return out
