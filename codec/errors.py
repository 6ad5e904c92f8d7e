"""Typed errors of the codec package (numpy-only; safe to import anywhere)."""


class VQSimError(Exception):
    """Base class of every error vqsim raises on purpose."""


class ParameterError(VQSimError, ValueError):
    """An argument, option, config value or input array is invalid (the caller's mistake).

    The message names the parameter, the value given and what is allowed,
    e.g. ``"loss rate p must be in [0, 1], got 1.5"``.
    """


class BitstreamError(VQSimError, ValueError):
    """A bitstream (or coded payload) is corrupt, truncated, foreign or inconsistent.

    The message names the reason, e.g. ``"bad magic b'PK' (not a vqsim bitstream)"``.
    """


class CheckpointError(VQSimError, ValueError):
    """A checkpoint file is missing, unreadable, or does not match the model.

    The message names the missing / unexpected / mismatched state_dict keys.
    """


class ModelNotFoundError(VQSimError, KeyError):
    """A model name is not in the registry and is not a path to a checkpoint."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def one_line(e: BaseException, *, with_type: bool = False, limit: int | None = None) -> str:
    """An exception as one line: the first line of its message (its type name when the message is empty).

    ``with_type`` prefixes ``Type: ``; ``limit`` cuts the line to that many characters (ending in "…").
    The one rule for every place that reports an error in a single line (the CLI, a sweep's failed trials).
    """
    text = str(e).strip().splitlines()
    if not text:
        line = type(e).__name__
    else:
        line = f"{type(e).__name__}: {text[0]}" if with_type else text[0]
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"
