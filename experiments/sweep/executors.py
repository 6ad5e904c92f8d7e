"""Executors: the local thread executor, the checked unit runner, and the thread count trials run with.

Process settings are explicit and set where the workers start:

* **torch threads** — the config's ``execution.torch_threads`` (CPU kernels round differently with other
  counts, so the rows depend on it).  :func:`experiments.sweep.run.run_sweep` holds it for its own
  process with :func:`torch_threads` from the first encoding to the last local trial (the previous count
  is restored afterwards); the local executor's threads start inside that block and take it over.
* **CPU tuning** (``codec.runtime.configure_cpu``: denormals flushed, large buffers on the heap) — applied
  by :class:`LocalExecutor` when it starts (before its threads start: they inherit the flag).
* Dask workers apply both in each worker thread before its first unit
  (:mod:`experiments.sweep.dask_executor`).
"""
from __future__ import annotations

import contextlib
from typing import Any, Generator, Iterable, Iterator, Mapping

from .context import SweepInputs
from .errors import SweepError
from .plan import Unit
from .trial import UnitResult, run_checked  # run_checked lives in .trial so that dask_executor needs only .trial

__all__ = ["EXECUTORS", "LocalExecutor", "make_executor", "run_checked", "torch_threads"]

EXECUTORS = ("local", "dask")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for a ``with`` block; the previous count is restored at its end."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


class LocalExecutor:
    """Run units in this process: sequentially, or on ``workers`` threads sharing one context.

    The executor owns the sweep's :class:`TrialContext` (built when it starts, once per sweep).  Threads
    share the loaded codec, LPIPS and concealment models (and the GPU); torch kernels release the GIL,
    so decoding and scoring run in parallel.  Trials run with this process's torch thread count (the
    caller's: :func:`run_sweep` holds ``execution.torch_threads``).  For process-level parallelism (or
    several machines) use the dask executor.
    """

    def __init__(self, inputs: SweepInputs, workers: int):
        from codec.runtime import configure_cpu

        configure_cpu()  # the CPU tuning the CLI applies, also for sweeps started from Python
        self.workers = workers
        self.context = inputs.context()

    def run(self, units: Iterable[Unit]) -> Generator[UnitResult, None, None]:
        """The units' results, in completion order (≤ 2·workers units in flight)."""
        ctx = self.context
        if self.workers <= 1:
            for u in units:
                yield run_checked(u, ctx)
            return
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vqsim-trial") as ex:
            it = iter(units)
            running: set = set()
            try:
                while True:
                    while len(running) < 2 * self.workers:
                        nxt = next(it, None)
                        if nxt is None:
                            break
                        running.add(ex.submit(run_checked, nxt, ctx))
                    if not running:
                        return
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in finished:
                        yield f.result()
            finally:
                for f in running:
                    f.cancel()


def make_executor(kind: str, inputs: SweepInputs, workers: int, scheduler: str | None = None,
                  cluster_kwargs: Mapping[str, Any] | None = None):
    """A :class:`LocalExecutor`, or a :class:`experiments.sweep.dask_executor.DaskExecutor` (``kind="dask"``);
    each has ``run(units) -> Generator[UnitResult, None, None]``."""
    if kind == "local":
        return LocalExecutor(inputs, workers)
    try:
        from .dask_executor import DaskExecutor
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SweepError("--executor dask needs dask.distributed: pip install 'vqsim[dask]'") from e
    return DaskExecutor(inputs, workers, scheduler, cluster_kwargs)
