"""codec.conceal: window rule, AR (naive / fast), bidirectional, baselines, interface."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.conceal import (
    CONCEAL_METHODS,
    GPT,
    ar_tile_origins,
    conceal,
    conceal_ar,
    conceal_ar_naive,
    dependency_waves,
    nearest_codeword,
    random_loss_mask,
    window_origin,
)
from codec.types import IndexMap

K = 16


def _gpt(causal=True, vocab=K + 1, seed=0, block=64):
    torch.manual_seed(seed)
    m = GPT(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=32, causal=causal)
    with torch.no_grad():
        m.pos_emb.normal_(0.0, 0.02)
    return m.eval()


@pytest.fixture(scope="module")
def kodak(kodak_dir):
    """Real index maps (32×48) and their codebook (K colours): the 16×16-block mean colours
    of three Kodak images, quantized with a few numpy k-means iterations."""
    from PIL import Image

    cols = []
    for p in sorted(kodak_dir.glob("*.png"))[:3]:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
        im = (im.transpose(1, 0, 2) if im.shape[0] > im.shape[1] else im)[:512, :768]
        cols.append(im.reshape(32, 16, 48, 16, 3).mean((1, 3)))
    allc = np.concatenate([c.reshape(-1, 3) for c in cols])
    cb = allc[np.random.default_rng(0).choice(len(allc), K, replace=False)]
    for _ in range(8):
        a = ((allc[:, None] - cb[None]) ** 2).sum(-1).argmin(1)
        cb = np.array([allc[a == k].mean(0) if (a == k).any() else cb[k] for k in range(K)])
    maps = [((c.reshape(-1, 1, 3) - cb[None]) ** 2).sum(-1).argmin(1).reshape(32, 48) for c in cols]
    return [IndexMap(m, K, (512, 768)) for m in maps], cb


# --------------------------------------------------------------------------- window rule
def _taming_local(i, n):
    # literal transcription of the rule in taming's scripts/sample_conditional.py
    if i <= 8:
        return i
    elif n - i < 8:
        return 16 - (n - i)
    return 8


@pytest.mark.parametrize("H,W", [(32, 48), (17, 40), (24, 16), (16, 16)])
def test_window_origin_matches_taming_and_stays_inside(H, W):
    for i in range(H):
        for j in range(W):
            top, left, li, lj = window_origin(i, j, H, W)
            assert (li, lj) == (_taming_local(i, H), _taming_local(j, W))
            assert (top, left) == (i - li, j - lj)
            assert 0 <= top and top + 16 <= H and 0 <= left and left + 16 <= W


def test_window_origin_small_maps_and_errors():
    # a dimension ≤ 16 uses the whole dimension
    assert window_origin(3, 9, 5, 12) == (0, 0, 3, 9)
    assert window_origin(4, 30, 5, 40) == (0, 30 - 8, 4, 8)
    # interior / edges for another window size
    assert window_origin(10, 10, 30, 30, size=8) == (6, 6, 4, 4)
    assert window_origin(29, 0, 30, 30, size=8) == (22, 0, 7, 0)
    with pytest.raises(ValueError, match="outside"):
        window_origin(5, 0, 5, 5)
    with pytest.raises(ValueError, match="H"):
        window_origin(0, 0, 0, 5)


def test_tiled_origins_contain_position():
    ii, jj = np.meshgrid(np.arange(32), np.arange(48), indexing="ij")
    top, left = ar_tile_origins(ii.ravel(), jj.ravel(), 32, 48)
    assert ((ii.ravel() - top >= 0) & (ii.ravel() - top < 16)).all()
    assert ((jj.ravel() - left >= 0) & (jj.ravel() - left < 16)).all()
    assert len(set(zip(top.tolist(), left.tolist(), strict=False))) == 15  # 3 × 5 tiles at stride 8


# --------------------------------------------------------------------------- AR
def test_ar_first_prediction_is_taming_computation(kodak):
    """The first lost index (all its context received) = argmax of logits[t] for [sos] + window[:-1]."""
    imap = kodak[0][0]
    m = _gpt()
    lost = np.zeros(imap.shape, bool)
    lost[12, 20] = True
    out = conceal_ar_naive(imap, lost, m, window=8)
    top, left, li, lj = window_origin(12, 20, *imap.shape, size=8)
    w = imap.indices[top:top + 8, left:left + 8].reshape(-1).astype(np.int64)
    seq = torch.from_numpy(np.concatenate([[0], w[:-1]]))[None]
    with torch.no_grad():
        logits = m(seq)[0, li * 8 + lj, :K]
    assert out.indices[12, 20] == int(logits.argmax())
    assert np.array_equal(out.indices[~lost], imap.indices[~lost])


@pytest.mark.parametrize("frac", [0.1, 0.4, 1.0])
@pytest.mark.parametrize("rule", ["taming", "tiled"])
def test_ar_fast_equals_naive_argmax(kodak, frac, rule):
    imap = kodak[0][1]
    sub = imap.with_indices(imap.indices)  # 32×48 real map
    sub = IndexMap(sub.indices[:16, :24], K, (256, 384))
    lost = random_loss_mask(sub.shape, frac, np.random.default_rng(1))
    m = _gpt()
    a = conceal_ar_naive(sub, lost, m, window=8, rule=rule)
    b, st = conceal_ar(sub, lost, m, window=8, rule=rule, return_stats=True)
    assert a == b
    assert st["waves"] <= lost.sum() and (frac < 1.0 or st["waves"] > 1)
    assert np.array_equal(a.indices[~lost], sub.indices[~lost])


def test_ar_fast_equals_naive_sampling_and_small_maps(kodak):
    m = _gpt()
    rng = np.random.default_rng(2)
    for shape in [(5, 7), (16, 9), (12, 20)]:
        imap = IndexMap(kodak[0][2].indices[: shape[0], : shape[1]], K, (shape[0] * 16, shape[1] * 16))
        lost = random_loss_mask(shape, 0.5, rng)
        kw = dict(window=8, sample=True, temperature=1.5, top_k=8)
        a = conceal_ar_naive(imap, lost, m, rng=torch.Generator().manual_seed(5), **kw)
        b = conceal_ar(imap, lost, m, rng=torch.Generator().manual_seed(5), **kw)
        c = conceal_ar(imap, lost, m, rng=torch.Generator().manual_seed(6), **kw)
        assert a == b
        assert not np.array_equal(a.indices, c.indices)  # the seed matters
        # top_k=1 sampling is argmax
        d = conceal_ar(imap, lost, m, rng=torch.Generator().manual_seed(5), window=8, sample=True, top_k=1)
        assert d == conceal_ar(imap, lost, m, window=8)


def test_ar_context_mask_mode(kodak):
    imap = IndexMap(kodak[0][0].indices[:12, :20], K, (192, 320))
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(3))
    m = _gpt()
    a = conceal_ar_naive(imap, lost, m, window=8, context="mask")
    b, st = conceal_ar(imap, lost, m, window=8, context="mask", return_stats=True)
    assert a == b and st["waves"] == 1  # predictions never feed back: one parallel wave
    with pytest.raises(ValueError, match=r"\[mask\]"):
        conceal_ar(imap, lost, _gpt(vocab=K), window=8, context="mask")


def test_dependency_waves_respect_window_prefix():
    from codec.conceal.ar import _ARProblem
    from codec.conceal.decoding import Decoding

    imap = IndexMap(np.zeros((12, 20), int), K, (192, 320))
    lost = random_loss_mask(imap.shape, 0.5, np.random.default_rng(4))
    prob = _ARProblem(imap, lost, _gpt(), window=8, sos_token=None, context="filled", rule="taming",
                      dec=Decoding.make(False, 1.0, None, 1e-4, K), rng=None, method="ar")
    waves = dependency_waves(prob)
    ii, jj = np.nonzero(lost)
    wave = {(i, j): w for i, j, w in zip(ii, jj, waves, strict=False)}
    for (i, j), w in wave.items():
        top, left, li, lj = window_origin(i, j, 12, 20, size=8)
        deps = [wave[(r, c)] for (r, c) in wave
                if top <= r < top + 8 and left <= c < left + 8 and (r - top) * 8 + (c - left) < li * 8 + lj]
        assert w == (max(deps) + 1 if deps else 0)


# --------------------------------------------------------------------------- bidirectional
def test_bidir_fills_deterministically(kodak):
    m = _gpt(causal=False, block=256)
    imap = kodak[0][0]
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(5))
    a = conceal(imap, lost, "bidir", model=m, steps=4)
    b = conceal(imap, lost, "bidir", model=m, steps=4)
    assert a.index_map == b.index_map and np.array_equal(a.indices[~lost], imap.indices[~lost])
    s1 = conceal(imap, lost, "bidir", model=m, sample=True, rng=np.random.default_rng(0))
    s2 = conceal(imap, lost, "bidir", model=m, sample=True, rng=np.random.default_rng(0))
    s3 = conceal(imap, lost, "bidir", model=m, sample=True, rng=np.random.default_rng(1))
    assert s1.index_map == s2.index_map and not np.array_equal(s1.indices, s3.indices)


def test_bidir_one_step_is_single_pass_argmax(kodak):
    m = _gpt(causal=False, block=256)
    imap = IndexMap(kodak[0][1].indices[:10, :14], K, (160, 224))  # fits one 16×16 window
    lost = random_loss_mask(imap.shape, 0.4, np.random.default_rng(6))
    out = conceal(imap, lost, "bidir", model=m, steps=1)
    seq = np.where(lost, K, imap.indices).reshape(-1)
    pos = (np.arange(140) // 14) * 16 + np.arange(140) % 14
    with torch.no_grad():
        logits = m(torch.from_numpy(seq)[None], pos=torch.from_numpy(pos))[0, :, :K]
    assert np.array_equal(out.indices[lost], logits.argmax(1).numpy().reshape(10, 14)[lost])


# --------------------------------------------------------------------------- baselines
def test_mean_is_nearest_to_codebook_mean(kodak):
    imap, cb = kodak[0][0], kodak[1]
    lost = random_loss_mask(imap.shape, 0.2, np.random.default_rng(7))
    out = conceal(imap, lost, "mean", codebook=cb)
    k = int(np.argmin(((cb - cb.mean(0)) ** 2).sum(1)))
    assert (out.indices[lost] == k).all() and np.array_equal(out.indices[~lost], imap.indices[~lost])


def test_neighbor_copies_a_nearest_received(kodak):
    imap = kodak[0][1]
    lost = random_loss_mask(imap.shape, 0.5, np.random.default_rng(8))
    lost[5:15, 10:25] = True  # a big hole
    out = conceal(imap, lost, "neighbor")
    ri, rj = np.nonzero(~lost)
    for i, j in zip(*np.nonzero(lost), strict=False):
        d = (ri - i) ** 2 + (rj - j) ** 2
        nearest = d == d.min()
        assert out.indices[i, j] in set(imap.indices[ri[nearest], rj[nearest]].tolist())


def test_latent_avg_isolated_and_holes(kodak):
    imap, cb = kodak[0][2], kodak[1]
    lost = np.zeros(imap.shape, bool)
    lost[10, 10] = True
    out = conceal(imap, lost, "latent_avg", codebook=cb)
    nb = [imap.indices[9, 10], imap.indices[11, 10], imap.indices[10, 9], imap.indices[10, 11]]
    assert out.indices[10, 10] == nearest_codeword(cb[nb].mean(0, keepdims=True), cb)[0]
    lost[4:14, 20:34] = True
    for conn in (4, 8):
        o = conceal(imap, lost, "latent_avg", codebook=cb, connectivity=conn)
        assert np.array_equal(o.indices[~lost], imap.indices[~lost])
    # a smooth (constant) neighbourhood is filled with that constant
    flat = IndexMap(np.full((8, 8), 3), K, (128, 128))
    hole = np.zeros((8, 8), bool)
    hole[2:6, 2:6] = True
    assert (conceal(flat, hole, "latent_avg", codebook=cb).indices == 3).all()


def test_none_and_all_lost(kodak):
    imap, cb = kodak[0][0], kodak[1]
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(9))
    assert conceal(imap, lost, "none").index_map == imap
    assert (conceal(imap, lost, "none", fill_value=0).indices[lost] == 0).all()
    every = np.ones(imap.shape, bool)
    mean = conceal(imap, every, "mean", codebook=cb)
    assert conceal(imap, every, "neighbor", codebook=cb).index_map == mean.index_map
    assert conceal(imap, every, "latent_avg", codebook=cb).index_map == mean.index_map


# --------------------------------------------------------------------------- interface errors
def test_interface_errors(kodak):
    imap, cb = kodak[0][0], kodak[1]
    lost = random_loss_mask(imap.shape, 0.1, np.random.default_rng(10))
    with pytest.raises(ValueError, match="allowed: " + ", ".join(CONCEAL_METHODS)):
        conceal(imap, lost, "magic")
    with pytest.raises(ValueError, match="needs model"):
        conceal(imap, lost, "ar")
    with pytest.raises(ValueError, match="vocab_size 65 does not fit codebook size 16"):
        conceal(imap, lost, "ar", model=_gpt(vocab=65))
    with pytest.raises(ValueError, match="bidirectional"):
        conceal(imap, lost, "bidir", model=_gpt(causal=True, block=256))
    with pytest.raises(ValueError, match="causal"):
        conceal(imap, lost, "ar", model=_gpt(causal=False))
    with pytest.raises(ValueError, match="block_size"):
        conceal(imap, lost, "ar", model=_gpt())  # 16×16 windows need block 256
    with pytest.raises(ValueError, match="codebook"):
        conceal(imap, lost, "mean")
    with pytest.raises(ValueError, match=r"shape \(16, 3\)|codebook must have shape"):
        conceal(imap, lost, "latent_avg", codebook=cb[:10])
    with pytest.raises(ValueError, match="unknown option"):
        conceal(imap, lost, "mean", codebook=cb, steps=3)
    with pytest.raises(ValueError, match="needs rng"):
        conceal(imap, lost, "ar", model=_gpt(), window=8, sample=True)
    with pytest.raises(ValueError, match="loss mask shape"):
        conceal(imap, lost[:5], "neighbor")
    with pytest.raises(TypeError, match="boolean"):
        conceal(imap, lost.astype(int), "neighbor")


# --------------------------------------------------------------------------- posterior-mean estimate
def test_choose_mean_is_nearest_to_expected_codeword():
    from codec.conceal.decoding import choose_tokens

    cb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    # p = (0, 0.5, 0.5, 0) in effect: the expected codeword (0.5, 0.5) is codeword 3, not either mode
    logits = torch.tensor([[-1e9, 2.0, 2.0, -1e9], [-1e9, 9.0, -1e9, -1e9]])
    tok, unsafe = choose_tokens(logits, 4, None, 1.0, None, 1e-4, codebook=cb)
    assert tok.tolist() == [3, 1] and not unsafe.any()
    # brute force on random logits
    g = torch.Generator().manual_seed(0)
    lg = torch.randn(50, 4, generator=g) * 3
    tok, _ = choose_tokens(lg, 4, None, 1.0, None, 0.0, codebook=cb)
    m = torch.softmax(lg.double(), 1) @ cb
    assert torch.equal(tok, torch.cdist(m, cb).argmin(1))


def test_ar_mean_estimate_fast_equals_naive_and_differs_from_mode(kodak):
    maps, cb = kodak
    imap = IndexMap(maps[1].indices[:16, :24], K, (256, 384))
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(3))
    m = _gpt(seed=1)
    a = conceal(imap, lost, "ar_naive", model=m, codebook=cb, window=8, estimate="mean")
    b = conceal(imap, lost, "ar", model=m, codebook=cb, window=8, estimate="mean")
    assert a.index_map == b.index_map
    assert np.array_equal(a.indices[~lost], imap.indices[~lost])
    mode = conceal(imap, lost, "ar", model=m, window=8)
    assert not np.array_equal(mode.indices, a.indices)
    bd = conceal(imap, lost, "bidir", model=_gpt(causal=False, seed=2), codebook=cb, window=8, estimate="mean")
    assert np.array_equal(bd.indices[~lost], imap.indices[~lost])


def test_mean_estimate_errors(kodak):
    maps, cb = kodak
    imap = IndexMap(maps[0].indices[:8, :8], K, (128, 128))
    lost = random_loss_mask(imap.shape, 0.3, np.random.default_rng(0))
    m = _gpt()
    with pytest.raises(ValueError, match="needs codebook"):
        conceal(imap, lost, "ar", model=m, window=8, estimate="mean")
    with pytest.raises(ValueError, match="cannot be combined with sample"):
        conceal(
            imap, lost, "ar", model=m, codebook=cb, window=8, estimate="mean", sample=True, rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="estimate must be one of"):
        conceal(imap, lost, "ar", model=m, codebook=cb, window=8, estimate="median")
    with pytest.raises(ValueError, match="shape"):
        conceal(imap, lost, "bidir", model=_gpt(causal=False), codebook=cb[:4], window=8, estimate="mean")


def test_mean_method_names_are_the_mean_estimate(kodak):
    maps, cb = kodak
    imap = IndexMap(maps[2].indices[:12, :12], K, (192, 192))
    lost = random_loss_mask(imap.shape, 0.25, np.random.default_rng(4))
    m, b = _gpt(seed=3), _gpt(causal=False, seed=4)
    assert (
        conceal(imap, lost, "ar_mean", model=m, codebook=cb, window=8).index_map
        == conceal(imap, lost, "ar", model=m, codebook=cb, window=8, estimate="mean").index_map
    )
    assert (
        conceal(imap, lost, "bidir_mean", model=b, codebook=cb, window=8).index_map
        == conceal(imap, lost, "bidir", model=b, codebook=cb, window=8, estimate="mean").index_map
    )
    with pytest.raises(ValueError, match="unknown option"):
        conceal(imap, lost, "ar_mean", model=m, codebook=cb, window=8, sample=True)
