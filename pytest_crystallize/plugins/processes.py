"""A small process pool that knows which tasks a dead worker held.

``concurrent.futures.ProcessPoolExecutor`` fails every pending future with
``BrokenProcessPool`` when one worker dies, so nobody can tell which replicate
killed it. Here each worker has its own pipe and receives one chunk of tasks
at a time, so the parent always knows what a worker held when it died: the
chunk is run again one task per chunk, and a task that kills a worker on its
own becomes that replicate's :class:`~pytest_crystallize.core.results.ReplicateError`.
The rest of the run finishes.

Lifecycle: :func:`run_chunks` starts the workers on the first call of a
run, feeds them, and collects the batches. A sequential or anytime design
calls the backend once per look: the workers stay for the next look and stop
when the run ends (``run_batch.on_close``), so a look costs no process start
(under ``spawn`` or ``forkserver`` a start is most of a second). A
``run_batch`` that cannot say when the run ends gets workers for one call.
An error or Ctrl-C always stops the workers before it propagates.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
import traceback
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.eventloops import share_event_loop
from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.tasks import ReplicateBatch, keep_finished
from pytest_crystallize.core.timeouts import TIMEOUT_ERROR, TIMEOUT_GRACE, timeout_message
from pytest_crystallize.errors import ConfigurationError, CrystallizeError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from multiprocessing.context import BaseContext
    from multiprocessing.process import BaseProcess

    from pytest_crystallize.core.tasks import ReplicateTask, RunBatch

__all__ = ["WORKER_DIED", "run_chunks"]

#: ``error_type`` of a replicate whose worker process died while running it.
WORKER_DIED: Final = "WorkerProcessDied"

#: A chunk: its first task's position in the task list, and its tasks.
Chunk = tuple[int, list["ReplicateTask"]]

_STOP_TIMEOUT: Final = 5.0
_POLL_SECONDS: Final = 0.1
#: How often an idle worker checks that its parent is alive.
_ORPHAN_CHECK_SECONDS: Final = 0.5


def _leave_when_orphaned(parent: int) -> None:
    """End this worker once its parent is gone (killed outright, it could not stop it).

    Forked siblings hold copies of the pipe, so a dead parent may bring no EOF,
    and a chunk may run for minutes: nobody would read its results, so the
    worker exits at once (the journal already holds what finished).
    """
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _worker_main(connection: Connection, run_batch: RunBatch) -> None:
    """Run chunks received on ``connection`` until told to stop (``None``)."""
    # Ctrl-C reaches the whole process group: the parent stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_leave_when_orphaned, args=(os.getppid(),), daemon=True).start()
    close_loop = share_event_loop()  # async replicates of every chunk (and look) on one event loop
    connection.send(("ready", None, None))
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:  # the parent is gone
                return
            if message is None:
                return
            start, tasks = message
            try:
                batch = run_batch(tasks)
            except BaseException as exc:  # a plugin hook failed: report it, keep serving
                text = "".join(traceback.format_exception(exc))
                connection.send(("raised", start, f"{type(exc).__name__}: {exc}\n{text}"))
                continue
            connection.send(("done", start, batch))
    finally:
        close_loop()


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    connection: Connection
    ready: bool = False
    chunk: Chunk | None = None
    #: When the current chunk was sent, or the worker said it was ready if later (time.monotonic), and
    #: whether the parent killed it for its timeout.
    sent_at: float = 0.0
    timed_out: bool = False


class _Pool:
    """The parent's side: workers, the queue of chunks, finished batches.

    Lives for one experiment run: :meth:`run` is called once per backend
    call (a look), and idle workers wait for the next one until :meth:`stop`.
    """

    def __init__(self, run_batch: RunBatch, context: BaseContext, size: int) -> None:
        self.run_batch = run_batch
        self.context = context
        self.size = size
        self.queue: deque[Chunk] = deque()
        self.batches: dict[int, ReplicateBatch] = {}
        self.workers: list[_Worker] = []

    # -- workers ------------------------------------------------------------
    def start_worker(self) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(  # type: ignore[attr-defined]  # every context has Process
            # Not a daemon, so replicates may start processes of their own.
            target=_worker_main, args=(child, self.run_batch), daemon=False,
            name="crystallize-worker",
        )
        try:
            process.start()
        except Exception as exc:
            parent.close()
            child.close()
            name = self.run_batch.experiment.name
            msg = (
                f"experiment {name!r}: cannot start a worker process ({type(exc).__name__}: {exc}). "
                f"With the {self.context.get_start_method()!r} start method the experiment function, "
                f"its datasources and plugins are pickled: define them at module level, or use "
                f"ParallelExecution(kind='thread')"
            )
            raise ConfigurationError(msg) from exc
        child.close()
        self.workers.append(_Worker(process, parent))

    def stop(self, *, force: bool = False) -> None:
        """Stop every worker: after its current chunk, or at once with ``force`` (an error, Ctrl-C)."""
        for worker in self.workers:
            if force:
                worker.process.terminate()
                continue
            with contextlib.suppress(OSError, ValueError):  # already dead or closed
                worker.connection.send(None)
        for worker in self.workers:
            worker.process.join(_STOP_TIMEOUT)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            worker.connection.close()
        self.workers.clear()

    # -- the loop -------------------------------------------------------------
    def run(self, chunks: list[Chunk], meanwhile: Callable[[], int] | None = None) -> list[ReplicateBatch]:
        """Run ``chunks`` on the workers (started as needed, kept idle after); their batches in task order.

        ``meanwhile`` runs here once the workers have their first chunks; the
        chunks not sent by then are cut again to the size it returns.
        """
        self.queue = deque(chunks)
        self.batches = {}
        for _ in range(min(self.size, len(self.queue)) - len(self.workers)):
            self.start_worker()
        for worker in list(self.workers):  # a new one reads its chunk once it has started
            self._feed(worker)
        if meanwhile is not None:
            self._cut(meanwhile())
        while self.queue or any(worker.chunk is not None for worker in self.workers):
            if not self.workers:  # never wait on nothing (a dead worker with chunks left is replaced)
                self.start_worker()
            waitables: list[Any] = []
            for worker in self.workers:
                waitables += [worker.connection, worker.process.sentinel]
            timeout = self.run_batch.experiment.timeout
            ready = set(wait(waitables, timeout=None if timeout is None else _POLL_SECONDS))
            if timeout is not None:
                self._kill_overdue(timeout)
            for worker in list(self.workers):
                if worker.connection in ready or worker.process.sentinel in ready:
                    self._service(worker)
        return [self.batches[start] for start in sorted(self.batches)]

    def _kill_overdue(self, timeout: float) -> None:
        """Kill a worker whose chunk outran its timeout (stuck in C code the worker's own timer cannot stop)."""
        now = time.monotonic()
        for worker in self.workers:
            chunk = worker.chunk if worker.ready else None  # a worker still starting has run nothing
            overdue = chunk is not None and now - worker.sent_at > timeout * len(chunk[1]) + TIMEOUT_GRACE
            if overdue and not worker.timed_out:
                worker.timed_out = True
                worker.process.kill()

    def _service(self, worker: _Worker) -> None:
        # A message sent just before dying is handled first; the death on the next round.
        try:
            if not worker.connection.poll():
                self._died(worker)
                return
            message = worker.connection.recv()
        except (EOFError, OSError):
            self._died(worker)
            return
        kind, start, payload = message
        if kind == "ready":
            worker.ready = True
            worker.sent_at = time.monotonic()  # a chunk sent while it started begins now
        elif kind == "done":
            tasks = worker.chunk[1] if worker.chunk is not None else []
            self.batches[start] = payload
            worker.chunk = None
            self.run_batch.advance(len(tasks))
        else:
            name = self.run_batch.experiment.name
            msg = f"experiment {name!r}: a plugin hook raised in a worker process: {payload}"
            raise CrystallizeError(msg)
        self._feed(worker)

    def _cut(self, size: int) -> None:
        """Cut the queued chunks (the tasks not sent yet, consecutive) again, ``size`` tasks each."""
        if not self.queue:
            return
        first = self.queue[0][0]
        self.queue = deque(_numbered([task for _, chunk in self.queue for task in chunk], size, first))

    def _feed(self, worker: _Worker) -> None:
        if worker.chunk is not None:
            return
        if self.queue:  # else it stays idle: for the next call, or stop()
            worker.chunk = self.queue.popleft()
            worker.sent_at = time.monotonic()
            worker.timed_out = False
            # If it died, its sentinel says so next round and the chunk runs again.
            with contextlib.suppress(OSError):
                worker.connection.send(worker.chunk)

    def _died(self, worker: _Worker) -> None:
        worker.process.join(_STOP_TIMEOUT)
        if worker.process.is_alive():  # the pipe broke but the process lingers
            worker.process.terminate()
            worker.process.join()
        worker.connection.close()
        self.workers.remove(worker)
        code = worker.process.exitcode
        if not worker.ready:
            name = self.run_batch.experiment.name
            msg = (
                f"experiment {name!r}: a worker process exited (code {code}) before it could run "
                f"anything; its output above says why. Often the experiment's module cannot be "
                f"imported in a fresh process: use ParallelExecution(kind='thread') or the 'fork' "
                f"start method"
            )
            raise CrystallizeError(msg)
        chunk = worker.chunk
        if chunk is not None:
            start, tasks = chunk
            if len(tasks) > 1:
                # Which task killed it is unknown: run each again on its own.
                self.queue.extendleft(reversed([(start + i, [t]) for i, t in enumerate(tasks)]))
            else:
                self.batches[start] = self._died_batch(tasks[0], code, timed_out=worker.timed_out)
                self.run_batch.advance(1)
        if self.queue and len(self.workers) < self.size:
            self.start_worker()

    def _died_batch(self, task: ReplicateTask, code: int | None, *, timed_out: bool) -> ReplicateBatch:
        condition = self.run_batch.experiment.condition_names[task[0]]
        if timed_out:
            timeout = self.run_batch.experiment.timeout
            error = ReplicateError(
                condition=condition, replicate=task[1], error_type=TIMEOUT_ERROR,
                message=timeout_message(timeout, (
                    ", stuck where its worker could not stop it; the worker process was killed and the other "
                    "replicates ran"
                )),
                traceback="",
            )
            return ReplicateBatch(errors=[error], task_count=1)
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        error = ReplicateError(
            condition=condition, replicate=task[1], error_type=WORKER_DIED,
            message=f"the worker process running this replicate died ({how}); the other replicates ran",
            traceback="",
        )
        return ReplicateBatch(errors=[error], task_count=1)


#: The pool of each running experiment's ``run_batch``, kept from one call (look) to the next.
_POOLS: weakref.WeakKeyDictionary[Any, _Pool] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def _pool_for(run_batch: RunBatch, workers: int, context: BaseContext) -> tuple[_Pool, bool]:
    """The run's pool (grown to ``workers``), and whether it stays after this call."""
    on_close = getattr(run_batch, "on_close", None)
    if on_close is None:
        return _Pool(run_batch, context, workers), False
    with _POOLS_LOCK:
        pool = _POOLS.get(run_batch)
        if pool is None or pool.context is not context:
            if pool is not None:
                pool.stop()
            pool = _POOLS[run_batch] = _Pool(run_batch, context, workers)
            on_close(lambda: _close_pool(run_batch))
        pool.size = max(pool.size, workers)
    return pool, True


def _close_pool(run_batch: RunBatch) -> None:
    with _POOLS_LOCK:
        pool = _POOLS.pop(run_batch, None)
    if pool is not None:
        pool.stop()


@atexit.register  # after multiprocessing's own exit handler was registered, so before it joins the workers
def _close_pools() -> None:
    """Stop the pools of runs nobody closed (a ``run_batch`` driven by hand), so exiting never waits on them."""
    for run_batch in list(_POOLS.keys()):
        _close_pool(run_batch)


def _numbered(tasks: list[ReplicateTask], size: int, first: int = 0) -> list[Chunk]:
    """``tasks`` cut into chunks of ``size``, each with the index of its first task (``first`` for the first)."""
    return [(first + i, tasks[i:i + size]) for i in range(0, len(tasks), size)]


def run_chunks(
    run_batch: RunBatch, tasks: Sequence[ReplicateTask], *, workers: int, chunk_size: int,
    context: BaseContext, meanwhile: Callable[[], int] | None = None,
) -> list[ReplicateBatch]:
    """Run ``tasks`` in ``workers`` processes, ``chunk_size`` tasks per message; batches in task order.

    The workers are the run's: started by its first call, kept for its later
    ones (see the module docstring). ``meanwhile``, if given, runs in this
    process while the workers start on their first chunks, and returns the
    chunk size for the tasks not sent by then.
    """
    chunks = _numbered(list(tasks), chunk_size)
    pool, kept = _pool_for(run_batch, workers, context)
    try:
        batches = pool.run(chunks, meanwhile)
    except BaseException as exc:
        pool.stop(force=True)
        keep_finished(exc, list(pool.batches.values()))
        raise
    if not kept:
        pool.stop()
    return batches
