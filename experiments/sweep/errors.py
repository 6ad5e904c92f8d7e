"""Sweep errors, and exceptions / warnings as one short line."""
from __future__ import annotations

import sys

from codec.errors import VQSimError, one_line

__all__ = ["SweepError", "FolderLockedError", "reason_line", "warn_stderr"]


class SweepError(VQSimError, RuntimeError):
    """A sweep cannot run (bad results folder, a failing trial, executor problem)."""


class FolderLockedError(SweepError):
    """The results folder is locked by another running sweep (the message names the folder and its pid)."""


def warn_stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def reason_line(e: BaseException, limit: int = 160) -> str:
    """An exception as one short line: ``Type: first line of the message`` (``codec.errors.one_line``)."""
    return one_line(e, with_type=True, limit=limit)

