"""Replay of a recorded packet-loss trace."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from codec.checks import check_count
from codec.errors import ParameterError

from . import stats
from .base import LossModel


class TraceExhaustedError(ParameterError):
    """A non-looping trace was asked for more packets than it has left."""


def load_losses(source: Any) -> tuple[np.ndarray, str | None]:
    """Read a 0/1 trace from a path (.npy or text) or an array-like; returns (bool array, path)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"Trace: no such trace file: {str(path)!r}")
        if path.is_dir():
            raise IsADirectoryError(f"Trace: {str(path)!r} is a directory, not a trace file")
        if not path.is_file():
            raise ParameterError(f"Trace: {str(path)!r} is not a regular file (a device, pipe or socket); "
                                 "give a .npy or text file of 0/1 values")
        if path.suffix.lower() == ".npy":
            try:
                arr = np.load(path, allow_pickle=False)
            except Exception as exc:  # corrupt or pickled .npy
                raise ParameterError(f"Trace: cannot read {str(path)!r} as a .npy array: {exc}") from exc
            return validate_losses(arr, str(path)), str(path)
        try:
            text = path.read_text(encoding="utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise ParameterError(f"Trace: {str(path)!r} is neither a .npy array nor a text file of 0/1 values "
                                 f"(byte {exc.start} is not UTF-8)") from None
        lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
        tokens = np.array(" ".join(lines).replace(",", " ").split())
        if tokens.size == 0:
            raise ParameterError(f"Trace: trace file {str(path)!r} contains no values")
        bad = ~np.isin(tokens, ("0", "1"))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ParameterError(f"Trace: value #{i} of {str(path)!r} is {tokens[i]!r}; "
                                 "a trace holds only 0 (received) and 1 (lost)")
        return tokens == "1", str(path)
    return validate_losses(np.asarray(source), None), None


def validate_losses(arr: np.ndarray, where: str | None) -> np.ndarray:
    """A 1-D, non-empty 0/1 (or bool) array as a bool array; ``where`` names its file in the error."""
    src = f" in {where!r}" if where else ""
    if arr.ndim != 1:
        raise ParameterError(f"Trace: a loss trace must be 1-D, got shape {arr.shape}{src}")
    if arr.size == 0:
        raise ParameterError(f"Trace: the loss trace is empty{src}")
    if arr.dtype == bool:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.number):
        raise ParameterError(f"Trace: a loss trace must hold numbers 0/1 or booleans, got dtype {arr.dtype}{src}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ParameterError(f"Trace: value #{i} is {arr[i]!r}{src}; a trace holds only 0 (received) and 1 (lost)")
    lost: np.ndarray = arr == 1
    return lost


class Trace(LossModel):
    """Replays a recorded loss sequence (1/True = lost, 0/False = received).

    Sources: a text file with whitespace- (or comma-) separated 0/1 values
    (``#`` starts a comment), a ``.npy`` file (loaded with
    ``allow_pickle=False``), or any 1-D array-like of 0/1 / bool.

    State: the position (int, 0-based) of the next packet to replay.  ``None``
    starts at 0, or, with ``random_start=True``, at a position drawn uniformly
    from ``rng`` (the only use of ``rng``; the replay itself is deterministic).

    ``loop=True`` wraps around at the end; ``loop=False`` raises
    :class:`TraceExhaustedError` (a ``ValueError``) when asked for more
    packets than remain — never returns a short or padded mask.

    Statistics are measured on the trace: ``stationary_loss_rate`` = fraction
    of ones; ``mean_burst_length`` = mean run of consecutive ones (runs across
    the wrap-around joined when looping; 0.0 without losses; inf for an
    all-loss looping trace).
    """

    def __init__(self, source: Any, loop: bool = True, random_start: bool = False) -> None:
        if not isinstance(loop, bool):
            raise ParameterError(f"Trace: loop must be a bool, got {loop!r}")
        if not isinstance(random_start, bool):
            raise ParameterError(f"Trace: random_start must be a bool, got {random_start!r}")
        losses, path = load_losses(source)
        losses.flags.writeable = False
        self._losses = losses
        self._path = path
        self._loop = loop
        self._random_start = random_start

    @property
    def losses(self) -> np.ndarray:
        """The trace (read-only bool array)."""
        return self._losses

    @property
    def path(self) -> str | None:
        """Source file, if any."""
        return self._path

    @property
    def loop(self) -> bool:
        return self._loop

    def __len__(self) -> int:
        return int(self._losses.size)

    def __repr__(self) -> str:
        src = repr(self._path) if self._path else "<array>"
        return f"Trace({src}, len={len(self)}, loop={self._loop}, loss_rate={self.stationary_loss_rate:.4g})"

    @property
    def stationary_loss_rate(self) -> float:
        return stats.loss_rate(self._losses)

    @property
    def mean_burst_length(self) -> float:
        return stats.mean_burst_length(self._losses, circular=self._loop)

    def sample(self, n: int, rng: np.random.Generator | None = None, state: Any = None) -> tuple[np.ndarray, int]:
        """Next ``n`` packets of the trace and the new position."""
        n = check_count(n)
        L = self._losses.size
        if state is None:
            if self._random_start:
                if not isinstance(rng, np.random.Generator):
                    raise TypeError("Trace(random_start=True) needs a numpy.random.Generator to draw the start")
                pos = int(rng.integers(L))
            else:
                pos = 0
        else:
            if isinstance(state, bool) or not isinstance(state, (int, np.integer)):
                raise ParameterError(f"Trace: state must be None or an int position, got {state!r}")
            pos = int(state)
            upper = L - 1 if self._loop else L
            if not 0 <= pos <= upper:
                raise ParameterError(f"Trace: position {pos} out of range [0, {upper}]")
        if not self._loop:
            if pos + n > L:
                raise TraceExhaustedError(
                    f"Trace: asked for {n} packets at position {pos} but only {L - pos} remain "
                    f"(trace length {L}, loop=False); use loop=True to wrap around"
                )
            return self._losses[pos : pos + n].copy(), pos + n
        if pos + n <= L:
            out = self._losses[pos : pos + n].copy()
        else:
            out = self._losses[(pos + np.arange(n, dtype=np.int64)) % L]
        return out, (pos + n) % L
