"""Nested steps and experiments: the context flows through context variables, sync and async."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_crystallize import (
    AsyncExecution,
    ConfigurationError,
    FrozenContext,
    ParallelExecution,
    Treatment,
    current_context,
    pipeline_step,
    run_experiment,
)


@pipeline_step()
def _record(data: float, ctx: FrozenContext, label: str = "x") -> float:
    ctx.metrics.add(label, data)
    return data


@pipeline_step()
def _twice(data: float, factor: float = 1.0) -> float:
    # Calls another step without a context: it must land in this replicate.
    return _record(data * factor * 2, label="inner")


@pipeline_step()
async def _fetch(data: float, bonus: float = 0.0) -> float:
    await asyncio.sleep(0)
    return _record(data + bonus, label="fetched")


def _by_replicate(result: Any, metric: str, condition: str) -> dict[int, float]:
    reps, values = result.select(metric, condition)
    return dict(zip(reps.tolist(), values.tolist(), strict=True))


def test_a_helper_function_finds_the_running_context_without_being_passed_it() -> None:
    def helper() -> None:
        current_context().metrics.add("seen", current_context().replicate)

    def fn(ctx: FrozenContext) -> None:
        helper()

    result = run_experiment(fn, replicates=3)
    assert _by_replicate(result, "seen", "baseline") == {0: 0.0, 1: 1.0, 2: 2.0}


def test_current_context_outside_a_replicate_says_where_it_works() -> None:
    with pytest.raises(ConfigurationError, match="no experiment replicate is running"):
        current_context()


def _failing_sync(ctx: FrozenContext) -> None:
    if ctx.replicate == 1:
        raise ValueError("boom")


async def _failing_async(ctx: FrozenContext) -> None:
    await asyncio.sleep(0)
    _failing_sync(ctx)


@pytest.mark.parametrize("fn", [_failing_sync, _failing_async], ids=["sync", "async"])
def test_no_replicate_context_stays_current_after_a_run(fn: Any) -> None:
    # Each replicate's context stays current until the next one's; the run restores the outer value.
    result = run_experiment(fn, replicates=3)
    assert [e.replicate for e in result.errors] == [1]
    with pytest.raises(ConfigurationError, match="no experiment replicate is running"):
        current_context()


def test_steps_nested_in_steps_called_from_an_experiment_without_ctx() -> None:
    result = run_experiment(
        lambda: _twice(float(current_context().replicate)), replicates=3,
        params={"factor": 1.0}, treatments=[Treatment("x10", {"factor": 10.0})],
    )
    assert not result.errors, result.errors
    assert _by_replicate(result, "inner", "baseline") == {0: 0.0, 1: 2.0, 2: 4.0}
    assert _by_replicate(result, "inner", "x10") == {0: 0.0, 1: 20.0, 2: 40.0}


@pytest.mark.parametrize("backend", [None, AsyncExecution(max_workers=4)], ids=["serial", "async"])
def test_asyncio_tasks_started_inside_a_replicate_inherit_its_context(backend: Any) -> None:
    async def fn(ctx: FrozenContext) -> None:
        base = float(ctx.replicate)
        # create_task and gather copy the current context into each task.
        task = asyncio.create_task(_fetch(base))
        await asyncio.gather(_fetch(base + 100), task)
        await asyncio.to_thread(lambda: _record(base, label="threaded"))

    result = run_experiment(
        fn, replicates=4, treatments=[Treatment("bonus", {"bonus": 0.5})], plugins=[backend] if backend else []
    )
    assert not result.errors, result.errors
    for condition, bonus in (("baseline", 0.0), ("bonus", 0.5)):
        reps, values = result.select("fetched", condition)
        got = sorted(zip(reps.tolist(), values.tolist(), strict=True))
        assert got == sorted([(r, r + bonus) for r in range(4)] + [(r, r + 100 + bonus) for r in range(4)])
        assert _by_replicate(result, "threaded", condition) == {r: float(r) for r in range(4)}


def test_a_thread_started_by_hand_needs_copy_context() -> None:
    def fn(ctx: FrozenContext) -> None:
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(ConfigurationError):
                pool.submit(current_context).result()
            copied = contextvars.copy_context()
            assert pool.submit(copied.run, current_context).result() is ctx

    result = run_experiment(fn, replicates=2)
    assert not result.errors, result.errors


def test_a_step_without_source_code_nests_fine() -> None:
    # Spearmint fault: nested calls were found by parsing source, which fails without it.
    namespace: dict[str, Any] = {"pipeline_step": pipeline_step}
    exec(  # a function whose source inspect cannot find
        "@pipeline_step()\ndef generated(data, ctx):\n    ctx.metrics.add('generated', data)\n    return data\n",
        namespace,
    )
    generated = namespace["generated"]
    with pytest.raises(OSError, match="source"):
        inspect.getsource(generated.function)

    @pipeline_step()
    def outer(data: float) -> float:
        return generated(data + 1)

    result = run_experiment(lambda ctx: outer(float(ctx.replicate)), replicates=2)
    assert _by_replicate(result, "generated", "baseline") == {0: 1.0, 1: 2.0}


def test_an_experiment_run_inside_a_replicate_keeps_both_contexts_apart() -> None:
    def inner(ctx: FrozenContext) -> None:
        ctx.metrics.add("inner", ctx.replicate)

    def outer(ctx: FrozenContext) -> None:
        nested = run_experiment(inner, replicates=2)
        assert current_context() is ctx  # restored after the inner run
        ctx.metrics.add("inner_sum", sum(nested.select("inner", "baseline")[1]))
        _record(1.0, label="after")

    result = run_experiment(outer, replicates=2, treatments=[Treatment("t")])
    assert not result.errors, result.errors
    assert result.metrics == ("inner_sum", "after")
    assert _by_replicate(result, "after", "t") == {0: 1.0, 1: 1.0}


def test_an_async_experiment_run_inside_an_async_replicate() -> None:
    async def inner(ctx: FrozenContext) -> None:
        await asyncio.sleep(0)
        ctx.metrics.add("inner", 1)

    async def outer(ctx: FrozenContext) -> None:
        nested = run_experiment(inner, replicates=2)  # a loop is running: runs on its own loop in a thread
        ctx.metrics.add("count", len(nested.select("inner", "baseline")[1]))
        assert current_context() is ctx

    result = run_experiment(outer, replicates=2)
    assert not result.errors, result.errors
    assert _by_replicate(result, "count", "baseline") == {0: 2.0, 1: 2.0}


@pytest.mark.parametrize(
    "plugins",
    [[], [ParallelExecution(max_workers=3, kind="thread")], [AsyncExecution(max_workers=3)]],
    ids=["serial", "threads", "async"],
)
def test_every_condition_has_finished_when_run_experiment_returns(plugins: list[Any]) -> None:
    # Spearmint fault: variants ran in background threads that outlived the call.
    done: list[tuple[str, int]] = []
    lock = threading.Lock()

    def fn(ctx: FrozenContext) -> None:
        with lock:
            done.append((ctx.condition, ctx.replicate))

    before = threading.active_count()
    result = run_experiment(fn, replicates=5, treatments=[Treatment("a"), Treatment("b")], plugins=plugins)
    snapshot = sorted(done)
    assert snapshot == sorted((c, r) for c in ("baseline", "a", "b") for r in range(5))
    assert threading.active_count() == before
    assert sorted(done) == snapshot  # nothing finished later
    assert result.conditions == ("baseline", "a", "b")


def test_a_step_called_in_a_pool_thread_says_threads_do_not_inherit_the_context() -> None:
    messages: list[str] = []

    def fn(ctx: FrozenContext) -> None:
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(ConfigurationError) as info:
                pool.submit(_record, 1.0).result()
            messages.append(str(info.value))
            pool.submit(contextvars.copy_context().run, _record, 2.0).result()  # the fix it suggests

    result = run_experiment(fn, replicates=1)
    assert not result.errors, result.errors
    assert result.select("x", "baseline")[1].tolist() == [2.0]
    assert "in thread 'ThreadPoolExecutor-" in messages[0]
    assert "Threads do not inherit the replicate's context" in messages[0]
    assert "contextvars.copy_context().run" in messages[0]
    assert "or pass ctx explicitly: _record(data, ctx)" in messages[0]
    assert "outside an experiment" not in messages[0]


@pipeline_step()
async def _async_record(data: float, ctx: FrozenContext) -> None:
    ctx.metrics.add("m", data)


def test_an_async_step_called_from_a_sync_experiment_is_a_clear_replicate_error() -> None:
    def fn(ctx: FrozenContext) -> None:
        _async_record(1.0)  # not awaited: a plain def cannot

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited" either
        result = run_experiment(fn, replicates=2)
    assert len(result.errors) == 2
    error = result.errors[0]
    assert error.error_type == "ConfigurationError"
    assert error.step == "_async_record"
    assert error.message == (
        "async step '_async_record' called from the sync experiment 'fn', so nothing awaited it and it never ran: "
        "make the experiment function 'async def' and 'await' the step"
    )


def test_a_sync_experiment_returning_a_coroutine_is_a_clear_replicate_error() -> None:
    async def work() -> int:
        return 1

    def fn(ctx: FrozenContext) -> Any:
        return work()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_experiment(fn, replicates=1)
    assert [e.message for e in result.errors] == [
        "experiment 'fn': its function is a plain 'def' but returned a coroutine, which nothing awaits: "
        "make it 'async def' and await what it calls"
    ]


def test_an_async_step_a_sync_experiment_runs_itself_is_fine() -> None:
    def fn(ctx: FrozenContext) -> None:
        asyncio.run(_async_record(3.0))  # awaited, on a loop of its own

    result = run_experiment(fn, replicates=1)
    assert not result.errors, result.errors
    assert result.select("m", "baseline")[1].tolist() == [3.0]


def test_a_sync_experiment_with_an_async_datasource_still_checks_its_steps() -> None:
    from pytest_crystallize import data_source

    @data_source
    async def remote(ctx: FrozenContext) -> float:
        return 2.0

    def fn(ctx: FrozenContext, remote: float) -> None:
        _async_record(remote)

    result = run_experiment(fn, replicates=1, datasources={"remote": remote})
    assert [e.step for e in result.errors] == ["_async_record"]
