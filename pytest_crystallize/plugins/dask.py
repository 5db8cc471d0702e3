"""The Dask execution backend: one experiment's replicates spread over a Dask cluster.

:class:`DaskExecution` sends the replicate tasks as chunks to the workers of
a ``dask.distributed`` cluster: a local one it starts, sized to the machine,
or an existing one (a scheduler address or a ``Client``). The replicate
runner goes once per run, with the user's modules that the workers cannot
import (:mod:`~pytest_crystallize.plugins.shipping`); each chunk comes back
as a batch of plain data, and the runner merges the batches into the serial
order, so the result is a serial run's whatever the cluster's size or the
order in which chunks finish.

Failures: a worker that dies is replaced by Dask and its chunk runs again on
another worker. Once the other chunks finished, the tasks of a chunk whose
workers kept dying (Dask's ``KilledWorker``) run again one at a time, alone
on the cluster, and a task that kills its workers then becomes that
replicate's error, naming the worker. With the experiment's ``timeout``, each
replicate on a worker runs under its deadline in a thread that is abandoned
if it is stuck (as ``ParallelExecution(kind="thread")`` does). Ctrl-C
cancels every pending chunk. A cluster left without workers for
``worker_timeout`` seconds, or a lost scheduler, ends the run with an error
rather than a hang.

Lifecycle: a :class:`DaskExecution` connects (or starts its local cluster)
on first use and keeps it for every later run, until :meth:`DaskExecution.close`
(the pytest plugin closes the one of ``--crystallize-dask`` at the end of
the session). A sequential or anytime design calls the backend once per
look: the shipped code and fixture values go to the cluster once per run,
kept for its later looks and released when the run ends
(``run_batch.on_close``).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.tasks import ReplicateBatch, keep_finished
from pytest_crystallize.errors import ConfigurationError, CrystallizeError
from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.plugins.execution import available_cpus
from pytest_crystallize.plugins.processes import WORKER_DIED

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.tasks import ReplicateTask, RunBatch
    from pytest_crystallize.plugins.shipping import Shipment

__all__ = ["LOCAL", "DaskExecution", "hold", "run_chunk"]

#: ``distributed``'s clients and futures: typed loosely, as that library is only partly typed.
Client = Any
Future = Any

#: The ``address`` that starts a local cluster (also ``--crystallize-dask=local``).
LOCAL: Final = "local"
#: Chunks per worker thread: enough to balance uneven replicates and workers that come and go.
CHUNKS_PER_THREAD: Final = 4
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


def _check_positive(name: str, value: object, *, integer: bool) -> None:
    kinds = (int,) if integer else (int, float)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or value <= 0):
        what = "an integer >= 1" if integer else "a number of seconds > 0"
        msg = f"DaskExecution: {name} must be {what} or None, got {value!r}"
        raise ConfigurationError(msg)


class DaskExecution:
    """Run replicates on a Dask cluster: ``address=None`` starts a local one sized to this machine.

    ``address`` is a scheduler address (``"tcp://10.0.0.5:8786"``), a
    ``distributed.Client`` already connected, or ``None`` (or ``"local"``)
    for a ``LocalCluster`` of ``n_workers`` single-threaded worker processes
    (default: the CPUs this process may use). Tasks go in chunks of
    ``chunk_size`` (default: about four per worker thread). The workers need
    pytest-crystallize and the packages the experiment imports installed;
    the test modules, conftest.py files and helper modules beside them are
    shipped. ``worker_timeout``: seconds to wait for the scheduler and for a
    first worker, and that the cluster may have no worker at all mid-run,
    before the run fails.
    Needs the ``dask`` extra: ``pip install "pytest-crystallize[dask]"``.
    """

    def __init__(
        self,
        address: str | Client | None = None,
        *,
        n_workers: int | None = None,
        chunk_size: int | None = None,
        worker_timeout: float = 60.0,
    ) -> None:
        if address is not None and not isinstance(address, str) and not _is_client(address):
            msg = (f"DaskExecution: address must be a scheduler address such as 'tcp://host:8786', "
                   f"a distributed.Client, or None for a local cluster; got {address!r}")
            raise ConfigurationError(msg)
        _check_positive("n_workers", n_workers, integer=True)
        _check_positive("chunk_size", chunk_size, integer=True)
        _check_positive("worker_timeout", worker_timeout, integer=False)
        self.address = LOCAL if address is None or (isinstance(address, str) and address == LOCAL) else address
        self.n_workers = n_workers
        self.chunk_size = chunk_size
        self.worker_timeout = float(worker_timeout)
        self._client: Client | None = address if _is_client(address) else None
        self._cluster: Any = None
        self._lock = threading.Lock()
        #: Each running experiment's shipment and its payload on the cluster, kept from one look to the next.
        self._kept: weakref.WeakKeyDictionary[Any, tuple[Client, Shipment, Future]] = weakref.WeakKeyDictionary()
        self._closing: weakref.WeakSet[Any] = weakref.WeakSet()

    def __repr__(self) -> str:
        where = self.address if isinstance(self.address, str) else "a Client"
        return f"DaskExecution({where!r})"

    def __getstate__(self) -> dict[str, Any]:
        # A copy travels inside the experiment to the workers: never the client or the cluster.
        return {"address": self.address if isinstance(self.address, str) else LOCAL, "n_workers": self.n_workers,
                "chunk_size": self.chunk_size, "worker_timeout": self.worker_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None if state["address"] == LOCAL else state["address"],  # type: ignore[misc]
                      n_workers=state["n_workers"], chunk_size=state["chunk_size"],
                      worker_timeout=state["worker_timeout"])

    def __enter__(self) -> DaskExecution:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the cluster ------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The client: connected (or its local cluster started) on first use."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Client:
        try:
            import distributed
        except ImportError:
            msg = ('DaskExecution needs dask.distributed, which is not installed: '
                   'pip install "pytest-crystallize[dask]"')
            raise ConfigurationError(msg) from None
        api: Any = distributed  # only partly typed: used loosely
        if self.address == LOCAL:
            workers = self.n_workers or available_cpus()
            self._cluster = api.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            )
            return api.Client(self._cluster, set_as_default=False)
        try:
            return api.Client(self.address, set_as_default=False, timeout=self.worker_timeout)
        except OSError as exc:
            msg = (f"DaskExecution: cannot connect to the Dask scheduler at {self.address!r} ({exc}); "
                   f"start one with 'dask scheduler' or pass the address it prints")
            raise CrystallizeError(msg) from exc

    def close(self) -> None:
        """Disconnect, and stop the local cluster if this backend started one (a given Client stays open)."""
        with self._lock:
            client, cluster = self._client, self._cluster
            self._cluster = None
            if cluster is not None or isinstance(self.address, str):
                self._client = None
                if client is not None:
                    client.close()
            if cluster is not None:
                cluster.close()

    def _threads(self, client: Client, experiment: Experiment) -> int:
        """How many worker threads the cluster has, waiting up to ``worker_timeout`` for the first."""
        try:
            client.wait_for_workers(1, timeout=self.worker_timeout)
        except (TimeoutError, OSError) as exc:
            msg = (f"experiment {experiment.name!r}: the Dask cluster at {_where(client)} has no worker after "
                   f"{self.worker_timeout:g} s; start workers ('dask worker {_where(client)}') or raise "
                   f"DaskExecution(worker_timeout=...)")
            raise CrystallizeError(msg) from exc
        return max(1, int(sum(client.nthreads().values())))

    # -- the hook ---------------------------------------------------------------
    @hookimpl
    def crystallize_replicates_run(
        self, experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
    ) -> list[ReplicateBatch]:
        """Send ``tasks`` in chunks to the cluster's workers; return their batches."""
        from pytest_crystallize.plugins.shipping import pack

        client = self.client
        threads = self._threads(client, experiment)
        size = self.chunk_size or max(1, -(-len(tasks) // (threads * CHUNKS_PER_THREAD)))
        kept = self._kept.pop(run_batch, None)  # this run's earlier look already shipped it
        if kept is not None and kept[0] is not client:
            kept[2].release()
            kept = None
        shipment = pack(run_batch) if kept is None else kept[1]
        chunks = -(-len(tasks) // size)
        run_batch.note(
            f"DaskExecution: {len(tasks)} replicate tasks in {chunks} chunks of up to {size} on the "
            f"{threads} worker threads of the Dask cluster at {_where(client)}"
        )
        run = _Run(self, client, run_batch, shipment, payload=None if kept is None else kept[2])
        try:
            batches = run.all(tasks, size)
        except BaseException as exc:
            run.cancel()
            keep_finished(exc, run.batches)
            run.release()
            raise
        self._keep(run_batch, run)
        return batches

    def _keep(self, run_batch: RunBatch, run: _Run) -> None:
        """Keep the run's payload on the cluster for its next look, released when the run ends."""
        on_close = getattr(run_batch, "on_close", None)
        if on_close is None or run.payload is None:
            run.release()
            return
        self._kept[run_batch] = (run.client, run.shipment, run.payload)
        if run_batch not in self._closing:  # one closer per run, however many looks
            self._closing.add(run_batch)
            on_close(lambda: self._release(run_batch))

    def _release(self, run_batch: RunBatch) -> None:
        kept = self._kept.pop(run_batch, None)
        if kept is not None:
            kept[2].release()


class _Run:
    """One ``crystallize_replicates_run`` on a cluster: its futures, their batches; lives for that call."""

    def __init__(
        self, backend: DaskExecution, client: Client, run_batch: RunBatch, shipment: Shipment,
        payload: Future | None = None,
    ) -> None:
        self.backend = backend
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
            reason = str(exc).split("\n")[0] or "the scheduler is gone"
            return (f"experiment {name!r}: the Dask scheduler at {_where(self.client)} was lost or cancelled the "
                    f"replicate tasks ({reason}); {len(self.pending) + 1} chunks did not finish; check the scheduler "
                    f"and run again")
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ImportError):
            return (f"experiment {name!r}: a Dask worker could not import what the replicates need ({text}); "
                    f"install the same packages on the workers as here (modules that are not installed are "
                    f"shipped: {', '.join(self.shipment.module_names) or 'none'})")
        return f"experiment {name!r}: a Dask worker failed running replicates (not a replicate's own error): {text}"

    def _check_workers(self, idle_since: float | None) -> float | None:
        """Fail the run once the cluster has had no worker for ``worker_timeout`` seconds."""
        if self.client.status not in ("running", "connecting"):
            msg = (f"experiment {self.experiment.name!r}: the connection to the Dask scheduler at "
                   f"{_where(self.client)} was lost ({self.client.status}); {len(self.pending)} chunks did not finish")
            raise CrystallizeError(msg)
        try:
            workers = self.client.scheduler_info(n_workers=1).get("n_workers", 1)
        except OSError as exc:  # distributed's CommClosedError, a refused or timed-out connection
            msg = (f"experiment {self.experiment.name!r}: the connection to the Dask scheduler at "
                   f"{_where(self.client)} was lost ({type(exc).__name__}: {exc}); {len(self.pending)} chunks did "
                   f"not finish; check the scheduler and run again")
            raise CrystallizeError(msg) from exc
        if workers:
            return None
        now = time.monotonic()
        if idle_since is None:
            return now
        if now - idle_since > self.backend.worker_timeout:
            msg = (f"experiment {self.experiment.name!r}: the Dask cluster at {_where(self.client)} has had no "
                   f"worker for {self.backend.worker_timeout:g} s while {len(self.pending)} chunks of replicates "
                   f"waited; start workers or raise DaskExecution(worker_timeout=...)")
            raise CrystallizeError(msg)
        return idle_since

    def cancel(self) -> None:
        futures = [future for future, _ in self.pending.values()]
        if futures:
            self.client.cancel(futures, force=True)
        self.pending.clear()

    def release(self) -> None:
        if self.payload is not None:
            self.payload.release()
            self.payload = None


def _is_client(value: object) -> bool:
    return type(value).__name__ == "Client" and type(value).__module__.startswith("distributed")


def _where(client: Client) -> str:
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return "?"
