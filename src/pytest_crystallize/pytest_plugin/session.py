"""The session object: collection of experiments, payloads, the terminal summary.

One :class:`CrystallizeSession` is made in ``pytest_configure``, registered as
a plugin and kept in ``config.stash``; it lives until ``pytest_unconfigure``.
It collects the summary payloads of every experiment report (also those that
come from pytest-xdist workers, as JSON strings) and prints the summary.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.core.report import summary_lines, totals_line
from pytest_crystallize.pytest_plugin.items import (
    MARKER,
    PAYLOAD_ATTRIBUTE,
    ExperimentItem,
    to_experiment_item,
)
from pytest_crystallize.pytest_plugin.options import Settings

if TYPE_CHECKING:
    import pluggy

    from pytest_crystallize.core.experiment import Experiment

__all__ = ["SESSION_KEY", "CrystallizeSession"]

SESSION_KEY: Final = pytest.StashKey["CrystallizeSession"]()
EXPERIMENT_PREFIX: Final = "experiment_"


class CrystallizeSession:
    """Per-run state of the plugin (see the module docstring for its lifecycle)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.payloads: dict[str, dict[str, Any]] = {}
        self._conftest_sources: dict[Path, dict[str, DataSource]] = {}

    # -- datasources in conftest.py files -------------------------------------
    @pytest.hookimpl
    def pytest_plugin_registered(self, plugin: object) -> None:
        """Remember the datasources each conftest.py defines, by its directory."""
        if not isinstance(plugin, ModuleType):
            return
        file = getattr(plugin, "__file__", None)
        if not file or os.path.basename(file) != "conftest.py":
            return
        sources = {n: v for n, v in vars(plugin).items() if isinstance(v, DataSource)}
        if sources:
            self._conftest_sources[Path(file).resolve().parent] = sources

    def conftest_datasource(self, path: Path, name: str) -> DataSource | None:
        """The datasource ``name`` from the closest conftest.py above ``path``, if any."""
        for directory in Path(path).resolve().parents:
            source = self._conftest_sources.get(directory, {}).get(name)
            if source is not None:
                return source
        return None

    # -- collection -----------------------------------------------------------
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Generator[None, Any, Any]:
        """Turn collected ``experiment_*`` functions into experiment items."""
        result = yield
        if not (name.startswith(EXPERIMENT_PREFIX) or _has_marker(obj)):
            return result
        if isinstance(result, pytest.Function):
            return self._convert(result)
        if isinstance(result, list):
            return [self._convert(r) if isinstance(r, pytest.Function) else r for r in result]
        return result

    def _convert(self, item: pytest.Function) -> pytest.Item:
        if isinstance(item, ExperimentItem):
            return item
        return to_experiment_item(item, self)

    # -- plugins ----------------------------------------------------------------
    def plugin_manager_for(self, item: ExperimentItem, experiment: Experiment) -> pluggy.PluginManager | None:
        """The engine's plugin manager for ``item``'s run (None: the engine makes one)."""
        return None

    # -- reporting ----------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Copy the experiment's payload onto its call report (a JSON string: xdist-safe)."""
        report = yield
        if call.when == "call" and isinstance(item, ExperimentItem):
            for key, value in item.user_properties:
                if key == PAYLOAD_ATTRIBUTE:
                    setattr(report, PAYLOAD_ATTRIBUTE, value)
        return report

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect payloads, also from xdist workers."""
        payload = getattr(report, PAYLOAD_ATTRIBUTE, None)
        if report.when == "call" and isinstance(payload, str):
            self.payloads[report.nodeid] = json.loads(payload)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the crystallize section: a table per experiment and the totals."""
        if not self.payloads:
            return
        terminalreporter.write_sep("=", "crystallize")
        verbose = self.config.get_verbosity() > 0
        for nodeid in sorted(self.payloads):
            for line in summary_lines(self.payloads[nodeid], title=nodeid, verbose=verbose):
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        markup = {"green": True} if all(p["passed"] for p in self.payloads.values()) else {"red": True}
        terminalreporter.write_line(totals_line(self.payloads.values()), bold=True, **markup)


def _has_marker(obj: object) -> bool:
    marks = getattr(obj, "pytestmark", ())
    return callable(obj) and any(getattr(m, "name", None) == MARKER for m in marks)
