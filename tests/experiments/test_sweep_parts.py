"""Parts of the sweep package on their own: the progress bar and the index-loss record's columns."""
from __future__ import annotations

import io

import numpy as np

from experiments.sweep.progress import progress_bar
from experiments.sweep.transmit import IndexLossRecord


def test_progress_bar_writes_whole_lines_off_a_terminal():
    buf = io.StringIO()
    bar = progress_bar(100, stream=buf)
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and 2 <= len(lines) <= 12  # one line per ~10 %, no repeats
    assert len(set(lines)) == len(lines)
    assert "100/100 trials" in lines[-1] and "100.0%" in lines[-1] and "ETA" in lines[-1]


def test_progress_bar_disabled_is_silent():
    buf = io.StringIO()
    bar = progress_bar(10, stream=buf, enabled=False)
    bar.update(10)
    bar.close()
    assert buf.getvalue() == ""


def test_index_loss_record_has_the_network_record_columns():
    from codec.types import IndexMap
    from sim.network import LinkConfig, NetworkSimulator
    from sim.packet import REASONS

    rng = np.random.default_rng(0)
    m = IndexMap(rng.integers(0, 64, size=(8, 8)).astype(np.int32), 64, (64, 64), "test/64")
    rec = NetworkSimulator(link=LinkConfig(), rng=rng).send(m, mtu=64)
    net_cols = set(rec.to_row()) - {"image_id", "start_s"}
    lost = np.array([1, 1, 0, 1, 0, 0, 0, 1], bool)
    row = IndexLossRecord(int(lost.sum()), lost.size, np.array([2, 1, 1]), 1234, tuple(REASONS)).to_row()
    assert net_cols <= set(row)
    assert row["loss_ratio"] == 0.5 and row["num_bursts"] == 3 and row["max_burst"] == 2
    assert row["total_bits"] == row["payload_bits"] == 1234 and row["packets_sent"] == 0
    assert np.isnan(row["latency_p50"]) and np.isnan(row["completion_s"])


def test_the_configured_erasure_code_reaches_the_transmitter():
    from experiments.config import fec_label, validate_config
    from experiments.sweep.transmit import erasure_fec

    cfg = validate_config({"channels": [{"model": "bernoulli", "p": [0.1]}],
                           "fec": ["none", {"n": 6, "k": 4}, {"n": 6, "k": 4, "code": "vandermonde"}]})
    codes = [None if erasure_fec(f) is None else (erasure_fec(f).n, erasure_fec(f).k, erasure_fec(f).code)
             for f in cfg["fec"]]
    assert codes == [None, (6, 4, "cauchy"), (6, 4, "vandermonde")]
    assert [fec_label(f) for f in cfg["fec"]] == ["none", "RS(6,4)", "RS(6,4,vandermonde)"]


def test_progress_bar_off_a_terminal_is_never_forced_to_redraw():
    """tqdm's monitor thread resets miniters to 1 once a bar has not printed for maxinterval seconds, which
    turned a slow sweep's log into one line per unit; off a terminal the bar must not be forced."""
    bar = progress_bar(1000, stream=io.StringIO())
    assert bar.maxinterval == float("inf") and bar.miniters == 100
    bar.close()
