"""Keys the pytest layer's modules share: the marker, stash keys, plugin names, report keys.

A leaf module: it imports pytest and, for type checkers only, the classes
the stash keys hold, so every other module of the layer can import it
without importing one another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from pytest_crystallize.core.store.records import ExperimentRun
    from pytest_crystallize.pytest_plugin.html_report import CrystallizeHtml
    from pytest_crystallize.pytest_plugin.session import CrystallizeSession
    from pytest_crystallize.pytest_plugin.step_summary import MarkdownSummary
    from pytest_crystallize.pytest_plugin.storage import CrystallizeStorage

__all__ = [
    "CONTROLLER_PROGRESS_PLUGIN",
    "EVIDENCE_ATTRIBUTE",
    "EVIDENCE_KEY",
    "EXPERIMENT_PREFIX",
    "GATE_PROPERTY",
    "HTML_KEY",
    "HTML_PLUGIN",
    "MARKDOWN_KEY",
    "MARKDOWN_PLUGIN",
    "MARKER",
    "PAYLOAD_PROPERTY",
    "RECORD_ATTRIBUTE",
    "RECORD_KEY",
    "SESSION_KEY",
    "SESSION_PLUGIN",
    "STORAGE_KEY",
    "STORAGE_PLUGIN",
    "WORKER_REPORTS_PLUGIN",
]

#: The marker every experiment item carries: ``@pytest.mark.experiment(...)``.
MARKER: Final = "experiment"
#: Functions (and files, ``experiment_*.py``) collected as experiments.
EXPERIMENT_PREFIX: Final = "experiment_"

#: ``config.stash``: the session object, from ``pytest_configure`` to ``pytest_unconfigure``.
SESSION_KEY: Final[pytest.StashKey[CrystallizeSession]] = pytest.StashKey()
#: ``config.stash``: the storage object, present only when saving, comparing or a JSON report is asked for.
STORAGE_KEY: Final[pytest.StashKey[CrystallizeStorage]] = pytest.StashKey()
#: ``config.stash``: the Markdown summary writer, present only with ``--crystallize-markdown`` (not on xdist workers).
MARKDOWN_KEY: Final[pytest.StashKey[MarkdownSummary]] = pytest.StashKey()
#: ``config.stash``: the HTML report object, present only with --crystallize-html or pytest-html's --html.
HTML_KEY: Final[pytest.StashKey[CrystallizeHtml]] = pytest.StashKey()
#: ``item.stash``: the values behind the experiment's figures, a JSON string (set in ``runtest`` for figures).
EVIDENCE_KEY: Final[pytest.StashKey[str]] = pytest.StashKey()
#: ``item.stash``: the experiment's run to save (set by the storage in ``runtest``): the object itself, or
#: on a pytest-xdist worker packed as a JSON string for the call report.
RECORD_KEY: Final[pytest.StashKey[ExperimentRun | str]] = pytest.StashKey()

#: Plugin names of the session and storage objects, and of the xdist workers' report keeper.
SESSION_PLUGIN: Final = "crystallize-session"
STORAGE_PLUGIN: Final = "crystallize-storage"
WORKER_REPORTS_PLUGIN: Final = "crystallize-worker-reports"
MARKDOWN_PLUGIN: Final = "crystallize-markdown"
#: Plugin name of the pytest-xdist controller's progress display.
CONTROLLER_PROGRESS_PLUGIN: Final = "crystallize-controller-progress"
HTML_PLUGIN: Final = "crystallize-html"

#: User property holding an experiment's report payload (a JSON string; also in JUnit XML).
PAYLOAD_PROPERTY: Final = "crystallize_payload"
#: User property holding an experiment's comparison with the saved run (a JSON string).
GATE_PROPERTY: Final = "crystallize_gate"
#: Call-report attribute holding an experiment's run to save, packed by a worker (a JSON string).
RECORD_ATTRIBUTE: Final = "crystallize_record"
#: Call-report attribute holding the values behind an experiment's figures (a JSON string).
EVIDENCE_ATTRIBUTE: Final = "crystallize_evidence"
