"""The HTML report (``--crystallize-html``) and the experiments' rows in pytest-html's report.

One :class:`CrystallizeHtml` is made in ``pytest_configure`` when
``--crystallize-html=PATH`` (ini ``crystallize_html``) or pytest-html's
``--html`` is given (no object, no import of this module otherwise),
registered as a plugin and kept in ``config.stash`` until
``pytest_unconfigure``.

* While an experiment item runs (on whichever process runs it), it finds the
  object in the stash and keeps the evidence behind its figures in its
  stash, a JSON string. The call report carries it as an attribute, so
  pytest-xdist sends it to the controller (never into JUnit XML).
* With pytest-html active, the call report also gets the experiment's table,
  verdicts and figures as an HTML extra (``report.extras``), which
  pytest-html shows in the experiment's row.
* The controller (or the only process) collects the evidence and the
  comparisons with the saved run from the reports; after the session it
  writes the report with the payloads the session object collected, and
  says where in the terminal summary. Serial and xdist runs go through the
  same path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.pytest_plugin.keys import (
    EVIDENCE_ATTRIBUTE,
    EVIDENCE_KEY,
    GATE_PROPERTY,
    HTML_KEY,
    HTML_PLUGIN,
    PAYLOAD_PROPERTY,
    SESSION_KEY,
    STORAGE_KEY,
)

if TYPE_CHECKING:
    from pytest_crystallize.core.report.html import ExperimentView, RunView

__all__ = ["CrystallizeHtml", "configure"]

HEADING: Final = "pytest-crystallize report"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _json_property(report: pytest.TestReport, key: str) -> Any:
    for name, value in report.user_properties:
        if name == key and isinstance(value, str):
            return json.loads(value)
    return None


class CrystallizeHtml:
    """Per-session state of the HTML report and the pytest-html extras (see the module docstring)."""

    def __init__(self, config: pytest.Config, path: Path | None) -> None:
        self.config = config
        self.path = path
        #: pytest-html writes a report in this session: experiments' rows get their tables and figures.
        self.pytest_html = bool(config.getoption("htmlpath", None))
        self.evidence: dict[str, Any] = {}
        self.comparisons: dict[str, Any] = {}
        self.written: Path | None = None
        self.problem: str | None = None

    # -- inside an experiment's runtest ---------------------------------------------------
    def keep_evidence(self, item: pytest.Item, evidence: Mapping[str, Any]) -> None:
        """Keep the values behind ``item``'s figures for its call report (a JSON string: xdist-safe)."""
        item.stash[EVIDENCE_KEY] = json.dumps(evidence, allow_nan=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Put the evidence on the call report; with pytest-html, the experiment's section as an HTML extra."""
        report = yield
        evidence = item.stash.get(EVIDENCE_KEY, None)
        if call.when != "call" or evidence is None:
            return report
        setattr(report, EVIDENCE_ATTRIBUTE, evidence)
        summary = _json_property(report, PAYLOAD_PROPERTY)
        if self.pytest_html and summary is not None:
            view = _view(report.nodeid, summary, json.loads(evidence), _json_property(report, GATE_PROPERTY), None)
            report.extras = [*getattr(report, "extras", []), _html_extra(report.nodeid, view)]
        return report

    # -- reports: worker -> controller ------------------------------------------------------
    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the evidence and the comparisons of experiments (also from xdist workers)."""
        if report.when != "call" or _is_worker(self.config):
            return
        evidence = getattr(report, EVIDENCE_ATTRIBUTE, None)
        if isinstance(evidence, str):
            self.evidence[report.nodeid] = json.loads(evidence)
        comparison = _json_property(report, GATE_PROPERTY)
        if comparison is not None:
            self.comparisons[report.nodeid] = comparison

    # -- the end of the session -------------------------------------------------------------
    @pytest.hookimpl(trylast=True)  # after the storage saved the run, so the report can name it
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the HTML report (controller only); a report that cannot be written fails the session."""
        if _is_worker(self.config) or self.path is None:
            return
        from pytest_crystallize.core.report.html import report_document

        crystallize = self.config.stash.get(SESSION_KEY, None)
        payloads = {} if crystallize is None else crystallize.payloads
        outcomes = {} if crystallize is None else crystallize.outcomes
        views = [
            _view(nodeid, payloads[nodeid].to_dict(), self.evidence.get(nodeid), self.comparisons.get(nodeid),
                  outcomes.get(nodeid))
            for nodeid in sorted(payloads)
        ]
        try:
            document = report_document(self._run_view(), views)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(document, encoding="utf-8")
        except OSError as exc:
            self.problem = f"could not write the HTML report {self.path}: {exc}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        self.written = self.path

    def _run_view(self) -> RunView:
        from pytest_crystallize.core.environment import git_info, machine_info
        from pytest_crystallize.core.report.html import RunView
        from pytest_crystallize.core.versions import package_versions

        crystallize = self.config.stash.get(SESSION_KEY, None)
        settings = {} if crystallize is None else {**crystallize.settings.defaults, **crystallize.settings.overrides}
        storage = self.config.stash.get(STORAGE_KEY, None)
        about = []
        if storage is not None and storage.reference is not None:
            about.append(f"compared with saved run {storage.reference.label}, saved {storage.reference.created_at}")
        if storage is not None and storage.saved is not None:
            about.append(f"saved as run {storage.saved.label}")
        if crystallize is not None:  # errored before running: no section of their own
            about += [f"{nodeid} did not run: {why}" for nodeid, why in sorted(crystallize.not_run.items())]
        git = git_info(self.config.rootpath)
        return RunView(
            heading=HEADING, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            git=None if git is None else git.to_dict(), machine=machine_info(), versions=package_versions(),
            options={"args": list(self.config.invocation_params.args), "settings": settings}, about=tuple(about),
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> Generator[None, None, None]:
        """Say where the HTML report went, after every other section."""
        yield
        if self.written is not None:
            terminalreporter.write_line(f"crystallize: wrote the HTML report to {self.written}")
        if self.problem is not None:
            terminalreporter.write_line(f"crystallize: ERROR: {self.problem}", red=True, bold=True)


def _view(nodeid: str, summary: Mapping[str, Any], evidence: Mapping[str, Any] | None,
          comparison: Mapping[str, Any] | None, outcome: str | None) -> ExperimentView:
    from pytest_crystallize.core.report.html import ExperimentView

    return ExperimentView(nodeid, summary, evidence, comparison, outcome)


def _html_extra(nodeid: str, view: ExperimentView) -> dict[str, str | None]:
    """pytest-html's ``extras.html(...)`` item (built here: pytest-html need not be imported)."""
    from pytest_crystallize.core.report.html import experiment_fragment
    from pytest_crystallize.core.report.plots import has_matplotlib

    plots = has_matplotlib()
    ident = "crystallize-" + hashlib.sha1(nodeid.encode(), usedforsecurity=False).hexdigest()[:12]
    hint = None if plots else "figures need matplotlib: pip install 'pytest-crystallize[report]'"
    content = experiment_fragment(view, ident=ident, plots=plots, style=True, footnote=hint)
    return {"name": "crystallize", "format_type": "html", "content": content, "mime_type": None, "extension": None}


def configure(config: pytest.Config, path: Path | None) -> CrystallizeHtml:
    """Make, register and stash the HTML report object."""
    plugin = CrystallizeHtml(config, path)
    config.stash[HTML_KEY] = plugin
    config.pluginmanager.register(plugin, HTML_PLUGIN)
    return plugin
