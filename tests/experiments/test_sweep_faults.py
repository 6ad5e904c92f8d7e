"""Sweeps that survive faults: a killed run, damaged part / cache files, a concurrent run, real Dask workers.

Every test compares the final rows with an uninterrupted run of the same config (``reference``), so
a fault that loses, duplicates or alters a trial fails it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from codec.errors import VQSimError
from experiments.sweep import (
    CACHE_VERSION,
    FolderLockedError,
    ResultStore,
    lock_folder,
    read_results,
    run_sweep,
    storage,
)

ROOT = Path(__file__).resolve().parents[2]


def quiet(*_a):
    pass


def det(df: pd.DataFrame) -> pd.DataFrame:
    """The deterministic part of a results table: no time_ columns, rows by trial id."""
    cols = [c for c in df.columns if not c.startswith("time_")]
    return df[cols].sort_values("trial_id").reset_index(drop=True)


def small(tiny_config) -> dict:
    cfg = tiny_config()
    cfg["codec"]["codebook_sizes"] = [16]
    cfg["images"]["limit"] = 1
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def reference(tiny_sweep):
    """One uninterrupted run of the tiny sweep (one part file per unit: flush_every_s = 0): the session's
    (``tiny_sweep``, also test_sweep's reference); every test here works on a copy of its folder."""
    return tiny_sweep


def copy_results(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def stored_ids(part: Path) -> set[str]:
    return set(pd.read_parquet(part, columns=["trial_id"])["trial_id"])


# --------------------------------------------------------------------------- (a) SIGKILL, then rerun
def test_sigkilled_cli_sweep_resumes_to_the_uninterrupted_rows(tmp_path, tiny_config, reference):
    cfg_file = write_config(tmp_path / "tiny.yaml", tiny_config())
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "sweep", str(cfg_file), "--out", str(out),
                             "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while len(list((out / "parts").glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no part files after 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    stored = ResultStore(out).load()
    assert 0 < len(stored) < reference.n_planned and stored["trial_id"].is_unique
    assert "end" not in json.loads((out / "provenance.json").read_text())["runs"][-1]  # killed mid-run
    # the kernel dropped the killed run's lock: the rerun takes it and finishes the rest
    res = run_sweep(tiny_config(), out, progress=False, log=quiet)
    assert res.complete and res.n_skipped == len(stored) and res.n_run == reference.n_planned - len(stored)
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)
    assert list(res.results["trial_id"]) == list(reference.results["trial_id"])
    runs = json.loads((out / "provenance.json").read_text())["runs"]
    assert len(runs) == 2 and runs[-1]["status"] == "complete"
    assert not [p for p in out.rglob(".tmp-*")]  # temp files of the killed run are swept away


# --------------------------------------------------------------------------- (b) damaged part files
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_unreadable_part_is_quarantined_by_every_reader(tmp_path, reference, damage):
    out = copy_results(reference.out, tmp_path / "res")
    part = ResultStore(out).part_files()[5]
    lost = stored_ids(part)
    data = part.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"not parquet " * 40}[damage]
    part.write_bytes(bad)
    warnings: list[str] = []
    ids = ResultStore(out, log=warnings.append).done_ids()
    assert ids == set(reference.results["trial_id"]) - lost
    assert not part.exists() and part.with_name(part.name + ".corrupt").read_bytes() == bad  # kept for inspection
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert str(part) in warnings[0] and "recomputed" in warnings[0]
    # the quarantined file is out of the way of later readers: no second warning, same rows
    again: list[str] = []
    assert len(ResultStore(out, log=again.append).load()) == len(ids) and not again
    assert set(read_results(out)["trial_id"]) == ids


def test_read_results_quarantines_too(tmp_path, reference, capsys):
    out = copy_results(reference.out, tmp_path / "res")
    part = ResultStore(out).part_files()[0]
    part.write_bytes(part.read_bytes()[:100])
    df = read_results(out)
    assert len(df) == reference.n_planned - 3
    err = capsys.readouterr().err
    assert f"part file {part}" in err and err.count("\n") == 1
    assert part.with_name(part.name + ".corrupt").exists()


def test_truncated_part_is_recomputed_to_the_uninterrupted_rows(tmp_path, tiny_config, reference):
    out = copy_results(reference.out, tmp_path / "res")
    part = ResultStore(out).part_files()[7]
    lost = stored_ids(part)
    part.write_bytes(part.read_bytes()[:-200])
    log: list[str] = []
    res = run_sweep(tiny_config(), out, progress=False, log=log.append)
    assert res.complete and res.n_run == len(lost) and res.n_skipped == reference.n_planned - len(lost)
    assert part.with_name(part.name + ".corrupt").exists() and not part.exists()
    assert sum("warning: part file" in line and part.name in line for line in log) == 1
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)
    assert list(res.results["trial_id"]) == list(reference.results["trial_id"])


# --------------------------------------------------------------------------- (c) damaged cache entries
def _truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])


def _inconsistent(f: Path) -> None:
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["indices"] = arrays["indices"] + 1000  # outside the codebook
    with open(f, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("damage", [_truncate, _inconsistent], ids=["truncated", "inconsistent"])
def test_damaged_cache_entry_is_recomputed(tmp_path, tiny_config, reference, damage):
    out = copy_results(reference.out, tmp_path / "res")
    df = reference.results
    row = df[(df["codebook_size"] == 16) & (df["image"] == "kodim01")].iloc[0]
    entry = next((out / "cache" / "encode").glob(f"*_S16_*_{row['image_hash']}_{CACHE_VERSION}.npz"))
    with np.load(entry) as z:
        before = {k: z[k] for k in z.files}
    damage(entry)
    # forget one unit of that (size, image) so the sweep needs the encoding again
    part = next(p for p in ResultStore(out).part_files() if row["unit_id"] in set(pd.read_parquet(p)["unit_id"]))
    part.unlink()
    log: list[str] = []
    res = run_sweep(tiny_config(), out, progress=False, log=log.append)
    assert res.complete and res.n_run == 3
    # (the tiny maps travel in < 8 packets at S=8: that guard-rail warning is not about the cache)
    warnings = [line for line in log if line.startswith("warning:") and "data packets" not in line]
    assert len(warnings) == 1 and f"encode cache entry {entry}" in warnings[0] and "encoded again" in warnings[0]
    with np.load(entry) as z:  # rewritten, equal to the original entry
        assert set(z.files) == set(before)
        for k in before:
            np.testing.assert_array_equal(z[k], before[k])
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)


# --------------------------------------------------------------------------- (d) one run per folder
def test_second_run_into_a_locked_folder_fails_at_once(tmp_path, tiny_config, capsys):
    from experiments.cli import main

    cfg_file = write_config(tmp_path / "c.yaml", small(tiny_config))
    out = tmp_path / "busy"
    # the first "run" is another process holding the folder's lock
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from experiments.sweep import lock_folder\n"
                               "with lock_folder(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
         str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        assert main(["sweep", str(cfg_file), "--out", str(out), "--quiet"]) == 2
        assert time.perf_counter() - t0 < 30  # no waiting for the lock
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(out) in err and f"pid {holder.pid}" in err and "in use" in err
        with pytest.raises(FolderLockedError, match=f"pid {holder.pid}") as e:
            run_sweep(small(tiny_config), out, progress=False, log=quiet)
        assert isinstance(e.value, VQSimError)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing touched
        # SIGKILL: the kernel releases the holder's lock
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with lock_folder(out) as lock:
            assert json.loads(lock.read_text())["pid"] == os.getpid()
            with pytest.raises(FolderLockedError, match=f"pid {os.getpid()}"):
                with lock_folder(out):
                    pass
        assert lock.read_text() == ""  # released: no stale record
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


# --------------------------------------------------------------------------- fsync on every write
def test_every_file_goes_through_the_fsyncing_atomic_writer(tmp_path, tiny_config, monkeypatch):
    import stat

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    written: list[Path] = []
    real_write = storage.atomic_write_bytes

    def write(path, data):
        n = len(synced)
        real_write(path, data)
        new = synced[n:]  # folders made (parents fsynced), the data fsynced, then the rename (folder fsynced)
        assert new.count("file") == 1 and new[-2:] == ["file", "dir"], new
        written.append(Path(path))

    monkeypatch.setattr(os, "fsync", fsync)
    for name, mod in list(sys.modules.items()):  # every sweep module that writes files holds the one writer
        if name.startswith("experiments.sweep.") and getattr(mod, "atomic_write_bytes", None) is real_write:
            monkeypatch.setattr(mod, "atomic_write_bytes", write)
    out = tmp_path / "res"
    res = run_sweep(small(tiny_config), out, progress=False, log=quiet)
    assert res.complete
    files = {p for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert files and files <= set(written), sorted(str(p.relative_to(out)) for p in files - set(written))
    kinds = {p.relative_to(out).parts[0] for p in files}
    assert {"parts", "cache", "examples", "results.parquet", "results.csv", "provenance.json", "config.yaml",
            "summary.txt"} <= kinds


# --------------------------------------------------------------------------- (e) real Dask worker processes
@pytest.mark.slow
def test_dask_worker_processes_give_the_thread_rows(tmp_path, tiny_config):
    pytest.importorskip("dask.distributed")
    cfg = small(tiny_config)
    cfg["seeds"] = [0]  # 3 units × 3 methods: most of the time is the workers' start (torch, LPIPS)
    cfg["channels"] = cfg["channels"][:2]
    threads = run_sweep(cfg, tmp_path / "threads", workers=2, progress=False, log=quiet)
    res = run_sweep(cfg, tmp_path / "procs", executor="dask", workers=2, progress=False, log=quiet,
                    dask_cluster_kwargs={"processes": True, "n_workers": 2, "threads_per_worker": 1})
    assert res.complete and res.n_run == threads.n_run == len(threads.results)
    pd.testing.assert_frame_equal(det(res.results), det(threads.results), check_exact=True)
    assert list(res.results["trial_id"]) == list(threads.results["trial_id"])


# --------------------------------------------------------------------------- (e) issue 27: foreign parts, provenance
def _rewrite_part(src: Path, dst: Path, config_hash: str | None, **changes) -> None:
    """Copy a part file, changing columns (``changes``: column → function of the column) and its recorded hash."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.read_parquet(src)
    for col, fn in changes.items():
        df[col] = fn(df[col])
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != storage.PART_HASH_KEY}
    if config_hash is not None:
        meta[storage.PART_HASH_KEY] = config_hash.encode()
    pq.write_table(table.replace_schema_metadata(meta), dst)


@pytest.mark.parametrize("stamp", ["other-hash", "no-hash"])
def test_stray_part_of_another_sweep_is_quarantined_not_merged(tmp_path, tiny_config, reference, stamp):
    """A part from another sweep (a seed not in the config) was merged: 388 rows for 384 planned, 'complete'."""
    out = copy_results(reference.out, tmp_path / "res")
    src = ResultStore(out).part_files()[0]
    stray = src.with_name("part-0-stray.parquet")
    _rewrite_part(src, stray, "0123456789abcdef" if stamp == "other-hash" else None,
                  seed=lambda s: s + 1000, trial_id=lambda t: t + "-other")
    log: list[str] = []
    res = run_sweep(tiny_config(), out, progress=False, log=log.append)
    assert res.complete and res.n_run == 0 and len(res.results) == reference.n_planned
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)
    assert not stray.exists() and stray.with_name(stray.name + ".foreign").exists()  # kept, set aside
    assert sum("part-0-stray.parquet" in line and "not merged" in line for line in log) == 1
    assert set(read_results(out)["seed"]) == set(reference.results["seed"])


@pytest.mark.parametrize("damage", ["missing", "garbage", "legacy-parts"])
def test_damaged_provenance_does_not_block_resume(tmp_path, tiny_config, reference, damage):
    """A damaged or missing provenance.json blocked resume; the only way on was --overwrite (every row deleted)."""
    out = copy_results(reference.out, tmp_path / "res")
    parts = ResultStore(out).part_files()
    lost = stored_ids(parts[3])
    parts[3].unlink()  # some work left to do
    if damage == "missing":
        (out / "provenance.json").unlink()
    else:
        (out / "provenance.json").write_bytes(b"{\x00 not json")
    if damage == "legacy-parts":  # parts of an older vqsim record no config hash: matched by trial ids
        for f in ResultStore(out).part_files():
            _rewrite_part(f, f, None)
    log: list[str] = []
    res = run_sweep(tiny_config(), out, progress=False, log=log.append)
    assert res.complete and res.n_run == len(lost) and res.n_skipped == reference.n_planned - len(lost)
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config_hash"] == reference_hash(out) and prov["runs"][-1]["status"] == "complete"
    assert sum("provenance.json" in line and "rebuilt" in line for line in log) == 1
    if damage != "missing":
        assert (out / "provenance.json.corrupt").read_bytes() == b"{\x00 not json"


def reference_hash(out: Path) -> str:
    return storage.part_config_hash(ResultStore(out).part_files()[0]) or json.loads(
        (out / "provenance.json").read_text())["config_hash"]


def test_parts_folder_that_is_a_file_is_one_clear_error(tmp_path, reference, capsys):
    """`vqsim report` on a folder whose parts/ is a file was an internal error (KeyError 'image')."""
    from experiments.cli import main

    out = copy_results(reference.out, tmp_path / "res")
    shutil.rmtree(out / "parts")
    (out / "parts").write_text("oops")
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "parts is not a folder" in err and "internal error" not in err


def test_sigterm_records_the_end_of_the_run_and_resume_is_exact(tmp_path, tiny_config, reference):
    """Issue 27: SIGTERM left no end record in provenance.json (resume was right)."""
    cfg_file = write_config(tmp_path / "tiny.yaml", tiny_config())
    out = tmp_path / "termed"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "sweep", str(cfg_file), "--out", str(out),
                             "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while len(list((out / "parts").glob("part-*.parquet"))) < 3:
            assert proc.poll() is None, f"the sweep ended before it could be stopped: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no part files after 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    last = json.loads((out / "provenance.json").read_text())["runs"][-1]
    assert last["status"] == "interrupted" and last.get("signal") == "SIGTERM" and "end" in last
    assert 0 < last["trials_run"] < reference.n_planned
    res = run_sweep(tiny_config(), out, progress=False, log=quiet)
    assert res.complete and res.n_skipped == last["trials_run"]
    pd.testing.assert_frame_equal(det(res.results), det(reference.results), check_exact=True)
