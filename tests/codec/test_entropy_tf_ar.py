"""codec.entropy.tf_ar: the shipped AR transformer as the entropy model (range coding through constriction)."""
from __future__ import annotations

import numpy as np
import pytest

from codec.bitstream import BITSTREAM_CODERS, decode_bitstream, encode_bitstream
from codec.entropy.tf_ar import NoContextModelError, context_model_for, ideal_bits, schedule, tf_ar_decode, tf_ar_encode
from codec.errors import BitstreamError, VQSimError
from codec.types import IndexMap


@pytest.fixture(scope="module")
def ar128():
    return context_model_for("default/128", 128)


@pytest.fixture(scope="module")
def real_map(kodim01):
    """The default codec's K = 128 index map of a 160x192 Kodak crop (10x12 indices)."""
    from codec.zoo import load_codec

    codec = load_codec("default", 128, device="cpu")
    return codec.encode_indices(kodim01[200:360, 300:492]), codec


@pytest.mark.parametrize("h,w", [(1, 1), (3, 20), (10, 12), (17, 9), (24, 33)])
def test_schedule_reads_only_indices_of_earlier_waves(h, w):
    slot, top, left, t, waves, sh, sw = schedule(h, w)
    wave = np.empty(h * w, dtype=np.int64)
    for q, wv in enumerate(waves):
        wave[wv] = q
        assert len(set(slot[wv].tolist())) == len(wv)        # one index per window cache and call
    assert sorted(np.concatenate(waves).tolist()) == list(range(h * w))
    for k in range(h * w):
        i, j = divmod(k, w)
        assert 0 <= top[k] <= i < top[k] + sh and 0 <= left[k] <= j < left[k] + sw
        win = (np.arange(h)[:, None] * w + np.arange(w)[None, :])[top[k]:top[k] + sh, left[k]:left[k] + sw].reshape(-1)
        assert win[t[k]] == k
        assert np.all(wave[win[:t[k]]] < wave[k])           # the prefix the model reads is decoded before


def test_round_trip_is_bit_exact_and_smaller_than_arith_rep(real_map, ar128):
    imap, codec = real_map
    data = codec.compress_indices(imap, "tf_ar")
    assert "tf_ar" in BITSTREAM_CODERS and data[3] & 0x0F == 8
    back = codec.decompress_indices(data)                     # the model is found from the stream's codebook id
    assert np.array_equal(back.indices, imap.indices)
    rep = codec.compress_indices(imap, "arith_rep")
    assert len(data) < len(rep)
    # the range coder spends what the model predicts (+ 5 header bytes and < 2 words of flush)
    from codec.bitstream import parse_header

    bits = ideal_bits(imap.indices, 128, ar128[0])
    hdr = parse_header(data)
    assert bits / 8 <= hdr.payload_length - 5 <= bits / 8 + 8


def test_corrupted_streams_raise_only_project_errors(real_map, ar128):
    imap, _ = real_map
    model, fp = ar128
    sub = np.ascontiguousarray(imap.indices[:6, :8])                  # a 6x8 corner keeps the fuzz quick
    h, w = sub.shape
    payload = tf_ar_encode(sub, 128, model, fp)
    rng = np.random.default_rng(0)
    outcomes = set()
    for trial in range(6):
        bad = bytearray(payload)
        kind = trial % 3
        if kind == 0:                                          # flipped bytes in the coded words
            for pos in rng.integers(5, len(bad), 3):
                bad[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:                                        # truncated to whole words
            bad = bad[:5 + 4 * int(rng.integers(0, (len(bad) - 5) // 4))]
        else:                                                  # appended words
            bad += bytes(rng.integers(0, 256, 4 * int(rng.integers(1, 3)), dtype=np.uint8))
        try:
            out = tf_ar_decode(bytes(bad), h, w, 128, model, fp)
            assert out.shape == (h, w) and out.min() >= 0 and out.max() < 128
            outcomes.add("decoded")
        except VQSimError:
            outcomes.add("refused")
    assert "refused" in outcomes
    for bad, match in ((payload[:3], "shorter"), (b"\x02" + payload[1:], "format"),
                       (payload[:1] + b"\0\0\0\0" + payload[5:], "another transformer"), (payload + b"\0", "32-bit")):
        with pytest.raises(BitstreamError, match=match):
            tf_ar_decode(bad, h, w, 128, model, fp)
    # the container: any flipped byte is a CRC error before the transformer runs
    data = bytearray(encode_bitstream(imap, "tf_ar", context_model=ar128))
    data[-6] ^= 0x40
    with pytest.raises(BitstreamError, match="CRC"):
        decode_bitstream(bytes(data), context_model=ar128)


def test_codebooks_without_a_shipped_transformer_are_refused():
    m = IndexMap(np.zeros((4, 4), np.int64), 64, (64, 64), "default/64")
    with pytest.raises(NoContextModelError, match="no 'ar' concealment model"):
        encode_bitstream(m, "tf_ar")
    with pytest.raises(NoContextModelError, match="registered codec"):
        encode_bitstream(IndexMap(np.zeros((4, 4), np.int64), 128, (64, 64), "mine/128"), "tf_ar")
