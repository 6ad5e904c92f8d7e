"""codec.conceal.model (minGPT, taming layout), .files, .taming and .train."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.conceal import (
    GPT,
    GPTConfig,
    SlotKVCache,
    config_from_state_dict,
    load_gpt_from_taming_ckpt,
    load_transformer,
    save_transformer,
)
from codec.errors import CheckpointError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # ../shared next to the repository
REF = SHARED / "reference"
GOLDEN = REF / "taming_golden.pt"
SHAPES = REF / "taming_state_dict_shapes.json"
KODAK = SHARED / "data" / "kodak"


@pytest.fixture(scope="module")
def golden():
    if not GOLDEN.exists():
        pytest.skip("taming reference data not available")
    return torch.load(GOLDEN, weights_only=True)["gpt"]


def _small(causal=True, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=17, block_size=64, n_layer=2, n_head=2, n_embd=32, causal=causal)
    cfg.update(kw)
    m = GPT(**cfg)
    with torch.no_grad():  # taming initialises pos_emb to 0; give positions some effect
        m.pos_emb.normal_(0.0, 0.02)
    return m.eval()


# --------------------------------------------------------------------------- taming conformance
@pytest.mark.parametrize("impl", ["sdpa", "manual"])
def test_golden_logits_match_taming(golden, impl):
    model = GPT(GPTConfig(**golden["config"]))
    model.load_state_dict(golden["state_dict"], strict=True)
    model.eval().set_attn_impl(impl)
    with torch.no_grad():
        logits = model(golden["tokens"])
    assert logits.shape == golden["expected_logits"].shape
    assert torch.allclose(logits, golden["expected_logits"], atol=1e-5, rtol=0)


def test_state_dict_keys_and_shapes_match_reference():
    if not SHAPES.exists():
        pytest.skip("taming reference data not available")
    ref = json.loads(SHAPES.read_text())
    entry = next(v for k, v in ref.items() if k.startswith("mingpt"))
    model = GPT(GPTConfig(**entry["config"]))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == entry["state_dict_shapes"]  # same keys (mask buffer included) and shapes


def test_mask_buffer_is_taming_tril_and_unmasked_prefix():
    m = GPT(vocab_size=5, block_size=6, n_layer=1, n_head=1, n_embd=4, n_unmasked=3)
    mask = m.blocks[0].attn.mask[0, 0]
    expect = torch.tril(torch.ones(6, 6))
    expect[:3, :3] = 1
    assert torch.equal(mask, expect)
    b = GPT(vocab_size=5, block_size=6, n_layer=1, n_head=1, n_embd=4, causal=False)
    assert torch.equal(b.blocks[0].attn.mask, torch.ones(1, 1, 6, 6))


def _fake_lightning_ckpt(path, sd, extra=None):
    full = {f"transformer.{k}": v for k, v in sd.items()}
    full["first_stage_model.quantize.embedding.weight"] = torch.zeros(16, 8)
    full.update(extra or {})
    torch.save({"state_dict": full, "global_step": 7, "epoch": 1}, path)


def test_load_from_taming_checkpoint(golden, tmp_path):
    p = tmp_path / "last.ckpt"
    _fake_lightning_ckpt(p, golden["state_dict"])
    model = load_gpt_from_taming_ckpt(p, n_head=golden["config"]["n_head"])
    cfg = model.config
    for k, v in golden["config"].items():
        assert getattr(cfg, k) == v
    assert cfg.causal and cfg.n_unmasked == 0
    with torch.no_grad():
        assert torch.allclose(model(golden["tokens"]), golden["expected_logits"], atol=1e-5, rtol=0)


def test_taming_checkpoint_errors_name_keys(golden, tmp_path):
    sd = dict(golden["state_dict"])
    del sd["blocks.1.attn.proj.bias"]
    p = tmp_path / "missing.ckpt"
    _fake_lightning_ckpt(p, sd)
    with pytest.raises(CheckpointError, match=r"missing keys.*blocks\.1\.attn\.proj\.bias"):
        load_gpt_from_taming_ckpt(p, n_head=4)
    p2 = tmp_path / "unexpected.ckpt"
    _fake_lightning_ckpt(p2, golden["state_dict"], {"transformer.blocks.0.attn.extra": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"unexpected keys.*blocks\.0\.attn\.extra"):
        load_gpt_from_taming_ckpt(p2, n_head=4)
    p3 = tmp_path / "nothing.ckpt"
    torch.save({"state_dict": {"first_stage_model.x": torch.zeros(1)}}, p3)
    with pytest.raises(CheckpointError, match="transformer"):
        load_gpt_from_taming_ckpt(p3, n_head=4)
    with pytest.raises(FileNotFoundError):
        load_gpt_from_taming_ckpt(tmp_path / "absent.ckpt", n_head=4)
    with pytest.raises(ValueError, match="n_head"):
        load_gpt_from_taming_ckpt(p, n_head=0)
    # wrong n_head for the width: a clear error, not a crash
    with pytest.raises(CheckpointError, match="n_head"):
        load_gpt_from_taming_ckpt(p2, n_head=5)


def test_config_inferred_from_shapes():
    m = GPT(vocab_size=9, block_size=12, n_layer=3, n_head=2, n_embd=8, n_unmasked=4)
    cfg = config_from_state_dict(m.state_dict(), n_head=2)
    assert cfg == m.config


# --------------------------------------------------------------------------- inference paths
def test_kv_cache_incremental_equals_full():
    m = _small()
    x = torch.randint(0, 17, (3, 50))
    with torch.no_grad():
        full = m(x)
        out, past = [], None
        for a, b in ((0, 20), (20, 21), (21, 37), (37, 50)):
            lg, past = m(x[:, a:b], past, True)
            out.append(lg)
    assert torch.allclose(torch.cat(out, 1), full, atol=1e-5)
    assert past[0][0].shape == (3, 2, 50, 16)


def test_logits_at_and_explicit_positions():
    m = _small()
    x = torch.randint(0, 17, (2, 30))
    with torch.no_grad():
        full = m(x)
        at = torch.tensor([[3, 29], [0, 17]])
        sel = m(x, logits_at=at)
        assert torch.allclose(sel, torch.stack([full[0, [3, 29]], full[1, [0, 17]]]), atol=1e-5)
        # explicit positions equal to the default ones give the same logits
        assert torch.allclose(m(x, pos=torch.arange(30)), full, atol=1e-6)
        # other positions change them (pos_emb is used)
        assert not torch.allclose(m(x, pos=torch.arange(30) + 5), full, atol=1e-4)


def test_forward_slots_matches_full_forward():
    m = _small()
    cache = SlotKVCache(m, length=64, n_slots=2)  # grows on demand
    seqs = [torch.randint(0, 17, (n,)) for n in (40, 25, 64, 7)]
    slots = [cache.alloc() for _ in seqs]
    done = [0] * len(seqs)
    # feed the sequences in uneven pieces, several rows per call
    for step_lens in ((10, 3, 30, 7), (30, 22, 34, 0)):
        rows = [i for i, n in enumerate(step_lens) if n]
        M = max(step_lens)
        idx = torch.zeros(len(rows), M, dtype=torch.long)
        pos = torch.zeros(len(rows), M, dtype=torch.long)
        for b, i in enumerate(rows):
            n = step_lens[i]
            idx[b, :n] = seqs[i][done[i]:done[i] + n]
            pos[b, :n] = torch.arange(done[i], done[i] + n)
        new = torch.tensor([step_lens[i] for i in rows])
        logits = m.forward_slots(idx, pos, cache, torch.tensor([slots[i] for i in rows]),
                                 torch.tensor([done[i] for i in rows]), new, (new - 1)[:, None])
        for b, i in enumerate(rows):
            done[i] += step_lens[i]
            with torch.no_grad():
                ref = m(seqs[i][None, :done[i]])[0, -1]
            assert torch.allclose(logits[b, 0], ref, atol=1e-5)


def test_causal_vs_bidirectional_dependence():
    x = torch.randint(0, 17, (1, 20))
    y = x.clone()
    y[0, 15] = (y[0, 15] + 1) % 17
    with torch.no_grad():
        c = _small(causal=True)
        assert torch.equal(c(x)[0, :15], c(y)[0, :15])  # the past never sees the future
        b = _small(causal=False)
        assert not torch.allclose(b(x)[0, :15], b(y)[0, :15])


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(vocab_size=10, block_size=8, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="vocab_size"):
        GPTConfig(vocab_size=1, block_size=8)
    with pytest.raises(ValueError, match="attn_pdrop"):
        GPTConfig(vocab_size=10, block_size=8, n_head=1, n_embd=8, attn_pdrop=1.0)
    with pytest.raises(ValueError, match="unknown GPTConfig keys"):
        GPTConfig.from_dict({"vocab_size": 10, "block_size": 8, "bogus": 1})
    m = _small()
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="attn_impl"):
        m.set_attn_impl("flash")


# --------------------------------------------------------------------------- project file format
def test_save_load_roundtrip(tmp_path):
    m = _small(causal=False)
    meta = {"kind": "bidir", "codebook_size": 16, "sos_token": 3, "window": 8, "hist": [1, 2.5, "x"]}
    p = save_transformer(tmp_path / "m.pt", m, meta)
    raw = torch.load(p, weights_only=True)  # plain containers and tensors only
    assert set(raw) >= {"config", "state_dict", "meta"}
    m2 = load_transformer(p)
    assert m2.config == m.config and m2.meta == meta and m2.sos_token == 3
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    # fp16 storage: half the bytes, float32 model, weights within fp16 rounding
    ph = save_transformer(tmp_path / "h.pt", m, meta, half=True)
    assert torch.load(ph, weights_only=True)["state_dict"]["tok_emb.weight"].dtype == torch.float16
    mh = load_transformer(ph)
    assert mh.tok_emb.weight.dtype == torch.float32
    assert torch.allclose(mh.tok_emb.weight, m.tok_emb.weight, atol=1e-3)
    assert ph.stat().st_size < 0.7 * p.stat().st_size


def test_save_rejects_unsafe_meta_and_load_rejects_foreign(tmp_path):
    m = _small()
    with pytest.raises(TypeError, match="meta.when"):
        save_transformer(tmp_path / "m.pt", m, {"when": object()})
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a vqsim transformer"):
        load_transformer(tmp_path / "other.pt")
    bad = {"config": m.config.to_dict(), "state_dict": {k: v for k, v in m.state_dict().items() if k != "ln_f.bias"}}
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="ln_f.bias"):
        load_transformer(tmp_path / "bad.pt")


# --------------------------------------------------------------------------- training
def kodak_index_maps(n_images=5, K=16, side=(32, 48), seed=0):
    """Small real index maps: Kodak images' 16×16-block mean colours quantized to K colours (numpy k-means)."""
    from PIL import Image

    paths = sorted(KODAK.glob("*.png"))[:n_images]
    if len(paths) < n_images:
        pytest.skip("Kodak images not available")
    h, w = side
    cols = []
    for p in paths:
        im = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
        H, W = im.shape[:2]
        bh, bw = H // h, W // w
        cols.append(im[:h * bh, :w * bw].reshape(h, bh, w, bw, 3).mean((1, 3)))
    allc = np.concatenate([c.reshape(-1, 3) for c in cols])
    rng = np.random.default_rng(seed)
    cb = allc[rng.choice(len(allc), K, replace=False)]
    for _ in range(8):
        a = ((allc[:, None] - cb[None]) ** 2).sum(-1).argmin(1)
        cb = np.array([allc[a == k].mean(0) if (a == k).any() else cb[k] for k in range(K)])
    maps = [((c.reshape(-1, 1, 3) - cb[None]) ** 2).sum(-1).argmin(1).reshape(h, w) for c in cols]
    return maps, cb


def _tcfg(**kw):
    from codec.conceal.train import TransformerTrainConfig

    base = dict(kind="ar", window=8, n_layer=1, n_head=2, n_embd=32, steps=30, batch_size=16, lr=3e-3, warmup=0,
                log_every=5, eval_every=10, ckpt_every=10, eval_windows=64, holdout=0.2, device="cpu")
    base.update(kw)
    return TransformerTrainConfig(**base)


@pytest.mark.parametrize("kind", ["ar", "bidir"])
def test_training_loss_falls(kind, tmp_path):
    from codec.conceal.train import train_transformer

    maps, _ = kodak_index_maps()
    res = train_transformer(maps, 16, _tcfg(kind=kind), out=tmp_path / "m.pt", log=None)
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert len(losses) == 6
    assert losses[-1] < losses[0] - 0.2, losses
    evals = [h for h in res.history if "eval_loss" in h]
    assert evals[-1]["heldout"] and evals[-1]["eval_loss"] < evals[0]["eval_loss"] + 1e-6
    m = load_transformer(tmp_path / "m.pt")
    assert m.config.vocab_size == 17 and m.config.causal == (kind == "ar")
    assert m.meta["kind"] == kind and m.meta["mask_token"] == 16 and m.meta["step"] == 30


def test_training_resume_is_exact(tmp_path):
    from codec.conceal.train import train_state_path, train_transformer

    maps, _ = kodak_index_maps(n_images=3)
    cfg = _tcfg(steps=12, batch_size=8, log_every=4, eval_every=6, ckpt_every=6)
    full = train_transformer(maps, 16, cfg, out=tmp_path / "a.pt", log=None)
    first = train_transformer(maps, 16, cfg, out=tmp_path / "b.pt", log=None, stop_after=6)
    assert first.step == 6 and train_state_path(tmp_path / "b.pt").exists()
    logs = []
    second = train_transformer(maps, 16, cfg, out=tmp_path / "b.pt", resume=True, log=logs.append)
    assert second.step == 12 and json.loads(logs[0])["step"] == 6
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k  # same data order, optimiser state restored
    # refuses other data or another model shape
    with pytest.raises(CheckpointError):
        train_transformer([m[::-1] for m in maps], 16, cfg, out=tmp_path / "b.pt", resume=True, log=None)
    with pytest.raises(CheckpointError):
        train_transformer(maps, 16, _tcfg(steps=12, n_embd=64), out=tmp_path / "b.pt", resume=True, log=None)


def test_make_batch_masking_rules():
    from codec.conceal.train import make_batch

    g = torch.Generator().manual_seed(0)
    w = torch.randint(0, 16, (64, 64))
    inp, tgt, wt = make_batch(w, "ar", 16, 0, 0.5, g)
    assert torch.equal(inp[:, 0], torch.zeros(64, dtype=torch.long)) and torch.equal(tgt, w)
    kept = inp[:, 1:] != 16
    assert torch.equal(inp[:, 1:][kept], w[:, :-1][kept])          # unmasked context = shifted targets
    frac = (~kept).float().mean(1)
    assert frac.max() <= 0.5 and frac.mean() > 0.1                  # α ~ U(0, 0.5)
    inp, tgt, wt = make_batch(w, "bidir", 16, 0, 0.5, g)
    masked = inp == 16
    assert torch.equal(masked.float(), wt) and masked.any(1).all()
    assert torch.equal(inp[~masked], w[~masked])


def test_train_config_validation():
    from codec.conceal.train import TransformerTrainConfig, train_transformer

    with pytest.raises(ValueError, match="kind"):
        TransformerTrainConfig(kind="gpt")
    with pytest.raises(ValueError, match="mask_ratio_max"):
        TransformerTrainConfig(mask_ratio_max=1.5)
    with pytest.raises(ValueError, match="no index map is at least"):
        train_transformer([np.zeros((4, 4), int)], 16, _tcfg(), log=None)
    with pytest.raises(ValueError, match="outside"):
        train_transformer([np.full((8, 8), 20)], 16, _tcfg(), log=None)


def test_bidir_mask_range_bounds_the_masked_fraction():
    from codec.conceal.train import TransformerTrainConfig, make_batch

    g = torch.Generator().manual_seed(1)
    w = torch.randint(0, 16, (400, 100))
    inp, _, wt = make_batch(w, "bidir", 16, 0, 0.5, g, bidir_mask_range=(0.1, 0.3))
    frac = (inp == 16).float().mean(1)
    assert frac.min() >= 0.1 and frac.max() <= 0.3 + 1e-6            # ⌈r·n⌉ with r ~ U(0.1, 0.3)
    assert abs(float(frac.mean()) - 0.2) < 0.01
    assert torch.equal((inp == 16).float(), wt)
    cos = (make_batch(w, "bidir", 16, 0, 0.5, g)[0] == 16).float().mean(1)
    assert cos.mean() > 0.5                                           # cosine law: E r = 2/π
    with pytest.raises(ValueError, match="bidir_mask_range"):
        TransformerTrainConfig(bidir_mask_range=(0.5, 0.2))


def test_holdout_by_group_keeps_every_map_of_a_group_on_one_side(tmp_path):
    from codec.conceal.train import train_transformer

    maps, _ = kodak_index_maps(n_images=4)
    # two "variants" per photo: the map and its mirror; groups = photo
    all_maps = maps + [m[:, ::-1].copy() for m in maps]
    groups = list(range(4)) * 2
    logs = []
    train_transformer(all_maps, 16, _tcfg(steps=2, holdout=0.25, eval_every=2), log=logs.append, groups=groups)
    start = json.loads(logs[0])
    assert start["heldout_maps"] == 2 and start["train_maps"] == 6 and start["heldout_groups"] == 1
    with pytest.raises(ValueError, match="groups has 3 entries"):
        train_transformer(all_maps, 16, _tcfg(), log=None, groups=[0, 1, 2])


def test_max_minutes_stops_with_a_checkpoint_and_resume_continues(tmp_path):
    from codec.conceal.train import train_transformer

    maps, _ = kodak_index_maps(n_images=3)
    cfg = _tcfg(steps=50, batch_size=8, eval_every=25, ckpt_every=25)
    logs = []
    res = train_transformer(maps, 16, cfg, out=tmp_path / "m.pt", log=logs.append, max_minutes=0.0)
    assert res.step == 1 and json.loads(logs[-1]) == {"event": "max_minutes", "step": 1}
    assert load_transformer(tmp_path / "m.pt").meta["step"] == 1
    assert "eval_loss" in res.history[-1]                             # the stopped model is evaluated
    again = train_transformer(maps, 16, cfg, out=tmp_path / "m.pt", resume=True, log=None)
    assert again.step == 50


def test_bf16_training_runs_and_learns(tmp_path):
    from codec.conceal.train import TransformerTrainConfig, train_transformer

    maps, _ = kodak_index_maps()
    res = train_transformer(maps, 16, _tcfg(kind="bidir", precision="bf16"), log=None)
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert losses[-1] < losses[0] - 0.2, losses
    assert next(res.model.parameters()).dtype == torch.float32     # master weights stay float32
    with pytest.raises(ValueError, match="precision"):
        TransformerTrainConfig(precision="fp8")


def test_resume_from_a_hostile_state_file_is_a_checkpoint_error(tmp_path):
    """Issue 27: `train-transformer --resume` read its state file with a bare torch.load: a pickled object or
    random bytes were internal errors repeating torch's advice to load with weights_only=False."""
    import argparse
    import pickle

    from codec.conceal.train import train_state_path, train_transformer

    maps, _ = kodak_index_maps(n_images=3)
    cfg = _tcfg(steps=2, batch_size=8, log_every=1, eval_every=2, ckpt_every=2)
    state = train_state_path(tmp_path / "m.pt")
    hostile = (
        pickle.dumps(argparse.Namespace(step=1)),
        np.random.default_rng(0).integers(0, 256, 300, np.uint8).tobytes(),
        None,
    )
    for data in hostile:
        if data is None:  # a weights-only file of the wrong shape
            torch.save({"train_config": {}, "K": 16, "state_dict": {}, "data": "x"}, state)
        else:
            state.write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            train_transformer(maps, 16, cfg, out=tmp_path / "m.pt", resume=True, log=None)
        assert "weights_only=False" not in str(e.value) and "\n" not in str(e.value)
