"""The session object: collection of experiments, their plugins, progress, their reports.

One :class:`CrystallizeSession` is made in ``pytest_configure``, registered as
a plugin and kept in ``config.stash``; it lives until ``pytest_unconfigure``.
It builds each experiment's plugin manager (entry-point plugins, conftest
plugins, the progress display), collects the summary payloads of every
experiment report (also those that come from pytest-xdist workers, as JSON
strings) and has them written in the terminal summary (see ``terminal``).
On a pytest-xdist worker that collects an experiment it also registers
:class:`WorkerReports` (see ``worker_reports``), which keeps experiment
reports sendable. Chained experiments are linked and ordered here, at
collection (see ``chains``).

It costs nothing where no experiment is collected: the engine, the
experiment items and the report payloads are imported only once an
experiment is collected or a payload arrives, no hook of ours runs per test
phase but the report collector, and a conftest.py can hold a datasource
only once the datasources module was imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeGuard

import pytest

from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.pytest_plugin.keys import (
    CONTROLLER_PROGRESS_PLUGIN,
    EXPERIMENT_PREFIX,
    MARKER,
    PAYLOAD_PROPERTY,
    STORAGE_KEY,
    WORKER_REPORTS_PLUGIN,
)
from pytest_crystallize.pytest_plugin.terminal import write_summary
from pytest_crystallize.pytest_plugin.worker_reports import WorkerReports

if TYPE_CHECKING:
    import pluggy

    from pytest_crystallize.core.datasources import DataSource
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.report.payload import ReportPayload
    from pytest_crystallize.plugins.dask import DaskExecution
    from pytest_crystallize.pytest_plugin.items import ExperimentItem
    from pytest_crystallize.pytest_plugin.progress import ProgressDisplay
    from pytest_crystallize.pytest_plugin.settings import Settings
    from pytest_crystallize.pytest_plugin.status_line import StatusLine
    from pytest_crystallize.pytest_plugin.xdist_progress import ControllerProgress, ProgressSender

__all__ = ["CrystallizeSession"]

#: Where DataSource is defined: no conftest.py holds one unless this module was imported.
_DATASOURCES: Final = "pytest_crystallize.core.datasources"


class CrystallizeSession:
    """Per-run state of the plugin (see the module docstring for its lifecycle)."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        #: Report payloads and outcomes of the experiments, by node id (also those of xdist workers).
        self.payloads: dict[str, ReportPayload] = {}
        self.outcomes: dict[str, str] = {}
        #: Experiments that errored before running (a wrong definition, a fixture), with the error's last line.
        self.not_run: dict[str, str] = {}
        self._conftest_sources: dict[Path, dict[str, DataSource]] = {}
        self._entry_point_plugins: list[object] | None = None
        self._display: ProgressDisplay | ProgressSender | None = None
        #: The line progress is drawn on (opened at the end of collection), or None where nothing is drawn.
        self._status_line: StatusLine | None = None
        #: The controller's view of the workers' progress (pytest-xdist), or False where none is drawn.
        self._controller: ControllerProgress | bool | None = None
        #: The step cache of the session, made when the first experiment with a cached step runs.
        self._cache: object | None = None
        #: The backend of ``--crystallize-dask``, made for the first experiment; closed with the session.
        self._dask: DaskExecution | None = None
        #: True once an experiment item was collected in this process (the items module is then loaded).
        self._experiments_collected = False
        #: Upstream experiments that the selection (-k, -m, node ids) left out, run for their downstreams.
        self.put_back: list[ExperimentItem] = []

    # -- datasources in conftest.py files -------------------------------------
    @pytest.hookimpl
    def pytest_plugin_registered(self, plugin: object) -> None:
        """Remember the datasources each conftest.py defines, by its directory."""
        datasources = sys.modules.get(_DATASOURCES)
        if datasources is None or not isinstance(plugin, ModuleType):
            return
        file = getattr(plugin, "__file__", None)
        if not file or os.path.basename(file) != "conftest.py":
            return
        sources = {n: v for n, v in vars(plugin).items() if isinstance(v, datasources.DataSource)}
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

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> Generator[None]:
        """Chained experiments: link them before anything deselects; run each upstream first after.

        ``tryfirst``: around the other plugins' deselection (``-k``, ``-m``,
        ``--lf``), so an upstream they leave out is seen and put back.
        """
        if not self._experiments_collected:
            return (yield)
        from pytest_crystallize.pytest_plugin import chains

        experiments = [item for item in items if self.is_experiment(item)]
        extra = chains.link(experiments, self._collect_upstream)
        if hasattr(config, "workerinput") and any(item.downstream_items for item in (*experiments, *extra)):
            config.pluginmanager.register(chains.Publisher())
        if self.settings.enabled:
            items += extra  # collected for the chain: deselection and xdist see them like the others
        result = yield
        if self.settings.enabled:
            put_back = chains.schedule(items, self.is_experiment)
            chains.forget_deselection(config, put_back)
            self.put_back = [*extra, *(item for item in put_back if not any(item is e for e in extra))]
        return result

    def _collect_upstream(self, downstream: ExperimentItem, name: str) -> ExperimentItem | None:
        """The experiment ``name`` of ``downstream``'s module, collected for the chain (a node-id run left it out)."""
        module = downstream.getparent(pytest.Module)
        function = getattr(getattr(module, "obj", None), name, None)
        if module is None or not callable(function):
            return None
        if not (name.startswith(EXPERIMENT_PREFIX) or _has_marker(function)):
            return None
        if any(getattr(m, "name", None) == "parametrize" for m in getattr(function, "pytestmark", ())):
            return None  # which of its items is meant is for a node id to say
        item = self._convert(pytest.Function.from_parent(module, name=name, callobj=function))
        return item if self.is_experiment(item) else None

    @pytest.hookimpl
    def pytest_report_collectionfinish(self, items: Sequence[pytest.Item]) -> list[str]:
        """List the experiments whose definition is wrong, right after "collected N items".

        Shown by every run, ``--collect-only`` included. A line, not a
        warning: under ``-W error`` a collection warning would become an
        exception and take the whole module down; the item stays collected
        and errors at setup, its siblings untouched.
        """
        lines = []
        if self.put_back:
            lines.append(f"crystallize: {len(self.put_back)} upstream experiment(s) the selection left out run first:")
            running = {id(item) for item in items}  # a deselected downstream is not why its upstream runs
            lines += [
                f"  {up.nodeid} (upstream of {', '.join(d.name for d in up.downstream_items if id(d) in running)})"
                for up in self.put_back
            ]
        wrong = [item for item in items if self.is_experiment(item) and item.config_error]
        if wrong:
            lines.append(f"crystallize: {len(wrong)} experiment(s) defined wrongly (each errors at setup):")
            lines += [f"  {item.nodeid}: {item.config_error}" for item in wrong]
        return lines

    def _convert(self, item: pytest.Function) -> pytest.Item:
        from pytest_crystallize.pytest_plugin.items import ExperimentItem, to_experiment_item

        if not self._experiments_collected:
            self._experiments_collected = True
            if hasattr(self.config, "workerinput"):
                self.config.pluginmanager.register(WorkerReports(self), WORKER_REPORTS_PLUGIN)
        if isinstance(item, ExperimentItem):
            return item
        return to_experiment_item(item, self)

    def is_experiment(self, item: pytest.Item) -> TypeGuard[ExperimentItem]:
        """True for an experiment item (cheap where none was collected: nothing is imported)."""
        if not self._experiments_collected:
            return False
        from pytest_crystallize.pytest_plugin.items import ExperimentItem

        return isinstance(item, ExperimentItem)

    # -- plugins ----------------------------------------------------------------
    def plugin_manager_for(self, item: ExperimentItem, experiment: Experiment) -> pluggy.PluginManager | None:
        """The engine's plugin manager for ``item``'s run.

        Registered in this order (later ones are called first, so they win
        ``firstresult`` hooks): the step cache (when on and some step is
        cached), entry-point plugins, conftest plugins from
        ``pytest_crystallize_plugins`` (outer directories first), the
        ``--crystallize-dask`` backend, then the runner adds the experiment's
        own ``plugins=[...]``. Relative
        ``ArtifactPlugin`` roots are anchored at the rootdir.
        """
        from pytest_crystallize.core.lifecycle import make_plugin_manager, register_plugins
        from pytest_crystallize.plugins import ArtifactPlugin

        try:
            plugins = [*self.entry_point_plugins(), *self._conftest_plugins(item, experiment), *self._dask_backend()]
            manager = make_plugin_manager([*self._cache_plugin(), *plugins])
        except ConfigurationError as exc:
            pytest.fail(str(exc), pytrace=False)
        for plugin in [*plugins, *experiment.plugins]:
            if isinstance(plugin, ArtifactPlugin) and plugin.base_dir is None:
                plugin.anchor(self.config.rootpath, self.settings.artifacts_root)
        self._display = self._make_display(item)
        if self._display is not None:
            register_plugins(manager, [self._display])
        return manager

    def _cache_plugin(self) -> list[object]:
        """The session's CachePlugin, when the cache is on and some step is declared ``cache=True``.

        Registered first, so it is the innermost step wrapper: a user's own
        wrappers wrap it, and see a replayed call like any other.
        """
        from pytest_crystallize.core.pipeline import cached_steps_declared

        root = self.settings.cache_root
        if root is None or not cached_steps_declared():
            return []
        if self._cache is None:
            from pytest_crystallize.plugins.cache import CachePlugin

            self._cache = CachePlugin(root, self.settings.cache_size)
        return [self._cache]

    def _dask_backend(self) -> list[object]:
        """The ``--crystallize-dask`` backend (one for the session, so one cluster), or nothing."""
        if self.settings.dask is None:
            return []
        if self._dask is None:
            from pytest_crystallize.plugins.dask import DaskExecution

            self._dask = DaskExecution(self.settings.dask)
        return [self._dask]

    def close(self) -> None:
        """Disconnect from the Dask cluster of ``--crystallize-dask`` (a local one stops); at the session's end."""
        if self._dask is not None:
            self._dask.close()
            self._dask = None

    def entry_point_plugins(self) -> list[object]:
        """Plugins of the ``crystallize.plugins`` entry points, loaded once per session."""
        if self._entry_point_plugins is None:
            from pytest_crystallize.core.lifecycle import entry_point_plugins

            self._entry_point_plugins = entry_point_plugins()
        return self._entry_point_plugins

    def _conftest_plugins(self, item: ExperimentItem, experiment: Experiment) -> list[object]:
        results = item.ihook.pytest_crystallize_plugins(item=item, experiment=experiment)
        plugins: list[object] = []
        # pluggy returns the innermost conftest's list first; register it last so it wins.
        for returned in reversed(results):
            if isinstance(returned, (str, bytes)) or not isinstance(returned, Sequence):
                msg = (
                    f"experiment {experiment.name!r}: a pytest_crystallize_plugins hook returned "
                    f"{returned!r}; return a list of plugins (or None)"
                )
                raise ConfigurationError(msg)
            plugins += [p for p in returned if not any(p is q for q in plugins)]
        return plugins

    # -- progress -----------------------------------------------------------------
    @pytest.hookimpl
    def pytest_collection_finish(self) -> None:
        """Open the progress line when experiments will run here: capture is suspended now (see ``status_line``)."""
        if self._experiments_collected and self.settings.enabled:
            from pytest_crystallize.pytest_plugin.progress import make_status_line

            self._status_line = make_status_line(self.config, self.settings.progress)

    def _make_display(self, item: ExperimentItem) -> ProgressDisplay | ProgressSender | None:
        """The progress plugin of ``item``'s run: drawn here, sent to the xdist controller, or none."""
        from pytest_crystallize.pytest_plugin.progress import DELAY, ProgressDisplay, live_output
        from pytest_crystallize.pytest_plugin.xdist_progress import PROGRESS_CHANNEL, ProgressSender

        if self._status_line is not None:
            delay = 0.0 if self.settings.progress == "on" else DELAY
            return ProgressDisplay(self._status_line, delay=delay, live=live_output(self.config))
        channel = getattr(self.config, "workerinput", {}).get(PROGRESS_CHANNEL)
        return None if channel is None else ProgressSender(channel, item.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: open a progress channel to each worker, when the controller shows progress."""
        if self._controller is None:
            from pytest_crystallize.pytest_plugin.progress import DELAY, make_status_line
            from pytest_crystallize.pytest_plugin.xdist_progress import ControllerProgress

            line = make_status_line(self.config, self.settings.progress) if self.settings.enabled else None
            self._controller = False
            if line is not None:
                delay = 0.0 if self.settings.progress == "on" else DELAY
                self._controller = ControllerProgress(line, delay=delay)
                self.config.pluginmanager.register(self._controller, CONTROLLER_PROGRESS_PLUGIN)
        if not isinstance(self._controller, bool):
            self._controller.configure_node(node)

    def clear_display(self) -> None:
        """Erase the progress display of the experiment that ran (its item calls this when its run ends)."""
        if self._display is not None:
            self._display.clear()
            self._display = None

    @pytest.hookimpl
    def pytest_sessionfinish(self) -> None:
        """Close the progress line (its terminal descriptor)."""
        if self._status_line is not None:
            self._status_line.close()
            self._status_line = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Skip an experiment not started when the budget is spent with a skip mark: reported at its own line.

        ``tryfirst``, and registered after pytest's skipping plugin, so this runs before that plugin reads the
        marks (a ``pytest.skip()`` in the item would be reported at the plugin's line).
        """
        if self.settings.deadline is None or not self.is_experiment(item):
            return
        from pytest_crystallize.core.budget import Deadline
        from pytest_crystallize.pytest_plugin.items import budget_spent

        if Deadline(self.settings.deadline).passed:
            item.add_marker(pytest.mark.skip(reason=budget_spent(self.settings.budget)))

    # -- reporting ----------------------------------------------------------------
    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect the experiments' payloads and outcomes, also from xdist workers."""
        if report.when == "setup" and report.failed and MARKER in report.keywords:
            lines = report.longreprtext.strip().splitlines()
            self.not_run[report.nodeid] = lines[-1] if lines else "error at setup"
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == PAYLOAD_PROPERTY and isinstance(value, str):
                from pytest_crystallize.core.report.payload import ReportPayload

                self.payloads[report.nodeid] = ReportPayload.from_json(value)
                self.outcomes[report.nodeid] = report.outcome

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Write the crystallize sections: the experiments, the comparison with the saved run, the saved run."""
        storage = self.config.stash.get(STORAGE_KEY, None)
        write_summary(terminalreporter, self.payloads, storage, verbose=self.config.get_verbosity() > 0)


def _has_marker(obj: object) -> bool:
    marks = getattr(obj, "pytestmark", ())
    return callable(obj) and any(getattr(m, "name", None) == MARKER for m in marks)
