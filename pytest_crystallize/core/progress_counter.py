"""Counting a run's finished replicate tasks for the ``crystallize_replicates_progress`` hook.

:class:`ProgressCounter` is what the runner gives the replicate runner as its
``progress``: backends count finished tasks from any thread, and only the
runner's thread calls the hook, throttled to one call per
:data:`PROGRESS_INTERVAL`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["PROGRESS_INTERVAL", "ProgressCounter"]

#: Seconds between two progress hook calls at most.
PROGRESS_INTERVAL: Final = 0.1


class ProgressCounter:
    """Counts finished tasks and calls the progress hook, throttled, from the owning thread only.

    Lives for one run. Backend threads may count; only the thread that made
    it (the runner's) calls the hook, so plugins never see concurrent calls,
    and never a forked worker process's copy, so it cannot draw on the
    parent's terminal.
    """

    __slots__ = ("_caller", "_experiment", "_last", "_lock", "_owner", "_pid", "_start", "done", "total")

    def __init__(self, experiment: Experiment, caller: Any, total: int) -> None:
        self._experiment = experiment
        self._caller = caller
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._pid = os.getpid()
        self._start = self._last = time.perf_counter()
        self.done = 0
        self.total = total

    def __call__(self, count: int) -> None:
        """Count ``count`` more finished tasks; call the hook if this is the owning thread and it is time."""
        with self._lock:
            self.done += count
        if threading.get_ident() != self._owner or os.getpid() != self._pid:
            return
        now = time.perf_counter()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._emit(now)

    def start(self) -> None:
        """Call the hook with nothing done yet, so a display can show the run from its start."""
        self._emit(self._start)

    def finish(self) -> None:
        """Call the hook with every task done."""
        self.done = self.total
        self._emit(time.perf_counter())

    def _emit(self, now: float) -> None:
        self._caller(
            experiment=self._experiment, done=min(self.done, self.total), total=self.total,
            elapsed=now - self._start,
        )

