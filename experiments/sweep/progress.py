"""The sweep's progress bar on stderr, with ETA."""
from __future__ import annotations

import math
import sys
import time

__all__ = ["Progress"]


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, s = divmod(r, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """A one-line progress bar with ETA on stderr (redrawn with \\r on a TTY, else a line every ~10 %)."""

    def __init__(self, total: int, *, stream=None, enabled: bool = True, width: int = 28, label: str = "sweep"):
        self.total = max(0, int(total))
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.label = label
        self.t0 = time.perf_counter()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_pct = -1

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        frac = self.done / self.total if self.total else 1.0
        eta = el * (1 - frac) / frac if frac > 0 else math.inf
        fill = int(round(self.width * frac))
        return (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {self.done}/{self.total} trials "
                f"{100 * frac:5.1f}%  elapsed {_fmt_time(el)}  ETA {_fmt_time(eta)}")

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        else:
            pct = int(100 * self.done / self.total) // 10 if self.total else 10
            if pct != self._last_pct:
                self._last_pct = pct
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()

