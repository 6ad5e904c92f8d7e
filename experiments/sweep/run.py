"""Run (or resume) a sweep into a results folder, and its summary table."""
from __future__ import annotations

import contextlib
import copy
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..config import ConfigError, check_resources, codec_sizes, config_hash, expand_channels, load_config, validate_config
from .context import SweepInputs
from .encode_cache import prepare_encodings
from .errors import _warn_stderr
from .executors import EXECUTORS, make_executor, torch_threads
from .plan import Unit, plan_units
from .progress import progress_bar
from .provenance import (_device_info, _git_info, _now, _prepare_folder, _versions, _write_provenance, _write_yaml,
                         lock_folder)
from .sources import load_images
from .storage import ResultStore, _atomic_write_bytes
from .trial import UnitResult

__all__ = ["SweepOutcome", "run_sweep", "summary_table"]


def summary_table(df, metric: str | None = None, max_rows: int = 60) -> str:
    """Mean of the main metric per (channel family, nominal loss, FEC) × concealment method, as text.

    With several methods, followed by :func:`experiments.paired.paired_table`: each method's
    paired difference (vs the loss-free reconstruction) to the best baseline, with 95 % intervals.
    """
    if df is None or not len(df):
        return "(no results)"
    metric = metric or next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns), None)
    if metric is None:
        return "(no metric columns)"
    d = df.copy()
    d["loss"] = [f"{L:.4f}" if np.isfinite(L) else f"ber {B:.1e}" if np.isfinite(B) else "-"
                 for L, B in zip(d["loss_rate_nominal"], d["ber_nominal"])]
    idx = ["channel_family", "loss", "fec"]
    if d["codebook_size"].nunique() > 1:
        idx.insert(0, "codebook_size")
    pk = d[d["channel_kind"] != "index"]
    idx += [c for c in ("mtu", "interleave", "coder") if pk[c].nunique() > 1]
    t = d.pivot_table(index=idx, columns="method", values=metric, aggfunc="mean")
    methods = [m for m in dict.fromkeys(df["method"]) if m in t.columns]
    t = t[methods]
    t.columns.name = None
    text = t.to_string(float_format=lambda v: f"{v:.4f}", max_rows=max_rows)
    text = f"mean {metric} (rows: {', '.join(idx)}; columns: concealment method; n = {len(df)} trials)\n{text}"
    paired_metric = f"{metric}_vs_lossfree"
    if df["method"].nunique() > 1 and paired_metric in df.columns and "unit_id" in df.columns:
        from ..paired import paired_table

        text += "\n\n" + paired_table(df, paired_metric, max_rows=max_rows)
    return text


class SweepTerminated(KeyboardInterrupt):
    """SIGTERM arrived during a sweep (raised in the main thread so the run's cleanup and end record run)."""


@contextlib.contextmanager
def _sigterm_unwinds(run_info: dict) -> Iterator[None]:
    """While inside, SIGTERM raises :class:`SweepTerminated` (main thread only; the old handler is restored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        run_info["signal"] = "SIGTERM"
        raise SweepTerminated("terminated by SIGTERM")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@dataclass
class SweepOutcome:
    """What ``run_sweep`` did: the folder, the consolidated rows, trials run / skipped, notes, wall time."""

    out: Path
    results: Any
    n_planned: int
    n_run: int
    n_skipped: int
    complete: bool
    notes: list[str]
    wall_s: float


def _resolve(config: str | Path | Mapping[str, Any]) -> tuple[dict, list[str]]:
    raw = load_config(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    cfg = validate_config(raw)
    notes = check_resources(cfg)
    return cfg, notes


def run_sweep(
    config: str | Path | Mapping[str, Any],
    out: str | Path | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    max_trials: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    dask_cluster_kwargs: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> SweepOutcome:
    """Run (or resume) a sweep.

    Args:
        config: a YAML path, a bundled config name, or a raw config dict.
        out: results folder (default ``results/<name>``).
        workers: parallel workers (local: threads of this process sharing the models; dask: LocalCluster
            worker processes, one thread each).
        executor: "local" or "dask".
        scheduler: dask scheduler address (default: a LocalCluster).
        max_trials: stop submitting work once this many new trials are written (the rest stays pending).
        overwrite: delete the folder's previous results first.
        progress: draw the progress bar on stderr.
        log: where to print notes and warnings (default stderr).
        on_chunk: called as ``on_chunk(trials written this run, trials pending)`` after each chunk is stored.
        dask_cluster_kwargs: extra LocalCluster arguments (e.g. ``processes=False`` for tests).
        command: the command line, for the provenance.

    The folder is locked for the whole run (:func:`lock_folder`).  Damaged part files are quarantined and
    damaged cache entries deleted (one warning each through ``log``); their work is redone.

    Raises ConfigError (bad config, before any work), FolderLockedError (another run uses the folder),
    SweepError.
    """
    t_start = time.perf_counter()
    log = log or _warn_stderr
    if executor not in EXECUTORS:
        raise ConfigError(f"executor: unknown value {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer ≥ 1, got {workers!r}")
    if max_trials is not None and max_trials < 1:
        raise ConfigError(f"max_trials must be ≥ 1, got {max_trials}")
    if scheduler and executor != "dask":
        raise ConfigError("--scheduler only applies to --executor dask")
    cfg, notes = _resolve(config)
    for n in notes:
        log(f"note: {n}")
    images = load_images(cfg)
    cfg["images"]["resolved"] = [{"name": im.name, "hash": im.hash, "size": list(im.pixels.shape[:2])} for im in images]
    points = expand_channels(cfg["channels"])
    units = plan_units(cfg, images, points)
    chash = config_hash(cfg)
    out = Path(out) if out is not None else Path("results") / cfg["name"]
    order = {tid: i for i, tid in enumerate(t for u in units for _, t in u.trials)}
    with lock_folder(out):
        old_prov = _prepare_folder(out, cfg, chash, overwrite, planned=set(order), log=log)
        _write_yaml(out / "config.yaml", cfg)

        # parts carry the config hash and their trial ids: another sweep's part is set aside, never merged
        store = ResultStore(out, log=log, config_hash=chash, trial_ids=set(order))
        done = store.done_ids()
        n_planned = len(order)
        pending = [u.pending(done) for u in units]
        pending = [u for u in pending if u.trials]
        n_pending = sum(len(u.trials) for u in pending)
        n_skipped = n_planned - n_pending

        run_info = {"start": _now(), "command": command or " ".join(sys.argv), "executor": executor,
                    "workers": workers, "scheduler": scheduler, "max_trials": max_trials,
                    "trials_planned": n_planned, "trials_already_done": n_skipped, "host": platform.node(),
                    "pid": os.getpid()}
        prov = old_prov or {"sweep": cfg["name"], "config_hash": chash, "created": run_info["start"], "runs": []}
        prov.update({"git": _git_info(), "packages": _versions(), "python": sys.version.split()[0],
                     "platform": platform.platform(), "device": _device_info(cfg), "seeds": cfg["seeds"],
                     "codec": {k: cfg["codec"][k] for k in ("name", "path", "sha256", "K", "codebook_sizes", "coder")},
                     "images": cfg["images"]["resolved"], "config_hash": chash})
        prov.setdefault("runs", []).append(run_info)
        _write_provenance(out, prov)

        log(f"sweep {cfg['name']!r}: {n_planned} trials in {len(units)} units ({len(images)} images, "
            f"{len(points)} channel points, {len(codec_sizes(cfg))} codebook size(s), {len(cfg['seeds'])} seed(s), "
            f"{len(cfg['concealment']['methods'])} method(s)); {n_skipped} already done, {n_pending} to run -> {out}")

        n_run = 0
        status = "complete"
        if pending:
            # The one place the sweep's process sets torch's thread count: the config's execution.torch_threads
            # for the encodings and every local trial (CPU results depend on it), restored when the run ends.
            # SIGTERM (kill, a scheduler's time limit) unwinds like Ctrl-C, so the run's end is recorded.
            with torch_threads(cfg["execution"]["torch_threads"]), _sigterm_unwinds(run_info):
                need = {(u.params["codebook_size"], u.params["image_hash"]) for u in pending}
                imgs = [im for im in images if any(h == im.hash for _, h in need)]
                encoded = prepare_encodings(cfg, imgs, out / "cache" / "encode", log)
                inputs = SweepInputs(f"{chash}-{os.getpid()}-{time.time_ns()}", cfg,
                                     {im.hash: im.pixels for im in imgs}, encoded)

                def feed() -> Iterator[Unit]:
                    """The pending units, handed out lazily until max_trials trials have been submitted."""
                    submitted = 0
                    for u in pending:
                        if max_trials is not None and submitted >= max_trials:
                            return
                        submitted += len(u.trials)
                        yield u

                bar = progress_bar(n_pending if max_trials is None else min(n_pending, max_trials), enabled=progress)
                results: Iterator[UnitResult] | None = None
                buf: list[dict] = []
                last_flush = last_cons = time.perf_counter()
                flush_s = cfg["execution"]["flush_every_s"]
                cons_s = cfg["execution"]["consolidate_every_s"]

                def flush() -> None:
                    nonlocal buf, last_flush, n_run
                    if buf:
                        store.append(buf)
                        n_run += len(buf)
                        buf = []
                    last_flush = time.perf_counter()
                    if on_chunk is not None:
                        on_chunk(n_run, n_pending - n_run)

                try:
                    results = make_executor(executor, inputs, workers, scheduler, dask_cluster_kwargs).run(feed())
                    for res in results:
                        for rel, data in res.files.items():
                            f = out / rel
                            if not f.exists() or not rel.endswith(("original.png", "lossfree.png")):
                                _atomic_write_bytes(f, data)
                        buf.extend(res.rows)
                        bar.update(len(res.rows))
                        now = time.perf_counter()
                        if now - last_flush >= flush_s:
                            flush()
                        if now - last_cons >= cons_s:
                            store.consolidate(order)
                            last_cons = time.perf_counter()
                    flush()
                except BaseException:
                    status = "interrupted"
                    with contextlib.suppress(Exception):
                        if buf:
                            store.append(buf)
                            n_run += len(buf)
                            buf = []
                    raise
                finally:
                    bar.close()
                    if results is not None:
                        results.close()  # on any exit: stop the workers before the final consolidation
                    df = store.consolidate(order)
                    run_info.update({"end": _now(), "trials_run": n_run, "status": status,
                                     "wall_s": round(time.perf_counter() - t_start, 3)})
                    _write_provenance(out, prov)
        else:
            df = store.consolidate(order)
            run_info.update({"end": _now(), "trials_run": 0, "status": status,
                             "wall_s": round(time.perf_counter() - t_start, 3)})
            _write_provenance(out, prov)
        complete = len(df) >= n_planned and set(order).issubset(set(df["trial_id"])) if len(df) else n_planned == 0
        if not complete and status == "complete":
            run_info["status"] = "partial"
            _write_provenance(out, prov)
        text = summary_table(df)
        _atomic_write_bytes(out / "summary.txt", (text + "\n").encode())
    return SweepOutcome(out, df, n_planned, n_run, n_skipped, bool(complete), notes, time.perf_counter() - t_start)
