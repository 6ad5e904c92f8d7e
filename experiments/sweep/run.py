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
from typing import Any, Callable, Generator, Iterator, Mapping, Sequence

import numpy as np

from ..config import (
    ConfigError,
    check_resources,
    codec_sizes,
    config_hash,
    expand_channels,
    load_config,
    validate_config,
)
from .context import SweepInputs
from .encode_cache import prepare_encodings
from .errors import warn_stderr
from .executors import EXECUTORS, make_executor, torch_threads
from .plan import Unit, plan_units
from .progress import progress_bar, restart_clock
from .provenance import (
    device_info,
    git_info,
    lock_folder,
    package_versions,
    prepare_folder,
    utc_now,
    write_provenance,
    write_yaml,
)
from .sources import load_images
from .storage import ResultStore, atomic_write_bytes
from .trial import UnitResult

__all__ = ["SweepOutcome", "SweepPlan", "plan_sweep", "run_sweep", "summary_table", "packet_lines"]


def summary_table(df, metric: str | None = None, max_rows: int = 60, notes: Sequence[str] = ()) -> str:
    """Mean of the main metric per (channel family, nominal loss, FEC) × concealment method, as text.

    With several methods, followed by :func:`experiments.paired.paired_table`: each method's
    paired difference (vs the loss-free reconstruction) to the best baseline, with 95 % intervals.
    ``notes`` (e.g. methods skipped at some codebook sizes) and a warning when images travel in fewer
    than 8 data packets (:func:`experiments.sweep.health.few_packets_warning`) come first.
    """
    from .health import few_packets_warning, realised_loss_warning

    head = [f"note: {n}" for n in notes]
    if df is not None and len(df):
        head += [w for w in (few_packets_warning(df), realised_loss_warning(df)) if w]
    prefix = "\n".join(head) + "\n\n" if head else ""
    if df is None or not len(df):
        return prefix + "(no results)"
    metric = metric or next((m for m in ("lpips_alex", "lpips_vgg", "psnr") if m in df.columns), None)
    if metric is None:
        return prefix + "(no metric columns)"
    d = df.copy()
    d["loss"] = [f"{L:.4f}" if np.isfinite(L) else f"ber {B:.1e}" if np.isfinite(B) else "-"
                 for L, B in zip(d["loss_rate_nominal"], d["ber_nominal"], strict=False)]
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
    text = prefix + f"mean {metric} (rows: {', '.join(idx)}; columns: concealment method; n = {len(df)} trials)\n{text}"
    from ..paired import decoders_vary, paired_metric_of, paired_table

    paired_metric = paired_metric_of(df, metric)
    if decoders_vary(df):
        text += ("\n\ndecoders vary: paired differences are measured against the original, not against the plain "
                 "decoder's loss-free picture (which a decoder variant renders differently)")
    if df["method"].nunique() > 1 and paired_metric in df.columns and "unit_id" in df.columns:
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


@dataclass
class SweepPlan:
    """A resolved config and its trials, before any work: what :func:`run_sweep` runs and ``--plan`` prints.

    Attributes: cfg (resolved, resource-checked), notes (e.g. methods skipped at some sizes), images, points
    (channel points), units, chash (config hash), out (results folder), order (trial id -> plan position).
    """

    cfg: dict
    notes: list[str]
    images: list
    points: list
    units: list[Unit]
    chash: str
    out: Path
    order: dict[str, int]

    @property
    def n_trials(self) -> int:
        return len(self.order)

    def method_lines(self) -> list[str]:
        """'S=1024: ar, bidir, latent_avg, …' — the methods that run at each codebook size."""
        by: dict[int, list[str]] = {}
        for u in self.units:
            ms = by.setdefault(u.params["codebook_size"], [])
            ms += [m for m, _ in u.trials if m not in ms]
        return [f"S={S}: {', '.join(ms)}" for S, ms in by.items()]

    def headline(self, n_skipped: int = 0) -> str:
        cfg = self.cfg
        n_pending = self.n_trials - n_skipped
        return (f"sweep {cfg['name']!r}: {self.n_trials} trials in {len(self.units)} units ({len(self.images)} images, "
                f"{len(self.points)} channel points, {len(codec_sizes(cfg))} codebook size(s), {len(cfg['seeds'])} "
                f"seed(s), {len(cfg['concealment']['methods'])} method(s){_decoders_note(cfg)}); "
                f"{n_skipped} already done, {n_pending} to run -> {self.out}")


def plan_sweep(config: str | Path | Mapping[str, Any], out: str | Path | None = None) -> SweepPlan:
    """Resolve and check a config, load its images and plan its units (no encoding, no trial)."""
    cfg, notes = _resolve(config)
    images = load_images(cfg)
    cfg["images"]["resolved"] = [{"name": im.name, "hash": im.hash, "size": list(im.pixels.shape[:2])} for im in images]
    points = expand_channels(cfg["channels"])
    units = plan_units(cfg, images, points)
    out = Path(out) if out is not None else Path("results") / cfg["name"]
    order = {tid: i for i, tid in enumerate(t for u in units for _, t in u.trials)}
    return SweepPlan(cfg, notes, images, points, units, config_hash(cfg), out, order)


def _check_run_args(executor: str, workers: int, max_trials: int | None, scheduler: str | None) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"executor: unknown value {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer ≥ 1, got {workers!r}")
    if max_trials is not None and max_trials < 1:
        raise ConfigError(f"max_trials must be ≥ 1, got {max_trials}")
    if scheduler and executor != "dask":
        raise ConfigError("--scheduler only applies to --executor dask")


def _start_provenance(plan: SweepPlan, old_prov: dict | None, run_info: dict) -> dict:
    """The folder's provenance with this run appended (written at once)."""
    cfg = plan.cfg
    prov = old_prov or {"sweep": cfg["name"], "config_hash": plan.chash, "created": run_info["start"], "runs": []}
    prov.update({"git": git_info(), "packages": package_versions(), "python": sys.version.split()[0],
                 "platform": platform.platform(), "device": device_info(cfg), "seeds": cfg["seeds"],
                 "codec": {k: cfg["codec"][k] for k in ("name", "path", "sha256", "K", "codebook_sizes", "coder")},
                 "images": cfg["images"]["resolved"], "config_hash": plan.chash})
    prov.setdefault("runs", []).append(run_info)
    write_provenance(plan.out, prov)
    return prov


def _end_run(plan: SweepPlan, prov: dict, run_info: dict, n_run: int, status: str, t_start: float) -> None:
    run_info.update({"end": utc_now(), "trials_run": n_run, "status": status,
                     "wall_s": round(time.perf_counter() - t_start, 3)})
    write_provenance(plan.out, prov)


def _feed(pending: list[Unit], max_trials: int | None) -> Iterator[Unit]:
    """The pending units, handed out lazily until max_trials trials have been submitted."""
    submitted = 0
    for u in pending:
        if max_trials is not None and submitted >= max_trials:
            return
        submitted += len(u.trials)
        yield u


class _RowWriter:
    """Rows and example files of finished units into the store: rows buffered and appended every
    ``flush_every_s``, the table consolidated every ``consolidate_every_s``."""

    def __init__(self, plan: SweepPlan, store: ResultStore, n_pending: int,
                 on_chunk: Callable[[int, int], None] | None):
        self.plan, self.store, self.n_pending, self.on_chunk = plan, store, n_pending, on_chunk
        self.buf: list[dict] = []
        self.n_run = 0
        self.last_flush = self.last_cons = time.perf_counter()
        self.flush_s = plan.cfg["execution"]["flush_every_s"]
        self.cons_s = plan.cfg["execution"]["consolidate_every_s"]

    def add(self, res: UnitResult) -> int:
        for rel, data in res.files.items():
            f = self.plan.out / rel
            if not f.exists() or not rel.endswith(("original.png", "lossfree.png")):
                atomic_write_bytes(f, data)
        self.buf.extend(res.rows)
        now = time.perf_counter()
        if now - self.last_flush >= self.flush_s:
            self.flush()
        if now - self.last_cons >= self.cons_s:
            self.store.consolidate(self.plan.order)
            self.last_cons = time.perf_counter()
        return len(res.rows)

    def append_buffered(self) -> None:
        if self.buf:
            self.store.append(self.buf)
            self.n_run += len(self.buf)
            self.buf = []

    def flush(self) -> None:
        self.append_buffered()
        self.last_flush = time.perf_counter()
        if self.on_chunk is not None:
            self.on_chunk(self.n_run, self.n_pending - self.n_run)


def _encode_and_describe(plan: SweepPlan, pending: list[Unit], log: Callable[[str], None]) -> SweepInputs:
    """Encode the images the pending units need (cache), log packets per image (and warn when too few)."""
    need = {(u.params["codebook_size"], u.params["image_hash"]) for u in pending}
    imgs = [im for im in plan.images if any(h == im.hash for _, h in need)]
    encoded = prepare_encodings(plan.cfg, imgs, plan.out / "cache" / "encode", log)
    for line in packet_lines(plan, imgs, encoded):
        log(line)
    return SweepInputs(f"{plan.chash}-{os.getpid()}-{time.time_ns()}", plan.cfg,
                       {im.hash: im.pixels for im in imgs}, encoded)


def packet_lines(plan: SweepPlan, images, encoded) -> list[str]:
    """'packets: S=…, mtu …: P data packets per image' lines and the few-packets warning (if any)."""
    from .health import few_packets_warning, packet_table_lines, packets_per_image

    priors = {}
    if any(c.startswith("arith") for c in plan.cfg["packetization"]["coder"]):
        from codec.zoo import load_base_model

        shipped = load_base_model(str(plan.cfg["codec"]["path"]), None)[1]["priors"]  # what load_codec gives the codec
        priors = {S: shipped.get(S) for S in codec_sizes(plan.cfg)}
    rows = packets_per_image(plan.cfg, images, encoded, priors)
    lines = [f"packets: {t}" for t in packet_table_lines(rows)]
    warn = few_packets_warning(rows)
    return lines + ([warn] if warn else [])


def _execute(plan: SweepPlan, pending: list[Unit], store: ResultStore, prov: dict, run_info: dict, *, executor: str,
             workers: int, scheduler: str | None, max_trials: int | None, progress: bool, log: Callable[[str], None],
             on_chunk: Callable[[int, int], None] | None, dask_cluster_kwargs: Mapping[str, Any] | None,
             t_start: float) -> tuple[Any, int, str]:
    """Run the pending units; returns (consolidated rows, trials written, status).

    The one place the sweep's process sets torch's thread count: the config's execution.torch_threads for the
    encodings and every local trial (CPU results depend on it), restored when the run ends. SIGTERM (kill, a
    scheduler's time limit) unwinds like Ctrl-C, so the run's end is recorded.
    """
    n_pending = sum(len(u.trials) for u in pending)
    status = "complete"
    with torch_threads(plan.cfg["execution"]["torch_threads"]), _sigterm_unwinds(run_info):
        inputs = _encode_and_describe(plan, pending, log)
        bar = progress_bar(n_pending if max_trials is None else min(n_pending, max_trials), enabled=progress)
        writer = _RowWriter(plan, store, n_pending, on_chunk)
        results: Generator[UnitResult, None, None] | None = None  # closed on any exit
        try:
            results = make_executor(executor, inputs, workers, scheduler, dask_cluster_kwargs).run(
                _feed(pending, max_trials))
            for i, res in enumerate(results):
                bar.update(writer.add(res))
                if i == 0:
                    restart_clock(bar)  # the first unit carries the model loads: not part of the ETA
            writer.flush()
        except BaseException:
            status = "interrupted"
            with contextlib.suppress(Exception):
                writer.append_buffered()
            raise
        finally:
            bar.close()
            if results is not None:
                results.close()  # on any exit: stop the workers before the final consolidation
            df = store.consolidate(plan.order)
            _end_run(plan, prov, run_info, writer.n_run, status, t_start)
    return df, writer.n_run, status


def _is_complete(df, plan: SweepPlan) -> bool:
    if not len(df):
        return plan.n_trials == 0
    return len(df) >= plan.n_trials and set(plan.order).issubset(set(df["trial_id"]))


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
    """Run (or resume) a sweep; returns a :class:`SweepOutcome` (its ``results`` is the rows' DataFrame).

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

    Steps: check the arguments, :func:`plan_sweep`, lock the folder and check it belongs to this sweep,
    find the pending units, record the run's start (provenance), log the plan (and, once encoded, the data
    packets per image with a warning below :data:`~experiments.sweep.health.MIN_PACKETS_PER_IMAGE`), run the
    pending units (:func:`_execute`), record the end, write ``summary.txt``.

    The folder is locked for the whole run (:func:`lock_folder`).  Damaged part files are quarantined and
    damaged cache entries deleted (one warning each through ``log``); their work is redone.

    Raises ConfigError (bad config, before any work), FolderLockedError (another run uses the folder),
    SweepError.
    """
    t_start = time.perf_counter()
    log = log or warn_stderr
    _check_run_args(executor, workers, max_trials, scheduler)
    plan = plan_sweep(config, out)
    for n in plan.notes:
        log(f"note: {n}")
    with lock_folder(plan.out):
        old_prov = prepare_folder(plan.out, plan.cfg, plan.chash, overwrite, planned=set(plan.order), log=log)
        write_yaml(plan.out / "config.yaml", plan.cfg)
        # parts carry the config hash and their trial ids: another sweep's part is set aside, never merged
        store = ResultStore(plan.out, log=log, config_hash=plan.chash, trial_ids=set(plan.order))
        done = store.done_ids()
        pending = [p for p in (u.pending(done) for u in plan.units) if p.trials]
        n_skipped = plan.n_trials - sum(len(u.trials) for u in pending)
        run_info = {"start": utc_now(), "command": command or " ".join(sys.argv), "executor": executor,
                    "workers": workers, "scheduler": scheduler, "max_trials": max_trials,
                    "trials_planned": plan.n_trials, "trials_already_done": n_skipped, "host": platform.node(),
                    "pid": os.getpid()}
        prov = _start_provenance(plan, old_prov, run_info)
        log(plan.headline(n_skipped))
        for line in plan.method_lines():
            log(f"methods: {line}")
        if pending:
            df, n_run, status = _execute(plan, pending, store, prov, run_info, executor=executor, workers=workers,
                                         scheduler=scheduler, max_trials=max_trials, progress=progress, log=log,
                                         on_chunk=on_chunk, dask_cluster_kwargs=dask_cluster_kwargs, t_start=t_start)
        else:
            df, n_run, status = store.consolidate(plan.order), 0, "complete"
            _end_run(plan, prov, run_info, 0, status, t_start)
        complete = _is_complete(df, plan)
        if not complete and status == "complete":
            run_info["status"] = "partial"
            write_provenance(plan.out, prov)
        atomic_write_bytes(plan.out / "summary.txt", (summary_table(df, notes=plan.notes) + "\n").encode())
    return SweepOutcome(plan.out, df, plan.n_trials, n_run, n_skipped, bool(complete), plan.notes,
                        time.perf_counter() - t_start)


def _decoders_note(cfg: Mapping[str, Any]) -> str:
    """' x 2 decoder(s) (plain, robust)' when the sweep decodes with more than the plain decoder."""
    d = cfg["concealment"].get("decoders", ["plain"])
    return "" if d == ["plain"] else f" x {len(d)} decoder(s) ({', '.join(d)})"
