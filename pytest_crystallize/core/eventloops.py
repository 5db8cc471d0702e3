"""Code written once for sync and async callers, and async code run from sync code.

A body that may need to wait is written as a generator that *yields* each
awaitable it needs and receives the awaited value back (``value = yield
awaitable``). :func:`drive_async` awaits what it yields; :func:`drive_sync`
runs it where nothing may be awaited (the body then yields nothing). The
sync and async paths of the replicate runner and the evaluators are each one
such body, so they cannot drift apart.

:func:`run_coroutine_sync` runs async replicates from sync code. Within
:func:`share_event_loop` (the runner opens it for each experiment run, a
process worker for its life) every call in the thread runs on one event
loop: a sequential or anytime design calls the backend once per look, and
an async client made on the first look (``AsyncOpenAI``, ``httpx``) is
bound to its loop, so a loop per look would fail every replicate after it.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pytest_crystallize.core.timeouts import ReplicateTimeout

__all__ = ["Body", "drive_async", "drive_sync", "keep_event_loop", "run_coroutine_sync", "run_sync", "share_event_loop"]

T = TypeVar("T")

#: A body written once: yields awaitables, receives their values, returns its result.
Body = Generator[Awaitable[Any], Any, T]
#: What :func:`run_coroutine_sync` runs: the value, or the interrupt that stopped it.
Outcome = tuple[T | None, BaseException | None]


def drive_sync(body: Body[T]) -> T:
    """Run ``body`` without an event loop; it must not yield (nothing can be awaited here)."""
    try:
        awaitable = next(body)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]  # the generator's declared return type
    body.close()
    msg = f"internal error: a sync body yielded {awaitable!r}"
    raise RuntimeError(msg)


def run_sync(body: Body[None]) -> None:
    """:func:`drive_sync` for a body that returns nothing: the replicate runner's, once per replicate.

    A ``for`` loop runs it, and a generator returning None ends one without
    raising StopIteration, which would cost more than the rest of a trivial
    replicate.
    """
    for awaitable in body:
        body.close()
        msg = f"internal error: a sync body yielded {awaitable!r}"
        raise RuntimeError(msg)


async def drive_async(body: Body[T], *, timeout: float | None = None) -> T:
    """Run ``body`` on the running event loop, awaiting each awaitable it yields.

    With ``timeout`` (seconds), an await still pending when it has passed is
    cancelled and :class:`~pytest_crystallize.core.timeouts.ReplicateTimeout`
    is thrown into the body instead.
    """
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    try:
        awaitable = next(body)
        while True:
            try:
                if deadline is None:
                    value = await awaitable
                else:
                    value = await _before(deadline, awaitable)
            except BaseException as exc:  # the body handles it, or its finally clauses run here, in order
                awaitable = body.throw(exc)
            else:
                awaitable = body.send(value)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]  # the generator's declared return type


async def _before(deadline: float, awaitable: Awaitable[T]) -> T:
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            return await awaitable
    except TimeoutError:
        if scope.expired():
            raise ReplicateTimeout from None
        raise


def run_coroutine_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion from sync code, even inside a running loop.

    An interrupt (``KeyboardInterrupt``, ``SystemExit``, pytest's outcome
    exceptions) reaches the caller as it is, and no asyncio task is left
    holding it: asyncio lets an interrupt escape its loop but also keeps it
    on the task, where nobody retrieves it, so the garbage collector later
    logs "Task exception was never retrieved" with its traceback. On Python
    3.11, formatting that traceback parses source with ``ast``; run by the
    collector from inside another ``ast`` conversion (pytest rewriting a
    module) it corrupts that conversion's depth counter, which then fails
    with "SystemError: AST constructor recursion depth mismatch".
    """
    async def main() -> tuple[T | None, BaseException | None]:
        try:
            return await awaitable, None
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as interrupt:  # returned, so the task ends with a result (see above)
            return None, interrupt

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        shared = _shared_loop()
        value, interrupt = asyncio.run(main()) if shared is None else shared.run(main())
    else:
        # A loop already runs in this thread (a notebook, an async test): use another.
        ctx = contextvars.copy_context()
        with ThreadPoolExecutor(max_workers=1) as pool:
            value, interrupt = pool.submit(ctx.run, asyncio.run, main()).result()
    if interrupt is not None:
        raise interrupt
    return value  # type: ignore[return-value]  # None only alongside an interrupt


#: The shared loop of the running scope in this thread (see :func:`share_event_loop`).
_SHARED = threading.local()


class _SharedLoop:
    """One event loop for every coroutine a scope runs from sync code in its thread (made on first use)."""

    def __init__(self) -> None:
        self.runner: asyncio.Runner | None = None
        #: The process that made it: a forked worker inherits the thread-local, never the loop (its fds are shared).
        self.pid = os.getpid()

    def run(self, coroutine: Coroutine[Any, Any, Outcome[T]]) -> Outcome[T]:
        """Run ``coroutine`` on the scope's loop; after an error or interrupt, cancel the tasks it left."""
        if self.runner is None:
            self.runner = asyncio.Runner()
        try:
            outcome = self.runner.run(coroutine)
        except BaseException:
            self._cancel_leftovers()
            raise
        if outcome[1] is not None:  # interrupted
            self._cancel_leftovers()
        return outcome

    def _cancel_leftovers(self) -> None:
        """Cancel what a failed call left running (replicates still in flight), as ``asyncio.run`` would."""
        if self.runner is None:
            return
        loop = self.runner.get_loop()
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def close(self) -> None:
        """Close the loop: cancel what is left, finish async generators, as ``asyncio.run`` does."""
        if self.runner is not None:
            self.runner.close()
            self.runner = None


def _shared_loop() -> _SharedLoop | None:
    """The scope open in this thread, if this process opened it (a fork inherits the thread-local)."""
    shared: _SharedLoop | None = getattr(_SHARED, "loop", None)
    return shared if shared is not None and shared.pid == os.getpid() else None


def share_event_loop() -> Callable[[], None]:
    """Run the coroutines this thread runs from sync code on one loop until the returned closer is called.

    Call the closer in the same thread. Inside a scope already open, the
    outer one keeps its loop and the closer does nothing.
    """
    if _shared_loop() is not None:
        return lambda: None
    shared = _SharedLoop()
    _SHARED.loop = shared

    def close() -> None:
        _SHARED.loop = None
        shared.close()

    return close


def keep_event_loop() -> None:
    """Share one loop in this thread for the thread's life, unless a scope is open: a Dask worker's thread."""
    if _shared_loop() is None:
        share_event_loop()  # never closed: the loop ends with the worker process
