"""Experiment items: ``experiment_*`` functions collected and run as experiments.

pytest first builds ordinary ``pytest.Function`` items (so parametrize, marks
and fixtures work); :func:`to_experiment_item` turns each into an
:class:`ExperimentItem`. The item resolves pytest fixtures once, then the
engine runs every replicate, handing the function its ``ctx`` and datasources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.core.analysis import warn_low_power
from pytest_crystallize.core.datasources import DataSource, registered_datasources
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.parameters import CONTEXT_PARAMETER
from pytest_crystallize.core.report.junit import verdict_properties
from pytest_crystallize.core.report.payload import ReportPayload
from pytest_crystallize.core.report.text import failure_report, summarize
from pytest_crystallize.core.runner import ExperimentRunner
from pytest_crystallize.core.shared_data import warn_shared_data
from pytest_crystallize.core.store.gate_specs import check_gate_option
from pytest_crystallize.errors import CrystallizeError, CrystallizeWarning, ResultsError
from pytest_crystallize.pytest_plugin.chains import release, started, upstream_results
from pytest_crystallize.pytest_plugin.keys import GATE_PROPERTY, HTML_KEY, MARKER, PAYLOAD_PROPERTY, STORAGE_KEY
from pytest_crystallize.pytest_plugin.selection import (
    bound_parameters,
    choose_treatments,
    register_selection,
    selection_skip,
)

if TYPE_CHECKING:
    import pluggy

    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.journal import Journal
    from pytest_crystallize.pytest_plugin.session import CrystallizeSession
    from pytest_crystallize.pytest_plugin.storage import GateCheck

__all__ = ["SKIP_REASON", "ExperimentFailed", "ExperimentItem", "budget_spent", "to_experiment_item"]

SKIP_REASON: Final = "experiment: run experiments with 'pytest --crystallize'"
#: Iterators given to a marker (``treatments=(t for t in ...)``), read once: a marker is shared
#: by every item of its function and is read at collection and again at run time.
_READ_ONCE: dict[int, tuple[Iterator[Any], tuple[Any, ...]]] = {}


def _read_once(value: Any) -> Any:
    if not isinstance(value, Iterator):
        return value
    if id(value) not in _READ_ONCE:
        _READ_ONCE[id(value)] = (value, tuple(value))  # keeps the iterator alive, so its id stays unique
    return _READ_ONCE[id(value)][1]


def budget_spent(budget: float | None) -> str:
    """Why an experiment is skipped: the ``--crystallize-budget`` of ``budget`` seconds was spent before it began."""
    return f"the crystallize budget of {budget:g} s was spent before this experiment started"


class ExperimentFailed(Exception):  # reads as what happened: "experiment failed"
    """Raised by an experiment item whose hypotheses or replicates failed; carries the report."""


class ExperimentItem(pytest.Function):
    """A collected experiment. Lifecycle: collected -> setup (fixtures) -> runtest (the engine)."""

    crystallize_session: CrystallizeSession
    datasource_params: dict[str, DataSource]
    #: Parameters bound from the context (typed binding), not fixtures.
    bound_params: frozenset[str]
    #: The definition checked at collection (fixtures as None), or None if it is wrong.
    crystallize_definition: Experiment | None
    config_error: str | None
    result: ExperimentResult | None
    #: Chained experiments: the items whose outputs this one takes (by the name its upstream(...) uses),
    #: the items that take this one's, and whether this one ran (see ``chains``).
    upstream_items: dict[str, ExperimentItem]
    downstream_items: list[ExperimentItem]
    ran: bool

    def _marker_options(self) -> dict[str, Any]:
        from pytest_crystallize.core.markers import checked_options

        # Outermost marks first (module, class), so the closest one wins.
        options = checked_options(reversed(list(self.iter_markers(MARKER))), f"experiment {self.name!r}")
        return {key: _read_once(value) for key, value in options.items()}

    def define(self, arguments: Mapping[str, Any]) -> Experiment:
        """Build the experiment from markers, settings and resolved fixture values."""
        settings = self.crystallize_session.settings
        options = {**settings.defaults, **self._marker_options(), **settings.overrides}
        from pytest_crystallize.core.markers import ITEM_OPTIONS

        for key in ITEM_OPTIONS:
            options.pop(key, None)
        return Experiment.define(
            self.obj, name=self.name, datasources=self.datasource_params,
            arguments=arguments, **options,
        )

    def check_definition(self) -> None:
        """Validate the definition at collection; store the message of what is wrong."""
        arguments = {name: None for name in self._fixture_names()}
        try:
            self.crystallize_definition = self.define(arguments)
            check_gate_option(self._marker_options().get("gate"), f"experiment {self.name!r}")
        except CrystallizeError as exc:
            self.config_error = str(exc)

    def _fixture_names(self) -> list[str]:
        skip = {CONTEXT_PARAMETER, *self.datasource_params, *self.bound_params}
        return [n for n in self._fixtureinfo.argnames if n not in skip]

    def setup(self) -> None:
        """Resolve pytest fixtures once; ``ctx`` and datasources are left to the engine."""
        if self.config_error:
            pytest.fail(self.config_error, pytrace=False)
        request = self._request
        skip = {CONTEXT_PARAMETER, *self.datasource_params, *self.bound_params}
        for name in self.fixturenames:
            if name not in skip and name not in self.funcargs:
                self.funcargs[name] = request.getfixturevalue(name)

    def runtest(self) -> None:
        """Run the experiment; raise ExperimentFailed with a readable report if it failed."""
        arguments = {name: self.funcargs[name] for name in self._fixture_names()}
        try:
            experiment = self.define(arguments)
        except CrystallizeError as exc:
            raise ExperimentFailed(str(exc)) from None
        manager = self.crystallize_session.plugin_manager_for(self, experiment)
        if self.downstream_items:
            started(self)
        try:
            self._run(experiment, manager)
        finally:  # also when the run raised: erased before pytest writes the outcome
            self.crystallize_session.clear_display()
            self.ran = True
            if self.upstream_items:
                release(self)

    def _run(self, experiment: Experiment, manager: pluggy.PluginManager | None) -> None:
        try:
            experiment = choose_treatments(self, experiment, self.crystallize_session.settings.treatments, manager)
        except CrystallizeError as exc:
            raise ExperimentFailed(str(exc)) from None
        settings = self.crystallize_session.settings
        deadline = None
        if settings.deadline is not None:
            from pytest_crystallize.core.budget import Deadline

            deadline = Deadline(settings.deadline)
            if deadline.passed:  # spent while its fixtures were set up (the session skips it before, at its line)
                pytest.skip(budget_spent(settings.budget))
        begun: list[tuple[Experiment, Journal | None]] = []
        try:
            upstreams = upstream_results(self) if self.upstream_items else None
        except CrystallizeError as exc:  # an upstream without a result: which, and how to give it one
            raise ExperimentFailed(str(exc)) from None

        def run(chosen: Experiment) -> ExperimentResult:
            journal = None
            if settings.journal_root is not None:
                from pytest_crystallize.core.store.journal import Journal

                journal = Journal.for_experiment(settings.journal_root, self.nodeid, chosen)
            begun.append((chosen, journal))
            try:
                runner = ExperimentRunner(
                    chosen, plugin_manager=manager, journal=journal, resume=settings.resume, deadline=deadline,
                    upstreams=upstreams, keep_artifacts=bool(self.downstream_items),
                )
            except CrystallizeError as exc:  # an upstream without a result, or one that cannot feed this one
                raise ExperimentFailed(str(exc)) from None
            try:
                return runner.run()
            except CrystallizeError as exc:  # the run could not go on (a lost cluster): say so, and what was kept
                msg = f"{type(exc).__name__}: {exc}{_journal_note(journal)}"
                raise ExperimentFailed(msg) from None

        try:
            result = self._confirm(experiment, run) if self._confirmatory() else run(experiment)
        except BaseException as exc:
            if not isinstance(exc, Exception) and begun:  # Ctrl-C, pytest-timeout: show what finished
                self._report_interrupted(*begun[-1], exc)
            raise
        self.result = result
        failures: list[str] = [] if result.passed else [failure_report(result)]
        other = self._other_failures(result)
        check = self._gate_and_report(experiment, result, tuple(other))
        if check is not None and check.failure:
            failures.append(check.failure)
        failures += other.values()
        if failures:
            raise ExperimentFailed("\n\n".join(failures))

    def _other_failures(self, result: ExperimentResult) -> dict[str, str]:
        """What fails the item besides its hypotheses and the gate: a short name of each, and its message."""
        failures: dict[str, str] = {}
        if self.crystallize_session.settings.require_confirmed:
            from pytest_crystallize.core.store.confirmations import confirmation_of

            why = confirmation_of(result)
            if why is not None:
                failures["not a clean confirmation (--crystallize-require-confirmed)"] = (
                    f"--crystallize-require-confirmed: experiment {self.name!r} is not confirmed: {why}"
                )
        try:
            warn_low_power(self.obj, result)
            warn_shared_data(self.obj, result)
        except CrystallizeWarning as warning:  # -W error: a failure with the message, no traceback of ours
            failures[f"{type(warning).__name__} turned into an error"] = f"{type(warning).__name__}: {warning}"
        return failures

    def _confirmatory(self) -> bool:
        return self.crystallize_session.settings.confirm or bool(self._marker_options().get("confirm"))

    def _confirm(self, experiment: Experiment, run: Callable[[Experiment], ExperimentResult]) -> ExperimentResult:
        """Pre-register, run on a fresh seed stream, record the outcome (see ``core/store/confirmations.py``)."""
        from pytest_crystallize.core.environment import git_info
        from pytest_crystallize.core.store.confirmations import ConfirmationLedger
        from pytest_crystallize.core.store.stores import DirectoryStore

        root = self.crystallize_session.settings.store_root
        git = git_info(self.config.rootpath)
        try:
            saved = DirectoryStore(root).listing().runs
            return ConfirmationLedger(root).run(
                self.nodeid, experiment, run, git=None if git is None else git.to_dict(), saved_runs=saved,
                resume=self.crystallize_session.settings.resume,
            )
        except ResultsError as exc:
            msg = f"experiment {self.name!r}: no confirmatory run: {exc}"
            raise ExperimentFailed(msg) from None

    def _report_interrupted(self, experiment: Experiment, journal: Journal | None, exc: BaseException) -> None:
        """Put the replicates that finished before ``exc`` in the summary, saying the run stopped and was not saved.

        The note also says what the journal kept, and how to resume from it.
        """
        from pytest_crystallize.core.report.payload import ReportPayload
        from pytest_crystallize.core.report.text import summarize
        from pytest_crystallize.core.runner import PARTIAL_RESULT

        partial = getattr(exc, PARTIAL_RESULT, None)
        if partial is None:
            return
        self.result = partial
        summary = dict(summarize(partial))
        note = (
            f"interrupted ({type(exc).__name__}) after {partial.provenance.replicates} of {experiment.replicates} "
            f"replicates per condition: no verdicts, and this experiment's result was not saved"
        )
        summary["notes"] = [*summary.get("notes", ()), note + _journal_note(journal)]
        summary["interrupted"], summary["passed"] = True, False
        payload = ReportPayload(summary, gate=None)
        self.user_properties.append((PAYLOAD_PROPERTY, payload.to_json()))
        # Ctrl-C leaves no report behind to carry the property: hand the payload to the summary directly.
        self.crystallize_session.payloads[self.nodeid] = payload

    def _gate_and_report(
        self, experiment: Experiment, result: ExperimentResult, failures: tuple[str, ...] = (),
    ) -> GateCheck | None:
        """Run the regression gate (when saved runs are in use), then add the report payload, built once.

        ``failures`` name what else fails the item (the payload says so, next to the hypotheses and the gate).

        The payload and the comparison with the saved run travel as user
        properties (JSON strings: JUnit XML writes them, pytest-xdist sends
        them), and each verdict's fields as properties of their own.
        Returns what the gate found, or None without saved runs.
        """
        storage = self.config.stash.get(STORAGE_KEY, None)
        check: GateCheck | None = None
        try:
            if storage is not None:
                check = storage.after_run(self, experiment, result, self._marker_options().get("gate"))
        finally:  # a comparison that crashed still leaves the experiment's own outcome in the summary
            summary = summarize(result)
            if failures:
                summary["failures"] = list(failures)
            payload = ReportPayload(summary, gate=None if check is None else check.outcome)
            self.user_properties.append((PAYLOAD_PROPERTY, payload.to_json()))
            self.user_properties += verdict_properties(payload.summary)  # readable one by one in JUnit XML
            html = self.config.stash.get(HTML_KEY, None)
            if html is not None:  # an HTML report wants figures: the values behind them travel with the report
                from pytest_crystallize.core.report.evidence import evidence_of

                html.keep_evidence(self, evidence_of(result))
        if check is not None and check.comparison is not None:
            comparison = json.dumps(check.comparison.to_dict(), allow_nan=False)
            self.user_properties.append((GATE_PROPERTY, comparison))
        return check

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        """Show an experiment failure as its report, without our traceback."""
        if isinstance(excinfo.value, ExperimentFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _journal_note(journal: Journal | None) -> str:
    """What the journal kept of an interrupted run, and how to resume; never raises."""
    if journal is None:
        return " (the journal is off: --crystallize-no-journal)"
    try:
        kept = len(journal.load().tasks)
    except Exception:  # reporting must never mask the interruption
        return ""
    if not kept:
        return ""
    return (f"; {kept} finished replicate tasks are kept in the journal ({journal.directory}): "
            f"rerun with --crystallize-resume to run only the missing ones")


def find_datasources(
    function: Callable[..., Any], module_globals: Mapping[str, Any],
    conftest_lookup: Callable[[str], DataSource | None],
) -> dict[str, DataSource]:
    """Map the function's parameters that name datasources to those datasources.

    Looked up in the test module, then conftest.py files in scope (closest
    first), then the ``register=True`` registry.
    """
    import inspect

    found = {}
    registry = registered_datasources()
    for name in inspect.signature(function).parameters:
        if name == CONTEXT_PARAMETER:
            continue
        candidate = module_globals.get(name)
        source = candidate if isinstance(candidate, DataSource) else conftest_lookup(name)
        if source is None:
            source = registry.get(name)
        if source is not None:
            found[name] = source
    return found


def _marker_localns(item: ExperimentItem) -> Mapping[str, Any] | None:
    """The ``localns=`` of the closest experiment marker, if it is a mapping (define checks the rest)."""
    for mark in item.iter_markers(MARKER):
        if "localns" in mark.kwargs:
            value = mark.kwargs["localns"]
            return value if isinstance(value, Mapping) else None
    return None


def to_experiment_item(function_item: pytest.Function, session: CrystallizeSession) -> ExperimentItem:
    """Rebuild ``function_item`` as an ExperimentItem, keeping its parametrization and marks."""
    item: ExperimentItem = ExperimentItem.from_parent(
        function_item.parent,
        name=function_item.name,
        callspec=getattr(function_item, "callspec", None),
        callobj=function_item.obj,
        fixtureinfo=function_item._fixtureinfo,
        keywords=function_item.keywords,
        originalname=function_item.originalname,
    )
    item.own_markers = function_item.own_markers
    item.crystallize_session = session
    item.result = None
    item.config_error = None
    item.upstream_items, item.downstream_items, item.ran = {}, [], False
    module = getattr(function_item.module, "__dict__", {})
    item.datasource_params = find_datasources(
        function_item.obj, module, lambda name: session.conftest_datasource(item.path, name)
    )
    item.bound_params = bound_parameters(
        function_item.obj, item._fixtureinfo.name2fixturedefs, item.datasource_params, _marker_localns(item)
    )
    item.crystallize_definition = None
    if item.get_closest_marker(MARKER) is None:
        item.add_marker(MARKER)
    item.check_definition()
    selected = session.settings.treatments
    register_selection(item.config, selected)
    unselected = selection_skip(item.crystallize_definition, selected)
    if not session.settings.enabled and not item.config_error:
        item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
    elif unselected and not item.config_error:
        item.add_marker(pytest.mark.skip(reason=unselected))
    return item
