"""The progress display: a bar of replicates done, the rate and the ETA, from the start of an experiment's run.

:func:`make_status_line` decides once per session, from the
``--crystallize-progress`` mode and the terminal, whether anything is drawn,
and opens the :class:`~pytest_crystallize.pytest_plugin.status_line.StatusLine`
it is drawn on. For each experiment run in this process the session object
registers a :class:`ProgressDisplay` in the run's plugin manager: the
runner's progress hook (called first with nothing done) starts the line,
whose thread redraws it every 0.2 s, so the elapsed time and the ETA move
even while the first replicate is still running. The display is erased
before pytest writes the item's outcome. Under pytest-xdist the workers send
their progress to the controller, which draws it (``xdist_progress``).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.pytest_plugin.status_line import GuardedStream, StatusLine, terminal_descriptor

if TYPE_CHECKING:
    import pytest

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["DELAY", "ProgressDisplay", "duration", "live_output", "make_status_line", "progress_text"]

#: Seconds an experiment runs before ``auto`` draws anything (short runs stay quiet).
DELAY: Final = 0.5
_BAR: Final = 20


def duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``4.2s``, ``3m 05s``, ``2h 10m``, ``12d 3h``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days:,}d {hours}h"


def _bar(done: int, total: int) -> str:
    filled = _BAR * done // total if total else _BAR
    head = ">" if 0 < filled < _BAR else ""
    return "[" + ("=" * filled + head)[:_BAR].ljust(_BAR) + "]"


def progress_text(
    done: int, total: int, elapsed: float, room: int = 10**6, *, label: str = "", brevity: int = 0
) -> str:
    """The progress of ``done`` of ``total`` tasks after ``elapsed`` seconds, as long as fits in ``room``.

    In full (``brevity`` 0): a bar, the count, the rate, the elapsed time
    and the ETA (``?`` until a task finished); shorter variants drop the bar
    (1), then all but the count and the ETA (2), then all but the count (3);
    ``brevity`` is the longest variant tried. ``label`` (a worker's id)
    comes first. Starts with a space, to stand apart from pytest's text;
    "" when nothing fits.
    """
    lead = f" {label}" if label else ""
    count = f"{done}/{total} replicates"
    if not done or elapsed <= 0:
        speed, eta = "", "ETA ?"
    else:
        rate = done / elapsed
        speed = f", {rate:.3g}/s" if rate >= 1 else f", {1 / rate:.3g}s each"
        eta = f"ETA {duration((total - done) / rate)}"
    candidates = (
        f"{lead} {_bar(done, total)} {count}{speed}, {duration(elapsed)} elapsed, {eta}",
        f"{lead} [{count}{speed}, {duration(elapsed)} elapsed, {eta}]",
        f"{lead} [{done}/{total}, {eta}]",
        f"{lead} [{done}/{total}]",
    )
    return next((text for text in candidates[brevity:] if len(text) <= room), "")


class ProgressDisplay:
    """A plugin of one experiment run: keeps its progress and has the session's status line draw it.

    The runner's hook calls (main thread) update the numbers holding the
    line's lock; the line's thread reads them holding it. Under live output
    (``-s``), ``sys.stdout`` and ``sys.stderr`` are guarded while the line is
    shown, so the user's lines and ours never mix.
    """

    def __init__(self, line: StatusLine, *, delay: float = DELAY, live: bool = False) -> None:
        self._line = line
        self._delay = delay
        self._live = live
        self._done = self._total = 0
        self._elapsed = 0.0
        self._at = time.perf_counter()
        self._guarded: tuple[Any, Any] | None = None
        self._finished = False

    @hookimpl
    def crystallize_replicates_progress(
        self, experiment: Experiment, done: int, total: int, elapsed: float
    ) -> None:
        """Keep the numbers; start drawing on the first call, stop when everything is done."""
        if self._finished:
            return
        with self._line.lock:
            self._done, self._total, self._elapsed, self._at = done, total, elapsed, time.perf_counter()
        if done >= total:
            self.clear()
        elif not self._line.running:
            self._guard()
            self._line.start(self.render)

    @hookimpl
    def crystallize_run_after(self, experiment: Experiment, result: ExperimentResult) -> None:
        """Erase the line when the run ends."""
        self.clear()

    def render(self, room: int) -> str:
        """The text for ``room`` characters (the line's thread calls this, holding the lock)."""
        elapsed = self._elapsed + time.perf_counter() - self._at
        if elapsed < self._delay or not self._total:
            return ""
        return progress_text(self._done, self._total, elapsed, room)

    def clear(self) -> None:
        """Erase the line and stop drawing for good (also when the run raised)."""
        self._finished = True
        self._line.stop()
        self._unguard()

    def _guard(self) -> None:
        if self._live and self._guarded is None:
            self._guarded = (sys.stdout, sys.stderr)
            sys.stdout = GuardedStream(sys.stdout, self._line)
            sys.stderr = GuardedStream(sys.stderr, self._line)

    def _unguard(self) -> None:
        if self._guarded is None:
            return
        out, err = self._guarded
        self._guarded = None
        # Put back only what is still ours: a test may have replaced the streams meanwhile.
        if isinstance(sys.stdout, GuardedStream) and sys.stdout.wrapped is out:
            sys.stdout = out
        if isinstance(sys.stderr, GuardedStream) and sys.stderr.wrapped is err:
            sys.stderr = err


def live_output(config: pytest.Config) -> bool:
    """True when the user's output reaches the terminal while tests run (``-s``, ``--capture=tee-sys``)."""
    return config.getoption("capture", None) in ("no", "tee-sys")


def make_status_line(config: pytest.Config, mode: str) -> StatusLine | None:
    """The line progress is drawn on for this session, or None where it would not be seen or would garble output.

    ``mode`` ``off`` never draws; ``on`` draws at once wherever pytest
    writes to (guarding live output under ``-s``); ``auto`` draws after half
    a second on a terminal, but not with ``-s``. Nothing is drawn with
    ``-q``, with live logs (pytest writes them from inside the test, past
    any lock of ours) or on an xdist worker (the controller draws). Call it
    while pytest's capture is suspended: the line opens its own duplicate of
    the terminal's file descriptor.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if mode == "off" or reporter is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
        return None
    if config.getoption("log_cli_level", None) or config.getini("log_cli"):
        return None
    writer = config.get_terminal_writer()
    if mode == "auto":
        isatty = getattr(reporter, "isatty", False)
        isatty = isatty() if callable(isatty) else isatty
        if not isatty or not writer.hasmarkup or live_output(config):
            return None
    return StatusLine(writer, terminal_descriptor())
