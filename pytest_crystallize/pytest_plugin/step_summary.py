"""The Markdown summary of a session (``--crystallize-markdown``), written when the session ends.

One :class:`MarkdownSummary` is made in ``pytest_configure`` when the option
(or its ini twin) is given, on the controller only (pytest-xdist workers
send their reports there), registered as a plugin and kept until
``pytest_unconfigure``. At the end of the session, after the storage object
saved the run, it renders the experiments' report payloads (collected by
the session object, from every worker) and the comparisons with the saved
run (collected by the storage object) with
:func:`~pytest_crystallize.core.report.markdown.session_markdown`, and
writes them to the path, or appends them to GitHub's step summary.
A file that cannot be written is an error in the terminal summary and
fails the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_crystallize.pytest_plugin.keys import SESSION_KEY, STORAGE_KEY

if TYPE_CHECKING:
    from pytest_crystallize.pytest_plugin.output_settings import MarkdownTarget

__all__ = ["MarkdownSummary"]


class MarkdownSummary:
    """Writes the session's Markdown summary once, at ``pytest_sessionfinish`` (see the module docstring)."""

    def __init__(self, config: pytest.Config, target: MarkdownTarget) -> None:
        self.config = config
        self.target = target
        self.problem: str | None = None

    def render(self) -> str:
        """The Markdown of what the session and storage objects collected."""
        from pytest_crystallize.core.report.markdown import session_markdown

        session = self.config.stash.get(SESSION_KEY, None)
        storage = self.config.stash.get(STORAGE_KEY, None)
        payloads = {} if session is None else {n: p.to_dict() for n, p in session.payloads.items()}
        # An experiment that errored before it ran has no payload: the page must still say it did not run.
        not_run = [] if session is None else [f"{n} did not run: {why}" for n, why in sorted(session.not_run.items())]
        if storage is None:
            return session_markdown(payloads, problems=not_run)
        reference = storage.reference
        return session_markdown(
            payloads, gates=storage.gates,
            compared_with=None if reference is None else f"{reference.label}, saved {reference.created_at}",
            saved_run=None if storage.saved is None else storage.saved.label, problems=[*not_run, *storage.problems],
        )

    @pytest.hookimpl(trylast=True)  # after the storage object saved the run
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write (or append) the summary; a failure fails the session."""
        path = self.target.path
        try:
            text = self.render()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a" if self.target.append else "w", encoding="utf-8") as file:
                file.write(text if not self.target.append else "\n" + text)
        except OSError as exc:
            self.problem = f"could not write the Markdown summary {path}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Say what went wrong writing the summary, if anything did."""
        if self.problem is not None:
            terminalreporter.write_line(f"crystallize: ERROR: {self.problem}", red=True, bold=True)
