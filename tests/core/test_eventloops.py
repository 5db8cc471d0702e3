"""Bodies written once for sync and async callers (core.eventloops)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loop_bound_client import CLIENT, module_client
from pytest_crystallize.core.eventloops import Body, drive_async, drive_sync, run_coroutine_sync, run_sync


def _body(values: list[Any], *, awaiting: bool) -> Body[int]:
    total = 0
    for value in values:
        if awaiting and asyncio.iscoroutine(value):
            try:
                value = yield value
            except KeyError:
                value = -1  # the body handles a failure of what it awaited
        total += value
    return total


async def _number(n: int) -> int:
    await asyncio.sleep(0)
    return n


async def _missing() -> int:
    raise KeyError("gone")


def test_the_sync_driver_returns_what_the_body_returns() -> None:
    assert drive_sync(_body([1, 2, 3], awaiting=False)) == 6


def test_the_sync_driver_refuses_a_body_that_waits() -> None:
    coroutine = _number(1)
    with pytest.raises(RuntimeError, match="yielded"):
        drive_sync(_body([coroutine], awaiting=True))
    coroutine.close()


def test_the_async_driver_awaits_what_the_body_yields_and_sends_it_back() -> None:
    assert asyncio.run(drive_async(_body([1, _number(2), _number(3)], awaiting=True))) == 6


def test_the_async_driver_hands_a_failure_to_the_body() -> None:
    assert asyncio.run(drive_async(_body([_missing(), _number(5)], awaiting=True))) == 4


def test_a_failure_the_body_does_not_handle_propagates() -> None:
    async def boom() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        asyncio.run(drive_async(_body([boom()], awaiting=True)))


def test_run_coroutine_sync_works_inside_a_running_loop() -> None:
    async def outer() -> int:
        return run_coroutine_sync(_number(7))

    assert run_coroutine_sync(_number(3)) == 3
    assert asyncio.run(outer()) == 7


def test_run_sync_runs_a_body_that_returns_nothing_and_refuses_one_that_awaits() -> None:
    seen: list[int] = []

    def body(items: list[object]) -> Body[None]:
        for item in items:
            if not isinstance(item, int):
                yield item
            else:
                seen.append(item)

    assert run_sync(body([1, 2])) is None
    assert seen == [1, 2]
    coroutine = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="yielded"):
        run_sync(body([coroutine]))
    coroutine.close()


async def _uses_a_module_client(ctx: Any) -> None:
    ctx.metrics.add("y", await module_client().call(float(ctx.rng.normal(size=2)[0 if ctx.condition == "baseline" else 1])))


@pytest.mark.parametrize("design", [
    {"replicates": "auto", "max_replicates": 24, "looks": 3},
    {"replicates": "anytime", "max_replicates": 24},
    {"replicates": 20, "budget": 60.0},  # a budget runs a fixed design in batches: a backend call each
], ids=["sequential", "anytime", "budget"])
@pytest.mark.parametrize("backend", ["serial", "async"])
def test_every_look_of_a_run_shares_one_event_loop(design: dict[str, Any], backend: str) -> None:
    from pytest_crystallize import AsyncExecution, Treatment, hypothesis, run_experiment

    CLIENT.clear()
    result = run_experiment(
        _uses_a_module_client, seed=4, treatments=[Treatment("t", {})], plugins=[AsyncExecution(3)] if backend == "async" else [],
        hypotheses=[hypothesis(metric="y", direction="maximize")], **design,
    )
    assert result.errors == ()
    assert len(result.values) == 2 * result.provenance.replicates
    assert CLIENT[0].loop.is_closed()  # the run's loop ends with the run
    CLIENT.clear()


def test_a_process_worker_runs_every_chunk_on_one_event_loop() -> None:
    from pytest_crystallize import ParallelExecution, Treatment, run_experiment

    CLIENT.clear()
    result = run_experiment(
        _uses_a_module_client, replicates=12, seed=4, treatments=[Treatment("t", {})],
        plugins=[ParallelExecution(2, chunk_size=2)],
    )
    assert result.errors == ()
    assert len(result.values) == 24


def test_a_forked_worker_never_runs_on_the_loop_its_parent_opened() -> None:
    # An event loop's selector and wake-up pipe are shared with the parent after a fork:
    # a process worker forked after the parent made its run's loop must make its own.
    import os

    from pytest_crystallize.core.eventloops import share_event_loop

    async def mark() -> None:
        asyncio.get_running_loop().crystallize_test_owner = os.getpid()  # type: ignore[attr-defined]

    async def owner() -> int | None:
        return getattr(asyncio.get_running_loop(), "crystallize_test_owner", None)

    close = share_event_loop()
    try:
        run_coroutine_sync(mark())
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report whose loop it ran on, then leave at once
            try:
                os.close(reader)
                child_close = share_event_loop()
                ran_on = run_coroutine_sync(owner())
                child_close()
                os.write(writer, b"parent's" if ran_on is not None else b"own")
            finally:
                os._exit(0)
        os.close(writer)
        answer = os.read(reader, 16)
        os.close(reader)
        os.waitpid(pid, 0)
        assert run_coroutine_sync(owner()) == os.getpid()  # the parent's scope still has its loop
    finally:
        close()
    assert answer == b"own"
