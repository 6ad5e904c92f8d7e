"""vqsim models: the registered models' table, one model's card, JSON, and an unknown name."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from types import MappingProxyType

import codec.zoo as zoo
from experiments.cli import main


def test_table_lists_default_and_its_sizes(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("default ")]
    assert "1024 512 256 128 64 32 16 8" in row
    assert "VQGAN f16" in row and " ok " in row and zoo.REGISTRY["default"].sha256[:12] in row
    top = max(zoo.REGISTRY["default"].kodak.rows, key=lambda r: r.codebook_size)
    assert f"{top.bpp:.4f}/{top.lpips_alex:.3f} (1024)" in row  # Kodak bpp / LPIPS-Alex from the card
    assert "0.0298/0.408 (1024)" in row  # the card of 2026-12-07 (the loss-aware decoder)


def test_one_model_in_full(capsys):
    assert main(["models", "default"]) == 0
    out = capsys.readouterr().out
    info = zoo.REGISTRY["default"]
    assert info.sha256 in out and "fine-tuned decoders 512 256 128 64 32 16 8" in out
    for c in info.concealers:
        assert c.file in out
    assert f"measured {info.kodak.measured}" in out and "../shared/data/train256_part1.tar" in out
    (line,) = [ln for ln in out.splitlines() if ln.split()[:1] == ["1024"]]  # Kodak row: bpp, Alex, VGG, DISTS
    r = max(info.kodak.rows, key=lambda r: r.codebook_size)
    assert line.split()[1:5] == [f"{r.bpp:.4f}", f"{r.lpips_alex:.3f}", f"{r.lpips_vgg:.3f}", f"{r.dists:.3f}"]


def test_json_has_the_real_hash(capsys):
    assert main(["models", "default", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    real = hashlib.sha256(zoo.REGISTRY["default"].path.read_bytes()).hexdigest()
    assert card["name"] == "default" and card["sha256"] == real and card["weights"] == "ok"
    assert [r["codebook_size"] for r in card["kodak"]["rows"]] == [1024, 512, 256, 128, 64, 32, 16, 8]
    assert main(["models", "--json"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)] == list(zoo.REGISTRY)


def test_unknown_name_exits_2_naming_the_known_ones(capsys):
    assert main(["models", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "default" in err and len(err.splitlines()) == 1


def test_a_corrupted_file_shows_in_the_table(monkeypatch, tmp_path, capsys):
    info = zoo.REGISTRY["default"]
    p = tmp_path / info.file
    shutil.copyfile(info.path, p)
    with open(p, "r+b") as fh:
        fh.seek(1000)
        b = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([b[0] ^ 0xFF]))
    bad = dataclasses.replace(info, name="tmpcopy", weights_dir=tmp_path)
    monkeypatch.setattr(zoo, "REGISTRY", MappingProxyType({**zoo.REGISTRY, "tmpcopy": bad}))
    assert main(["models"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tmpcopy ")]
    assert "sha256 mismatch" in row
