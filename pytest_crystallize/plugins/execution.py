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
from pytest_crystallize.plugins.threads import run_in_threads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch

__all__ = ["AsyncExecution", "ExecutionBackend", "ParallelExecution", "SerialExecution", "available_cpus"]

#: Chunks per worker: enough to balance uneven replicates, few enough that
#: shipping tasks and results costs little next to the replicates themselves.
CHUNKS_PER_WORKER: Final = 4


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


def _check_workers(owner: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        msg = f"{owner}: max_workers must be an integer >= 1 or None, got {value!r}"
        raise ConfigurationError(msg)


def _chunks(tasks: Sequence[ReplicateTask], size: int) -> list[list[ReplicateTask]]:
    listed = list(tasks)
    return [listed[i:i + size] for i in range(0, len(listed), size)]


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
    """Run replicates in ``max_workers`` processes (default) or threads.

    ``max_workers=None`` uses the CPUs this process may use. Tasks are sent in
    chunks (``chunk_size``, default: about four chunks per worker) so pickling
    costs little. Results equal a serial run's with the same seed.

    ``kind="process"`` suits CPU-bound replicates. The experiment function,
    datasources and plugins with per-replicate or per-step hooks go to the
    workers: inherited under the ``fork`` start method (Linux's default up to
    Python 3.13), pickled under ``spawn`` / ``forkserver``, which then need
    them at module level. A replicate's exception comes back as its error
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
        max_workers: int | None = None,
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
        self.max_workers = max_workers
        self.kind = kind
        self.chunk_size = chunk_size
        self.start_method = start_method

    def __repr__(self) -> str:
        return f"ParallelExecution(max_workers={self.max_workers!r}, kind={self.kind!r})"

    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Split ``tasks`` into chunks and run them in a pool of workers."""
        workers = min(self.max_workers or available_cpus(), max(1, len(tasks)))
        size = self.chunk_size or max(1, -(-len(tasks) // (workers * CHUNKS_PER_WORKER)))
        if workers == 1 and self.kind == "thread":
            return [run_batch(tasks)]
        if self.kind == "thread":
            return run_in_threads(run_batch, _chunks(tasks, size), workers)
        import multiprocessing

        from pytest_crystallize.plugins.processes import run_chunks

        context = multiprocessing.get_context(self.start_method)
        return run_chunks(run_batch, tasks, workers=workers, chunk_size=size, context=context)


class AsyncExecution:
    """Keep at most ``max_workers`` replicates in flight: for I/O-bound (LLM-call) experiments.

    ``async def`` experiments (or async datasources) run as asyncio tasks on
    one event loop, throttled by a semaphore. Synchronous experiments run in
    a pool of ``max_workers`` threads instead, so blocking clients overlap
    too. ``max_workers=None`` allows ``min(32, CPUs + 4)`` in flight, as
    ``ThreadPoolExecutor`` does. Results equal a serial run's with the same
    seed; as with threads, use ``ctx.rng`` rather than global generators.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        _check_workers("AsyncExecution", max_workers)
        self.max_workers = max_workers

    def __repr__(self) -> str:
        return f"AsyncExecution(max_workers={self.max_workers!r})"

    @property
    def limit(self) -> int:
        """How many replicates may be in flight at once."""
        return self.max_workers or min(32, (os.cpu_count() or 1) + 4)

    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Run ``tasks`` concurrently, at most :attr:`limit` at a time."""
        if not experiment.is_async:
            return run_in_threads(run_batch, _chunks(tasks, 1), min(self.limit, max(1, len(tasks))))
        return run_coroutine_sync(self._gather(run_batch, tasks))

    async def _gather(self, run_batch: RunBatch, tasks: Sequence[ReplicateTask]) -> list[ReplicateBatch]:
        semaphore = asyncio.Semaphore(self.limit)

        async def one(task: ReplicateTask) -> ReplicateBatch:
            async with semaphore:  # run_async reports the finished task itself
                return await run_batch.run_async([task])

        # Each asyncio task gets its own copy of the context variables, so every
        # replicate sees its own current context.
        return list(await asyncio.gather(*(one(task) for task in tasks)))
