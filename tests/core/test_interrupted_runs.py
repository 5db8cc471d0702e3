"""A run stopped midway (Ctrl-C, pytest-timeout) carries the result of the replicates that finished."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pytest_crystallize import AsyncExecution, FrozenContext, ParallelExecution, Treatment, run_experiment
from pytest_crystallize.core.runner import PARTIAL_RESULT


def _interrupted_at_five(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", float(ctx.replicate))
    if ctx.replicate == 5 and ctx.condition == "hot":
        raise KeyboardInterrupt


async def _async_interrupted_at_five(ctx: FrozenContext) -> None:
    await asyncio.sleep(0)
    _interrupted_at_five(ctx)


@pytest.mark.parametrize(
    ("function", "plugins"),
    [
        (_interrupted_at_five, []),
        (_interrupted_at_five, [ParallelExecution(1, kind="thread")]),
        (_async_interrupted_at_five, []),
    ],
    ids=["serial", "thread", "async"],
)
def test_the_finished_replicates_come_with_the_interruption(function: Any, plugins: list[object]) -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        run_experiment(function, replicates=10, treatments=[Treatment("hot", {})], plugins=plugins)
    partial = getattr(caught.value, PARTIAL_RESULT)
    assert partial.provenance.replicates == 5
    frame = partial.to_dataframe()
    # The interrupted replicate's own values are dropped: it did not finish.
    assert sorted(frame[frame.condition == "hot"].replicate) == [0, 1, 2, 3, 4]
    assert sorted(frame[frame.condition == "baseline"].replicate) == [0, 1, 2, 3, 4, 5]
    assert partial.verdicts == ()


def test_a_sequential_run_keeps_its_finished_looks() -> None:
    from pytest_crystallize import hypothesis

    calls = {"n": 0}

    @hypothesis(metric="x", direction="maximize")
    def slow_to_decide(ctx: FrozenContext) -> None:
        calls["n"] += 1
        if calls["n"] > 2 * 25:
            raise KeyboardInterrupt
        ctx.metrics.add("x", float(ctx.rng.normal()))

    with pytest.raises(KeyboardInterrupt) as caught:
        run_experiment(slow_to_decide, replicates="auto", max_replicates=100, looks=4,
                       treatments=[Treatment("same", {})])
    partial = getattr(caught.value, PARTIAL_RESULT)
    assert partial.provenance.replicates == 25  # the first look; the second was cut short


def test_an_ordinary_error_of_a_backend_carries_no_partial_result() -> None:
    class Broken:
        from pytest_crystallize import hookimpl

        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> Any:
            raise RuntimeError("backend down")

    with pytest.raises(RuntimeError) as caught:
        run_experiment(_interrupted_at_five, replicates=3, plugins=[Broken()])
    assert not hasattr(caught.value, PARTIAL_RESULT)


def test_async_execution_keeps_finished_replicates() -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        run_experiment(_async_interrupted_at_five, replicates=10, treatments=[Treatment("hot", {})],
                       plugins=[AsyncExecution(1)])
    assert getattr(caught.value, PARTIAL_RESULT, None) is not None


@pytest.mark.parametrize("plugins", [[], [AsyncExecution(2)]], ids=["serial", "async"])
def test_an_interrupted_async_run_leaves_no_unretrieved_task_behind(
    plugins: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    # The interrupt reaches the caller; a copy left on an asyncio task would be logged ("Task exception
    # was never retrieved", traceback and all) whenever the garbage collector frees it: on Python 3.11
    # formatting that traceback parses source with ast, and from inside another ast conversion (pytest
    # rewriting a module) that ends in "SystemError: AST constructor recursion depth mismatch".
    import gc

    with pytest.raises(KeyboardInterrupt):
        run_experiment(_async_interrupted_at_five, replicates=10, treatments=[Treatment("hot", {})],
                       plugins=plugins)
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
