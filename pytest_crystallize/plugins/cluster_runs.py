"""One run of replicate chunks on a Dask cluster: the tasks the workers run, and the run that submits and collects them.

:class:`ClusterRun` is one call of
:meth:`~pytest_crystallize.plugins.dask.DaskExecution.crystallize_replicates_run`:
it submits the chunks (each a :func:`run_chunk` task that depends on the
one :func:`hold` task carrying the shipment), collects their batches as they
finish while reporting progress, runs the tasks of chunks whose workers kept
dying again one at a time, and tells a lost scheduler (the run fails) from a
failed worker (its replicate's error) and from a cluster left without workers
for ``worker_timeout`` seconds.
"""

from __future__ import annotations

import queue
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.tasks import ReplicateBatch
from pytest_crystallize.errors import CrystallizeError
from pytest_crystallize.plugins.processes import WORKER_DIED

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.tasks import ReplicateTask, RunBatch
    from pytest_crystallize.plugins.shipping import Shipment

__all__ = ["Client", "ClusterRun", "Future", "hold", "run_chunk", "scheduler_address"]

#: ``distributed``'s clients and futures: typed loosely, as that library is only partly typed.
Client = Any
Future = Any

_POLL_SECONDS: Final = 0.1
#: How often a waiting run checks that the cluster still has workers.
_CHECK_SECONDS: Final = 1.0


def hold(shipment: Shipment) -> Shipment:
    """The shipment, as a task's result that every chunk depends on (so it is sent to each worker once)."""
    return shipment


def run_chunk(shipment: Shipment, tasks: list[ReplicateTask]) -> list[ReplicateBatch]:
    """Run ``tasks`` on a Dask worker: the shipped replicate runner, unpacked once per worker process."""
    from pytest_crystallize.core.eventloops import keep_event_loop
    from pytest_crystallize.plugins.shipping import unpack

    run_batch: RunBatch = unpack(shipment)
    if run_batch.experiment.timeout is None:
        keep_event_loop()  # async replicates of every chunk (and look) this worker thread runs on one loop
        return [run_batch(tasks)]
    from pytest_crystallize.plugins.threads import run_in_threads

    # Each replicate under its deadline, in a thread given up on if it is stuck in C code.
    return run_in_threads(run_batch, [tasks], 1)


class ClusterRun:
    """One ``crystallize_replicates_run`` on a cluster: its futures, their batches; lives for that call.

    ``worker_timeout`` is how long the cluster may have no worker before the
    run fails; ``payload``, the shipment already on the cluster from this
    run's earlier look (``None``: submitted with the first chunk).
    """

    def __init__(
        self, client: Client, run_batch: RunBatch, shipment: Shipment, *, worker_timeout: float,
        payload: Future | None = None,
    ) -> None:
        self.worker_timeout = worker_timeout
        self.client = client
        self.run_batch = run_batch
        self.experiment = run_batch.experiment
        self.shipment = shipment
        self.batches: list[ReplicateBatch] = []
        self.pending: dict[str, tuple[Future, list[ReplicateTask]]] = {}
        self.done: queue.SimpleQueue[Future] = queue.SimpleQueue()
        # Unique per call: a key Dask still remembers from an earlier look or run would hand back its result.
        self.token = f"{shipment.key[:8]}-{uuid.uuid4().hex[:8]}"
        self.count = 0
        #: The shipped code and values every chunk depends on: this run's earlier look's, or made on first submit.
        self.payload: Future | None = payload
        #: Tasks of chunks whose workers kept dying (Dask's KilledWorker), to run again one by one.
        self.suspects: list[ReplicateTask] = []
        self.quarantine = False

    def submit(self, chunk: list[ReplicateTask]) -> None:
        """Submit ``chunk`` as one task, after the shipment's own task if this run has none on the cluster yet."""
        if self.payload is None:
            # A task, not scattered data: if every worker holding it dies, the scheduler makes it again.
            # Large fixture values make it large, but it is sent once and every chunk depends on it,
            # as Dask advises, so its "large graph" warning is not for the user (nor an error under -W error).
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
                self.payload = self.client.submit(
                    hold, self.shipment, key=f"crystallize-code-{self.experiment.name}-{self.token}", pure=False,
                )
        self.count += 1
        key = f"crystallize-{self.experiment.name}-{self.token}-{self.count}"
        future = self.client.submit(run_chunk, self.payload, chunk, key=key, pure=False)
        self.pending[future.key] = (future, chunk)
        future.add_done_callback(self.done.put)

    def all(self, tasks: Sequence[ReplicateTask], size: int) -> list[ReplicateBatch]:
        """Run every chunk; then, one at a time, the tasks of chunks whose workers kept dying."""
        listed = list(tasks)
        for start in range(0, len(listed), size):
            self.submit(listed[start:start + size])
        self.wait()
        # Dask blames every task queued on a worker that died, not only the one running: alone
        # on the cluster, a suspect that kills its workers again is the one that did.
        while self.suspects:
            self.quarantine = True
            self.submit([self.suspects.pop(0)])
            self.wait()
        return self.batches

    def wait(self) -> None:
        """Collect chunks as they finish until none is pending, checking that the cluster still has workers."""
        idle_since: float | None = None
        checked = time.monotonic()
        while self.pending:
            try:
                future = self.done.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                self.run_batch.advance(0)  # the progress display draws from this thread only
                if time.monotonic() - checked >= _CHECK_SECONDS:  # asking the scheduler costs a round trip
                    checked = time.monotonic()
                    idle_since = self._check_workers(idle_since)
                continue
            entry = self.pending.pop(future.key, None)
            if entry is not None:
                self._collect(*entry)

    def _collect(self, future: Future, chunk: list[ReplicateTask]) -> None:
        from distributed.scheduler import KilledWorker

        try:
            batches = future.result()
        except KilledWorker as exc:
            if not self.quarantine:
                self.suspects += chunk
                return
            batches = [self._died(chunk[0], exc)]
        except Exception as exc:
            raise CrystallizeError(self._failure(exc)) from exc
        self.batches += batches
        self.run_batch.advance(sum(b.task_count for b in batches))

    def _died(self, task: ReplicateTask, exc: BaseException) -> ReplicateBatch:
        worker = getattr(getattr(exc, "last_worker", None), "address", None) or "unknown"
        tries = getattr(exc, "allowed_failures", 0) + 1
        error = ReplicateError(
            condition=self.experiment.condition_names[task[0]], replicate=task[1], error_type=WORKER_DIED,
            message=(f"the Dask worker running this replicate died, on each of {tries} tries (the last on "
                     f"{worker}); the other replicates ran"),
            traceback="",
        )
        return ReplicateBatch(errors=[error], task_count=1)

    def _failure(self, exc: BaseException) -> str:
        name = self.experiment.name
        from asyncio import CancelledError
        from concurrent.futures import CancelledError as FutureCancelledError  # what distributed raises

        from distributed.comm.core import CommClosedError

        # A finished chunk's result is fetched through the scheduler: a connection closed then is
        # the scheduler lost, not a worker that failed.
        if isinstance(exc, (CancelledError, FutureCancelledError, CommClosedError)):
            reason = str(exc).split("\n")[0] or "the replicate tasks were cancelled"
            return self._scheduler_lost(f"{type(exc).__name__}: {reason}", len(self.pending) + 1)
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ImportError):
            return (f"experiment {name!r}: a Dask worker could not import what the replicates need ({text}); "
                    f"install the same packages on the workers as here (modules that are not installed are "
                    f"shipped: {', '.join(self.shipment.module_names) or 'none'})")
        return f"experiment {name!r}: a Dask worker failed running replicates (not a replicate's own error): {text}"

    def _scheduler_lost(self, reason: str, unfinished: int) -> str:
        """What a run says when its scheduler is gone (or cancelled its tasks): ``reason`` says how."""
        return (f"experiment {self.experiment.name!r}: the connection to the Dask scheduler at "
                f"{scheduler_address(self.client)} was lost ({reason}); {unfinished} chunks did not finish; "
                f"check the scheduler and run again")

    def _check_workers(self, idle_since: float | None) -> float | None:
        """Fail the run once the cluster has had no worker for ``worker_timeout`` seconds."""
        if self.client.status not in ("running", "connecting"):
            raise CrystallizeError(self._scheduler_lost(f"the client is {self.client.status}", len(self.pending)))
        try:
            workers = self.client.scheduler_info(n_workers=1).get("n_workers", 1)
        except OSError as exc:  # distributed's CommClosedError, a refused or timed-out connection
            reason = f"{type(exc).__name__}: {exc}"
            raise CrystallizeError(self._scheduler_lost(reason, len(self.pending))) from exc
        if workers:
            return None
        now = time.monotonic()
        if idle_since is None:
            return now
        if now - idle_since > self.worker_timeout:
            msg = (f"experiment {self.experiment.name!r}: the Dask cluster at {scheduler_address(self.client)} has "
                   f"had no worker for {self.worker_timeout:g} s while {len(self.pending)} chunks of replicates "
                   f"waited; start workers or raise DaskExecution(worker_timeout=...)")
            raise CrystallizeError(msg)
        return idle_since

    def cancel(self) -> None:
        """Cancel every chunk still pending (Ctrl-C, or a failure that ends the run)."""
        futures = [future for future, _ in self.pending.values()]
        if futures:
            self.client.cancel(futures, force=True)
        self.pending.clear()

    def release(self) -> None:
        """Let the cluster forget the shipment's task: the run is over, or will not look again."""
        if self.payload is not None:
            self.payload.release()
            self.payload = None


def scheduler_address(client: Client) -> str:
    """The address of ``client``'s scheduler, for messages ("?" when it has none)."""
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return "?"
