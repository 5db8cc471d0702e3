"""Fixtures of the plugin tests: a real Dask cluster, ``dask scheduler`` and ``dask worker`` as separate processes.

Everything listens on 127.0.0.1 on ports the operating system picks. The
workers run in an empty directory, with no PYTHONPATH, so nothing of the
tests' own (test modules, conftest.py, helper modules) is importable there:
what a worker runs of them was shipped. Each process gets its own process
group, and teardown ends the whole group, nanny and worker alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT = 60.0


@dataclass
class Cluster:
    address: str
    scheduler_file: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs if p.exists())


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PYTEST")}
    env.update(extra)
    return env


def _spawn(args: list[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in reversed(processes):  # workers first, then the scheduler
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
    for process in processes:  # the group, also a worker whose nanny is gone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


@contextlib.contextmanager
def dask_cluster(root: Path, workers: int = 2, **config: str) -> Iterator[Cluster]:
    """Start a scheduler and ``workers`` single-threaded workers; stop them all on exit.

    ``config`` are Dask settings as environment variables (``DASK_...``).
    """
    root.mkdir(parents=True, exist_ok=True)
    scheduler_file = root / "scheduler.json"
    workdir = root / "worker-home"  # empty: nothing of the tests is importable from here
    workdir.mkdir(exist_ok=True)
    env = _environment(**config)
    cluster = Cluster(address="", scheduler_file=scheduler_file)
    try:
        cluster.logs.append(root / "scheduler.log")
        cluster.processes.append(_spawn(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            workdir, cluster.logs[-1], env,
        ))
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists() or not scheduler_file.read_text().strip().endswith("}"):
            if time.monotonic() > deadline or cluster.processes[0].poll() is not None:
                raise RuntimeError(f"the Dask scheduler did not start:\n{cluster.log_text()}")
            time.sleep(0.05)
        cluster.address = json.loads(scheduler_file.read_text())["address"]
        for number in range(workers):
            cluster.logs.append(root / f"worker-{number}.log")
            cluster.processes.append(_spawn(
                [DASK, "worker", cluster.address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                 "--host", "127.0.0.1", "--local-directory", str(root / f"worker-{number}"),
                 "--name", f"worker-{number}"],
                workdir, cluster.logs[-1], env,
            ))
        if workers:
            _wait_for_workers(cluster, workers, deadline)
        yield cluster
    finally:
        _stop(cluster.processes)


def _wait_for_workers(cluster: Cluster, count: int, deadline: float) -> None:
    from distributed import Client

    with Client(cluster.address, set_as_default=False, timeout=START_TIMEOUT) as client:
        try:
            client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            raise RuntimeError(f"the Dask workers did not start:\n{cluster.log_text()}") from None


def worker_pids(address: str) -> dict[str, int]:
    """Each worker's address and the pid of its worker process (not its nanny)."""
    from distributed import Client

    with Client(address, set_as_default=False, timeout=START_TIMEOUT) as client:
        return dict(client.run(os.getpid))


@pytest.fixture(scope="module")
def dask_cluster_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of two workers shared by the tests of one module."""
    pytest.importorskip("distributed")
    with dask_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture
def fresh_dask_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of two workers for one test that kills workers; a task may kill two before Dask gives up on it."""
    pytest.importorskip("distributed")
    with dask_cluster(tmp_path / "dask", DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1") as running:
        yield running


@pytest.fixture
def start_dask_cluster() -> Any:
    """:func:`dask_cluster` itself, for a test that needs a cluster of its own shape."""
    pytest.importorskip("distributed")
    return dask_cluster
