"""The Dask executor: units as tasks on dask.distributed workers, each worker owning its trial context.

The sweep's inputs are scattered to every worker once.  Each worker's state lives in a
:class:`SweepWorkerPlugin` registered for the run (named after the run's key): it builds the worker's
:class:`TrialContext` on the first unit and reuses it for the rest, and the run unregisters it at the end
(``teardown`` drops the context).

A worker process is a process the CLI did not configure, so each worker thread applies
``codec.runtime.configure_cpu(execution.torch_threads)`` before its first unit of the run: torch's
(OpenMP) thread count and the flush-denormals flag are per-thread state, so the thread that runs the
units is the one to set them.
"""
from __future__ import annotations

import threading
from typing import Any, Generator, Iterable, Mapping

from distributed import WorkerPlugin

from codec.errors import VQSimError

from .context import SweepInputs, TrialContext
from .errors import SweepError, reason_line
from .plan import Unit
from .trial import UnitResult, run_checked

__all__ = ["DaskExecutor", "SweepWorkerPlugin"]


class SweepWorkerPlugin(WorkerPlugin):
    """One sweep run's state on one Dask worker: its CPU settings and its (lazily built) trial context.

    Args:
        name: the plugin's name (one per run).  torch_threads: the config's ``execution.torch_threads``.
    """

    def __init__(self, name: str, torch_threads: int):
        self.name = name
        self.torch_threads = int(torch_threads)
        self._context: TrialContext | None = None
        self._lock: threading.Lock | None = None
        self._tuned: threading.local | None = None

    def setup(self, worker: Any) -> None:
        self._lock = threading.Lock()
        self._tuned = threading.local()

    def context(self, inputs: SweepInputs) -> TrialContext:
        """The worker's context for this run, built on the first call; the calling thread's CPU settings are
        applied on its first call."""
        assert self._lock is not None and self._tuned is not None, "plugin used before its setup"
        if not getattr(self._tuned, "done", False):
            from codec.runtime import configure_cpu

            configure_cpu(self.torch_threads)
            self._tuned.done = True
        with self._lock:
            if self._context is None:
                self._context = inputs.context()
            return self._context

    def teardown(self, worker: Any) -> None:
        self._context = None


def _worker_run(unit: Unit, inputs: SweepInputs, plugin_name: str) -> UnitResult:
    """Dask task: run one unit with the context of this worker's plugin for the run."""
    from distributed import get_worker

    return run_checked(unit, get_worker().plugins[plugin_name].context(inputs))


def _dask_client(workers: int, scheduler: str | None, cluster_kwargs: Mapping[str, Any] | None):
    """(client, own LocalCluster or None); a scheduler that cannot be reached is a SweepError."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=30), None
        except (OSError, TimeoutError) as e:
            raise SweepError(f"cannot connect to the dask scheduler {scheduler} ({reason_line(e)})") from None
    kw = {"n_workers": max(1, workers), "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    kw.update(cluster_kwargs or {})
    cluster = LocalCluster(**kw)
    return Client(cluster), cluster


def _dask_result(fut, unit: Unit) -> UnitResult:
    """A finished task's result; a lost worker or a transport failure becomes a SweepError naming the unit."""
    try:
        return fut.result()
    except VQSimError:
        raise  # a failing trial, already explained by run_checked on the worker
    except Exception as e:
        raise SweepError(f"dask task of trial unit {unit.unit_id} (image {unit.params['image']}, channel "
                         f"{unit.info['channel_label']}) failed: {reason_line(e)}; the rows stored so far are kept, "
                         "rerun the same command to continue") from e


class DaskExecutor:
    """Run units as dask tasks: on a LocalCluster of ``workers`` processes (one thread each, extra
    LocalCluster arguments in ``cluster_kwargs``), or on the cluster of ``scheduler``."""

    def __init__(self, inputs: SweepInputs, workers: int, scheduler: str | None = None,
                 cluster_kwargs: Mapping[str, Any] | None = None):
        self.inputs = inputs
        self.workers = workers
        self.scheduler = scheduler
        self.cluster_kwargs = cluster_kwargs

    def run(self, units: Iterable[Unit]) -> Generator[UnitResult, None, None]:
        """The units' results, in completion order (≤ 2·workers tasks in flight); the client starts on the
        first ``next`` and stops (with its own cluster) when the iterator is closed or exhausted."""
        from dask.distributed import as_completed

        client, cluster = _dask_client(self.workers, self.scheduler, self.cluster_kwargs)
        plugin = SweepWorkerPlugin(f"vqsim-sweep-{self.inputs.key}", self.inputs.cfg["execution"]["torch_threads"])
        registered = False
        try:
            client.register_plugin(plugin, name=plugin.name)
            registered = True
            pf = client.scatter(self.inputs, broadcast=True)
            it = iter(units)
            ac = as_completed([])
            running: dict[str, Unit] = {}

            def submit() -> None:
                u = next(it, None)
                if u is not None:
                    fut = client.submit(_worker_run, u, pf, plugin.name, pure=False)
                    running[fut.key] = u
                    ac.add(fut)

            for _ in range(2 * max(1, self.workers)):
                submit()
            while running:
                fut = next(ac)
                res = _dask_result(fut, running.pop(fut.key))
                yield res
                submit()
        finally:
            if registered:
                try:
                    client.unregister_worker_plugin(plugin.name)
                except Exception:  # noqa: BLE001 - a lost worker or a closed scheduler: nothing left to free
                    pass
            client.close()
            if cluster is not None:
                cluster.close()
