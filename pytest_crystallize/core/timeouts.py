"""Per-replicate timeouts: stop one replicate that runs too long, keep the run going.

A replicate past its ``timeout`` gets :class:`ReplicateTimeout` raised inside
it, so it becomes an error of that replicate (named as a timeout) and the
next replicate runs. How the exception gets there depends on where the
replicate runs:

* in the main thread (serial runs, and every worker process of
  ``ParallelExecution(kind="process")``): a real-time interval timer
  (``SIGALRM``), which also interrupts a blocking call such as ``sleep`` or a
  socket read. A timer already set by someone else (pytest-timeout's signal
  method) is kept: whichever deadline comes first fires, and theirs is
  re-armed afterwards with the time it had left;
* in another thread (``kind="thread"``, ``AsyncExecution`` on a plain
  ``def``): an asynchronous exception raised in that thread by a watchdog
  timer. It takes effect at the thread's next Python instruction, so a call
  blocked inside C code is stopped when that call returns;
* on an event loop (``async def`` replicates): the awaits past the deadline
  are cancelled (:mod:`~pytest_crystallize.core.eventloops`).

A worker process stuck in C code past its deadline is killed by the parent
(:mod:`~pytest_crystallize.plugins.processes`).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Final

__all__ = ["TIMEOUT_ERROR", "TIMEOUT_GRACE", "ReplicateTimeout", "replicate_deadline", "timeout_message"]

_HAS_TIMER: Final = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")


class ReplicateTimeout(Exception):  # named for what the user reads: the replicate timed out
    """Raised inside a replicate that ran longer than its experiment's ``timeout``."""


#: The ``error_type`` of a replicate stopped for its timeout, however it was stopped.
TIMEOUT_ERROR: Final = ReplicateTimeout.__name__
#: Seconds past its timeout a replicate's thread or worker may take to stop before it is
#: abandoned (a thread) or killed (a worker process).
TIMEOUT_GRACE: Final = 1.0


def timeout_message(timeout: float | None, how: str) -> str:
    """The message of a replicate stopped for running past ``timeout``; ``how`` says how it was stopped."""
    return f"the replicate ran longer than the experiment's timeout of {timeout:g} s{how}"


@contextlib.contextmanager
def replicate_deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ReplicateTimeout` in the calling thread if the block outlives ``seconds``."""
    if seconds is None:
        yield
    elif _HAS_TIMER and threading.current_thread() is threading.main_thread():
        with _interval_timer(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    raise ReplicateTimeout


@contextlib.contextmanager
def _interval_timer(seconds: float) -> Iterator[None]:
    previous_handler = signal.getsignal(signal.SIGALRM)
    previous_left, previous_interval = signal.setitimer(signal.ITIMER_REAL, 0)
    started = time.monotonic()
    theirs_first = 0 < previous_left <= seconds
    # Their deadline comes first: let their handler fire at it, as if we were not here.
    signal.signal(signal.SIGALRM, previous_handler if theirs_first else _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, previous_left if theirs_first else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_left > 0:
            left = previous_left - (time.monotonic() - started)
            # Overdue already: fire their timer at once rather than never.
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), previous_interval)


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else None)


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    ident = threading.get_ident()
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["running"]:
                state["fired"] = True
                _set_async_exc(ident, ReplicateTimeout)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["running"] = False
            if state["fired"]:
                _set_async_exc(ident, None)  # not raised yet (the block ended first): withdraw it
        timer.cancel()
