"""The fuzz benchmark of the receive path, run small: every input is accepted or refused with a typed error."""
from __future__ import annotations

import json

from experiments.cli import main
from experiments.fuzz import run_fuzz


def test_fuzz_small_run_has_no_untyped_errors_and_covers_every_outcome():
    r = run_fuzz(1500, seed=3, full_decodes=10)
    targets = {t["target"]: t for t in r["targets"]}
    assert set(targets) == {"bitstream", "codec indices", "codec image", "packet", "packet stream",
                            "alphabet claims", "huge-image claims", "config bombs", "encode inputs"}
    assert r["untyped_total"] == 0, [t["crashes"] for t in r["targets"]]
    assert r["over_1s_total"] == 0
    bs = targets["bitstream"]["outcomes"]
    # the generator reaches every layer: accepted streams, CRC/structure refusals and the decode limits
    assert bs["ok"] > 0 and bs["BitstreamError"] > 0 and bs["LimitExceededError"] > 0
    assert targets["codec image"]["inputs"] == 10 and targets["codec image"]["outcomes"]["ok"] == 10
    assert targets["packet"]["outcomes"]["PacketError"] > 0  # lone bad packets without session parameters
    assert sum(targets["packet stream"]["outcomes"].values()) == targets["packet stream"]["inputs"] == 750


def test_bench_fuzz_cli_writes_report(tmp_path, capsys):
    out = tmp_path / "fuzz.json"
    assert main(["bench", "fuzz", "--inputs", "300", "--full-decodes", "2", "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "untyped errors 0" in text and "peak RSS" in text
    rep = json.loads(out.read_text())
    assert rep["inputs_per_target"] == 300 and rep["untyped_total"] == 0
    assert main(["bench", "fuzz", "--inputs", "0"]) == 2


def test_fuzz_reaches_the_resource_attacks_of_issue_27():
    """Generators for alphabet claims, tiny maps of huge images, config bombs and huge encode inputs: each is
    refused (typed) or bounded, fast; before the fixes these were 60 ms per packet, internal errors or GBs."""
    r = run_fuzz(300, seed=5, full_decodes=0)
    targets = {t["target"]: t for t in r["targets"]}
    for name in ("alphabet claims", "huge-image claims", "config bombs", "encode inputs"):
        t = targets[name]
        assert t["inputs"] == 8 and t["untyped"] == 0 and t["over_1s"] == 0, t
    assert targets["config bombs"]["outcomes"] == {"CheckpointError": 8}
    assert set(targets["encode inputs"]["outcomes"]) == {"LimitExceededError"}
    assert r["peak_rss_mb"] - r["rss_before_mb"] < 1500  # nothing model- or image-sized was allocated
