"""DaskExecution against a real scheduler and two workers started as separate processes.

The workers run where the user's modules are not importable (see
``dask_cluster.py``), so every run here proves that the user's code was
shipped. Values are compared with a serial run of the same seed, exactly.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from loop_bound_client import CLIENT, module_client
from pytest_crystallize import (
    ConfigurationError,
    CrystallizeError,
    FrozenContext,
    Treatment,
    hookimpl,
    run_experiment,
)
from pytest_crystallize.plugins.dask import DaskExecution
from pytest_crystallize.plugins.processes import WORKER_DIED

pytest.importorskip("distributed")
#: Modules the workers cannot import: an experiment module, a helper it imports, and
#: two helpers that import each other (by module and by name, at import and in functions).
PROJECT = {
    "cycle_a.py": """
        import cycle_b

        SCALE = 3.0

        def spread(x):
            return cycle_b.twice(x) * SCALE / 2
    """,
    "cycle_b.py": """
        import cycle_a

        def twice(x):
            return 2 * x

        def scale():
            return cycle_a.SCALE
    """,
    "lab.py": """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Recipe:
            offset: float
    """,
    "experiments_mod.py": """
        import os
        from pathlib import Path

        import cycle_a
        from cycle_b import scale
        from lab import Recipe
        from pytest_crystallize import Treatment, data_source, pipeline_step

        TREATMENTS = [Treatment("shifted", {"shift": 0.5})]

        @data_source
        def noisy(ctx):
            return Recipe(offset=float(ctx.rng.normal()))

        @pipeline_step()
        def score(recipe, ctx, shift=0.0):
            ctx.metrics.add("score", cycle_a.spread(recipe.offset) + shift + scale())
            ctx.record("tagged", ctx.replicate, tags={"condition": ctx.condition})

        def run_one(noisy, ctx, where=None):
            score(noisy, ctx)
            ctx.metrics.add("uniform", ctx.rng.uniform())
            if where is not None:  # which process ran it: a side effect, never a metric
                Path(where, str(os.getpid())).touch()
    """,
}


def write_project(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))


@pytest.fixture
def cluster(dask_cluster_module: Any) -> Any:
    return dask_cluster_module


def run_script(root: Path, code: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    (root / "script.py").write_text(textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "script.py"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_modules_of_the_project_are_not_importable_on_the_workers(cluster: Any, tmp_path: Path) -> None:
    # The premise of every test here: what runs on a worker was shipped, not found there.
    import functools
    import importlib.util

    from distributed import Client

    write_project(tmp_path, PROJECT)
    with Client(cluster.address, set_as_default=False) as client:
        found = client.run(functools.partial(importlib.util.find_spec, "experiments_mod"))
        cwd = client.run(os.getcwd)
    assert len(found) == 2
    assert set(found.values()) == {None}
    assert all(Path(c).name == "worker-home" for c in cwd.values())


def test_runner_mode_on_the_cluster_equals_a_serial_run_whatever_the_chunking(cluster: Any, tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "ran").mkdir()
    done = run_script(tmp_path, f"""
        import json, os
        from pytest_crystallize import run_experiment
        from pytest_crystallize.plugins.dask import DaskExecution
        import experiments_mod as m

        def columns(result):
            data = result.to_dict()
            data.pop("provenance")
            return data

        options = dict(name="on_cluster", replicates=12, seed=11, treatments=m.TREATMENTS,
                       datasources={{"noisy": m.noisy}})
        serial_result = run_experiment(m.run_one, **options)
        serial = columns(serial_result)
        report = {{}}
        for size in (1, 5, None):
            with DaskExecution({cluster.address!r}, chunk_size=size) as backend:
                result = run_experiment(m.run_one, plugins=[backend], arguments={{"where": {str(tmp_path / "ran")!r}}}, **options)
            report[str(size)] = columns(result) == serial
            report["execution"] = list(result.provenance.execution)
        report["values"] = len(serial_result)
        report["errors"] = len(serial_result.errors)
        report["pid"] = os.getpid()
        print(json.dumps(report))
    """)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert [report["1"], report["5"], report["None"]] == [True, True, True]
    assert report["values"] == 12 * 2 * 3
    assert report["errors"] == 0
    ran = {int(p.name) for p in (tmp_path / "ran").iterdir()}
    assert len(ran) == 2  # both workers ran replicates...
    assert report["pid"] not in ran  # ...and the script none
    assert report["execution"][0].startswith("DaskExecution: 24 replicate tasks in ")
    assert cluster.address in report["execution"][0]


# -- failures, interruptions, timeouts, progress: in this process, on the cluster ---------------

def _sleepy(ctx: FrozenContext, seconds: float = 0.05, where: str | None = None) -> None:
    if where is not None:
        Path(where, f"{ctx.condition}-{ctx.replicate}").touch()
    time.sleep(seconds)
    ctx.metrics.add("v", ctx.rng.normal())


def _kills_its_worker(ctx: FrozenContext, kill: bool = True) -> None:
    if kill and ctx.replicate == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    ctx.metrics.add("v", ctx.rng.normal())


def _stuck_or_busy(ctx: FrozenContext, stall: bool = True) -> None:
    if stall and ctx.replicate == 1:
        time.sleep(60)  # in C: the worker's watchdog cannot stop it, the thread is abandoned
    if stall and ctx.replicate == 2:
        end = time.monotonic() + 60
        while time.monotonic() < end:  # in Python: the watchdog stops it
            pass
    ctx.metrics.add("v", ctx.rng.normal())


def _values(result: Any) -> dict[tuple[str, int], float]:
    frame = result.to_dataframe()
    return {(row.condition, int(row.replicate)): float(row.value) for row in frame.itertuples()}


class _Progress:
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    @hookimpl
    def crystallize_replicates_progress(self, experiment: Any, done: int, total: int, elapsed: float) -> None:
        self.seen.append((done, total))


class _InterruptAtFirstProgress:
    @hookimpl
    def crystallize_replicates_progress(self, experiment: Any, done: int, total: int, elapsed: float) -> None:
        if done > 0:
            raise KeyboardInterrupt


class _KillAWorker:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.killed = False

    @hookimpl
    def crystallize_replicates_progress(self, experiment: Any, done: int, total: int, elapsed: float) -> None:
        if done >= 4 and not self.killed:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)


def test_a_replicate_that_kills_its_worker_becomes_its_error_naming_the_worker(fresh_dask_cluster: Any) -> None:
    with DaskExecution(fresh_dask_cluster.address, chunk_size=4) as backend:
        result = run_experiment(_kills_its_worker, name="killer", replicates=8, seed=3, plugins=[backend])
    assert [(e.replicate, e.error_type) for e in result.errors] == [(3, WORKER_DIED)]
    assert "tcp://127.0.0.1:" in result.errors[0].message
    expected = _values(run_experiment(_kills_its_worker, name="killer", replicates=8, seed=3,
                                      arguments={"kill": False}))
    del expected[("baseline", 3)]
    assert _values(result) == expected


def test_a_worker_killed_mid_run_loses_nothing(fresh_dask_cluster: Any) -> None:
    from distributed import Client

    with Client(fresh_dask_cluster.address, set_as_default=False) as client:
        pids = sorted(client.run(os.getpid).values())
    killer = _KillAWorker(pids[0])
    options: dict[str, Any] = {"name": "sleepy", "replicates": 30, "seed": 4, "treatments": [Treatment("t", {})]}
    with DaskExecution(fresh_dask_cluster.address, chunk_size=2) as backend:
        result = run_experiment(_sleepy, plugins=[backend, killer], **options)
    assert killer.killed
    assert result.errors == ()
    assert _values(result) == _values(run_experiment(_sleepy, arguments={"seconds": 0.0}, **options))


#: A task in one of these states may still run (a finished one is "memory", "erred" or "released").
TO_RUN = ("waiting", "no-worker", "queued", "processing")


def _tasks_on_the_scheduler(address: str, deadline: float = 60, *, to_run: bool = False) -> int:
    """How many tasks the scheduler still holds (or, ``to_run``, may still run): once none, or at ``deadline``."""
    from distributed import Client

    def count(dask_scheduler: Any) -> int:
        return sum(1 for task in dask_scheduler.tasks.values() if not to_run or task.state in TO_RUN)

    with Client(address, set_as_default=False) as client:
        end = time.monotonic() + deadline
        while client.run_on_scheduler(count) and time.monotonic() < end:
            time.sleep(0.1)
        return int(client.run_on_scheduler(count))


def _tasks_a_worker_may_hold(address: str) -> int:
    """How many tasks the scheduler hands the cluster's workers at most at once (Dask's worker saturation).

    A worker may start each task it held when the scheduler forgot it, before the message to
    drop it arrives: under load, that start comes late.
    """
    import math

    from distributed import Client

    def slots(dask_scheduler: Any) -> float:
        saturation = dask_scheduler.WORKER_SATURATION
        return sum(max(math.ceil(saturation * w.nthreads), 1) for w in dask_scheduler.workers.values())

    with Client(address, set_as_default=False) as client:
        return int(client.run_on_scheduler(slots))


def _settled_count(directory: Path, quiet: float = 1.0, deadline: float = 60) -> int:
    """The number of files in ``directory`` once it has not changed for ``quiet`` seconds (or at ``deadline``)."""
    end = time.monotonic() + deadline
    count, since = len(list(directory.iterdir())), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < end:
        time.sleep(0.05)
        now = len(list(directory.iterdir()))
        if now != count:
            count, since = now, time.monotonic()
    return count


def test_ctrl_c_cancels_the_chunks_not_yet_run(cluster: Any, tmp_path: Path) -> None:
    from pytest_crystallize.core.runner import PARTIAL_RESULT

    # The backend stays connected, as a session's does after a Ctrl-C: closing it would free the tasks
    # whether or not the run cancelled them.
    with DaskExecution(cluster.address, chunk_size=1) as backend:
        with pytest.raises(KeyboardInterrupt) as caught:
            run_experiment(_sleepy, name="interrupted", replicates=200,
                           plugins=[backend, _InterruptAtFirstProgress()], arguments={"where": str(tmp_path)})
        partial = getattr(caught.value, PARTIAL_RESULT)
        assert 0 < len(partial) < 200
        # The chunk being collected at the interrupt stays (in memory) while its frame in ``caught`` lives.
        assert _tasks_on_the_scheduler(cluster.address, to_run=True) == 0
        started_when_cancelled = len(list(tmp_path.iterdir()))
        started = _settled_count(tmp_path)
    assert started < 100  # far fewer than all: the cancelled chunks never ran
    # After the cancel, a worker starts at most the tasks it already held, never more.
    assert started <= started_when_cancelled + _tasks_a_worker_may_hold(cluster.address)


def test_the_per_replicate_timeout_applies_on_the_workers(cluster: Any) -> None:
    begun = time.monotonic()
    with DaskExecution(cluster.address, chunk_size=3) as backend:
        result = run_experiment(_stuck_or_busy, name="slow", replicates=6, seed=8, timeout=0.5, plugins=[backend])
    assert time.monotonic() - begun < 40  # neither the 60 s sleep nor the 60 s loop was waited for (a busy machine's margin)
    assert [(e.replicate, e.error_type) for e in result.errors] == [(1, "ReplicateTimeout"), (2, "ReplicateTimeout")]
    expected = _values(run_experiment(_stuck_or_busy, name="slow", replicates=6, seed=8, arguments={"stall": False}))
    del expected[("baseline", 1)], expected[("baseline", 2)]
    assert _values(result) == expected


def test_progress_comes_back_as_chunks_finish(cluster: Any) -> None:
    progress = _Progress()
    with DaskExecution(cluster.address, chunk_size=2) as backend:
        run_experiment(_sleepy, name="progress", replicates=40, plugins=[backend, progress],
                       arguments={"seconds": 0.03})
    done = [d for d, _ in progress.seen]
    assert done == sorted(done)
    assert done[-1] == 40
    assert any(0 < d < 40 for d in done)


def test_a_cluster_without_workers_fails_the_run_instead_of_hanging(start_dask_cluster: Any, tmp_path: Path) -> None:
    with (
        start_dask_cluster(tmp_path, workers=0) as empty,
        DaskExecution(empty.address, worker_timeout=1) as backend,
        pytest.raises(CrystallizeError, match=r"has no worker after 1 s; start workers"),
    ):
        run_experiment(_sleepy, name="alone", replicates=2, plugins=[backend])


def test_an_unreachable_scheduler_is_an_error_saying_so() -> None:
    with DaskExecution("tcp://127.0.0.1:9", worker_timeout=1) as backend, pytest.raises(
        CrystallizeError, match=r"cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'"
    ):
        run_experiment(_sleepy, name="nowhere", replicates=2, plugins=[backend])


def test_a_local_cluster_sized_as_asked_gives_a_serial_run_s_values() -> None:
    options: dict[str, Any] = {"name": "local", "replicates": 10, "seed": 2, "treatments": [Treatment("t", {})],
                               "arguments": {"seconds": 0.0}}
    with DaskExecution(n_workers=2) as backend:
        result = run_experiment(_sleepy, plugins=[backend], **options)
        assert len(backend.client.nthreads()) == 2
    assert _values(result) == _values(run_experiment(_sleepy, **options))
    assert "2 worker threads" in result.provenance.execution[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": 8786}, "address must be a scheduler address"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"n_workers": 1.5}, "n_workers must be an integer >= 1"),
        ({"worker_timeout": -1}, "worker_timeout must be a number of seconds > 0"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DaskExecution(**kwargs)


def test_a_copy_travels_without_its_client() -> None:
    backend = DaskExecution("tcp://127.0.0.1:8786", chunk_size=3)
    copy = pickle.loads(pickle.dumps(backend))
    assert repr(copy) == repr(backend) == "DaskExecution('tcp://127.0.0.1:8786')"
    assert copy.chunk_size == 3


def _shifted(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0))


def test_a_sequential_design_takes_the_same_looks_and_verdicts_on_the_cluster(cluster: Any) -> None:
    from pytest_crystallize import hypothesis

    options: dict[str, Any] = {
        "name": "looks", "seed": 3, "replicates": "auto", "max_replicates": 40, "looks": 4,
        "treatments": [Treatment("t", {"shift": 0.4})], "hypotheses": [hypothesis("x", "maximize", test="welch_t")],
    }
    with DaskExecution(cluster.address, chunk_size=3) as backend:
        on_cluster = run_experiment(_shifted, plugins=[backend], **options)
    serial = run_experiment(_shifted, **options)
    assert on_cluster.provenance.looks_taken == serial.provenance.looks_taken
    assert [v.to_dict() for v in on_cluster.verdicts] == [v.to_dict() for v in serial.verdicts]
    assert _values(on_cluster) == _values(serial)


def test_a_real_ctrl_c_cancels_the_run_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "ran").mkdir()
    (tmp_path / "script.py").write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        from pytest_crystallize import DaskExecution, run_experiment

        def slow(ctx):
            Path({str(tmp_path / "ran")!r}, str(ctx.replicate)).touch()
            time.sleep(0.1)
            ctx.metrics.add("v", 1.0)

        if __name__ == "__main__":
            with DaskExecution({cluster.address!r}, chunk_size=1) as backend:
                try:
                    run_experiment(slow, name="stopped", replicates=400, plugins=[backend])
                except KeyboardInterrupt:
                    # Still connected: the tasks must go because of the cancel, not because this client left.
                    def count(dask_scheduler):
                        return sum(1 for task in dask_scheduler.tasks.values() if task.state in {TO_RUN!r})

                    deadline = time.monotonic() + 60
                    while backend.client.run_on_scheduler(count) and time.monotonic() < deadline:
                        time.sleep(0.1)
                    started = len(list(Path({str(tmp_path / "ran")!r}).iterdir()))
                    print("interrupted", backend.client.run_on_scheduler(count), started, flush=True)
                    raise SystemExit(3) from None
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, "script.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "ran").iterdir())) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 3, output
    left, started_when_cancelled = (int(n) for n in output.split("interrupted ")[1].split()[:2])
    assert left == 0  # no task left to run while the interrupted client was still connected: the cancel
    assert _tasks_on_the_scheduler(cluster.address) == 0
    started = _settled_count(tmp_path / "ran")
    assert started < 200  # far fewer than all 400: the cancelled chunks never ran
    # After the cancel, a worker starts at most the tasks it already held, never more.
    assert started <= started_when_cancelled + _tasks_a_worker_may_hold(cluster.address)


def _reads_a_blob(ctx: FrozenContext, blob: bytes = b"") -> None:
    ctx.metrics.add("size", len(blob) + ctx.replicate)


def test_a_large_fixture_value_travels_once_without_a_warning(cluster: Any) -> None:
    # The suite runs with warnings as errors: Dask's "large graph" warning would fail the run.
    blob = os.urandom(12_000_000)
    with DaskExecution(cluster.address, chunk_size=2) as backend:
        result = run_experiment(_reads_a_blob, name="blob", replicates=6, plugins=[backend], arguments={"blob": blob})
    assert result.values.tolist() == [12_000_000.0 + r for r in range(6)]


class _KillTheScheduler:
    def __init__(self, pid: int) -> None:
        self.pid = pid  # its process group: the scheduler was started in a session of its own
        self.killed = False

    @hookimpl
    def crystallize_replicates_progress(self, experiment: Any, done: int, total: int, elapsed: float) -> None:
        if done >= 4 and not self.killed:
            self.killed = True
            os.killpg(self.pid, signal.SIGKILL)


def test_a_scheduler_lost_mid_run_is_an_error_naming_it_and_the_journal_keeps_what_finished(
    start_dask_cluster: Any, tmp_path: Path,
) -> None:
    options: dict[str, Any] = {"name": "orphaned", "replicates": 60, "seed": 4, "treatments": [Treatment("t", {})]}
    store = tmp_path / "store"
    with start_dask_cluster(tmp_path / "dask") as running:
        killer = _KillTheScheduler(running.processes[0].pid)
        begun = time.monotonic()  # the run's own time: starting the cluster may be slow on a busy machine
        with (
            DaskExecution(running.address, chunk_size=2, worker_timeout=5) as backend,
            pytest.raises(CrystallizeError) as caught,
        ):
            run_experiment(_sleepy, plugins=[backend, killer], journal=store, **options)
        took = time.monotonic() - begun
        address = running.address
    assert took < 90  # it never hangs
    message = str(caught.value)
    assert f"the Dask scheduler at {address} was lost" in message
    assert "a Dask worker failed" not in message
    resumed = run_experiment(_sleepy, journal=store, resume=True, **options)
    assert resumed.provenance.resumed is not None
    assert resumed.provenance.resumed >= 4
    assert _values(resumed) == _values(run_experiment(_sleepy, **options))


def test_a_result_lost_with_the_scheduler_connection_is_the_scheduler_lost(
    cluster: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A finished chunk's result comes through the scheduler. Killed mid-run on a busy machine, the
    # scheduler was seen to go while a result was fetched: distributed then raises CommClosedError.
    from distributed import Future
    from distributed.comm.core import CommClosedError

    def connection_reset(self: Any, timeout: float | None = None) -> Any:
        msg = f"in <TCP (closed) remote={cluster.address}>: ConnectionResetError: [Errno 104] Connection reset by peer"
        raise CommClosedError(msg)

    monkeypatch.setattr(Future, "result", connection_reset)
    with (
        DaskExecution(cluster.address, chunk_size=2) as backend,
        pytest.raises(CrystallizeError, match=f"the Dask scheduler at {cluster.address} was lost") as caught,
    ):
        run_experiment(_sleepy, name="cut_off", replicates=4, plugins=[backend], arguments={"seconds": 0.0})
    assert "a Dask worker failed" not in str(caught.value)
    assert "ConnectionResetError" in str(caught.value)


def test_a_scheduler_that_stops_answering_the_worker_check_is_an_error_naming_it(
    cluster: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # While chunks run, the backend asks the scheduler every second whether workers are left.
    from distributed import Client
    from distributed.comm.core import CommClosedError

    def refused(self: Any, **kwargs: Any) -> Any:
        msg = f"in <TCPConnector>: ConnectionRefusedError: [Errno 111] Connection refused ({cluster.address})"
        raise CommClosedError(msg)

    monkeypatch.setattr(Client, "scheduler_info", refused)
    with (
        DaskExecution(cluster.address, chunk_size=1) as backend,
        pytest.raises(CrystallizeError, match=f"the connection to the Dask scheduler at {cluster.address} was lost"),
    ):
        run_experiment(_sleepy, name="unanswered", replicates=2, plugins=[backend], arguments={"seconds": 3.0})


def _reads_a_fixture(ctx: FrozenContext, table: Any) -> None:
    ctx.metrics.add("x", float(table[ctx.replicate]) + ctx.rng.normal() + ctx.get("shift", 0.0))


def test_a_design_that_looks_again_ships_its_code_and_values_once_per_run(
    cluster: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One backend call per look: shipping a large fixture value again at every look made an
    # anytime run with a 40 MB fixture 25 times slower. What was shipped goes when the run ends.
    import numpy as np

    from pytest_crystallize import hypothesis
    from pytest_crystallize.plugins import shipping

    packed: list[int] = []
    pack = shipping.pack

    def counted(run_batch: Any) -> Any:
        packed.append(1)
        return pack(run_batch)

    monkeypatch.setattr(shipping, "pack", counted)
    options: dict[str, Any] = {
        "name": "shipped_once", "seed": 3, "replicates": "auto", "max_replicates": 40, "looks": 4,
        "treatments": [Treatment("t", {"shift": 0.0})], "hypotheses": [hypothesis("x", "maximize")],
        "arguments": {"table": np.arange(4_000_000, dtype=np.float64) % 3},
    }
    with DaskExecution(cluster.address, chunk_size=4) as backend:
        on_cluster = run_experiment(_reads_a_fixture, plugins=[backend], **options)
        assert on_cluster.provenance.looks_taken == 4
        assert packed == [1]
        assert _tasks_on_the_scheduler(cluster.address) == 0  # none kept
        again = run_experiment(_reads_a_fixture, plugins=[backend], **options)
        assert packed == [1, 1]
    serial = run_experiment(_reads_a_fixture, **options)
    assert _values(on_cluster) == _values(again) == _values(serial)
    assert [v.to_dict() for v in on_cluster.verdicts] == [v.to_dict() for v in serial.verdicts]


async def _uses_a_module_client(ctx: FrozenContext) -> None:
    # The client is made on first use in each worker process: loop_bound_client is shipped with this module.
    ctx.metrics.add("v", await module_client().call(float(ctx.rng.normal())))


def test_a_worker_runs_every_chunk_of_async_replicates_on_one_event_loop(cluster: Any) -> None:
    from pytest_crystallize import hypothesis

    options: dict[str, Any] = {"name": "async_client", "seed": 2, "treatments": [Treatment("t", {})]}
    with DaskExecution(cluster.address, chunk_size=2) as backend:
        fixed = run_experiment(_uses_a_module_client, replicates=12, plugins=[backend], **options)
        anytime = run_experiment(
            _uses_a_module_client, replicates="anytime", max_replicates=16, plugins=[backend],
            hypotheses=[hypothesis("v", "maximize")], **options,
        )
    assert fixed.errors == ()
    assert anytime.errors == ()
    CLIENT.clear()  # a client another test made here is bound to its run's closed loop
    assert _values(fixed) == _values(run_experiment(_uses_a_module_client, replicates=12, **options))


def test_an_in_process_cluster_leaves_this_process_s_imports_as_they_were(tmp_path: Path) -> None:
    # A worker thread of this process needs no shipped code: the run must not leave an importer
    # that serves old sources to a later import (or pytest.main) here, nor replace a loaded module.
    (tmp_path / "exp_mod.py").write_text("VERSION = 1\n\ndef run_one(ctx):\n    ctx.metrics.add('x', VERSION)\n")
    done = run_script(tmp_path, """
        import importlib, pathlib, sys
        sys.path.insert(0, ".")
        import exp_mod
        from distributed import Client, LocalCluster
        from pytest_crystallize import run_experiment
        from pytest_crystallize.plugins.dask import DaskExecution

        finders, module = list(sys.meta_path), exp_mod
        with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \\
                Client(cluster, set_as_default=False) as client, DaskExecution(client) as backend:
            result = run_experiment(exp_mod.run_one, name="e", replicates=4, plugins=[backend])
        assert len(result.errors) == 0, result.errors
        print("finders added:", [f for f in sys.meta_path if f not in finders])
        print("same module:", sys.modules["exp_mod"] is module)
        pathlib.Path("exp_mod.py").write_text("VERSION = 2\\n")
        del sys.modules["exp_mod"]
        importlib.invalidate_caches()
        print("edited module imports as:", importlib.import_module("exp_mod").VERSION)
    """)
    assert "finders added: []" in done.stdout
    assert "same module: True" in done.stdout
    assert "edited module imports as: 2" in done.stdout
