"""Bodies written once for sync and async callers (core.eventloops)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
