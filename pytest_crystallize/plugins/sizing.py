"""How a pool backend sizes its work: measure the replicates, then run serially or in chunks.

A pool only pays when the work it spreads outweighs what the pool costs:
starting processes (tens of milliseconds each run), shipping each chunk, and
merging many batches. Nobody knows a replicate's duration in advance, so the
backends measure it on real tasks (whose batches are kept, never run twice):

* :func:`probe` runs the first tasks serially, in doubling steps, until they
  took :data:`PROBE_SECONDS`: the process pool does this, as starting it is
  what trivial work cannot repay;
* :class:`Timed` times each chunk a thread pool runs: the thread backends
  run a first wave of single tasks concurrently (a slow, waiting replicate
  never waits for a serial probe) and size the rest from it.

:func:`chunk_size` then makes chunks long enough that shipping one costs
little next to its work, yet short enough to balance uneven replicates. The decision is said in the
result's ``execution`` notes (shown with ``-v``).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from pytest_crystallize.core.tasks import keep_finished
from pytest_crystallize.plugins.threads import run_in_threads

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from multiprocessing.context import BaseContext

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch

__all__ = [
    "CHUNKS_PER_WORKER",
    "EARLY_START_SECONDS",
    "MIN_CHUNK_SECONDS",
    "PROBE_SECONDS",
    "PROCESS_POOL_SECONDS",
    "THREAD_POOL_SECONDS",
    "WARMUP_SECONDS",
    "Probe",
    "Timed",
    "chunk_size",
    "chunks",
    "describe",
    "joined",
    "probe",
    "sized_processes",
    "sized_threads",
]

#: Chunks per worker: enough to balance uneven replicates.
CHUNKS_PER_WORKER: Final = 4
#: Serial time the probe spends measuring replicates (on real tasks, kept).
PROBE_SECONDS: Final = 0.02
#: A first replicate quicker than this may have been warming up: the probe measures a second step.
WARMUP_SECONDS: Final = 0.2
#: Under ``fork``, a first replicate at least this long starts the workers while the probe's second step
#: runs: the 8-13 ms from the probe's end to the workers' first replicate (forking, a first chunk) then
#: overlap the probe, and a wrong guess (a warm-up before trivial work) costs about that much once.
EARLY_START_SECONDS: Final = 0.01
#: A chunk's work at least this long, so shipping it and merging its batch cost little.
MIN_CHUNK_SECONDS: Final = 0.02
#: What starting a process pool costs, about: the saving must be twice this to use one.
PROCESS_POOL_SECONDS: Final = 0.1
#: Remaining work shorter than this runs serially rather than in threads.
THREAD_POOL_SECONDS: Final = 0.05


@dataclass(slots=True)
class Probe:
    """Tasks run to measure, their batches, and the seconds a task takes (at the quickest step)."""

    batches: list[ReplicateBatch] = field(default_factory=list)
    done: int = 0
    per_task: float = 0.0
    #: Seconds the steps took in all.
    spent: float = 0.0

    def next_step(self, tasks: int, *, most: int, serial_below: float) -> int:
        """How many tasks the next step runs (1, 2, 4, ...); 0 once probing is over (see :func:`probe`)."""
        step = 1 << len(self.batches)
        if self.done >= min(most, tasks):
            return 0
        if not (self.spent < PROBE_SECONDS or (step == 2 and self.spent < WARMUP_SECONDS)):
            return 0  # measured enough; a second step always, unless plainly slow
        if self.done and self.per_task * (tasks - self.done) < serial_below:
            return 0
        return min(step, most - self.done)

    def run_step(self, run_batch: RunBatch, chunk: Sequence[ReplicateTask]) -> None:
        """Run ``chunk`` serially and time it."""
        started = time.perf_counter()
        self.batches.append(run_batch(chunk))
        took = time.perf_counter() - started
        self.spent += took
        self.done += len(chunk)
        # The quickest step: neither a warming first replicate nor a busy machine inflates it.
        self.per_task = min(self.per_task or took / len(chunk), took / len(chunk))


def probe(
    run_batch: RunBatch, tasks: Sequence[ReplicateTask], *, most: int, serial_below: float = 0.0,
    steps: int | None = None, measured: Probe | None = None,
) -> Probe:
    """Run the first tasks serially (1, 2, 4, ...) until :data:`PROBE_SECONDS` or ``most`` tasks.

    The per-task time is the quickest step's, so a first replicate that warms
    caches or imports, or a moment the machine was busy, does not pass for
    the typical one. Probing also stops once the tasks left would take less
    than ``serial_below`` seconds even at the time measured so far: the
    quickest step can only be quicker, so the caller runs them serially
    anyway, and each further step would cost a batch of its own. ``steps``
    stops it sooner; ``measured`` goes on with an earlier probe.
    """
    measured = Probe() if measured is None else measured
    try:
        while (steps is None or len(measured.batches) < steps) and (
            size := measured.next_step(len(tasks), most=most, serial_below=serial_below)
        ):
            measured.run_step(run_batch, tasks[measured.done:measured.done + size])
    except BaseException as exc:  # Ctrl-C: the steps that finished count
        keep_finished(exc, measured.batches)
        raise
    return measured


class Timed:
    """A ``run_batch`` that times every call: what a thread pool's chunks took, task by task.

    Implements the :class:`~pytest_crystallize.core.tasks.RunBatch` protocol
    by delegating, so a pool cannot tell it from the real one.
    """

    def __init__(self, run_batch: RunBatch) -> None:
        self._run_batch = run_batch
        self._lock = threading.Lock()
        self._seconds: list[float] = []

    @property
    def experiment(self) -> Experiment:
        """The experiment whose tasks this runs."""
        return self._run_batch.experiment

    def __call__(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` (into ``into``: see RunBatch) and note how long each took on average."""
        started = time.perf_counter()
        batch = self._run_batch(tasks, into=into)
        took = (time.perf_counter() - started) / max(1, len(tasks))
        with self._lock:
            self._seconds.append(took)
        return batch

    async def run_async(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` on the running event loop (not timed)."""
        return await self._run_batch.run_async(tasks, into=into)

    def advance(self, count: int) -> None:
        """Report finished tasks to the progress display."""
        self._run_batch.advance(count)

    def note(self, text: str) -> None:
        """Say how the tasks ran."""
        self._run_batch.note(text)

    @property
    def per_task(self) -> float:
        """The fewest seconds per task of the calls so far (0 before any).

        Threads that waited for the GIL or started late do not count.
        """
        with self._lock:
            return min(self._seconds, default=0.0)


def chunk_size(per_task: float, tasks: int, workers: int) -> int:
    """Tasks per chunk: about :data:`MIN_CHUNK_SECONDS` of work, and no more than an even share per worker.

    Unmeasured work (``per_task`` 0) gets about :data:`CHUNKS_PER_WORKER` chunks per worker.
    """
    share = max(1, -(-tasks // workers))
    if per_task <= 0:
        return max(1, -(-tasks // (workers * CHUNKS_PER_WORKER)))
    return max(1, min(share, int(MIN_CHUNK_SECONDS / per_task)))


def describe(seconds: float) -> str:
    """``seconds`` for people: ``0.31 ms``, ``20 ms``, ``1.5 s``."""
    if seconds >= 1:
        return f"{seconds:.3g} s"
    milliseconds = seconds * 1000
    return f"{milliseconds:.0f} ms" if milliseconds >= 10 else f"{milliseconds:.2g} ms"


def chunks(tasks: Sequence[ReplicateTask], size: int) -> list[list[ReplicateTask]]:
    """``tasks`` in consecutive chunks of ``size``."""
    listed = list(tasks)
    return [listed[i:i + size] for i in range(0, len(listed), size)]


def joined(batches: Sequence[ReplicateBatch]) -> ReplicateBatch:
    """One batch of ``batches`` run one after the other, in their order (the runner merges one batch for free).

    The first batch is extended in place with the others (each is a fresh batch of this run's, held by
    nobody else): its sink already holds the first values, and only the later ones are re-coded into it.
    Everything a batch carries comes along: values, errors, data digests and kept artifacts.
    """
    if not batches:
        from pytest_crystallize.core.tasks import ReplicateBatch

        return ReplicateBatch()
    out = batches[0]
    sink = out.sink
    for batch in batches[1:]:
        sink.extend(batch.sink)
        out.errors += batch.errors
        out.task_count += batch.task_count
        out.digests += batch.digests  # the shared-data check and a chain's artifacts need them too
        out.artifacts.update(batch.artifacts)
    return out


def continued(run_batch: RunBatch, batch: ReplicateBatch, tasks: Sequence[ReplicateTask]) -> ReplicateBatch:
    """``batch`` with ``tasks`` (the tasks after its own) run into it: one batch, nothing to join after.

    Joining the probe's batch and the rest's re-based every segment of the
    rest, a twentieth of a run of trivial replicates. On Ctrl-C the batch,
    with the tasks that finished, is kept for the report (once: see keep_finished).
    """
    try:
        return run_batch(tasks, into=batch)
    except BaseException as exc:
        keep_finished(exc, [batch])  # whether or not the runner filling it kept it already
        raise


def _then(done: list[ReplicateBatch], run: Callable[[], list[ReplicateBatch]]) -> list[ReplicateBatch]:
    """``done`` followed by what ``run()`` returns; on Ctrl-C, ``done`` is kept for the report."""
    try:
        return [*done, *run()]
    except BaseException as exc:
        keep_finished(exc, done)
        raise


def sized_processes(
    run_batch: RunBatch, tasks: Sequence[ReplicateTask], workers: int, context: BaseContext, owner: str,
) -> list[ReplicateBatch]:
    """Probe serially, then run the rest serially (too little work) or in sized chunks in processes.

    Under ``fork`` a worker starts in milliseconds, so once a first task of
    :data:`EARLY_START_SECONDS` or more says the work may be worth a pool, the
    workers start on the tasks after the probe's second step (the check that
    the first was no warm-up) while that step runs here: the CPUs do not
    wait for the probe. Its measure then sizes the chunks not sent yet.
    """
    # Work left below this gains less than twice a pool's start from the workers beyond the first.
    serial_below = math.inf if workers < 2 else 2 * PROCESS_POOL_SECONDS / (1 - 1 / workers)
    most = max(1, len(tasks) // (2 * workers))
    fork = context.get_start_method() == "fork"
    measured = probe(run_batch, tasks, most=most, serial_below=serial_below, steps=1 if fork else None)
    following = measured.next_step(len(tasks), most=most, serial_below=serial_below) if fork else 0
    # Only a first task of EARLY_START_SECONDS or more starts the workers early: a quicker one is probed
    # further here, so a moment the machine was busy never starts a pool for trivial work.
    if following and (measured.spent < EARLY_START_SECONDS or measured.done + following >= len(tasks)):
        following = 0
        probe(run_batch, tasks, most=most, serial_below=serial_below, measured=measured)
    rest = tasks[measured.done + following:]
    if not rest:
        run_batch.note(f"{owner}: the {len(tasks)} replicate tasks ran serially: they took "
                       f"{describe(measured.per_task)} each, too little to gain from worker processes")
        return [joined(measured.batches)]
    left = measured.per_task * len(rest)
    if not following and left < serial_below:
        run_batch.note(f"{owner}: the {len(tasks)} replicate tasks ran serially: about "
                       f"{describe(measured.per_task)} each ({describe(left)} left after the first "
                       f"{measured.done}), too little to gain from {workers} worker processes")
        return [continued(run_batch, joined(measured.batches), rest)]
    return _pooled(run_batch, tasks, measured, following, workers, context, owner)


def _pooled(
    run_batch: RunBatch, tasks: Sequence[ReplicateTask], measured: Probe, following: int, workers: int,
    context: BaseContext, owner: str,
) -> list[ReplicateBatch]:
    """The probe's batches and the pool's for the tasks after the probe and its ``following`` step.

    That step, if any, runs here while the workers start; the chunks not sent by then are sized by its measure.
    """
    from pytest_crystallize.plugins.processes import run_chunks

    rest = tasks[measured.done + following:]
    # While the second step runs here, nothing sends the workers a next chunk: their first ones outlast it.
    sizes = [max(chunk_size(measured.per_task, len(rest), workers), following + 1)]

    def second_step() -> int:
        measured.run_step(run_batch, tasks[measured.done:measured.done + following])
        sizes.append(chunk_size(measured.per_task, len(rest), workers))
        return sizes[-1]

    try:
        pooled = run_chunks(run_batch, rest, workers=workers, chunk_size=sizes[0], context=context,
                            meanwhile=second_step if following else None)
    except BaseException as exc:  # Ctrl-C: the steps that finished count
        keep_finished(exc, measured.batches)
        raise
    finally:
        first = f", the first {sizes[0]} to each while the probe's second step ran here" if following else ""
        run_batch.note(f"{owner}: {len(tasks)} replicate tasks of about {describe(measured.per_task)}: the "
                       f"first {measured.done} measured here, the others in chunks of up to {max(sizes[1:] or sizes)} "
                       f"on {workers} worker processes{first}")
    return [*measured.batches, *pooled]


def sized_threads(
    run_batch: RunBatch, tasks: Sequence[ReplicateTask], workers: int, owner: str, *, serial_ok: bool,
) -> list[ReplicateBatch]:
    """A first wave of single tasks in threads, timed; the rest serially (when ``serial_ok``) or in sized chunks."""
    timed = Timed(run_batch)
    first = run_in_threads(timed, chunks(tasks[:workers], 1), workers)
    rest = list(tasks[workers:])
    if not rest:
        return first
    left = timed.per_task * len(rest)
    if serial_ok and left < THREAD_POOL_SECONDS:
        run_batch.note(f"{owner}: after the first {len(first)}, the other {len(rest)} replicate tasks ran "
                       f"serially: about {describe(timed.per_task)} each, too little to gain from threads")
        return [continued(run_batch, joined(first), rest)]
    size = chunk_size(timed.per_task, len(rest), workers)
    run_batch.note(f"{owner}: {len(tasks)} replicate tasks of about {describe(timed.per_task)} in chunks of up "
                   f"to {size} on {workers} threads")
    return _then(first, lambda: run_in_threads(run_batch, chunks(rest, size), workers))
