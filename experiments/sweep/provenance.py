"""Provenance of a results folder: git / package / device info, provenance.json, the folder's lock and checks."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import FolderLockedError, SweepError, reason_line
from .storage import atomic_write_bytes, fsync_dir, make_dirs, remove_stale_temps

__all__ = ["lock_folder", "REPO_ROOT", "read_provenance", "write_provenance", "prepare_folder", "write_yaml",
           "device_info", "git_info", "package_versions", "utc_now"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "torch", "torchvision", "lpips", "simpy", "reedsolo",
             "matplotlib", "scikit-image", "pyyaml", "pillow", "tqdm", "dask", "distributed")


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = None
    if commit:
        try:
            r = subprocess.run(["git", "--no-optional-locks", "diff-index", "--quiet", "HEAD", "--"], cwd=REPO_ROOT,
                               capture_output=True, timeout=5)
            dirty = r.returncode != 0
        except (OSError, subprocess.SubprocessError):
            pass
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for p in _PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def device_info(cfg: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    d = {"torch_cuda_available": torch.cuda.is_available(), "codec_device": cfg["codec"]["device"],
         "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        d["cuda_device"] = torch.cuda.get_device_name(0)
        d["cuda_version"] = torch.version.cuda
    return d


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")



def write_yaml(path: Path, obj: Any) -> None:
    import yaml

    atomic_write_bytes(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True).encode())


def _lock_holder(fd: int) -> str:
    """Who holds a lock, from its lock file's record: ``pid N on HOST since START`` (or ``pid unknown``)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "pid unknown"
    return f"pid {info['pid']} on {info.get('host', '?')} since {info.get('start', '?')}"


@contextlib.contextmanager
def lock_folder(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of a results folder (``fcntl.flock`` on ``<out>/.lock``) for a ``with`` block.

    Non-blocking: if another run holds it, raises :class:`FolderLockedError` at once, naming the folder and
    the holder's pid (the lock file records pid, host and start time of the holder).  The kernel drops
    the lock when the holding process exits, however it exits, so a run killed by SIGKILL blocks nothing.
    Yields the lock file's path.
    """
    import fcntl

    out = Path(out)
    make_dirs(out)
    path = out / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderLockedError(f"results folder {out} is in use by another sweep ({_lock_holder(fd)}); wait for "
                                    "it to finish or use another --out") from None
        except OSError as e:
            raise SweepError(f"cannot lock results folder {out} ({reason_line(e)})") from None
        record = json.dumps({"pid": os.getpid(), "host": platform.node(), "start": utc_now()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # still holding it: nobody reads a stale record
    finally:
        os.close(fd)  # releases the lock


def read_provenance(out: Path) -> tuple[dict | None, str | None]:
    """(old provenance or None, why it could not be read or None)."""
    try:
        old = json.loads((out / "provenance.json").read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, reason_line(e)
    return (old, None) if isinstance(old, dict) else (None, "not a JSON object")


def prepare_folder(out: Path, cfg: dict, chash: str, overwrite: bool, planned: set[str] | None = None,
                    log=None) -> dict | None:
    """Check an existing results folder belongs to this sweep; returns its old provenance (or None).

    A missing or damaged ``provenance.json`` next to intact parts does not block a resume when the
    parts prove they are this sweep's: each records the config hash it was written with (or, parts
    of an older vqsim, only trial ids of this sweep's plan ``planned``). The damaged file is kept as
    ``provenance.json.corrupt`` and a new one is written from the config and the parts; no row is lost.

    Call it holding the folder's lock (it deletes stale temp files, and with ``overwrite`` the old results).
    """
    from .storage import ResultStore, part_config_hash

    remove_stale_temps(out)
    old, why = read_provenance(out)
    parts = ResultStore(out).part_files()
    has_rows = bool(parts)
    if has_rows and not overwrite and (why is not None or old is None):
        hashes = {part_config_hash(f) for f in parts}
        # another sweep's stray parts (other hashes) are set aside by the ResultStore afterwards
        ours = chash in hashes or (hashes == {None} and planned is not None and _legacy_ids(parts, hashes) <= planned)
        if not ours:
            state = f"is unreadable ({why})" if why is not None else "is missing"
            raise SweepError(f"results folder {out} has rows but its provenance.json {state} and its parts do not "
                             "show they belong to this sweep; use another --out, or --overwrite to start again")
        if why is not None:
            with contextlib.suppress(OSError):
                os.replace(out / "provenance.json", out / "provenance.json.corrupt")
        (log or _warn)(f"warning: provenance.json of {out} {'is unreadable (' + why + ')' if why else 'is missing'}; "
                       f"its {len(parts)} part file(s) belong to this sweep (config hash {chash}), so it is rebuilt "
                       "from the config and the parts and the run resumes"
                       + ("; the damaged file is kept as provenance.json.corrupt" if why else ""))
        return {"sweep": cfg["name"], "config_hash": chash, "created": utc_now(), "runs": [],
                "rebuilt": {"reason": why or "missing", "parts": len(parts)}}
    if has_rows and not overwrite:
        assert old is not None  # the branch above handled a missing or unreadable provenance.json
        if old.get("config_hash") != chash:
            raise SweepError(
                f"results folder {out} holds a different sweep "
                f"(config hash {old.get('config_hash') if old else 'unknown'}"
                f" ≠ {chash}: the config, the codec weights or the images changed); use another --out, or --overwrite "
                "to delete its results and start again"
            )
    if overwrite:
        for sub in ("parts", "examples", "plots"):
            shutil.rmtree(out / sub, ignore_errors=True)
        for f in ("results.parquet", "results.csv", "summary.txt", "provenance.json"):
            with contextlib.suppress(FileNotFoundError):
                (out / f).unlink()
        fsync_dir(out)
        old = None
    return old


def _legacy_ids(parts: list[Path], hashes: set) -> set[str]:
    """Trial ids of the parts that record no config hash (written by an older vqsim); unreadable ones skipped."""
    import pandas as pd

    from .storage import part_config_hash

    ids: set[str] = set()
    if None not in hashes:
        return ids
    for f in parts:
        if part_config_hash(f) is None:
            with contextlib.suppress(Exception):
                ids |= set(pd.read_parquet(f, columns=["trial_id"])["trial_id"])
    return ids


def _warn(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)


def write_provenance(out: Path, prov: Mapping[str, Any]) -> None:
    atomic_write_bytes(out / "provenance.json", json.dumps(prov, indent=2, default=str).encode())
