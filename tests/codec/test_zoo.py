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
    assert shipped, "the robust decoder of issue 23 ships"
    for v in default_info.decoder_variants:
        path = default_info.weights_dir / v.file
        assert v.sha256 == _sha256(path), v.file
        meta = read_decoder_file(path)["meta"]
        assert meta["codebook_id"] == f"default/{v.codebook_size}" and meta["steps"] == v.steps
        assert meta["filler"] == v.filler
        assert robust_decoder_path("default", v.codebook_size) == path


def test_corrupted_robust_decoder_is_refused(monkeypatch, tmp_path, default_info):
    from codec.conceal.decoder_variant import with_decoder_variant

    v = default_info.decoder_variants[0]
    copy = _registered_copy(monkeypatch, tmp_path, default_info, corrupt=v.file)
    codec = zoo.load_codec("tmpcopy", v.codebook_size, device="cpu")
    with pytest.raises(CheckpointError, match=v.file):
        with_decoder_variant(codec, "robust")
    assert copy.decoder_variant("robust", v.codebook_size) == v


def test_kodak_numbers_are_the_readme_model_card(default_info):
    """Each card row is a row of the README's Kodak table: bpp arith_rep (the default coder) and LPIPS-Alex."""
    k = default_info.kodak
    assert k.images == 24 and k.coder == "arith_rep" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", k.measured)
    assert sorted(r.codebook_size for r in k.rows) == sorted(default_info.codebook_sizes)
    table = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 7 and cells[0].isdigit() and cells[1] in ("trained", "finetuned", "w/o fine-tune"):
            table[(int(cells[0]), cells[1])] = (float(cells[4]), float(cells[7]))  # bpp arith_rep, LPIPS alex
    for r in k.rows:
        variant = "trained" if r.codebook_size == default_info.codebook_size else "finetuned"
        assert (r.bpp, r.lpips_alex) == table[(r.codebook_size, variant)]
        if r.lpips_alex_kmeans is not None:
            assert r.lpips_alex_kmeans == table[(r.codebook_size, "w/o fine-tune")][1]


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
