"""Progress under pytest-xdist: each worker sends its experiment's progress, the controller draws it.

pytest-xdist's worker -> controller events are a fixed set (an unknown one
ends the run with "unknown event"), and ``workeroutput`` arrives only when
a worker finishes. So the controller opens a channel of its own to each
worker on that worker's execnet gateway (``gateway.newchannel()``, in
``pytest_configure_node``) and hands it over in ``workerinput``; execnet
sends a channel inside a message, so this also works for remote workers.

* On a worker, the session object registers a :class:`ProgressSender` in
  each experiment run's plugin manager: it sends ``(node id, done, total,
  elapsed)`` at the start, at most twice a second after, and ``(node id,
  None, None, None)`` when the run ends.
* On the controller, :class:`ControllerProgress` (a pytest plugin, made at
  the first ``pytest_configure_node`` when progress is shown) keeps what
  each worker runs and draws it on a status line; the line's thread redraws
  it every 0.2 s, so elapsed times and ETAs move between messages. The
  controller's own writes to the terminal (each report, a node going down)
  are made with the line erased and the terminal held, and the line is
  closed before the terminal summary.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.pytest_plugin.progress import progress_text

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.pytest_plugin.status_line import StatusLine

__all__ = ["PROGRESS_CHANNEL", "ControllerProgress", "ProgressSender"]

#: ``workerinput`` key of the channel a worker sends its progress on.
PROGRESS_CHANNEL: Final = "crystallize_progress_channel"
#: A running experiment's progress, as the controller keeps it: node id, done, total, elapsed, received at.
_Running = tuple[str, int, int, float, float]


class ProgressSender:
    """A plugin of one experiment run on a worker: sends its progress to the controller (see the module docstring).

    Sending never fails the run: a closed channel (the controller gone) just
    stops the messages.
    """

    INTERVAL: Final = 0.5

    def __init__(self, channel: Any, nodeid: str) -> None:
        self._channel = channel
        self._nodeid = nodeid
        self._last = -self.INTERVAL
        self._ended = False

    @hookimpl
    def crystallize_replicates_progress(
        self, experiment: Experiment, done: int, total: int, elapsed: float
    ) -> None:
        """Send the progress: the first call at once, then at most every ``INTERVAL`` seconds."""
        now = time.perf_counter()
        if done >= total:
            self.clear()
        elif not self._ended and now - self._last >= self.INTERVAL:
            self._last = now
            self._send((self._nodeid, done, total, elapsed))

    @hookimpl
    def crystallize_run_after(self, experiment: Experiment, result: ExperimentResult) -> None:
        """Say the run ended."""
        self.clear()

    def clear(self) -> None:
        """Say the run ended (once; also when it raised)."""
        if not self._ended:
            self._ended = True
            self._send((self._nodeid, None, None, None))

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._channel.send(message)
        except Exception:  # an execnet channel closed under us: progress is not worth failing the run
            self._ended = True


class ControllerProgress:
    """The controller's view of what every worker runs, drawn on one status line (see the module docstring).

    Lifecycle: made at the first ``pytest_configure_node``, registered as a
    plugin, closed in ``pytest_sessionfinish``. Worker messages arrive on
    execnet's receiver thread; they, the line's thread and the hooks share
    the line's lock.
    """

    def __init__(self, line: StatusLine, *, delay: float) -> None:
        self._line = line
        self._delay = delay
        self._running: dict[str, _Running] = {}

    def configure_node(self, node: Any) -> None:
        """Open a progress channel to ``node`` (a WorkerController) and hand it over in its ``workerinput``."""
        worker = str(node.gateway.id)
        channel = node.gateway.newchannel()
        channel.setcallback(lambda message: self.received(worker, message))
        node.workerinput[PROGRESS_CHANNEL] = channel

    def received(self, worker: str, message: Any) -> None:
        """Keep a worker's progress message (execnet's receiver thread: cheap, never raises)."""
        try:
            nodeid, done, total, elapsed = message
            with self._line.lock:
                if done is None:
                    self._running.pop(worker, None)
                else:
                    self._running[worker] = (str(nodeid), int(done), int(total), float(elapsed), time.perf_counter())
                    if not self._line.running:
                        self._line.start(self.render)
        except Exception:  # a malformed message is dropped: the receiver thread must not die
            return

    def render(self, room: int) -> str:
        """The text for ``room`` characters: one worker in full, several side by side in short."""
        now = time.perf_counter()
        shown = [
            (worker, done, total, elapsed + now - at)
            for worker, (_, done, total, elapsed, at) in sorted(self._running.items())
            if elapsed + now - at >= self._delay
        ]
        if len(shown) == 1:
            ((worker, done, total, elapsed),) = shown
            return progress_text(done, total, elapsed, room, label=worker)
        for brevity in (2, 3):  # "[done/total, ETA]" each, else "[done/total]" each
            text = "".join(progress_text(d, t, e, label=w, brevity=brevity) for w, d, t, e in shown)
            if len(text) <= room:
                return text
        return ""

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None, None, None]:
        """Hold the terminal, the line erased, while pytest writes."""
        with self._line.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None, None, None]:
        """Hold the terminal, the line erased, while pytest writes the report."""
        with self._line.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self) -> Generator[None, None, None]:
        """Hold the terminal, the line erased, while pytest writes the progress percentage."""
        with self._line.paused():
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True, optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> Generator[None, None, None]:
        """Hold the terminal while xdist says a worker went down; forget what that worker ran."""
        with self._line.paused():
            self._running.pop(str(node.gateway.id), None)
            return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        """Erase and close the line before anything of the session's end is written."""
        self._line.close()
        return (yield)

