"""The Dask execution backend: one experiment's replicates spread over a Dask cluster.

:class:`DaskExecution` sends the replicate tasks as chunks to the workers of
a ``dask.distributed`` cluster: a local one it starts, sized to the machine,
or an existing one (a scheduler address or a ``Client``). The replicate
runner goes once per run, with the user's modules that the workers cannot
import (:mod:`~pytest_crystallize.plugins.shipping`); each chunk comes back
as a batch of plain data, and the runner merges the batches into the serial
order, so the result is a serial run's whatever the cluster's size or the
order in which chunks finish.

Failures (met by one run's :class:`~pytest_crystallize.plugins.cluster_runs.ClusterRun`):
a worker that dies is replaced by Dask and its chunk runs again on
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

import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.tasks import keep_finished
from pytest_crystallize.errors import ConfigurationError, CrystallizeError
from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.plugins.cluster_runs import Client, ClusterRun, Future, scheduler_address
from pytest_crystallize.plugins.execution import available_cpus

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch
    from pytest_crystallize.plugins.shipping import Shipment

__all__ = ["LOCAL", "DaskExecution"]

#: The ``address`` that starts a local cluster (also ``--crystallize-dask=local``).
LOCAL: Final = "local"
#: Chunks per worker thread: enough to balance uneven replicates and workers that come and go.
CHUNKS_PER_THREAD: Final = 4


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
            where = scheduler_address(client)
            msg = (f"experiment {experiment.name!r}: the Dask cluster at {where} has no worker after "
                   f"{self.worker_timeout:g} s; start workers ('dask worker {where}') or raise "
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
            f"{threads} worker threads of the Dask cluster at {scheduler_address(client)}"
        )
        run = ClusterRun(client, run_batch, shipment, worker_timeout=self.worker_timeout,
                         payload=None if kept is None else kept[2])
        try:
            batches = run.all(tasks, size)
        except BaseException as exc:
            run.cancel()
            keep_finished(exc, run.batches)
            run.release()
            raise
        self._keep(run_batch, run)
        return batches

    def _keep(self, run_batch: RunBatch, run: ClusterRun) -> None:
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


def _is_client(value: object) -> bool:
    return type(value).__name__ == "Client" and type(value).__module__.startswith("distributed")
