"""Durable storage of a results folder: atomic fsynced writes, quarantine of damaged parts, the result rows."""
from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from .errors import SweepError, _reason, _warn_stderr

__all__ = ["ResultStore", "read_results"]


_TMP_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    """Make the creations / renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _make_dirs(folder: Path) -> None:
    """``mkdir -p folder``, fsyncing the parent of each folder it creates."""
    missing: list[Path] = []
    d = folder
    while not d.is_dir():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        _fsync_dir(d.parent)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: temp file, fsync, rename onto ``path``, fsync of the folder.

    The one way the sweep writes files (parts, results, provenance, config, summary, cache, examples),
    so after a crash or a power loss every file is either its old or its new version, never a prefix.
    """
    path = Path(path)
    _make_dirs(path.parent)
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _remove_stale_temps(out: Path) -> None:
    """Delete the temp files a killed run left behind (call only while holding the folder's lock)."""
    for d in (out, out / "parts", out / "cache" / "encode"):
        if d.is_dir():
            for f in d.glob(f"{_TMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    f.unlink()


def _quarantine(path: Path, reason: str, log: Callable[[str], None]) -> None:
    """Rename an unreadable part file to ``<name>.corrupt`` (kept for inspection) and warn on one line."""
    dest = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return  # moved aside meanwhile
    except OSError as e:
        log(f"warning: part file {path} is unreadable ({reason}) and could not be moved aside ({_reason(e)}); "
            "skipping it, its trials will be recomputed")
        return
    _fsync_dir(path.parent)
    log(f"warning: part file {path} is unreadable ({reason}); renamed to {dest.name}, its trials will be recomputed")


def _order_columns(df):
    """Parameters first (channel parameters ``ch_*`` after ``channel_params``), measures next, ``time_*`` last."""
    cols = list(df.columns)
    ch = [c for c in cols if c.startswith("ch_")]
    tm = [c for c in cols if c.startswith("time_")]
    rest = [c for c in cols if c not in ch and c not in tm]
    i = rest.index("channel_params") + 1 if "channel_params" in rest else len(rest)
    return df[rest[:i] + ch + rest[i:] + tm]


class ResultStore:
    """Rows of a results folder: ``parts/part-*.parquet`` chunks (atomic) → ``results.parquet`` / ``results.csv``.

    A part that cannot be read is quarantined (renamed ``<name>.corrupt``, one warning through ``log``,
    default stderr): its rows count as not done, so the next run recomputes exactly those trials.
    """

    def __init__(self, folder: str | Path, log: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"
        self.log = log or _warn_stderr
        self._stamp = f"{time.time_ns():x}-{os.getpid()}"
        self._seq = 0

    def part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.exists() else []

    def read_part(self, f: Path):
        """The rows of one part file, or None if it vanished or is unreadable (then it is quarantined)."""
        import pandas as pd
        import pyarrow as pa

        try:
            df = pd.read_parquet(f)
            if "trial_id" not in df.columns:
                raise ValueError("no trial_id column")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, pa.ArrowException) as e:
            _quarantine(f, _reason(e), self.log)
            return None
        return df

    def load(self):
        """All stored rows (deduplicated by trial id), as a DataFrame."""
        import pandas as pd

        frames = [self.read_part(f) for f in self.part_files()]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True)
        return df.drop_duplicates("trial_id", keep="first").reset_index(drop=True)

    def done_ids(self) -> set[str]:
        """Ids of the stored trials (whole parts are read, so a damaged one is found before the run, not after)."""
        df = self.load()
        return set(df["trial_id"].tolist()) if len(df) else set()

    def append(self, rows: list[dict]) -> Path | None:
        """Write rows as one new chunk (temp file, fsync, rename: a chunk is either complete or absent)."""
        if not rows:
            return None
        import pandas as pd

        self._seq += 1
        path = self.parts / f"part-{self._stamp}-{self._seq:06d}.parquet"
        buf = io.BytesIO()
        pd.DataFrame(rows).to_parquet(buf, index=False)
        _atomic_write_bytes(path, buf.getvalue())
        return path

    def consolidate(self, order: Mapping[str, int] | None = None):
        """Rewrite results.parquet and results.csv from the chunks (dedup; plan order when given)."""
        df = self.load()
        if len(df) and order is not None:
            pos = df["trial_id"].map(lambda t: order.get(t, len(order)))
            df = df.assign(_pos=pos).sort_values(["_pos", "trial_id"], kind="stable").drop(columns="_pos")
            df = df.reset_index(drop=True)
        df = _order_columns(df)
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        _atomic_write_bytes(self.folder / "results.parquet", buf.getvalue())
        _atomic_write_bytes(self.folder / "results.csv", df.to_csv(index=False).encode())
        return df


def read_results(folder: str | Path):
    """The rows of a results folder (results.parquet, else the chunks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder not found: {folder}")
    f = folder / "results.parquet"
    store = ResultStore(folder)
    has_parts = bool(store.part_files())
    cons = _read_consolidated(f, rebuild=has_parts)
    if has_parts:
        df = store.load()
        return cons if cons is not None and len(cons) == len(df) else df
    if cons is not None:
        return cons
    raise FileNotFoundError(f"no results in {folder} (expected results.parquet or parts/)")


def _read_consolidated(f: Path, rebuild: bool):
    """results.parquet, or None when absent; unreadable: None with a warning if the parts can rebuild it, else SweepError."""
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, pa.ArrowException) as e:
        if not rebuild:
            raise SweepError(f"{f} is unreadable ({_reason(e)}) and there are no parts/ to rebuild it from") from None
        _warn_stderr(f"warning: {f} is unreadable ({_reason(e)}); using the rows of {f.parent / 'parts'}")
        return None

