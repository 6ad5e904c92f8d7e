"""`vqsim channels fit` on hand-made logs (ping, sequence numbers), and `vqsim channels` still listing presets."""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli import main

DATA = Path(__file__).resolve().parents[1] / "channels" / "data"


def test_channels_without_subcommand_still_lists_the_presets(capsys):
    assert main(["channels"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("name") and "bursty-4state" in out


def test_fit_a_ping_log_prints_table_netem_strings_verdict_and_writes_the_figure(tmp_path, capsys):
    fig = tmp_path / "fit.png"
    rc = main(["channels", "fit", str(DATA / "ping_linux.txt"), "--models", "bernoulli,gilbert", "--boot", "19",
               "--plot", str(fig)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ping trace, 20 packets, sequence numbers 1..20, 5 lost (25.000%)" in out
    assert "loss random 25%" in out                    # Bernoulli: 5 of 20
    assert "loss gemodel 26.67% 75% 100% 0%" in out     # 4 of 15 received→lost, 3 of 4 lost→received
    assert "verdict:" in out
    assert fig.stat().st_size > 10_000 and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_a_sequence_log_with_range(capsys):
    assert main(["channels", "fit", str(DATA / "seq_udp.csv"), "--seq-range", "0:14", "--models", "bernoulli",
                 "--boot", "19"]) == 0
    out = capsys.readouterr().out
    assert "seq trace, 15 packets, sequence numbers 0..14, 6 lost (40.000%)" in out
    assert "skipped line 13: '12,0.12' (cut last line)" in out


@pytest.mark.parametrize("argv,msg", [
    (["channels", "fit", str(DATA / "ping_garbled.txt")], "line 3: not a line of Linux or BSD ping output"),
    (["channels", "fit", str(DATA / "ping_linux.txt"), "--models", "ge,markov"], "unknown model family 'markov'"),
    (["channels", "fit", str(DATA / "seq_udp.csv"), "--seq-range", "0-14"], "--seq-range must look like FIRST:LAST"),
    (["channels", "fit", str(DATA / "no_such.log")], "no such trace file"),
    (["channels", "fit", str(DATA / "ping_linux.txt"), "--plot", "fit.jpg"], "--plot must end in .png, .pdf or .svg"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and len(err.strip().splitlines()) == 1
