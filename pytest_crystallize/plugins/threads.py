"""A pool of threads for replicate chunks that never holds the session hostage.

``concurrent.futures.ThreadPoolExecutor`` joins its threads on shutdown and
at interpreter exit, so one replicate blocked forever (a socket read with no
timeout, a lock never released) hung the whole pytest session, even under
pytest-timeout. These workers are daemon threads, and the main thread never
joins a busy one:

* with the experiment's ``timeout``, each task runs on its own; the thread's
  watchdog stops Python code at the deadline
  (:mod:`~pytest_crystallize.core.timeouts`), and a thread still stuck in a
  call that cannot be interrupted a grace period later is abandoned: its
  replicate becomes a timeout error, a fresh thread takes the remaining
  tasks, and the stuck one exits, discarding its work, when its call returns;
* when the main thread is interrupted (Ctrl-C, pytest-timeout), the workers
  finish their current task and stop, and the exception goes on at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.tasks import ReplicateBatch, keep_finished
from pytest_crystallize.core.timeouts import TIMEOUT_ERROR, TIMEOUT_GRACE, timeout_message

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.tasks import ReplicateTask, RunBatch

__all__ = ["run_in_threads"]

_POLL_SECONDS: Final = 0.1


class _Pool:
    """Shared state of one :func:`run_in_threads` call; every field is guarded by ``lock``."""

    def __init__(self, run_batch: RunBatch, chunks: Sequence[Sequence[ReplicateTask]]) -> None:
        self.run_batch = run_batch
        self.lock = threading.Lock()
        #: Notified whenever a batch arrives or a worker fails.
        self.changed = threading.Condition(self.lock)
        self.queue: deque[tuple[int, Sequence[ReplicateTask]]] = deque(enumerate(chunks))
        self.batches: dict[int, ReplicateBatch] = {}
        #: worker number -> (chunk index, chunk, when it started)
        self.running: dict[int, tuple[int, Sequence[ReplicateTask], float]] = {}
        self.abandoned: set[int] = set()
        self.stopping = False
        self.failure: BaseException | None = None
        self.started = 0

    def start_worker(self) -> None:
        number = self.started
        self.started += 1
        thread = threading.Thread(target=self.work, args=(number,), name=f"crystallize-{number}", daemon=True)
        thread.start()

    def work(self, number: int) -> None:
        while True:
            with self.lock:
                if self.stopping or number in self.abandoned or not self.queue:
                    return
                index, chunk = self.queue.popleft()
                self.running[number] = (index, chunk, time.monotonic())
            try:
                batch = self.run_batch(chunk)
            except BaseException as exc:  # a plugin hook raised: the main thread re-raises it
                with self.lock:
                    self.failure = self.failure or exc
                    self.running.pop(number, None)
                    self.changed.notify()
                return
            with self.lock:
                if number in self.abandoned:
                    return  # its replicate was given up on; the result is not ours any more
                self.batches[index] = batch
                self.running.pop(number, None)
                self.changed.notify()

    def abandon_overdue(self, timeout: float) -> tuple[int, int]:
        """Give up on replicates stuck past ``timeout`` + grace: how many, and how many threads to start."""
        now = time.monotonic()
        experiment = self.run_batch.experiment
        with self.lock:
            overdue = [(n, i, c) for n, (i, c, t) in self.running.items() if now - t > timeout + TIMEOUT_GRACE]
            for number, index, chunk in overdue:
                self.abandoned.add(number)
                del self.running[number]
                code, replicate = chunk[0]
                error = ReplicateError(
                    condition=experiment.condition_names[code], replicate=replicate,
                    error_type=TIMEOUT_ERROR,
                    message=timeout_message(timeout, (
                        " and its thread is stuck in a call Python cannot interrupt; it was abandoned and the "
                        "other replicates ran (use ParallelExecution(kind='process') to have it killed)"
                    )),
                    traceback="",
                )
                self.batches[index] = ReplicateBatch(errors=[error], task_count=len(chunk))
            return len(overdue), min(len(overdue), len(self.queue))


def run_in_threads(
    run_batch: RunBatch, chunks: Sequence[Sequence[ReplicateTask]], workers: int
) -> list[ReplicateBatch]:
    """Run ``chunks`` in ``workers`` daemon threads; return their batches in chunk order."""
    timeout = run_batch.experiment.timeout
    if timeout is not None:  # a stuck task is given up on alone, not with its chunk
        chunks = [[task] for chunk in chunks for task in chunk]
    pool = _Pool(run_batch, chunks)
    for _ in range(min(workers, len(chunks))):
        pool.start_worker()
    try:
        while True:
            with pool.lock:
                if pool.failure is None and len(pool.batches) < len(chunks):
                    pool.changed.wait(_POLL_SECONDS)
                if pool.failure is not None:
                    raise pool.failure
                if len(pool.batches) == len(chunks):
                    break
            run_batch.advance(0)  # the progress display draws from this thread only
            if timeout is not None:
                given_up, to_start = pool.abandon_overdue(timeout)
                run_batch.advance(given_up)
                for _ in range(to_start):
                    pool.start_worker()
    except BaseException as exc:
        with pool.lock:
            pool.stopping = True  # workers stop after their current task; none is joined
            finished = list(pool.batches.values())
        keep_finished(exc, finished)
        raise
    return [pool.batches[i] for i in range(len(chunks))]
