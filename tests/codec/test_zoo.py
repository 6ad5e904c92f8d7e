"""codec.zoo's model cards: they describe the shipped files truly, and a file that no longer matches its hash is
refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

import codec.zoo as zoo
from codec.errors import CheckpointError, ModelNotFoundError

README = Path(__file__).resolve().parents[2] / "README.md"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture()
def default_info():
    return zoo.REGISTRY["default"]


def test_listed_hashes_are_the_files_real_sha256(default_info):
    assert default_info.path.exists()
    assert default_info.sha256 == _sha256(default_info.path)
    assert default_info.weights_status() == "ok"
    for c in default_info.concealers:
        assert c.sha256 == _sha256(default_info.weights_dir / c.file), c.file


def test_card_matches_the_checkpoint(default_info):
    from codec.checkpoint import read_checkpoint

    ck = read_checkpoint(default_info.path)
    assert default_info.codebook_size == ck["config"]["n_embed"]
    assert default_info.reduced_sizes == tuple(sorted((int(s) for s in ck["codebooks"]), reverse=True))
    assert sorted(default_info.finetuned_sizes) == sorted(int(s) for s in ck["decoders"])
    assert default_info.kmeans_seed == ck["meta"]["kmeans_seed"]
    assert default_info.training["steps"] == ck["meta"]["steps"]
    assert default_info.codebook_sizes == (1024, 512, 256, 128, 64, 32, 16, 8)


def test_card_lists_every_shipped_concealer(default_info):
    from codec.checkpoint import read_checkpoint

    shipped = sorted(p.name for p in zoo.WEIGHTS_DIR.glob("default_*_*.pt") if "_robustdec_" not in p.name)
    assert sorted(c.file for c in default_info.concealers) == shipped
    for c in default_info.concealers:
        meta = read_checkpoint(default_info.weights_dir / c.file)["meta"]
        assert (meta["kind"], meta["codebook_size"], meta["step"]) == (c.kind, c.codebook_size, c.steps), c.file
        assert meta["eval_loss"] == pytest.approx(c.heldout_nats, abs=0.005)
        assert zoo.concealer_path("default", c.codebook_size, c.kind) == default_info.weights_dir / c.file


def test_card_lists_every_shipped_decoder_variant(default_info):
    from codec.conceal.decoder_variant import read_decoder_file, robust_decoder_path

    shipped = sorted(p.name for p in zoo.WEIGHTS_DIR.glob("default_robustdec_*.pt"))
    assert sorted(v.file for v in default_info.decoder_variants) == shipped
    # K = 1,024's own decoder is the loss-aware one: a separate robust file there would be a stale copy
    assert all(v.codebook_size != default_info.codebook_size for v in default_info.decoder_variants)
    for v in default_info.decoder_variants:
        path = default_info.weights_dir / v.file
        assert v.sha256 == _sha256(path), v.file
        meta = read_decoder_file(path)["meta"]
        assert meta["codebook_id"] == f"default/{v.codebook_size}" and meta["steps"] == v.steps
        assert meta["filler"] == v.filler
        assert robust_decoder_path("default", v.codebook_size) == path


def test_corrupted_robust_decoder_is_refused(monkeypatch, tmp_path, default_info):
    from codec.checkpoint import save_atomic
    from codec.conceal.decoder_variant import with_decoder_variant

    if default_info.decoder_variants:
        v = default_info.decoder_variants[0]
    else:  # none ships now: list one made here (the K = 128 decoder side as a variant file)
        src = tmp_path / "src"
        src.mkdir()
        for name in [default_info.file, *(c.file for c in default_info.concealers)]:
            (src / name).symlink_to(default_info.weights_dir / name)
        m = zoo.load_codec("default", 128, device="cpu").model
        w = {k: t.detach().half() for k, t in m.state_dict().items() if k.startswith(("post_quant_conv.", "decoder."))}
        f = save_atomic({"weights": w, "meta": {"codebook_id": "default/128", "steps": 1, "filler": "latent_avg_soft"}},
                        src / "default_robustdec_128.pt")
        v = zoo.DecoderVariantInfo(kind="robust", codebook_size=128, file=f.name, sha256=_sha256(f), steps=1,
                                   filler="latent_avg_soft")
        default_info = dataclasses.replace(default_info, decoder_variants=(v,), weights_dir=src)
    copy = _registered_copy(monkeypatch, tmp_path, default_info, corrupt=v.file)
    codec = zoo.load_codec("tmpcopy", v.codebook_size, device="cpu")
    with pytest.raises(CheckpointError, match=v.file):
        with_decoder_variant(codec, "robust")
    assert copy.decoder_variant("robust", v.codebook_size) == v


def test_kodak_numbers_are_the_readme_model_card(default_info):
    """Each card row is a row of the README's Kodak table: bpp arith_rep (the default coder), LPIPS-Alex and, where
    the card has them, LPIPS-VGG and DISTS (the metrics the codec's loss does not contain)."""
    k = default_info.kodak
    assert k.images == 24 and k.coder == "arith_rep" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", k.measured)
    assert sorted(r.codebook_size for r in k.rows) == sorted(default_info.codebook_sizes)
    table, header = {}, None
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:3] == ["codebook", "variant", "images"] and "LPIPS alex" in cells:
            header = cells  # the Kodak table's header names its columns
        elif header and len(cells) == len(header) and cells[0].isdigit() and cells[1] in (
                "trained", "finetuned", "w/o fine-tune"):
            table[(int(cells[0]), cells[1])] = dict(zip(header, cells, strict=True))
    assert header is not None, "README has no Kodak table with an 'LPIPS alex' column"

    def num(row: dict, col: str) -> float:
        return float(row[col])

    for r in k.rows:
        row = table[(r.codebook_size, "trained" if r.codebook_size == default_info.codebook_size else "finetuned")]
        assert (r.bpp, r.lpips_alex) == (num(row, "bpp arith_rep"), num(row, "LPIPS alex"))
        if r.lpips_vgg is not None:
            assert r.lpips_vgg == num(row, "LPIPS vgg")
        if r.dists is not None:
            assert r.dists == num(row, "DISTS")
        if r.lpips_alex_kmeans is not None:
            assert r.lpips_alex_kmeans == num(table[(r.codebook_size, "w/o fine-tune")], "LPIPS alex")
    assert all(r.lpips_vgg is not None and r.dists is not None for r in k.rows), "the card reports VGG and DISTS"


def test_list_models_returns_the_cards():
    (m,) = [m for m in zoo.list_models() if m["name"] == "default"]
    json.dumps(m)  # JSON-able
    assert m["present"] and m["sha256"] == zoo.REGISTRY["default"].sha256
    assert m["reduced_sizes"] == [512, 256, 128, 64, 32, 16, 8] and len(m["concealers"]) == 4
    assert m["kodak"]["rows"][0]["codebook_size"] == 1024


def _registered_copy(monkeypatch, tmp_path: Path, info, corrupt: str | None = None):
    """A copy of the default model's files in tmp_path, registered as 'tmpcopy'; ``corrupt`` names a file to damage."""
    for f in [info.file, *(c.file for c in info.concealers), *(v.file for v in info.decoder_variants)]:
        shutil.copyfile(info.weights_dir / f, tmp_path / f)
    if corrupt:
        p = tmp_path / corrupt
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit in the middle of the tensor data
        p.write_bytes(bytes(data))
    copy = dataclasses.replace(info, name="tmpcopy", weights_dir=tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", MappingProxyType({**zoo.REGISTRY, "tmpcopy": copy}))
    return copy


def test_corrupted_codec_file_is_refused(monkeypatch, tmp_path, default_info):
    copy = _registered_copy(monkeypatch, tmp_path, default_info, corrupt=default_info.file)
    bad = _sha256(copy.path)
    with pytest.raises(CheckpointError) as e:
        zoo.load_codec("tmpcopy", device="cpu")
    msg = str(e.value)
    assert str(copy.path) in msg and bad in msg and default_info.sha256 in msg
    with pytest.raises(CheckpointError, match=bad):  # also when named by its path
        zoo.resolve_model_path(copy.path)
    assert copy.weights_status() == "sha256 mismatch"


def test_intact_copy_resolves_and_corrupted_concealer_is_refused(monkeypatch, tmp_path, default_info):
    copy = _registered_copy(monkeypatch, tmp_path, default_info, corrupt="default_ar_128.pt")
    assert zoo.resolve_model_path("tmpcopy") == ("tmpcopy", copy.path)
    with pytest.raises(CheckpointError, match="default_ar_128.pt"):
        zoo.load_concealer("tmpcopy", 128, "ar")


def test_hash_is_cached_per_path_size_and_mtime(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(b"a" * 1000)
    h1 = zoo.file_sha256(p)
    misses = zoo._sha256_of.cache_info().misses
    assert zoo.file_sha256(p) == h1 == _sha256(p)
    assert zoo._sha256_of.cache_info().misses == misses  # not hashed again
    p.write_bytes(b"b" * 1000)  # same size, new content and mtime
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert zoo.file_sha256(p) == _sha256(p) != h1
    with pytest.raises(CheckpointError, match=h1):
        zoo.verify_sha256(p, h1)


def test_unknown_name_and_broken_card(tmp_path):
    with pytest.raises(ModelNotFoundError, match="default"):
        zoo.model_info("nope")
    card = tmp_path / "x.json"
    card.write_text(json.dumps({"name": "x", "file": "x.pt"}))
    with pytest.raises(CheckpointError, match="x.json"):
        zoo.read_model_card(card)


def test_checkpoint_meta_is_the_checkpoints_own_meta(default_info):
    from codec.checkpoint import read_checkpoint

    meta = zoo.checkpoint_meta("default")
    assert meta == read_checkpoint(default_info.path)["meta"]
    assert meta["steps"] == default_info.training["steps"]
    meta["steps"] = -1  # a copy: the cached checkpoint is not changed
    assert zoo.checkpoint_meta("default")["steps"] == default_info.training["steps"]
