"""Reading measured loss traces: 0/1 traces, received-sequence-number logs and ``ping`` output (numpy only).

Each reader returns a :class:`LossTrace`: the loss sequence in sending
order (True = lost) plus what was found on the way (duplicates, reordered
packets, skipped lines).  A line that does not parse raises
``ParameterError`` naming the file, the line number and the line's text —
except the file's last line when it has no line end and does not parse: a
log copied while the measurement was still running ends in a cut line, so
that line is dropped and reported in ``skipped``.

Formats (``fmt``; ``"auto"`` picks one from the text):

* ``"binary"``: tokens ``0``/``1`` or ``received``/``lost`` (any case),
  separated by white space or commas, or runs of 0/1 characters
  (``0010011``); ``#`` starts a comment; or a ``.npy`` array of 0/1 / bool
  (:class:`channels.Trace`'s reader).  A file of 0/1 tokens only is read as
  binary by ``fmt="auto"``, so a sequence-number log holding only the
  numbers 0, 1, 10, 11, … needs ``fmt="seq"``.
* ``"seq"``: one received packet per line, in arrival order; the sequence
  number is the first field, or the column named ``seq``/``seqno``/
  ``sequence``/``id`` of a header line (fields split on white space or
  commas; ``#`` comments).  Missing numbers between the first and last (or
  within ``seq_range``) are losses; a number seen again is a duplicate
  (counted, dropped); a number smaller than one already seen arrived late
  (reordered: counted, and *received*, its largest displacement reported).
  Sequence numbers are taken as already unwrapped integers.
* ``"ping"``: the output of iputils ``ping`` (Linux: ``PING h (a) 56(84)
  bytes of data.``, ``icmp_seq=`` from 1, ``-D`` timestamps, ``-O``'s ``no
  answer yet``, ``From … icmp_seq=N Destination Host Unreachable``) or of
  BSD / macOS ``ping`` (``PING h (a): 56 data bytes``, ``icmp_seq=`` from 0,
  ``Request timeout for icmp_seq N``, ICMP error dumps).  A reply marks its
  ``icmp_seq`` received; ``(DUP!)`` replies are duplicates; 16-bit
  wrap-around of ``icmp_seq`` is undone.  The packets sent are those from
  the first sequence number of the ping flavour (1 / 0) to the count in the
  ``N packets transmitted`` line; without that line, to the largest
  ``icmp_seq`` seen (trailing losses are then invisible, and said so).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codec.errors import ParameterError

FORMATS = ("auto", "binary", "seq", "ping")
MAX_SPAN = 100_000_000
"""Most packets a sequence-number or ping log may span (a corrupt number would otherwise allocate without bound)."""

SEQ_COLUMNS = ("seq", "seqno", "seq_no", "sequence", "sequence_number", "id")


@dataclass(frozen=True)
class LossTrace:
    """A measured loss trace and the bookkeeping of how it was read.

    Attributes:
        losses: bool (n,), True = lost, in sending order (read-only).
        fmt: ``"binary"``, ``"seq"`` or ``"ping"``.  source: file name, if any.
        first_seq, last_seq: sequence numbers of packet 0 and n-1 (None for binary traces).
        duplicates: receptions of an already received number (dropped).
        reordered: packets that arrived after a higher number had (kept as received).
        max_reorder: largest such displacement, in sequence numbers.
        skipped: (line number, text, reason) of lines left out (a cut last line).
        notes: other facts the user should know (ICMP errors, a summary that disagrees, …).
    """

    losses: np.ndarray
    fmt: str
    source: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    duplicates: int = 0
    reordered: int = 0
    max_reorder: int = 0
    skipped: tuple[tuple[int, str, str], ...] = field(default=())
    notes: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        return int(self.losses.size)

    @property
    def n_lost(self) -> int:
        return int(self.losses.sum())

    @property
    def loss_rate(self) -> float:
        return self.n_lost / self.n if self.n else 0.0

    def summary(self) -> str:
        """A few lines: packets, losses, and everything the reader corrected or left out."""
        src = self.source or "<text>"
        seqs = f", sequence numbers {self.first_seq}..{self.last_seq}" if self.first_seq is not None else ""
        out = [f"{src}: {self.fmt} trace, {self.n} packets{seqs}, {self.n_lost} lost ({self.loss_rate:.3%})"]
        if self.fmt != "binary":
            out.append(f"  duplicates dropped {self.duplicates}; reordered (late, kept) {self.reordered}"
                       + (f", largest displacement {self.max_reorder}" if self.reordered else ""))
        out += [f"  skipped line {ln}: {text!r} ({why})" for ln, text, why in self.skipped]
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)


def _fail(name: str, lineno: int, text: str, why: str) -> ParameterError:
    return ParameterError(f"{name}, line {lineno}: {why}: {text.strip()!r}")


def _lines(text: str) -> tuple[list[str], bool]:
    """Lines of ``text`` and whether the last one is cut (no line end)."""
    lines = text.splitlines()
    return lines, bool(text) and not text.endswith(("\n", "\r"))


def _finish(name: str, seqs: np.ndarray, lines_of: np.ndarray, received_mask: np.ndarray | None,
            lo: int, hi: int) -> tuple[np.ndarray, int, int, int]:
    """Loss array over [lo, hi] from the received numbers in arrival order; (losses, dups, reordered, max disp)."""
    span = hi - lo + 1
    if span > MAX_SPAN:
        i = int(np.argmax(seqs)) if seqs.size else 0
        raise _fail(name, int(lines_of[i]) if seqs.size else 0, "",
                    f"the sequence numbers span {span} packets (more than {MAX_SPAN}); is a number corrupt?")
    if received_mask is None:
        received_mask = np.ones(seqs.size, dtype=bool)
    r = seqs[received_mask]
    _, first_idx = np.unique(r, return_index=True)
    dups = int(r.size - first_idx.size)
    first = np.zeros(r.size, dtype=bool)
    first[first_idx] = True
    u = r[first]  # first arrivals, in arrival order
    reordered, disp = 0, 0
    if u.size > 1:
        before = np.maximum.accumulate(u)[:-1]
        late = u[1:] < before
        reordered = int(late.sum())
        disp = int((before[late] - u[1:][late]).max()) if reordered else 0
    losses = np.ones(span, dtype=bool)
    losses[u - lo] = False
    return losses, dups, reordered, disp


# --------------------------------------------------------------------------- binary
_BIN = {"0": False, "1": True, "received": False, "lost": True}
_BITS = re.compile(r"[01]+")


def parse_binary(text: str, name: str = "<text>") -> LossTrace:
    """0/1 (received/lost) tokens; see the module docstring."""
    lines, cut = _lines(text)
    out: list[bool] = []
    skipped = []
    for i, line in enumerate(lines, 1):
        body = line.split("#", 1)[0]
        toks = body.replace(",", " ").split()
        vals: list[bool | None] = []
        for t in toks:
            v = _BIN.get(t.lower())
            if v is None and _BITS.fullmatch(t):  # a run of 0/1 characters, e.g. 0010011
                vals.extend(c == "1" for c in t)
            else:
                vals.append(v)
        if any(v is None for v in vals):
            bad = next(t for t in toks if _BIN.get(t.lower()) is None and not _BITS.fullmatch(t))
            if cut and i == len(lines):
                skipped.append((i, line, "cut last line"))
                continue
            raise _fail(name, i, line, f"{bad!r} is not 0/1 or received/lost")
        out.extend(v for v in vals if v is not None)
    if not out:
        raise ParameterError(f"{name}: the trace holds no values")
    losses = np.array(out, dtype=bool)
    losses.flags.writeable = False
    return LossTrace(losses, "binary", name, skipped=tuple(skipped))


# --------------------------------------------------------------------------- sequence numbers
_INT = re.compile(r"[0-9]{1,18}")


def parse_seq(text: str, name: str = "<text>", seq_range: tuple[int, int] | None = None) -> LossTrace:
    """Received sequence numbers, one per line, in arrival order; see the module docstring."""
    lines, cut = _lines(text)
    col, ncols = 0, None
    seqs: list[int] = []
    where: list[int] = []
    skipped: list[tuple[int, str, str]] = []
    header_seen = False
    for i, line in enumerate(lines, 1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        fields = [f for f in re.split(r"[\s,;]+", body) if f]
        if not header_seen and not seqs and not _INT.fullmatch(fields[0]):
            names = [f.lower() for f in fields]
            if not all(re.fullmatch(r"[a-z_][a-z0-9_.\-()/]*", f) for f in names):
                raise _fail(name, i, line, "neither a header nor a line starting with a sequence number")
            hits = [j for j, f in enumerate(names) if f in SEQ_COLUMNS]
            if not hits:
                raise _fail(name, i, line, f"the header names no sequence column ({', '.join(SEQ_COLUMNS)})")
            col, ncols, header_seen = hits[0], len(fields), True
            continue
        last = cut and i == len(lines)
        if ncols is not None and len(fields) < ncols:
            if last:
                skipped.append((i, line, "cut last line"))
                continue
            raise _fail(name, i, line, f"{len(fields)} fields where the header has {ncols} (a truncated line?)")
        tok = fields[col] if col < len(fields) else ""
        if not _INT.fullmatch(tok):
            if last:
                skipped.append((i, line, "cut last line"))
                continue
            raise _fail(name, i, line, f"{tok!r} is not a sequence number (a non-negative integer below 10^18)")
        seqs.append(int(tok))
        where.append(i)
    if not seqs:
        raise ParameterError(f"{name}: no sequence numbers found")
    s = np.array(seqs, dtype=np.int64)
    ln = np.array(where, dtype=np.int64)
    lo, hi, notes = _seq_bounds(name, s, ln, lines, seq_range)
    losses, dups, reord, disp = _finish(name, s, ln, None, lo, hi)
    losses.flags.writeable = False
    return LossTrace(losses, "seq", name, lo, hi, dups, reord, disp, tuple(skipped), tuple(notes))


def _seq_bounds(name: str, s: np.ndarray, ln: np.ndarray, lines: list[str],
                seq_range: tuple[int, int] | None) -> tuple[int, int, list[str]]:
    """First and last sequence number of the trace (``seq_range`` if given, checked), and notes."""
    lo, hi = int(s.min()), int(s.max())
    notes = []
    if seq_range is not None:
        a, b = (int(v) for v in seq_range)
        if a > b:
            raise ParameterError(f"{name}: seq_range must be (first, last) with first <= last, got {seq_range}")
        if lo < a or hi > b:
            bad = int(np.flatnonzero((s < a) | (s > b))[0])
            raise _fail(name, int(ln[bad]), lines[int(ln[bad]) - 1],
                        f"sequence number {int(s[bad])} lies outside seq_range {a}..{b}")
        lo, hi = a, b
    else:
        notes.append("packets before the first and after the last number received are unknown (give seq_range)")
    return lo, hi, notes


# --------------------------------------------------------------------------- ping
_TS = r"(?:\[\d+(?:\.\d+)?\]\s+)?"
_REPLY = re.compile(_TS + r"\d+ bytes from .+?[:,]\s*icmp_seq=(\d+)\s+(?:ttl|hlim)=\d+"
                    r"(?:\s+time[=<]\s*[0-9.]+\s*ms)?(\s+\(DUP!\))?(?:\s+\(BAD CHECKSUM!\)|\s+\(truncated\))?\s*$")
_TIMEOUT = re.compile(r"Request timeout for icmp_seq[= ](\d+)\s*$")
_NOANSWER = re.compile(_TS + r"no answer yet for icmp_seq=(\d+)\s*$")
_ICMP_ERR = re.compile(_TS + r"From \S+.*?\bicmp_seq=(\d+)\s+\S.*$")
_HEADER = re.compile(r"PING6?[\s(].*$")
_IGNORED = [
    re.compile(r"---\s.*\sping6? statistics\s*---\s*$"),
    re.compile(r"(?:rtt|round-trip) min/avg/max/(?:mdev|stddev|std-dev) = .*$"),
    re.compile(r"ping6?: .*$"),                                      # sendto / sendmsg errors, warnings
    re.compile(r"(?:WARNING|Warning): .*$"),
    re.compile(r"\d+ bytes from \S+: (?:Destination|Time to live|Time exceeded|Redirect|Source Quench|Parameter "
               r"problem|Frag needed|Communication (?:administratively )?prohibited|Packet filtered)\b.*$",
               re.I),                                                # BSD ICMP error (no icmp_seq)
    re.compile(r"Vr HL TOS\s+Len\s+ID.*$"),                         # BSD ICMP error dump header
    re.compile(r"\s*\d+\s+\d+\s+[0-9a-f]{2}\s+[0-9a-f]{4}\s.*$"),   # and its hex line
    re.compile(r"pipe \d+\s*$"),
]
_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received(.*)$")


@dataclass
class _PingScan:
    """What the lines of one ping run say: each icmp_seq seen (unwrapped), where, and the summary."""

    seqs: list[int] = field(default_factory=list)
    where: list[int] = field(default_factory=list)  # line number of each seq
    is_reply: list[bool] = field(default_factory=list)
    style: str | None = None  # "linux", "bsd" or "?" from the header line
    transmitted: int | None = None
    summary_rx: int | None = None
    explicit_dup: int = 0
    errors: int = 0
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    offset: int = 0
    top: int = -1

    def add(self, raw: int, lineno: int, reply: bool) -> None:
        v = raw + self.offset
        if self.top >= 0 and v < self.top - 32768:   # 16-bit icmp_seq wrapped
            self.offset += 65536
            v += 65536
        self.top = max(self.top, v)
        self.seqs.append(v)
        self.where.append(lineno)
        self.is_reply.append(reply)


def _scan_ping(text: str, name: str) -> _PingScan:
    """Classify every line of ping output (see the module docstring); an unknown line is an error."""
    lines, cut = _lines(text)
    scan = _PingScan()
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        m = _REPLY.fullmatch(s)
        if m:
            scan.add(int(m.group(1)), i, True)
            scan.explicit_dup += bool(m.group(2))
            continue
        m = _TIMEOUT.fullmatch(s) or _NOANSWER.fullmatch(s)
        if m:
            scan.add(int(m.group(1)), i, False)
            continue
        m = _ICMP_ERR.fullmatch(s)
        if m:
            scan.add(int(m.group(1)), i, False)
            scan.errors += 1
            continue
        if _HEADER.fullmatch(s):
            if scan.style is not None:
                raise _fail(name, i, line, "a second ping run starts here; give one run per file")
            scan.style = ("linux" if "bytes of data" in s
                          else "bsd" if "data bytes" in s or s.startswith("PING6(") else "?")
            continue
        m = _SUMMARY.fullmatch(s)
        if m:
            scan.transmitted, scan.summary_rx = int(m.group(1)), int(m.group(2))
            continue
        if any(p.fullmatch(s) for p in _IGNORED):
            continue
        if cut and i == len(lines):
            scan.skipped.append((i, line, "cut last line"))
            continue
        raise _fail(name, i, line, "not a line of Linux or BSD ping output")
    return scan


def parse_ping(text: str, name: str = "<text>") -> LossTrace:
    """Output of Linux (iputils) or BSD / macOS ``ping``; see the module docstring."""
    scan = _scan_ping(text, name)
    seqs, where, is_reply, style = scan.seqs, scan.where, scan.is_reply, scan.style
    transmitted, summary_rx, explicit_dup, errors, skipped = (scan.transmitted, scan.summary_rx, scan.explicit_dup,
                                                              scan.errors, scan.skipped)
    if not seqs and not transmitted:
        raise ParameterError(f"{name}: no icmp_seq found: is this the output of ping?")
    s_arr = np.array(seqs, dtype=np.int64)
    base = {"linux": 1, "bsd": 0}.get(style or "?", int(s_arr.min()) if s_arr.size else 0)
    notes = []
    if s_arr.size and s_arr.min() < base:
        base = int(s_arr.min())
    if transmitted is not None:
        hi = base + transmitted - 1
        if s_arr.size and s_arr.max() > hi:
            hi = int(s_arr.max())
            notes.append(f"icmp_seq up to {hi} seen but the summary says {transmitted} transmitted; using {hi}")
    else:
        hi = int(s_arr.max())
        notes.append("no 'packets transmitted' line: losses after the last icmp_seq seen are unknown")
    if hi < base:
        raise ParameterError(f"{name}: the ping summary reports 0 packets transmitted")
    reply = np.array(is_reply, dtype=bool)
    losses, dups, reord, disp = _finish(name, s_arr, np.array(where, dtype=np.int64), reply, base, hi)
    if errors:
        notes.append(f"{errors} ICMP error line(s) (e.g. Destination Host Unreachable) count as losses")
    if explicit_dup != dups:
        notes.append(f"{explicit_dup} replies marked (DUP!), {dups} repeated icmp_seq found")
    if summary_rx is not None and summary_rx != int((~losses).sum()):
        notes.append(f"the summary says {summary_rx} received, the reply lines give {int((~losses).sum())}")
    losses.flags.writeable = False
    return LossTrace(losses, "ping", name, base, hi, dups, reord, disp, tuple(skipped), tuple(notes))


# --------------------------------------------------------------------------- entry point
def detect_format(text: str) -> str:
    """``"ping"`` if the text looks like ping output, ``"binary"`` if every token is 0/1/received/lost, else ``"seq"``.
    """
    head = text[:65536]
    if re.search(r"^\s*PING6?[\s(]|icmp_seq", head, re.M):
        return "ping"
    toks = re.sub(r"#[^\n]*", "", head).replace(",", " ").split()
    cut = not head.endswith(("\n", "\r")) and len(toks) > 1  # a cut last token does not decide
    if toks and all(t.lower() in _BIN or _BITS.fullmatch(t) for t in (toks[:-1] if cut else toks)):
        return "binary"
    return "seq"


def read_trace(source: Any, fmt: str = "auto", seq_range: tuple[int, int] | None = None) -> LossTrace:
    """Read a loss trace from a file path (text or ``.npy``) or a 0/1 array-like.

    Args:
        source: path, or an array-like of 0/1 / bool (then ``fmt`` must be ``auto`` or ``binary``).
        fmt: one of :data:`FORMATS`.
        seq_range: ``(first, last)`` sequence numbers sent, for ``seq`` logs (else first/last received).

    Raises:
        FileNotFoundError: no such file.  ParameterError: a line that does not parse (its number and text),
        an unknown format, an empty trace.
    """
    if fmt not in FORMATS:
        raise ParameterError(f"trace format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not isinstance(source, (str, os.PathLike)):
        if fmt not in ("auto", "binary"):
            raise ParameterError(f"an in-memory trace is a 0/1 array; format {fmt!r} needs a file")
        from .trace import validate_losses

        losses = validate_losses(np.asarray(source), None)
        losses.flags.writeable = False
        return LossTrace(losses, "binary")
    path = Path(source)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a trace file")
    if not path.is_file():
        raise FileNotFoundError(f"no such trace file: {str(path)!r}")
    if path.suffix.lower() == ".npy":
        from .trace import load_losses

        losses, _ = load_losses(path)
        losses.flags.writeable = False
        return LossTrace(losses, "binary", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ParameterError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    kind = detect_format(text) if fmt == "auto" else fmt
    if kind == "ping":
        return parse_ping(text, str(path))
    if kind == "binary":
        return parse_binary(text, str(path))
    return parse_seq(text, str(path), seq_range)
