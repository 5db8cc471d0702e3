"""A status line: short text kept at the end of the terminal's current line, redrawn by a thread of its own.

Why a thread, and how it stays out of pytest's way:

* A replicate may run for minutes, and nothing of ours runs meanwhile, so a
  :class:`StatusLine` draws from a ticker thread, every ``interval``
  seconds, whatever the main thread is doing.
* While a test runs, pytest's capture points file descriptor 1 at a
  temporary file: text written to ``sys.stdout`` then would land in the
  test's captured output. The status line writes instead to a duplicate of
  the terminal's descriptor, made while capture is suspended (as pytest's
  faulthandler plugin keeps one of stderr). Captured output never holds a
  byte of it, and the thread never suspends capture, which would race the
  user's own writes.
* One lock guards every write to the terminal: the ticker draws holding
  it, and the main flow holds it (:meth:`StatusLine.paused`) around
  anything else it writes there, so a line is erased before pytest (or the
  user's live output under ``-s``, through :class:`GuardedStream`) writes
  after it, and no two writes interleave.

The text is erased in place (ANSI "cursor left" and "erase to end of
line"), leaving the cursor where the terminal writer left it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, Final, TextIO

__all__ = ["GuardedStream", "Render", "StatusLine", "terminal_descriptor"]

#: Builds the text for the room left on the line (characters); "" draws nothing.
Render = Callable[[int], str]


def terminal_descriptor() -> int | None:
    """A duplicate of the file descriptor behind ``sys.stdout``, or None when it has none (an in-memory stream).

    Call it while pytest's capture is suspended (between tests, at the end
    of collection): then descriptor 1 is the terminal, not a capture file.
    """
    try:
        return os.dup(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is both an OSError and a ValueError
        return None


class StatusLine:
    """One short text at the end of the terminal's current line (see the module docstring).

    Lifecycle: made once per session, holding ``descriptor`` (closed by
    :meth:`close`); :meth:`start` begins drawing with a render function and
    :meth:`stop` erases the text and ends the ticker, once per experiment.
    Thread safety: every write to the terminal holds :attr:`lock`.
    """

    INTERVAL: Final = 0.2

    def __init__(self, writer: Any, descriptor: int | None, *, interval: float | None = None) -> None:
        self._writer = writer  # pytest's TerminalWriter: width, current line, the fallback stream
        self._descriptor = descriptor
        self._interval = self.INTERVAL if interval is None else interval
        #: Held for every write to the terminal, by the ticker and by the main flow (re-entrant).
        self.lock = threading.RLock()
        self._render: Render | None = None
        self._shown = 0
        self._column: int | None = None  # the line's width after live output, when the writer cannot know it
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None

    def start(self, render: Render) -> None:
        """Draw ``render``'s text now and every interval from a daemon thread, until :meth:`stop`."""
        with self.lock:
            if self._closed:  # a late message after the session ended draws nothing
                return
            self._render = render
            self._column = None
            if self._thread is not None:
                return
            self._stopped.clear()
            self._thread = threading.Thread(target=self._tick, name="crystallize-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Erase the text and end the ticker (waiting for it); nothing happens when not running."""
        thread = self._thread
        if thread is None:
            return
        self._stopped.set()
        if thread is not threading.current_thread():
            thread.join()
        with self.lock:
            self._thread = self._render = None
            self.erase()

    def close(self) -> None:
        """Stop for good, and close the terminal descriptor (the end of the session)."""
        with self.lock:
            self._closed = True
        self.stop()
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
            self._descriptor = None

    def draw(self) -> None:
        """Redraw the text for the room left on the line now (the ticker calls this every interval)."""
        with self.lock:
            render = self._render
            if render is None:
                return
            room = self._writer.fullwidth - self._current_column() - 1
            text = render(room) if room > 0 else ""
            self._put(text if len(text) <= room else "")

    def erase(self) -> None:
        """Erase the text, leaving the cursor where it was before it was drawn; the ticker redraws it later."""
        with self.lock:
            self._put("")

    @contextlib.contextmanager
    def paused(self) -> Generator[None, None, None]:
        """Erase the text and hold the terminal while the caller writes to it (the writer is flushed after)."""
        with self.lock:
            self.erase()
            try:
                yield
            finally:
                self._writer.flush()

    def moved(self, text: str) -> None:
        """Note that ``text`` was written to the line outside the terminal writer (live output under ``-s``)."""
        with self.lock:
            column = self._current_column()
            self._column = len(text.rsplit("\n", 1)[-1]) if "\n" in text else column + len(text)

    def _current_column(self) -> int:
        return self._writer.width_of_current_line if self._column is None else self._column

    def _tick(self) -> None:
        self.draw()
        while not self._stopped.wait(self._interval):
            self.draw()

    def _put(self, text: str) -> None:
        erase = f"\x1b[{self._shown}D\x1b[K" if self._shown else ""
        if not (erase or text):
            return
        self._shown = len(text)
        data = erase + text
        if self._descriptor is None:
            self._writer.write_raw(data, flush=True)
            return
        try:
            payload = data.encode("ascii", "replace")
            while payload:
                payload = payload[os.write(self._descriptor, payload):]
        except OSError:  # the terminal went away (a closed pipe): stop drawing, never fail the run
            self._render = None
            self._stopped.set()


class GuardedStream:
    """Stands in for ``sys.stdout`` or ``sys.stderr`` while a status line is shown over live output (``-s``).

    Each write erases the status line first and is flushed at once, under
    the line's lock, so the user's text is never split by ours nor erased
    with it; the ticker redraws the line after it. Writes from another
    process (a forked worker) go straight through. Everything else is the
    wrapped stream's.
    """

    def __init__(self, stream: TextIO, line: StatusLine) -> None:
        self._stream = stream
        self._line = line
        self._pid = os.getpid()

    def write(self, text: str) -> int:
        """Write ``text`` with the status line erased, and flush."""
        if os.getpid() != self._pid:
            return self._stream.write(text)
        with self._line.paused():  # also flushes the terminal writer's stream, which a tee (tee-sys) writes to
            written = self._stream.write(text)
            self._stream.flush()
            self._line.moved(text)
        return written

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines`` as :meth:`write` does."""
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @property
    def wrapped(self) -> TextIO:
        """The stream this one stands in for."""
        return self._stream
