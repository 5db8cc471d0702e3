"""Execution backends: how an experiment's replicate tasks run.

Each backend is an ordinary plugin implementing the ``firstresult`` hook
``crystallize_replicates_run(experiment, tasks, run_batch)``. ``tasks`` are
``(condition_code, replicate)`` pairs; ``run_batch(tasks)`` runs some of them
in the calling thread and returns a ``ReplicateBatch``. The runner merges the
batches into the serial order, and every replicate's seed depends only on
its index, so every backend gives the result a serial run gives.

Pass one in ``plugins=[...]``, e.g. ``@pytest.mark.experiment(plugins=[ParallelExecution()])``.
Without any, the built-in default (:mod:`~pytest_crystallize.plugins.defaults`,
registered ``trylast``) runs them serially.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Final, Literal, Protocol

from pytest_crystallize.core.eventloops import run_coroutine_sync
from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.plugins.sizing import CHUNKS_PER_WORKER, chunks, sized_processes, sized_threads
from pytest_crystallize.plugins.threads import run_in_threads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch

__all__ = ["AUTO", "AsyncExecution", "ExecutionBackend", "ParallelExecution", "SerialExecution", "available_cpus"]

#: ``max_workers="auto"`` (the default): the backend sizes the pool, and runs work too
#: small to gain from one serially.
AUTO: Final = "auto"

#: What ``max_workers`` takes.
Workers = int | Literal["auto"] | None


class ExecutionBackend(Protocol):
    """What an execution backend implements (as a ``@hookimpl`` method)."""

    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch] | None:
        """Run every task once; return the batches, or None to defer to the next backend."""
        ...


def available_cpus() -> int:
    """How many CPUs this process may use (its affinity: containers, taskset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _check_workers(owner: str, value: object) -> None:
    if value is None or value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{owner}: max_workers must be an integer >= 1 or 'auto', got {value!r}"
        raise ConfigurationError(msg)


class SerialExecution:
    """Run every replicate in this thread, one after the other.

    This is what the built-in default does when no backend is registered.
    Registering it explicitly overrides a parallel backend that a conftest.py or an
    installed plugin provides (the experiment's own plugins are asked first).
    """

    def __repr__(self) -> str:
        return "SerialExecution()"

    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Run ``tasks`` in order in the calling thread."""
        return [run_batch(tasks)]


class ParallelExecution:
    """Run replicates in worker processes (default) or threads, or serially when that is faster.

    ``max_workers="auto"`` (the default; ``None`` means the same) measures the
    first replicates here, serially, and runs the rest serially when a pool
    could not repay its cost (trivial replicates), else in a pool sized to
    the CPUs this process may use, in chunks of about 20 ms of work each. The
    ``execution`` note of the result (shown with ``-v``) says which. An
    integer ``max_workers`` always uses a pool of that many workers (use one
    for replicates that must never run in this process: ones that may crash
    it, or that set up state a fork must not inherit, such as CUDA), with ``chunk_size``
    tasks per chunk (default: about four chunks per worker). Results equal a
    serial run's with the same seed.

    ``kind="process"`` suits CPU-bound replicates. The experiment function,
    datasources and plugins with per-replicate or per-step hooks go to the
    workers: inherited under the ``fork`` start method (Linux's default up to
    Python 3.13), pickled under ``spawn`` / ``forkserver``, which then need
    them at module level. ``start_method`` picks one (any name
    ``multiprocessing.get_context`` takes; default: the platform's). A replicate's exception comes back as its error
    with the traceback text, even when the exception class cannot be pickled.
    When a worker process dies (``os._exit``, a segfault, the OOM killer) the
    tasks it held run again one by one in a fresh worker; the replicate that
    kills a worker on its own becomes an error of type ``WorkerProcessDied``
    and the rest of the run finishes.

    ``kind="thread"`` suits replicates that wait on I/O or release the GIL;
    global state (``random``, ``SeedPlugin``'s global seeding) is shared
    between threads, so use ``ctx.rng`` for reproducible draws.
    """

    def __init__(
        self,
        max_workers: Workers = AUTO,
        kind: Literal["process", "thread"] = "process",
        *,
        chunk_size: int | None = None,
        start_method: str | None = None,
    ) -> None:
        _check_workers("ParallelExecution", max_workers)
        if kind not in ("process", "thread"):
            msg = f"ParallelExecution: kind must be 'process' or 'thread', got {kind!r}"
            raise ConfigurationError(msg)
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            msg = f"ParallelExecution: chunk_size must be an integer >= 1 or None, got {chunk_size!r}"
            raise ConfigurationError(msg)
        self.max_workers: Workers = AUTO if max_workers is None else max_workers
        self.kind = kind
        self.chunk_size = chunk_size
        self.start_method = start_method

    def __repr__(self) -> str:
        return f"ParallelExecution(max_workers={self.max_workers!r}, kind={self.kind!r})"

    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Run ``tasks`` in a pool of workers in chunks, or serially when that is faster."""
        auto = self.max_workers == AUTO and self.chunk_size is None
        wanted = self.max_workers if isinstance(self.max_workers, int) else available_cpus()
        workers = min(wanted, max(1, len(tasks)))
        if self.kind == "thread":
            if workers == 1:
                return [run_batch(tasks)]
            if auto:
                return sized_threads(run_batch, tasks, workers, "ParallelExecution", serial_ok=True)
            return run_in_threads(run_batch, chunks(tasks, self._size(tasks, workers)), workers)
        import multiprocessing

        context = multiprocessing.get_context(self.start_method)
        if auto:
            return sized_processes(run_batch, tasks, workers, context, "ParallelExecution")
        from pytest_crystallize.plugins.processes import run_chunks

        size = self._size(tasks, workers)
        return run_chunks(run_batch, tasks, workers=workers, chunk_size=size, context=context)

    def _size(self, tasks: Sequence[ReplicateTask], workers: int) -> int:
        return self.chunk_size or max(1, -(-len(tasks) // (workers * CHUNKS_PER_WORKER)))


class AsyncExecution:
    """Keep at most ``max_workers`` replicates in flight: for I/O-bound (LLM-call) experiments.

    ``async def`` experiments (or async datasources) run as asyncio tasks on
    one event loop, throttled by a semaphore. Synchronous experiments run in
    a pool of ``max_workers`` threads instead, so blocking clients overlap
    too: a first wave of single replicates is timed, the rest go in chunks of
    about 20 ms of work, so quick replicates do not pay a task each; with
    ``max_workers="auto"`` (the default; ``None`` means the same) replicates
    too quick to gain from threads run serially after that first wave, and at
    most ``min(32, CPUs + 4)`` are in flight, as ``ThreadPoolExecutor``
    allows. Results equal a serial run's with the same seed; as with
    threads, use ``ctx.rng`` rather than global generators.
    """

    def __init__(self, max_workers: Workers = AUTO) -> None:
        _check_workers("AsyncExecution", max_workers)
        self.max_workers: Workers = AUTO if max_workers is None else max_workers

    def __repr__(self) -> str:
        return f"AsyncExecution(max_workers={self.max_workers!r})"

    @property
    def limit(self) -> int:
        """How many replicates may be in flight at once."""
        if isinstance(self.max_workers, int):
            return self.max_workers
        return min(32, (os.cpu_count() or 1) + 4)

    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Run ``tasks`` concurrently, at most :attr:`limit` at a time."""
        if not experiment.is_async:
            workers = min(self.limit, max(1, len(tasks)))
            return sized_threads(run_batch, tasks, workers, "AsyncExecution", serial_ok=self.max_workers == AUTO)
        return run_coroutine_sync(self._gather(run_batch, tasks))

    async def _gather(self, run_batch: RunBatch, tasks: Sequence[ReplicateTask]) -> list[ReplicateBatch]:
        semaphore = asyncio.Semaphore(self.limit)

        async def one(task: ReplicateTask) -> ReplicateBatch:
            async with semaphore:  # run_async reports the finished task itself
                return await run_batch.run_async([task])

        # Each asyncio task gets its own copy of the context variables, so every
        # replicate sees its own current context.
        return list(await asyncio.gather(*(one(task) for task in tasks)))
