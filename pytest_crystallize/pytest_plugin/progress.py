"""The progress display: replicates done, elapsed time and ETA, while an experiment runs.

:func:`make_display` decides, from the ``--crystallize-progress`` mode and
the terminal, whether to draw at all; the session object registers the
display in each experiment run's plugin manager and erases it before pytest
writes the item's outcome.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    import pytest

    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["ProgressDisplay", "make_display"]


class ProgressDisplay:
    """Draws ``[done/total replicates, elapsed, ETA]`` after the running item's line.

    A plugin of one experiment run. It draws after ``delay`` seconds, at most
    every ``interval`` seconds, with pytest's capture suspended; the text is
    written past the writer's bookkeeping and erased in place (ANSI cursor
    moves) before pytest writes the item's outcome, so pytest's own output
    is unchanged.
    """

    DELAY: Final = 0.5
    INTERVAL: Final = 0.2

    def __init__(self, writer: Any, capture: Any, *, delay: float | None = None) -> None:
        self._writer = writer
        self._capture = capture
        self._delay = self.DELAY if delay is None else delay
        self._shown = 0
        self._last = 0.0

    @staticmethod
    def text(done: int, total: int, elapsed: float) -> str:
        """The progress text for ``done`` of ``total`` tasks after ``elapsed`` seconds: rate and ETA."""
        if not done or elapsed <= 0:
            return f" [{done}/{total} replicates, {duration(elapsed)} elapsed, ETA ?]"
        rate = done / elapsed
        speed = f"{rate:.3g}/s" if rate >= 1 else f"{1 / rate:.3g}s each"
        eta = duration((total - done) / rate)
        return f" [{done}/{total} replicates, {speed}, {duration(elapsed)} elapsed, ETA {eta}]"

    @hookimpl
    def crystallize_replicates_progress(
        self, experiment: Experiment, done: int, total: int, elapsed: float
    ) -> None:
        """Redraw, throttled; erase when the loop is done."""
        if done >= total:
            self.clear()
            return
        now = time.perf_counter()
        if elapsed < self._delay or (self._shown and now - self._last < self.INTERVAL):
            return
        self._last = now
        text = self.text(done, total, elapsed)
        room = self._writer.fullwidth - self._writer.width_of_current_line - 1
        if len(text) > room:
            text = f" [{done}/{total}]"
        self._draw(text if len(text) <= room else "")

    @hookimpl
    def crystallize_run_after(self, experiment: Experiment, result: ExperimentResult) -> None:
        """Erase the text when the run ends."""
        self.clear()

    def clear(self) -> None:
        """Erase what is drawn, leaving the cursor where pytest left it."""
        if self._shown:
            self._draw("")

    def _draw(self, text: str) -> None:
        erase = f"\x1b[{self._shown}D\x1b[K" if self._shown else ""
        if not erase and not text:
            return
        suspended = (
            self._capture.global_and_fixture_disabled() if self._capture is not None
            else contextlib.nullcontext()
        )
        with suspended:
            self._writer.write_raw(erase + text, flush=True)
        self._shown = len(text)


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


def make_display(config: pytest.Config, mode: str) -> ProgressDisplay | None:
    """A display for the next experiment run, or None where it would not be seen or would garble output.

    ``mode`` ``off`` never draws; ``on`` draws at once wherever pytest
    writes to; ``auto`` draws after a short delay on a terminal, but not
    with ``-s``, live logs or on an xdist worker. Nothing is drawn with ``-q``.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if mode == "off" or reporter is None or config.get_verbosity() < 0:
        return None
    writer = config.get_terminal_writer()
    if mode == "auto":
        isatty = getattr(reporter, "isatty", False)
        isatty = isatty() if callable(isatty) else isatty
        # Live output (-s, live logs) would land between our text and its erasure.
        live = config.getoption("capture", None) == "no" or bool(
            config.getoption("log_cli_level", None) or config.getini("log_cli")
        )
        if not isatty or not writer.hasmarkup or live or hasattr(config, "workerinput"):
            return None
    capture = config.pluginmanager.get_plugin("capturemanager")
    return ProgressDisplay(writer, capture, delay=0.0 if mode == "on" else None)
