"""Sweep errors, and exceptions / warnings as one short line."""
from __future__ import annotations

import sys

from codec.errors import VQSimError

__all__ = ["SweepError", "FolderLockedError"]


class SweepError(VQSimError, RuntimeError):
    """A sweep cannot run (bad results folder, a failing trial, executor problem)."""


class FolderLockedError(SweepError):
    """The results folder is locked by another running sweep (the message names the folder and its pid)."""


def _warn_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _reason(e: BaseException, limit: int = 160) -> str:
    """An exception as one short line: ``Type: first line of the message``."""
    text = str(e).strip().splitlines()
    line = f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"

