"""Durable storage of a results folder: atomic fsynced writes, quarantine of damaged parts, the result rows."""
from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from .errors import SweepError, reason_line, warn_stderr

__all__ = ["ResultStore", "read_results", "part_config_hash", "atomic_write_bytes", "fsync_dir", "make_dirs",
           "remove_stale_temps"]


_TMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
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


def make_dirs(folder: Path) -> None:
    """``mkdir -p folder``, fsyncing the parent of each folder it creates."""
    missing: list[Path] = []
    d = folder
    while not d.is_dir():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: temp file, fsync, rename onto ``path``, fsync of the folder.

    The one way the sweep writes files (parts, results, provenance, config, summary, cache, examples),
    so after a crash or a power loss every file is either its old or its new version, never a prefix.
    """
    path = Path(path)
    make_dirs(path.parent)
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
    fsync_dir(path.parent)


def remove_stale_temps(out: Path) -> None:
    """Delete the temp files a killed run left behind (call only while holding the folder's lock)."""
    for d in (out, out / "parts", out / "cache" / "encode"):
        if d.is_dir():
            for f in d.glob(f"{_TMP_PREFIX}*"):
                with contextlib.suppress(OSError):
                    f.unlink()


PART_HASH_KEY = b"vqsim.config_hash"
"""Parquet schema-metadata key of a part file: the config hash of the sweep that wrote it."""


def part_config_hash(f: Path) -> str | None:
    """The config hash a part file was written with (None: a part of an older vqsim, or unreadable)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(f).metadata or {}
    except Exception:  # noqa: BLE001 — unreadable parts are handled (quarantined) by ResultStore.read_part
        return None
    v = meta.get(PART_HASH_KEY)
    return v.decode("ascii", "replace") if v is not None else None


def _quarantine(path: Path, reason: str, log: Callable[[str], None], suffix: str = ".corrupt") -> None:
    """Rename an unreadable (``.corrupt``) or foreign (``.foreign``) part file aside (kept for inspection)
    and warn on one line."""
    dest = path.with_name(path.name + suffix)
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return  # moved aside meanwhile
    except OSError as e:
        log(f"warning: part file {path} is unreadable ({reason}) and could not be moved aside ({reason_line(e)}); "
            "skipping it, its trials will be recomputed")
        return
    fsync_dir(path.parent)
    if suffix == ".corrupt":
        log(
            f"warning: part file {path} is unreadable ({reason}); renamed to {dest.name}, its trials will be recomputed"
        )
    else:
        log(f"warning: part file {path} {reason}; renamed to {dest.name}, its rows are not merged")


def _with_decoder(df):
    """Rows written before decoder variants (no ``decoder`` column, or NaN there) were decoded plain."""
    if len(df) and "trial_id" in df.columns:
        if "decoder" not in df.columns:
            df.insert(list(df.columns).index("method_options") + 1 if "method_options" in df.columns
                      else len(df.columns), "decoder", "plain")
        else:
            df["decoder"] = df["decoder"].fillna("plain")
    return df


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

    Every part records the config hash of the sweep that wrote it (parquet schema metadata
    ``vqsim.config_hash``) besides its rows' trial ids. Given ``config_hash`` (and ``trial_ids``, the
    plan), a part written by another sweep, or holding a trial outside the plan (a part of an older
    vqsim, without the hash), is *foreign*: renamed ``<name>.foreign`` with a warning and not merged.
    """

    def __init__(
        self,
        folder: str | Path,
        log: Callable[[str], None] | None = None,
        *,
        config_hash: str | None = None,
        trial_ids: set[str] | None = None,
    ):
        self.folder = Path(folder)
        self.parts = self.folder / "parts"
        self.log = log or warn_stderr
        self.config_hash = config_hash
        self.trial_ids = trial_ids
        self._stamp = f"{time.time_ns():x}-{os.getpid()}"
        self._seq = 0

    def part_files(self) -> list[Path]:
        if self.parts.exists() and not self.parts.is_dir():
            raise SweepError(
                f"{self.parts} is not a folder (a results folder keeps its row chunks in parts/); move it aside"
            )
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.exists() else []

    def _foreign(self, f: Path, df) -> str | None:
        """Why part ``f`` (rows ``df``) belongs to another sweep, or None."""
        h = part_config_hash(f)
        if self.config_hash is not None and h is not None and h != self.config_hash:
            return f"was written by another sweep (config hash {h} ≠ {self.config_hash})"
        if self.trial_ids is not None:
            extra = sorted(set(df["trial_id"]) - self.trial_ids)
            if extra:
                return (
                    f"holds {len(extra)} trial(s) outside this sweep's plan (e.g. {extra[0]}), "
                    "so it belongs to another sweep"
                )
        return None

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
            _quarantine(f, reason_line(e), self.log)
            return None
        why = self._foreign(f, df)
        if why is not None:
            _quarantine(f, why, self.log, suffix=".foreign")
            return None
        return df

    def load(self):
        """All stored rows (deduplicated by trial id), as a DataFrame."""
        import pandas as pd

        frames = [self.read_part(f) for f in self.part_files()]
        frames = [f for f in frames if f is not None and len(f)]
        if not frames:
            return pd.DataFrame()
        df = _with_decoder(pd.concat(frames, ignore_index=True))
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
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._seq += 1
        path = self.parts / f"part-{self._stamp}-{self._seq:06d}.parquet"
        buf = io.BytesIO()
        table = pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False)
        if self.config_hash is not None:
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), PART_HASH_KEY: self.config_hash.encode("ascii")}
            )
        pq.write_table(table, buf)
        atomic_write_bytes(path, buf.getvalue())
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
        atomic_write_bytes(self.folder / "results.parquet", buf.getvalue())
        atomic_write_bytes(self.folder / "results.csv", df.to_csv(index=False).encode())
        return df


def read_results(folder: str | Path):
    """The rows of a results folder (results.parquet, else the chunks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder not found: {folder}")
    f = folder / "results.parquet"
    store = ResultStore(folder, config_hash=_provenance_hash(folder))
    has_parts = bool(store.part_files())
    cons = _read_consolidated(f, rebuild=has_parts)
    if has_parts:
        df = store.load()
        return _with_decoder(cons) if cons is not None and len(cons) == len(df) else df
    if cons is not None:
        return _with_decoder(cons)
    raise FileNotFoundError(f"no results in {folder} (expected results.parquet or parts/)")


def _provenance_hash(folder: Path) -> str | None:
    """The config hash provenance.json records (None when it is missing or unreadable)."""
    import json

    try:
        h = json.loads((folder / "provenance.json").read_text()).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None
    return h if isinstance(h, str) else None


def _read_consolidated(f: Path, rebuild: bool):
    """results.parquet, or None when absent.

    Unreadable: None with a warning if the parts can rebuild it, else SweepError.
    """
    import pandas as pd
    import pyarrow as pa

    try:
        return pd.read_parquet(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, pa.ArrowException) as e:
        if not rebuild:
            raise SweepError(
                f"{f} is unreadable ({reason_line(e)}) and there are no parts/ to rebuild it from"
            ) from None
        warn_stderr(f"warning: {f} is unreadable ({reason_line(e)}); using the rows of {f.parent / 'parts'}")
        return None
