"""Executors: run units on local threads or on Dask workers, a failing unit becoming a SweepError."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Mapping

from codec.errors import VQSimError

from ..config import fec_label
from .context import TrialContext, _context_from_payload
from .errors import SweepError, _reason
from .plan import Unit
from .trial import UnitResult, run_unit

__all__ = ["EXECUTORS"]

EXECUTORS = ("local", "dask")


def _worker_run(unit: Unit, payload: Mapping[str, Any]) -> UnitResult:
    """Dask task: run one unit with the process-wide context of the (scattered) payload."""
    return _run_checked(unit, _context_from_payload(payload))


def _run_checked(unit: Unit, ctx: TrialContext) -> UnitResult:
    try:
        return run_unit(unit, ctx)
    except VQSimError:
        raise
    except Exception as e:
        p = unit.params
        raise SweepError(f"trial unit {unit.unit_id} failed (image {p['image']}, S={p['codebook_size']}, channel "
                         f"{unit.info['channel_label']}, fec {fec_label(p['fec'])}, seed {p['seed']}, methods "
                         f"{[m for m, _ in unit.trials]}): {type(e).__name__}: {e}") from e


def _iter_local(units: Iterable[Unit], payload: dict, workers: int) -> Iterator[UnitResult]:
    """Run units in this process: sequentially, or on ``workers`` threads sharing one context.

    Threads share the loaded codec, LPIPS and concealment models (and the
    GPU); torch kernels release the GIL, so decoding and scoring run in
    parallel.  For process-level parallelism (or several machines) use the
    dask executor.
    """
    ctx = _context_from_payload(payload)
    if workers <= 1:
        for u in units:
            yield _run_checked(u, ctx)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vqsim-trial") as ex:
        it = iter(units)
        running: set = set()
        try:
            while True:
                while len(running) < 2 * workers:
                    u = next(it, None)
                    if u is None:
                        break
                    running.add(ex.submit(_run_checked, u, ctx))
                if not running:
                    return
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    yield f.result()
        finally:
            for f in running:
                f.cancel()


@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _dask_client(workers: int, scheduler: str | None, cluster_kwargs: Mapping[str, Any] | None):
    """(client, own LocalCluster or None); a scheduler that cannot be reached is a SweepError."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SweepError("--executor dask needs dask.distributed: pip install 'vqsim[dask]'") from e
    if scheduler:
        try:
            return Client(scheduler, timeout=30), None
        except (OSError, TimeoutError) as e:
            raise SweepError(f"cannot connect to the dask scheduler {scheduler} ({_reason(e)})") from None
    kw = {"n_workers": max(1, workers), "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    kw.update(cluster_kwargs or {})
    cluster = LocalCluster(**kw)
    return Client(cluster), cluster


def _dask_result(fut, unit: Unit) -> UnitResult:
    """A finished task's result; a lost worker or a transport failure becomes a SweepError naming the unit."""
    try:
        return fut.result()
    except VQSimError:
        raise  # a failing trial, already explained by _run_checked on the worker
    except Exception as e:
        raise SweepError(f"dask task of trial unit {unit.unit_id} (image {unit.params['image']}, channel "
                         f"{unit.info['channel_label']}) failed: {_reason(e)}; the rows stored so far are kept, "
                         "rerun the same command to continue") from e


def _iter_dask(units: Iterable[Unit], payload: dict, workers: int, scheduler: str | None,
               cluster_kwargs: Mapping[str, Any] | None) -> Iterator[UnitResult]:
    """Run units as dask tasks (the payload is scattered to every worker once; ≤ 2·workers tasks in flight)."""
    from dask.distributed import as_completed

    client, cluster = _dask_client(workers, scheduler, cluster_kwargs)
    try:
        pf = client.scatter(payload, broadcast=True)
        it = iter(units)
        ac = as_completed([])
        running: dict[str, Unit] = {}

        def submit() -> None:
            u = next(it, None)
            if u is not None:
                fut = client.submit(_worker_run, u, pf, pure=False)
                running[fut.key] = u
                ac.add(fut)

        for _ in range(2 * max(1, workers)):
            submit()
        while running:
            fut = next(ac)
            res = _dask_result(fut, running.pop(fut.key))
            yield res
            submit()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

