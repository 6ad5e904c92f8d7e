"""The sweep's progress bar on stderr, with ETA (a ``tqdm`` bar).

On a terminal the line is redrawn in place (at most every 0.1 s); on any other stream (a log file, a
pipe) it is written as whole lines, one per ~10 % of the trials, so that logs stay readable.
"""
from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["progress_bar", "restart_clock"]

BAR_FORMAT = "{desc} [{bar:28}] {n_fmt}/{total_fmt} trials {percentage:5.1f}%  elapsed {elapsed}  ETA {remaining}"


class _Lines:
    """A text stream for tqdm that turns its in-place redraws (``\\r`` + line) into whole lines (a repeat of
    the last line, as the final redraw at ``close()``, is left out)."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self._last = ""

    def write(self, s: str) -> int:
        line = s.lstrip("\r").rstrip()
        if line and line != self._last:
            self.stream.write(line + "\n")
            self._last = line
        return len(s)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int, *, stream: TextIO | None = None, enabled: bool = True, label: str = "sweep") -> tqdm:
    """A bar over ``total`` trials (``update(n)`` after n more, ``close()`` at the end) writing to ``stream``
    (default stderr); ``enabled=False`` writes nothing."""
    stream = stream if stream is not None else sys.stderr
    total = max(0, int(total))
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return tqdm(total=total, desc=label, file=stream if tty else _Lines(stream), disable=not enabled,
                bar_format=BAR_FORMAT, ascii=".#", leave=True, smoothing=0,  # ETA: mean rate since restart_clock
                mininterval=0.1 if tty else 0.0, miniters=None if tty else max(1, total // 10),
                # off a terminal: no forced redraw after 10 s (tqdm's monitor would reset miniters to 1)
                maxinterval=10.0 if tty else float("inf"))


def restart_clock(bar: tqdm) -> None:
    """Time the ETA from now on: the trials counted so far become the bar's ``initial`` and the elapsed time
    restarts.  Called after the first unit, so that model loading and warm-up (seconds to minutes) do not
    inflate the first ETA (a 12-minute sweep's first ETA said 52 minutes)."""
    if getattr(bar, "disable", False):
        return
    now = bar._time()
    bar.initial = bar.n
    bar.start_t = bar.last_print_t = now
    bar.last_print_n = bar.n

