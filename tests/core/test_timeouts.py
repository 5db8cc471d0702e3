"""Per-replicate timeouts: the slow replicate becomes a timeout error, the rest runs, on every backend."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pytest

from pytest_crystallize import (
    AsyncExecution,
    ConfigurationError,
    FrozenContext,
    ParallelExecution,
    run_experiment,
)
from pytest_crystallize.core.timeouts import TIMEOUT_ERROR

TIMEOUT = 0.3
REPLICATES = 5


def _hangs_in_sleep(ctx: FrozenContext) -> None:
    if ctx.replicate == 2:
        time.sleep(60)
    ctx.metrics.add("x", float(ctx.replicate))


def _hangs_in_python(ctx: FrozenContext) -> None:
    if ctx.replicate == 1:
        while True:
            pass
    ctx.metrics.add("x", float(ctx.replicate))


def _hangs_where_no_timer_reaches(ctx: FrozenContext) -> None:
    if ctx.replicate == 3:
        # SIGALRM blocked: the worker's own timer cannot stop this, only the parent can.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        time.sleep(60)
    ctx.metrics.add("x", float(ctx.replicate))


async def _hangs_in_await(ctx: FrozenContext) -> None:
    if ctx.replicate == 4:
        await asyncio.sleep(60)
    ctx.metrics.add("x", float(ctx.replicate))


def _run(function: Any, plugins: list[object]) -> tuple[float, Any]:
    started = time.monotonic()
    result = run_experiment(function, replicates=REPLICATES, timeout=TIMEOUT, plugins=plugins)
    return time.monotonic() - started, result


BACKENDS = {
    "serial": [],
    "thread": [ParallelExecution(2, kind="thread")],
    "process": [ParallelExecution(2)],
    "async-threads": [AsyncExecution(3)],
}


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(("function", "stuck"), [(_hangs_in_sleep, 2), (_hangs_in_python, 1)])
def test_a_hung_replicate_becomes_a_timeout_error_and_the_rest_runs(backend: str, function: Any, stuck: int) -> None:
    elapsed, result = _run(function, BACKENDS[backend])
    assert [(e.replicate, e.error_type) for e in result.errors] == [(stuck, TIMEOUT_ERROR)]
    assert "timeout of 0.3 s" in result.errors[0].message
    values = result.to_dataframe()
    assert sorted(values.replicate) == [r for r in range(REPLICATES) if r != stuck]
    assert elapsed < 20  # not the 60 s the replicate asked for (generous: shared machines)


def test_a_process_worker_stuck_beyond_its_own_timer_is_killed() -> None:
    elapsed, result = _run(_hangs_where_no_timer_reaches, [ParallelExecution(2, chunk_size=1)])
    assert [(e.replicate, e.error_type) for e in result.errors] == [(3, TIMEOUT_ERROR)]
    assert "worker process was killed" in result.errors[0].message
    assert elapsed < 20


@pytest.mark.parametrize("plugins", [[], [AsyncExecution(3)]], ids=["serial", "async"])
def test_an_async_replicate_is_cancelled_at_its_deadline(plugins: list[object]) -> None:
    _, result = _run(_hangs_in_await, plugins)
    assert [(e.replicate, e.error_type) for e in result.errors] == [(4, TIMEOUT_ERROR)]


def test_no_thread_is_left_behind_by_a_python_level_hang() -> None:
    before = set(threading.enumerate())
    _run(_hangs_in_python, [ParallelExecution(2, kind="thread")])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.05)
    assert set(threading.enumerate()) - before == set()


def test_fast_replicates_are_untouched_and_no_stray_timeout_fires_later() -> None:
    def quick(ctx: FrozenContext) -> None:
        time.sleep(0.01)
        ctx.metrics.add("x", 1.0)

    # A timeout 50x the work: a busy machine's slow sleep must not pass for a replicate that hung.
    for plugins in ([], [ParallelExecution(2, kind="thread")]):
        result = run_experiment(quick, replicates=20, timeout=0.5, plugins=plugins)
        assert result.errors == ()
    time.sleep(0.7)  # a timer that outlived its replicate would raise here


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_an_outer_alarm_such_as_pytest_timeouts_still_fires() -> None:
    fired: list[float] = []

    def outer_handler(signum: int, frame: Any) -> None:
        fired.append(time.monotonic())

    previous = signal.signal(signal.SIGALRM, outer_handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        started = time.monotonic()
        result = run_experiment(_hangs_in_sleep, replicates=4, timeout=TIMEOUT)
        assert [e.replicate for e in result.errors] == [2]
        while not fired and time.monotonic() - started < 5:
            time.sleep(0.01)
        assert fired, "the outer timer was lost"
        assert fired[0] - started >= 0.45
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
def test_an_outer_alarm_due_first_wins_over_the_replicate_timeout() -> None:
    class Outer(Exception):
        pass

    def outer_handler(signum: int, frame: Any) -> None:
        raise Outer

    previous = signal.signal(signal.SIGALRM, outer_handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        result = run_experiment(_hangs_in_sleep, replicates=4, timeout=5.0)
        # The outer alarm fired inside replicate 2 first; it is that replicate's error, not a timeout.
        assert [(e.replicate, e.error_type) for e in result.errors] == [(2, "Outer")]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("bad", [0, -1, "1", float("inf"), True])
def test_a_bad_timeout_is_named(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"timeout must be a number of seconds > 0"):
        run_experiment(_hangs_in_sleep, replicates=2, timeout=bad)
