"""``tf_ar``: the shipped AR concealment transformer as the entropy model of an index map.

Range coding via ``constriction``.

Unlike the symbol coders of :mod:`codec.entropy` (numpy only, 1-D sequences),
this coder needs the 2-D map and a causal transformer (``codec.conceal``'s
GPT, vocabulary K+1, 16×16 windows, ``[sos] + w[:-1]`` input), so it lives in
its own module that imports torch lazily; ``codec.bitstream`` dispatches to it
for the coder name ``"tf_ar"`` (wire id :data:`TF_AR_WIRE_ID`; it is not one of
the packet-level ``CODERS``).  Its packet-level form is :class:`TileContextCoder`
(``tf_tile``): each packet one tile of the map, coded on its own.

Context (both ends compute it from ``(h, w)`` alone):

* the map is cut into 8×8 *target blocks*; block (b, c) reads the 16×16
  window whose top-left is ``(8b − 8, 8c − 8)`` clipped into the map (its
  targets sit in the window's bottom-right quadrant away from the map edges;
  maps smaller than 16 use the whole side);
* an index is predicted from the window tokens before it in raster order
  (8 rows above and 8 columns to the left: the same causal read the model was
  trained on, every window position being a training target);
* *waves*: an index's wave is 1 + the largest wave of the indices its window
  prefix reads; one wave is one batched transformer call in which every
  block's window extends its key/value cache (``SlotKVCache``) by the tokens
  that became known since its last call.  A 32×48 Kodak map needs ≈ 100-200
  calls instead of 1,536.

Determinism: encoder and decoder run the *same* calls (same batches, same
shapes, same inputs: the decoder has decoded exactly the tokens the encoder
fed) on the CPU in float32 with one torch thread (set and restored around
the coding), so the probabilities agree bit for bit on one machine and
library build; logits are rounded to multiples of 2^-12 in float64 before
the softmax, and ``constriction``'s leaky quantisation (24-bit, every symbol
≥ 1 count) turns them into the integer model the range coder uses.

Payload: 1 byte format (1), 4 bytes of the model file's SHA-256 (a receiver
holding another model refuses the stream instead of decoding garbage), then
``constriction``'s 32-bit words (little-endian).
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from ..errors import BitstreamError, ModelNotFoundError, ParameterError

__all__ = ["TF_AR", "TF_AR_WIRE_ID", "NoContextModelError", "TileContextCoder", "tf_ar_encode", "tf_ar_decode",
           "context_model_for", "schedule", "ideal_bits"]

TF_AR = "tf_ar"
TF_AR_WIRE_ID = 8
"""Coder id of ``tf_ar`` in the ``.vqb`` flags (ids 0-3 are the symbol coders; packets do not carry it)."""
WINDOW = 16
BLOCK = 8
_FORMAT = 1
_LOGIT_STEP = 2.0 ** -12


class NoContextModelError(ModelNotFoundError):
    """No transformer is shipped for this codebook (``tf_ar`` cannot code it)."""


# ------------------------------------------------------------------------------------------ model
@functools.lru_cache(maxsize=4)
def _load(codec_name: str, K: int):
    from ..zoo import concealer_path, load_concealer

    try:
        model = load_concealer(codec_name, K, "ar", device="cpu")
    except ModelNotFoundError as e:
        raise NoContextModelError(f"tf_ar: {e}") from None
    from ..zoo import file_sha256

    fp = bytes.fromhex(file_sha256(concealer_path(codec_name, K, "ar")))[:4]
    return model, fp


def context_model_for(codebook_id: str | None, K: int):
    """(model, 4-byte fingerprint) of the shipped AR transformer for ``codebook_id`` (``"default/1024"``).

    Only registered codec names are looked up (a bitstream cannot make the
    receiver open a file of its choosing). Raises NoContextModelError.
    """
    from ..zoo import REGISTRY

    name = (codebook_id or "").rsplit("/", 1)[0]
    if name not in REGISTRY:
        raise NoContextModelError(f"tf_ar needs a registered codec's codebook id (got {codebook_id!r}); "
                                  f"registered: {', '.join(REGISTRY)}")
    model, fp = _load(name, int(K))
    meta = getattr(model, "meta", {}) or {}
    if int(meta.get("codebook_size", K)) != int(K) or model.config.vocab_size < K:
        raise NoContextModelError(f"tf_ar: the transformer of {name!r} for K = {K} has vocabulary "
                                  f"{model.config.vocab_size} (codebook {meta.get('codebook_size')})")
    return model, fp


def _fingerprint_of(model) -> bytes:
    fp = getattr(model, "_tf_ar_fingerprint", None)
    if fp is None:
        import hashlib

        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().float().numpy().tobytes())
        fp = h.digest()[:4]
    return fp


# ------------------------------------------------------------------------------------------ schedule
@functools.lru_cache(maxsize=64)
def schedule(h: int, w: int, window: int = WINDOW, block: int = BLOCK):
    """The coding plan of an h×w map (computed from the size alone).

    Returns ``(slot, top, left, t, waves, sh, sw)``: per index (raster order)
    its block's slot, window origin and sequence position ``t``; ``waves``
    a list of int arrays of raster indices, one per transformer call (at most
    one index per slot), in coding order; window sides ``sh, sw``.
    """
    sh, sw = min(window, h), min(window, w)
    nb_c = -(-w // block)
    ii, jj = np.divmod(np.arange(h * w), w)
    b, c = ii // block, jj // block
    slot = b * nb_c + c
    top = np.clip(b * block - (window - block), 0, h - sh)
    left = np.clip(c * block - (window - block), 0, w - sw)
    li, lj = ii - top, jj - left
    t = li * sw + lj
    wave = np.zeros((h, w), dtype=np.int64)
    for k in range(h * w):  # raster order: every index a window prefix reads comes earlier
        i, j, tp, lf = ii[k], jj[k], top[k], left[k]
        m = -1
        if i > tp:
            m = wave[tp:i, lf:lf + sw].max()
        if j > lf:
            m = max(m, wave[i, lf:j].max())
        wave[i, j] = m + 1
    flat = wave.reshape(-1)
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(flat.max() + 2))
    waves = [order[bounds[q]:bounds[q + 1]] for q in range(flat.max() + 1)]
    return slot, top, left, t, waves, sh, sw


@contextlib.contextmanager
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _Cache:
    """Dense key/value cache: per layer (n_slots, n_head, L, hs) for keys and values."""

    def __init__(self, model, n_slots: int, length: int) -> None:
        import torch

        C, nh = model.config.n_embd, model.config.n_head
        self.k = [torch.zeros(n_slots, nh, length, C // nh) for _ in model.blocks]
        self.v = [torch.zeros(n_slots, nh, length, C // nh) for _ in model.blocks]


def _forward_wave(model, cache: _Cache, idx, pos, slots, past, new):
    """One batched call: row b appends ``new[b]`` tokens ``idx[b, :new[b]]`` (positions ``pos``) to slot
    ``slots[b]`` (``past[b]`` tokens cached); returns the logits (B, V) after each row's last new token.

    Per-token work (layer norms, projections, MLP) runs on the packed real tokens only (no padding);
    attention pads the queries to (B, M).  The last block computes its keys/values for every new token
    (later calls read them) but queries, MLP and head only at each row's last token.  The same
    arithmetic for the same inputs on both ends (every shape depends on the schedule only).
    """
    import torch
    import torch.nn.functional as F

    B, M = idx.shape
    ar = torch.arange(M)
    real = ar[None, :] < new[:, None]                                  # (B, M)
    qpos = past[:, None] + ar[None, :]                                 # absolute position of each new token
    L = int((past + new).max())
    keys = torch.arange(L)
    allowed = ((keys[None, None, :] <= qpos[:, :, None])
               & (keys[None, None, :] < (past + new)[:, None, None]))[:, None]   # (B, 1, M, L)
    rb, rm = real.nonzero(as_tuple=True)                               # packed order: row-major
    ws, wp = slots[rb], qpos[rb, rm]
    ends = torch.cumsum(new, 0) - 1                                    # packed index of each row's last token
    x = model.tok_emb(idx[rb, rm]) + model.pos_emb[0][pos[rb, rm]]     # (N, C)
    n_last = len(model.blocks) - 1
    ab = torch.arange(B)
    for li, blk in enumerate(model.blocks):
        att = blk.attn
        h = blk.ln1(x)
        N, C = h.shape
        nh = att.n_head
        hs = C // nh
        cache.k[li][ws, :, wp] = att.key(h).view(N, nh, hs)
        cache.v[li][ws, :, wp] = att.value(h).view(N, nh, hs)
        Kc = cache.k[li][slots, :, :L]                                  # (B, nh, L, hs)
        Vc = cache.v[li][slots, :, :L]
        if li == n_last:  # only each row's last new token continues
            x = x[ends]
            q = att.query(h[ends]).view(B, 1, nh, hs).transpose(1, 2)  # (B, nh, 1, hs)
            y = F.scaled_dot_product_attention(q, Kc, Vc, attn_mask=allowed[ab, :, new - 1][:, :, None])
            y = y.transpose(1, 2).reshape(B, C)
        else:
            q = torch.zeros(B, M, nh, hs)
            q[rb, rm] = att.query(h).view(N, nh, hs)
            y = F.scaled_dot_product_attention(q.transpose(1, 2), Kc, Vc, attn_mask=allowed)
            y = y.transpose(1, 2)[rb, rm].reshape(N, C)
        x = x + att.proj(y)
        x = x + blk.mlp(blk.ln2(x))
    return model.head(model.ln_f(x))


def _run(model, h: int, w: int, K: int, step):
    """Drive the transformer over the schedule; ``step(wave_indices, probs)`` returns the wave's symbols."""
    import torch

    slot, top, left, t, waves, sh, sw = schedule(h, w)
    n_slots = int(slot.max()) + 1
    sos = int(getattr(model, "sos_token", 0))
    pos_table = (np.arange(sh * sw) // sw) * WINDOW + np.arange(sh * sw) % sw
    grid = np.zeros((h, w), dtype=np.int64)
    cached = np.zeros(n_slots, dtype=np.int64)  # input tokens of each slot's window already in the cache
    with torch.no_grad(), _one_thread():
        cache = _Cache(model, n_slots, sh * sw)
        for wv in waves:
            B = len(wv)
            s = slot[wv]
            new = t[wv] + 1 - cached[s]
            M = int(new.max())
            idx = np.zeros((B, M), dtype=np.int64)
            pos = np.zeros((B, M), dtype=np.int64)
            for r in range(B):
                k = int(wv[r])
                a, e = int(cached[s[r]]), int(t[k]) + 1
                win = grid[top[k]:top[k] + sh, left[k]:left[k] + sw].reshape(-1)
                seq = np.concatenate(([sos], win[:e - 1]))
                idx[r, :e - a] = seq[a:e]
                pos[r, :e - a] = pos_table[a:e]
            logits = _forward_wave(model, cache, torch.from_numpy(idx), torch.from_numpy(pos),
                                   torch.from_numpy(s), torch.from_numpy(cached[s].copy()), torch.from_numpy(new))
            z = logits[:, :K].double().numpy()
            z = np.round(z / _LOGIT_STEP) * _LOGIT_STEP
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            sym = step(wv, p)
            grid.reshape(-1)[wv] = sym
            cached[s] = t[wv] + 1
    return grid


def _check_model(model, K: int) -> None:
    if not getattr(getattr(model, "config", None), "causal", False):
        raise ParameterError("tf_ar needs a causal (AR) transformer")
    if model.config.vocab_size < K:
        raise ParameterError(f"tf_ar: model vocabulary {model.config.vocab_size} < codebook size {K}")
    if model.config.block_size < WINDOW * WINDOW:
        raise ParameterError(f"tf_ar: model block_size {model.config.block_size} < {WINDOW * WINDOW}")


def _cpu(model):
    p = next(model.parameters())
    if p.device.type != "cpu" or p.dtype.is_floating_point and p.dtype != __import__("torch").float32:
        raise ParameterError("tf_ar runs the transformer on the CPU in float32 (for bit-exact decoding)")
    return model


# ------------------------------------------------------------------------------------------ public
def _encode_words(a: np.ndarray, K: int, model) -> np.ndarray:
    """constriction's uint32 words for a checked (h, w) map."""
    import constriction

    h, w = a.shape
    flat = a.reshape(-1).astype(np.int32)
    enc = constriction.stream.queue.RangeEncoder()
    fam = constriction.stream.model.Categorical(perfect=False)

    def step(wv, p):
        sym = flat[wv]
        enc.encode(sym, fam, p)
        return sym

    _run(model, h, w, K, step)
    return enc.get_compressed()


def _decode_words(body: bytes, h: int, w: int, K: int, model, what: str = "tf_ar payload") -> np.ndarray:
    """The (h, w) int32 map coded in ``body`` (little-endian 32-bit words), or BitstreamError."""
    import constriction

    if len(body) % 4:
        raise BitstreamError(f"{what} body of {len(body)} bytes is not a whole number of 32-bit words")
    words = np.frombuffer(body, dtype="<u4").astype(np.uint32)
    try:
        dec = constriction.stream.queue.RangeDecoder(words)
    except Exception as e:  # noqa: BLE001 - constriction raises plain exceptions
        raise BitstreamError(f"{what} rejected by the range decoder: {e}") from None
    fam = constriction.stream.model.Categorical(perfect=False)

    def step(wv, p):
        try:
            sym = np.asarray(dec.decode(fam, p), dtype=np.int64)
        except Exception as e:  # noqa: BLE001
            raise BitstreamError(f"{what} corrupt: {e}") from None
        if sym.shape != (len(wv),) or (sym.size and (sym.min() < 0 or sym.max() >= K)):
            raise BitstreamError(f"{what} decodes to out-of-range symbols")
        return sym

    grid = _run(model, h, w, K, step)
    if not dec.maybe_exhausted():
        raise BitstreamError(f"{what} has unused data after the last symbol")
    return grid.astype(np.int32)


def _checked_map(indices: np.ndarray, K: int, model) -> np.ndarray:
    a = np.asarray(indices)
    if a.ndim != 2 or a.size == 0:
        raise ParameterError(f"tf_ar codes a non-empty 2-D index map, got shape {a.shape}")
    if a.min() < 0 or a.max() >= K:
        raise ParameterError(f"indices must lie in [0, {K})")
    _check_model(_cpu(model), K)
    return a


def tf_ar_encode(indices: np.ndarray, K: int, model, fingerprint: bytes | None = None) -> bytes:
    """Payload of an (h, w) index map coded with ``model``'s probabilities."""
    a = _checked_map(indices, K, model)
    fp = fingerprint if fingerprint is not None else _fingerprint_of(model)
    return bytes([_FORMAT]) + fp + _encode_words(a, K, model).astype("<u4").tobytes()


def tf_ar_decode(payload: bytes, h: int, w: int, K: int, model, fingerprint: bytes | None = None) -> np.ndarray:
    """Inverse of :func:`tf_ar_encode`: the (h, w) int32 map, or BitstreamError."""
    data = bytes(payload)
    if len(data) < 5:
        raise BitstreamError(f"tf_ar payload of {len(data)} bytes is shorter than its 5-byte header")
    if data[0] != _FORMAT:
        raise BitstreamError(f"tf_ar payload format {data[0]} (this decoder reads {_FORMAT})")
    fp = fingerprint if fingerprint is not None else _fingerprint_of(model)
    if data[1:5] != fp:
        raise BitstreamError(f"tf_ar payload was coded with another transformer (fingerprint {data[1:5].hex()}, "
                             f"this receiver's {fp.hex()})")
    _check_model(_cpu(model), K)
    return _decode_words(data[5:], h, w, K, model)


class TileContextCoder:
    """``tf_tile``: the packet-level context coder (one tile of the map per packet, coded on its own).

    A tile (``sim.interleave``'s ``tile`` scheme: th×tw positions, raster order)
    is coded exactly as :func:`tf_ar_encode` codes a whole map (8×8 target
    blocks, 16×16 causal windows clipped into the tile), so context never
    crosses a packet boundary: every packet decodes without any other, and a
    lost packet costs only its own th×tw indices.  The price against the
    whole-map ``tf_ar`` stream is the missing context along tile edges
    (measured on Kodak at K = 1,024: 5.84 bits per index in 16×16 tiles,
    5.96 in 8×16, 6.22 in 8×8, against 5.71 for the whole map and 7.46 for
    ``arith``).

    The payload is constriction's 32-bit words only (no header: the packet
    header's CRC guards it, and the receiver is given the same transformer as
    a session parameter, as it is given the ``arith`` coders' prior).  It
    implements the ``sim.packetizer.TileCoder`` protocol, so
    ``packetize(…, coder="tf_tile", interleave="tile", context_coder=coder)``
    and ``depacketize(…, context_coder=coder)`` use it.

    Args:
        model: a causal (AR) concealment transformer, CPU float32.
        codebook_size: K (≤ the model's vocabulary).
    """

    name = "tf_tile"
    cache_size = 4096
    """Encoded tiles kept (the same image sent over many channel realisations is coded once)."""

    def __init__(self, model, codebook_size: int) -> None:
        from collections import OrderedDict

        self.codebook_size = int(codebook_size)
        _check_model(_cpu(model), self.codebook_size)
        self.model = model
        self._encoded: OrderedDict[tuple[tuple[int, ...], bytes], bytes] = OrderedDict()

    @classmethod
    def for_codebook(cls, codebook_id: str | None, codebook_size: int) -> TileContextCoder:
        """The coder of a registered codec's shipped AR transformer (``"default/1024"``); NoContextModelError."""
        model, _ = context_model_for(codebook_id, codebook_size)
        return cls(model, codebook_size)

    def encode_tile(self, tile: np.ndarray) -> bytes:
        """Payload bytes of one (th, tw) tile of indices in [0, K)."""
        a = _checked_map(tile, self.codebook_size, self.model)
        key = (a.shape, a.astype(np.int32).tobytes())
        out = self._encoded.get(key)
        if out is None:
            out = _encode_words(a, self.codebook_size, self.model).astype("<u4").tobytes()
            self._encoded[key] = out
            if len(self._encoded) > self.cache_size:
                self._encoded.popitem(last=False)
        return out

    def decode_tile(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        """The (th, tw) int32 tile coded in ``payload``; BitstreamError when it does not decode."""
        h, w = (int(v) for v in shape)
        if len(payload) < 4:
            raise BitstreamError(f"tf_tile payload of {len(payload)} bytes holds no 32-bit word")
        return _decode_words(bytes(payload), h, w, self.codebook_size, self.model, what="tf_tile payload")


def ideal_bits(indices: np.ndarray, K: int, model) -> float:
    """Σ −log2 p(index) under the coder's model (what an ideal coder would spend), for reporting."""
    a = np.asarray(indices)
    flat = a.reshape(-1)
    total = [0.0]

    def step(wv, p):
        total[0] += float(-np.log2(p[np.arange(len(wv)), flat[wv]]).sum())
        return flat[wv]

    _run(_cpu(model), a.shape[0], a.shape[1], K, step)
    return total[0]
