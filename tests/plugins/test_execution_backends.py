"""Execution backends: the same numbers as a serial run, and their error paths."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import threading
import time
from typing import Any

import pytest

from pytest_crystallize import (
    AsyncExecution,
    ConfigurationError,
    CrystallizeError,
    FrozenContext,
    ParallelExecution,
    SerialExecution,
    Treatment,
    data_source,
    hookimpl,
    pipeline_step,
    run_experiment,
)
from pytest_crystallize.plugins.processes import WORKER_DIED

TREATMENTS = [Treatment("shifted", {"shift": 0.5})]


@data_source
def noisy_input(ctx: FrozenContext) -> float:
    return float(ctx.rng.normal())


@pipeline_step()
def score(data: float, ctx: FrozenContext, shift: float = 0.0) -> float:
    value = data + shift + ctx.rng.uniform()
    ctx.metrics.add("score", value)
    ctx.record("tagged", ctx.replicate, tags={"condition": ctx.condition})
    return value


def _sync_exp(noisy_input: float, ctx: FrozenContext) -> None:
    score(noisy_input, ctx)
    if ctx.replicate % 5 == 0:
        ctx.metrics.add("sparse", ctx.seed % 7)


@pipeline_step()
async def async_score(data: float, ctx: FrozenContext, shift: float = 0.0) -> float:
    await asyncio.sleep(0)
    value = data + shift + ctx.rng.uniform()
    ctx.metrics.add("score", value)
    ctx.record("tagged", ctx.replicate, tags={"condition": ctx.condition})
    return value


@data_source
async def async_input(ctx: FrozenContext) -> float:
    await asyncio.sleep(0.001 * (ctx.replicate % 3))
    return float(ctx.rng.normal())


async def _async_exp(async_input: float, ctx: FrozenContext) -> None:
    await async_score(async_input, ctx)
    if ctx.replicate % 5 == 0:
        ctx.metrics.add("sparse", ctx.seed % 7)


def _columns(result: Any) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("provenance")
    return data


BACKENDS = [
    pytest.param(SerialExecution(), id="serial"),
    pytest.param(ParallelExecution(max_workers=2), id="process"),
    pytest.param(ParallelExecution(max_workers=3, kind="thread"), id="thread"),
    pytest.param(AsyncExecution(max_workers=4), id="async"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("function", [_sync_exp, _async_exp], ids=["sync", "async-def"])
def test_every_backend_gives_the_serial_result_for_the_same_seed(backend: Any, function: Any) -> None:
    serial = run_experiment(function, name="same", replicates=12, seed=5, treatments=TREATMENTS)
    other = run_experiment(function, name="same", replicates=12, seed=5, treatments=TREATMENTS, plugins=[backend])
    assert len(serial) == 12 * 2 * 2 + 3 * 2
    assert _columns(other) == _columns(serial)


def test_sync_and_async_functions_agree() -> None:
    sync = run_experiment(_sync_exp, name="same", replicates=6, treatments=TREATMENTS)
    asynchronous = run_experiment(_async_exp, name="same", replicates=6, treatments=TREATMENTS)
    assert _columns(sync) == _columns(asynchronous)


# -- errors -----------------------------------------------------------------------------


class Unpicklable(Exception):
    def __init__(self, handle: Any) -> None:
        super().__init__("cannot travel")
        self.handle = handle

    def __reduce__(self) -> Any:
        raise TypeError("this exception refuses to be pickled")


def _crashy(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", ctx.replicate)
    if ctx.replicate == 2 and ctx.condition == "shifted":
        os._exit(7)
    if ctx.replicate == 4 and ctx.condition == "baseline":
        faulthandler.disable()  # pytest's faulthandler would print the worker's stack: noise here
        os.kill(os.getpid(), signal.SIGSEGV)
    if ctx.replicate == 5:
        raise Unpicklable(threading.Lock())
    ctx.metrics.add("y", 1.0)


@pytest.mark.parametrize("chunk_size", [None, 1])
def test_process_workers_that_die_fail_their_replicates_and_the_run_finishes(chunk_size: Any) -> None:
    backend = ParallelExecution(max_workers=2, chunk_size=chunk_size)
    result = run_experiment(_crashy, replicates=8, treatments=TREATMENTS, plugins=[backend])
    errors = {(e.condition, e.replicate): e for e in result.errors}
    assert sorted(errors) == [("baseline", 4), ("baseline", 5), ("shifted", 2), ("shifted", 5)]
    assert errors["shifted", 2].error_type == WORKER_DIED
    assert "exit code 7" in errors["shifted", 2].message
    assert errors["baseline", 4].error_type == WORKER_DIED
    assert "SIGSEGV" in errors["baseline", 4].message
    unpicklable = errors["baseline", 5]
    assert (unpicklable.error_type, unpicklable.message) == ("Unpicklable", "cannot travel")
    assert "_crashy" in unpicklable.traceback
    # Every other replicate ran and recorded its values.
    reps, _ = result.select("y", "baseline")
    assert sorted(reps.tolist()) == [0, 1, 2, 3, 6, 7]
    reps, _ = result.select("y", "shifted")
    assert sorted(reps.tolist()) == [0, 1, 3, 4, 6, 7]


def _key_error_exp(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", 1)
    if ctx.replicate == 1:
        raise KeyError("missing")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_exception_in_a_replicate_is_that_replicates_error_on_every_backend(backend: Any) -> None:
    result = run_experiment(_key_error_exp, replicates=3, plugins=[backend])
    assert [(e.condition, e.replicate, e.error_type) for e in result.errors] == [("baseline", 1, "KeyError")]
    assert "_key_error_exp" in result.errors[0].traceback
    assert len(result) == 3


def test_under_fork_process_workers_run_even_local_functions() -> None:
    def local(ctx: FrozenContext) -> None:
        ctx.metrics.add("pid", os.getpid())

    result = run_experiment(local, replicates=4, plugins=[ParallelExecution(2, start_method="fork")])
    assert os.getpid() not in result.values.tolist()


class FailsAfter:
    @hookimpl
    def crystallize_replicate_after(self, experiment: Any, ctx: FrozenContext, error: Any) -> None:
        raise RuntimeError("plugin bug")


def test_a_plugin_hook_failing_in_a_worker_process_fails_the_run_with_its_traceback() -> None:
    with pytest.raises(CrystallizeError, match=r"(?s)a plugin hook raised in a worker process.*plugin bug"):
        run_experiment(_key_error_exp, name="buggy", replicates=4, plugins=[ParallelExecution(2), FailsAfter()])


def test_a_plugin_hook_failing_in_a_thread_propagates_as_in_a_serial_run() -> None:
    with pytest.raises(RuntimeError, match="plugin bug"):
        run_experiment(_key_error_exp, replicates=4, plugins=[ParallelExecution(2, kind="thread"), FailsAfter()])


def test_spawned_workers_need_picklable_experiments_and_say_so() -> None:
    def local(ctx: FrozenContext) -> None:
        ctx.metrics.add("x", 1)

    backend = ParallelExecution(max_workers=1, start_method="spawn")
    with pytest.raises(ConfigurationError, match=r"cannot start a worker process.*kind='thread'"):
        run_experiment(local, name="local", replicates=2, plugins=[backend])


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ParallelExecution(max_workers=0), "max_workers must be an integer >= 1"),
        (lambda: ParallelExecution(kind="cluster"), "kind must be 'process' or 'thread'"),
        (lambda: ParallelExecution(chunk_size=0), "chunk_size must be an integer >= 1"),
        (lambda: AsyncExecution(max_workers=-2), "max_workers must be an integer >= 1"),
    ],
)
def test_backend_options_are_checked(factory: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        factory()


# -- concurrency ---------------------------------------------------------------------------


def test_async_execution_keeps_at_most_max_workers_in_flight() -> None:
    state = {"now": 0, "peak": 0}

    async def fn(ctx: FrozenContext) -> None:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        ctx.metrics.add("x", 1)

    result = run_experiment(fn, replicates=40, plugins=[AsyncExecution(max_workers=10)])
    assert state["peak"] == 10  # ten overlap (not one at a time), and never more
    assert len(result) == 40


def test_async_execution_runs_sync_functions_in_threads() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "threads": set()}

    def fn(ctx: FrozenContext) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            state["threads"].add(threading.get_ident())
        time.sleep(0.01)
        with lock:
            state["now"] -= 1
        ctx.metrics.add("x", ctx.replicate)

    result = run_experiment(fn, replicates=12, plugins=[AsyncExecution(max_workers=3)])
    assert state["peak"] == 3
    assert threading.get_ident() not in state["threads"]  # an explicit max_workers: every replicate in a thread
    assert sorted(result.replicates.tolist()) == list(range(12))


def test_async_experiments_run_even_inside_a_running_event_loop() -> None:
    async def fn(ctx: FrozenContext) -> None:
        await asyncio.sleep(0)
        ctx.metrics.add("x", ctx.replicate)

    async def main() -> Any:
        return run_experiment(fn, replicates=3, plugins=[AsyncExecution(2)])

    result = asyncio.run(main())
    assert sorted(result.values.tolist()) == [0.0, 1.0, 2.0]


def test_each_concurrent_replicate_sees_its_own_context_in_nested_steps() -> None:
    @pipeline_step()
    async def whoami() -> None:
        from pytest_crystallize.core.running import running_context

        await asyncio.sleep(0.001)
        ctx = running_context()
        assert ctx is not None
        ctx.metrics.add("me", ctx.replicate)

    async def fn(ctx: FrozenContext) -> None:
        await whoami()

    result = run_experiment(fn, replicates=10, plugins=[AsyncExecution(5)])
    assert result.errors == ()
    assert result.replicates.tolist() == result.values.astype(int).tolist()


def _in_worker(ctx: FrozenContext, pids: str) -> None:
    with open(pids, "a") as out:
        out.write(f"{os.getpid()}\n")
    ctx.metrics.add("score", ctx.rng.normal(size=2)[0 if ctx.condition == "baseline" else 1])


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("design", [
    {"replicates": "auto", "max_replicates": 32, "looks": 4},
    {"replicates": "anytime", "max_replicates": 24},
], ids=["sequential", "anytime"])
def test_a_design_that_looks_again_keeps_its_worker_processes_for_every_look(
    tmp_path: Any, design: dict[str, Any],
) -> None:
    # One backend call per look: a pool started per look would cost a process start each
    # (most of a second under spawn or forkserver). The pool lives for the run, then stops.
    from pytest_crystallize import hypothesis

    pids = tmp_path / "pids"
    options: dict[str, Any] = {
        "seed": 5, "treatments": TREATMENTS, "arguments": {"pids": str(pids)},
        "hypotheses": [hypothesis(metric="score", direction="maximize")], **design,
    }
    serial = run_experiment(_in_worker, **options)
    pids.unlink()
    result = run_experiment(_in_worker, plugins=[ParallelExecution(2, chunk_size=1)], **options)
    assert result.values.tolist() == serial.values.tolist()
    assert [v.p_value for v in result.verdicts] == [v.p_value for v in serial.verdicts]
    looks = result.provenance.looks_taken if design["replicates"] == "auto" else None
    assert looks is None or looks > 1
    workers = {int(line) for line in pids.read_text().split()}
    assert os.getpid() not in workers
    # Never more than the pool's two: a pool per look would add processes each look. (A busy machine may
    # let one worker take every chunk, so one is enough.)
    assert workers, "no worker process ran a chunk"
    assert len(workers) <= 2, f"{len(workers)} worker processes: a pool was started again for a look"
    deadline = time.monotonic() + 10
    while any(_process_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_process_alive(pid) for pid in workers)


def _where_it_ran(noisy_input: float, ctx: FrozenContext) -> None:
    score(noisy_input, ctx)
    ctx.metrics.add("pid", os.getpid())


def test_a_module_level_datasource_reaches_workers_started_with_spawn() -> None:
    # Pickle takes a function by its module's name for it, which for a @data_source is the DataSource:
    # the datasource itself goes by that name, and the worker imports this module to find it.
    import pickle

    assert pickle.loads(pickle.dumps(noisy_input)) is noisy_input
    options: dict[str, Any] = {"replicates": 6, "seed": 9, "treatments": TREATMENTS,
                               "datasources": {"noisy_input": noisy_input}}
    serial = run_experiment(_where_it_ran, **options)
    backend = ParallelExecution(2, start_method="spawn", chunk_size=3)
    spawned = run_experiment(_where_it_ran, plugins=[backend], **options)
    assert not spawned.errors
    for condition in ("baseline", "shifted"):
        assert spawned.select("score", condition)[1].tolist() == serial.select("score", condition)[1].tolist()
    assert os.getpid() not in set(spawned.select("pid", "baseline")[1].tolist())
