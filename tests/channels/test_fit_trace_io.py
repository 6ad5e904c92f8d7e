"""Trace readers (channels.trace_io) on hand-made logs: Linux and macOS ping, sequence-number logs, 0/1 traces."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from channels.trace_io import detect_format, parse_ping, parse_seq, read_trace
from codec.errors import ParameterError

DATA = Path(__file__).parent / "data"


def lost_at(n: int, idx: list[int]) -> np.ndarray:
    x = np.zeros(n, dtype=bool)
    x[idx] = True
    return x


def test_linux_ping_counts_timeouts_errors_trailing_loss_duplicates_and_late_replies():
    tr = read_trace(DATA / "ping_linux.txt")
    assert tr.fmt == "ping" and (tr.first_seq, tr.last_seq) == (1, 20)
    # lost: 4, 5 (no answer yet), 9 (Destination Host Unreachable), 17, 20 (sent, per the summary, never answered)
    np.testing.assert_array_equal(tr.losses, lost_at(20, [3, 4, 8, 16, 19]))
    assert (tr.duplicates, tr.reordered, tr.max_reorder) == (1, 1, 1)  # 12 (DUP!), 14 after 15
    assert any("ICMP error" in n for n in tr.notes)


def test_macos_ping_starts_at_zero_and_skips_the_icmp_error_dump():
    tr = read_trace(DATA / "ping_macos.txt")
    assert (tr.first_seq, tr.last_seq) == (0, 11)
    np.testing.assert_array_equal(tr.losses, lost_at(12, [2, 3, 5, 9, 11]))
    assert (tr.duplicates, tr.reordered) == (1, 1)
    assert tr.notes == ()  # 7 received, as the summary says


def test_a_cut_last_line_is_skipped_and_reported_and_without_summary_the_end_is_the_last_seq():
    tr = read_trace(DATA / "ping_linux_cut.txt")
    np.testing.assert_array_equal(tr.losses, lost_at(5, [2]))
    assert tr.skipped == ((6, "[1733561205.1063", "cut last line"),)
    assert any("packets transmitted" in n for n in tr.notes)
    assert "skipped line 6" in tr.summary()


def test_a_truncated_line_inside_a_ping_log_is_an_error_naming_line_and_text():
    with pytest.raises(ParameterError, match=r"ping_garbled.txt, line 3: .*'64 bytes from 10.0.0.1: icmp_se'"):
        read_trace(DATA / "ping_garbled.txt")


def test_ping_icmp_seq_wraparound_is_undone():
    lines = ["PING h (192.0.2.1) 56(84) bytes of data."]
    seqs = [65533, 65534, 65535, 0, 2]  # 1 is lost after the wrap
    lines += [f"64 bytes from 192.0.2.1: icmp_seq={s} ttl=64 time=1.0 ms" for s in seqs]
    tr = parse_ping("\n".join(lines) + "\n")
    assert (tr.first_seq, tr.last_seq) == (1, 65538)  # Linux numbers from 1: 1..65532 never seen either
    # 65532 lost, 65533..65535 and 0 (= 65536) received, 1 (= 65537) lost, 2 (= 65538) received
    np.testing.assert_array_equal(tr.losses[-7:], [True, False, False, False, False, True, False])


def test_two_ping_runs_in_one_file_are_refused():
    text = "PING a (192.0.2.1): 56 data bytes\n64 bytes from 192.0.2.1: icmp_seq=0 ttl=64 time=1 ms\n" * 2
    with pytest.raises(ParameterError, match="line 3: a second ping run"):
        parse_ping(text, "two.txt")


def test_sequence_log_with_header_reordering_duplicates_and_cut_last_line():
    tr = read_trace(DATA / "seq_udp.csv")
    assert tr.fmt == "seq" and (tr.first_seq, tr.last_seq) == (0, 11)
    np.testing.assert_array_equal(tr.losses, lost_at(12, [3, 8, 9]))
    assert (tr.duplicates, tr.reordered, tr.max_reorder) == (1, 1, 1)
    assert tr.skipped[0][:2] == (13, "12,0.12")


def test_sequence_log_range_adds_the_unseen_ends_and_rejects_numbers_outside_it():
    tr = read_trace(DATA / "seq_udp.csv", seq_range=(0, 14))
    np.testing.assert_array_equal(tr.losses, lost_at(15, [3, 8, 9, 12, 13, 14]))
    with pytest.raises(ParameterError, match=r"line 12: sequence number 11 lies outside seq_range 0..10"):
        read_trace(DATA / "seq_udp.csv", seq_range=(0, 10))


def test_sequence_log_bad_line_is_named_with_its_number_and_text():
    with pytest.raises(ParameterError, match=r"seq_bad.txt, line 5: '10x2' is not a sequence number"):
        read_trace(DATA / "seq_bad.txt")


def test_sequence_log_short_line_inside_the_file_is_called_truncated():
    text = "seq,t\n1,0.1\n2\n3,0.3\n"
    with pytest.raises(ParameterError, match=r"line 3: 1 fields where the header has 2 \(a truncated line\?\): '2'"):
        parse_seq(text, "s.csv")


def test_binary_trace_accepts_digits_words_and_bit_strings():
    tr = read_trace(DATA / "trace_words.txt")
    np.testing.assert_array_equal(tr.losses, [0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0])
    assert tr.fmt == "binary"


def test_binary_trace_bad_token_names_the_line(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("0 1 0\n0 2 0\n")
    with pytest.raises(ParameterError, match=r"t.txt, line 2: '2' is not 0/1"):
        read_trace(p, fmt="binary")


def test_format_detection_and_npy(tmp_path):
    assert detect_format("0 1 1 0\n") == "binary"
    assert detect_format("7\n8\n10\n") == "seq"
    assert detect_format("64 bytes from x: icmp_seq=1 ttl=1 time=1 ms\n") == "ping"
    np.save(tmp_path / "t.npy", np.array([0, 1, 1, 0], dtype=np.int8))
    np.testing.assert_array_equal(read_trace(tmp_path / "t.npy").losses, [0, 1, 1, 0])


def test_missing_file_and_unknown_format():
    with pytest.raises(FileNotFoundError):
        read_trace(DATA / "nope.txt")
    with pytest.raises(ParameterError, match="format must be one of"):
        read_trace(DATA / "trace_words.txt", fmt="pcap")
