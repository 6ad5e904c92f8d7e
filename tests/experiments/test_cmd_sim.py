"""``vqsim transmit`` / ``vqsim channels`` through the real CLI entry point (no torch)."""
import json

import numpy as np
import pytest

from experiments.cli import main


def rows(out):
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_transmit_random_map_with_fec_json(capsys):
    rc = main(["transmit", "--random", "16x24", "--codebook-size", "256", "--channel", "bernoulli:p=0.2",
               "--fec", "6,4", "--mtu", "60", "--seed", "3", "--json", "--images", "3"])
    assert rc == 0
    r = rows(capsys.readouterr().out)
    assert len(r) == 3 and [x["image_id"] for x in r] == [0, 1, 2]
    for x in r:
        assert x["num_indices"] == 16 * 24 and x["parity_packets"] > 0
        assert x["delivered"] + x["channel_lost"] == x["packets_sent"]


def test_transmit_is_deterministic(capsys):
    args = ["transmit", "--netem", "loss gemodel 10% 30%", "--mtu", "50", "--seed", "1", "--json",
            "--jitter", "normal:2"]
    main(args)
    a = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == a


def test_transmit_bit_preset_and_summary(capsys):
    assert main(["transmit", "--preset", "bits-bursty", "--inpacket-nsym", "8", "--mtu", "200"]) == 0
    out = capsys.readouterr().out
    assert "GilbertElliottBitError" in out and "RS" in out and "latency p50" in out


def test_transmit_bitstream(tmp_path, capsys):
    from codec.bitstream import encode_bitstream
    from codec.types import IndexMap

    m = IndexMap(np.random.default_rng(0).integers(0, 64, (6, 10)), 64, (96, 160))
    f = tmp_path / "x.vqb"
    f.write_bytes(encode_bitstream(m, coder="raw"))
    assert main(["transmit", "--bitstream", str(f), "--json", "--mtu", "20"]) == 0
    (row,) = rows(capsys.readouterr().out)
    assert row["num_indices"] == 60 and row["lost_indices"] == 0


def test_transmit_with_the_vandermonde_code_matches_cauchy_recovery(capsys):
    # both codes are MDS: the same losses leave the same data packets unrecovered, so the rows agree
    base = ["transmit", "--random", "16x24", "--channel", "bernoulli:p=0.25", "--mtu", "40", "--seed", "5",
            "--json", "--images", "4"]
    assert main(base + ["--fec", "6,4"]) == 0
    cauchy = rows(capsys.readouterr().out)
    assert main(base + ["--fec", "6,4,vandermonde"]) == 0
    vdm = rows(capsys.readouterr().out)
    assert sum(r["recovered_fec"] for r in vdm) > 0
    assert [(r["recovered_fec"], r["lost_indices"]) for r in vdm] == [
        (r["recovered_fec"], r["lost_indices"]) for r in cauchy
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--fec", "3"],
        ["--fec", "4,4"],
        ["--fec", "6,4,reed"],
        ["--fec", "6,4,x,y"],
        ["--random", "3y4"],
        ["--channel", "nope"],
        ["--channel", "bernoulli:p"],
        ["--jitter", "normal"],
        ["--mtu", "2"],
        ["--bit-channel", "bernoulli:p=0.1"],
        ["--images", "0"],
    ],
)
def test_transmit_bad_arguments_exit_2(args, capsys):
    assert main(["transmit", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqsim transmit: error:") and err.count("\n") == 1


def test_channels_lists_presets(capsys):
    from channels import PRESETS

    assert main(["channels"]) == 0
    out = capsys.readouterr().out
    for name, p in PRESETS.items():
        assert name in out
        if p.kind == "loss":
            assert f"{p.model.stationary_loss_rate:.4%}" in out


def test_a_closed_pipe_is_not_an_internal_error(tmp_path, monkeypatch, capsys):
    """`vqsim links | head -1`: the reader leaves early; vqsim stops quietly (status 141, as for SIGPIPE)."""
    import sys

    class ClosedPipe:  # stdout whose reader has gone: every write raises, as a real closed pipe does
        def __init__(self, f):
            self.f = f

        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.f.fileno()

    with open(tmp_path / "stdout", "w") as f:
        monkeypatch.setattr(sys, "stdout", ClosedPipe(f))
        assert main(["links"]) == 141
    assert "internal error" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--channel", ""], "names no channel model"),
        (["--netem", ""], "netem spec is empty"),
        (["--channel", "bernoulli:p=0.1,p=0.2"], "'p' is given twice"),
        (["--bit-channel", ""], "names no channel model"),
    ],
)
def test_empty_or_ambiguous_channel_is_refused(argv, match, capsys):
    """Issue 27: an empty --channel / --netem ran with no loss, a repeated parameter kept its last value."""
    from experiments.cli import main

    assert main(["transmit", "--random", "4x4", *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
