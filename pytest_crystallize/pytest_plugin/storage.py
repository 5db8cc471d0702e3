"""Saved runs, the regression gate and the JSON report, on the pytest side.

One :class:`CrystallizeStorage` is made in ``pytest_configure``, registered
as a plugin and kept in ``config.stash`` until ``pytest_unconfigure``.

* In ``pytest_configure`` it resolves the saved run to compare with (once,
  on the controller; pytest-xdist workers get its directory through
  ``workerinput``, so every worker compares with the very same run).
* Each experiment item calls :meth:`CrystallizeStorage.after_run` inside its
  ``runtest``, on whichever process runs it: the gate is computed there
  (reading the saved result from disk), so a regression fails the item
  itself. The gate report travels as a user property (a JSON string, also
  written to JUnit XML); its outcome is also added to the item's summary
  payload (``"gate"``), so the crystallize summary shows it next to the
  hypotheses'. When the run is to be saved, the result travels as a JSON
  string attribute of the call report.
* The controller (or the only process) collects those strings from the
  reports, saves the run and writes the JSON report in
  ``pytest_sessionfinish``, and prints the comparison in the terminal
  summary. Serial and xdist runs go through the same path.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.core.report.gate_text import gate_failure, gate_lines, gate_totals
from pytest_crystallize.core.store.definitions import definition_of, fingerprint
from pytest_crystallize.core.store.gate import GateReport, gate_experiment
from pytest_crystallize.core.store.gate_specs import GateSpec, gate_specs
from pytest_crystallize.core.store.stores import DirectoryStore, write_atomic
from pytest_crystallize.errors import CrystallizeError
from pytest_crystallize.pytest_plugin.storage_options import StorageSettings, read_storage_settings

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.records import RunRecord

__all__ = ["GATE_PROPERTY", "RECORD_ATTRIBUTE", "STORAGE_KEY", "CrystallizeStorage", "configure", "unconfigure"]

STORAGE_KEY: Final = pytest.StashKey["CrystallizeStorage"]()
#: Call-report attribute holding an experiment's result to save (a JSON string).
RECORD_ATTRIBUTE: Final = "crystallize_record"
#: User property holding an experiment's comparison with the saved run (a JSON string).
GATE_PROPERTY: Final = "crystallize_gate"
#: The summary payload's key (``items.PAYLOAD_ATTRIBUTE``; items imports this module, not the reverse).
PAYLOAD_PROPERTY: Final = "crystallize_payload"
REPORT_FORMAT: Final = "pytest-crystallize/report"
_WORKER_KEY: Final = "crystallize_compare_run"
_PLUGIN_NAME: Final = "crystallize-storage"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _plain(value: Any) -> bool:
    """True for data pytest-xdist can send: JSON-like builtins all the way down."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _add_gate_to_payload(item: pytest.Item, gate: dict[str, Any]) -> None:
    """Put the gate's outcome into the item's summary payload, so the summary shows it next to the verdicts."""
    for index, (key, value) in enumerate(item.user_properties):
        if key == PAYLOAD_PROPERTY and isinstance(value, str):
            payload = json.loads(value)
            payload["gate"] = gate
            item.user_properties[index] = (key, json.dumps(payload, allow_nan=False))


class CrystallizeStorage:
    """Per-session state of saving, comparing and gating (see the module docstring)."""

    def __init__(self, config: pytest.Config, settings: StorageSettings) -> None:
        self.config = config
        self.settings = settings
        self.store = DirectoryStore(settings.root)
        self.reference: RunRecord | None = None
        self.reference_error: str | None = None
        self.records: dict[str, str] = {}
        self.gates: dict[str, GateReport] = {}
        self.payloads: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}
        self.saved: RunRecord | None = None
        self.problems: list[str] = []

    # -- the saved run to compare with -------------------------------------------------
    def resolve_reference(self, enabled: bool) -> None:
        """Find the saved run to compare with; a usage error on the controller, a note on workers."""
        reference = self.settings.compare
        if reference is None or not enabled:
            return
        worker_input = getattr(self.config, "workerinput", None)
        if worker_input is not None and worker_input.get(_WORKER_KEY):
            reference = str(worker_input[_WORKER_KEY])
        try:
            self.reference = self.store.find(reference)
        except CrystallizeError as exc:
            if worker_input is None:
                hint = " (a test path? write --crystallize-compare=REF, with '=')" if reference.endswith(".py") else ""
                msg = f"--crystallize-compare: {exc}{hint}"
                raise pytest.UsageError(msg) from None
            self.reference_error = str(exc)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: hand every worker the directory of the run this session compares with."""
        if self.reference is not None:
            node.workerinput[_WORKER_KEY] = self.reference.location

    # -- inside an experiment's runtest ----------------------------------------------
    def after_run(
        self, item: pytest.Item, experiment: Experiment, result: ExperimentResult, gate: Mapping[str, object] | None
    ) -> str | None:
        """Compare ``result`` with the saved run and prepare it for saving; return a gate failure or None."""
        definition = definition_of(experiment)
        specs = gate_specs(experiment.hypotheses, gate, f"experiment {item.nodeid!r}")
        report = self._compare(item.nodeid, result, definition, specs)
        if report is not None:
            item.user_properties.append((GATE_PROPERTY, json.dumps(report.to_dict(), allow_nan=False)))
        if self.settings.save:
            record = {
                "definition": definition, "fingerprint": fingerprint(definition),
                "gate": {s.metric: s.to_dict() for s in specs}, "result": result.to_dict(),
            }
            setattr(item, RECORD_ATTRIBUTE, json.dumps(record, allow_nan=False))
        if self.reference_error is not None and self.settings.gate:
            _add_gate_to_payload(item, {"failed": True, "saved_run": None})
            return f"regression gate: the saved run cannot be read on this worker: {self.reference_error}"
        if report is not None and report.enforced:
            _add_gate_to_payload(item, {"failed": report.failed, "saved_run": report.saved_run})
        return gate_failure(report) if report is not None and report.failed else None

    def _compare(
        self, nodeid: str, result: ExperimentResult, definition: Mapping[str, Any], specs: Iterable[GateSpec]
    ) -> GateReport | None:
        record = self.reference
        if record is None:
            return None
        s = self.settings
        return gate_experiment(
            nodeid, result, definition, specs, record, lambda: self.store.result(record, nodeid),
            margin=s.margin, relative=s.relative, enforced=s.gate, strict=s.strict,
        )

    # -- reports: worker -> controller ---------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Put the result to save on the call report; keep experiment reports sendable by xdist."""
        report = yield
        if not hasattr(item, "crystallize_session"):
            return report
        record = getattr(item, RECORD_ATTRIBUTE, None)
        if call.when == "call" and isinstance(record, str):
            setattr(report, RECORD_ATTRIBUTE, record)
        if _is_worker(self.config):
            # An object in user_properties would crash the worker's report and end the
            # run as "no tests ran" with exit code 0; JUnit XML writes str() anyway.
            report.user_properties = [(str(k), v if _plain(v) else str(v)) for k, v in report.user_properties]
        return report

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect results, comparisons and outcomes of experiments (also from xdist workers)."""
        if report.when != "call" or _is_worker(self.config):
            return
        record = getattr(report, RECORD_ATTRIBUTE, None)
        if isinstance(record, str):
            self.records[report.nodeid] = record
        for key, value in report.user_properties:
            if key == GATE_PROPERTY and isinstance(value, str):
                self.gates[report.nodeid] = GateReport.from_dict(json.loads(value))
            elif key == PAYLOAD_PROPERTY and isinstance(value, str):
                self.payloads[report.nodeid] = value
                self.outcomes[report.nodeid] = report.outcome

    # -- the end of the session -------------------------------------------------------
    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Save the run and write the JSON report (controller only); a failure fails the session."""
        if _is_worker(self.config):
            return
        if self.settings.save and self.records and exitstatus != pytest.ExitCode.INTERRUPTED:
            self._save()
        if self.settings.json_path is not None:
            self._write_json()
        if self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _save(self) -> None:
        from pytest_crystallize.core.environment import git_info, machine_info
        from pytest_crystallize.core.results import ExperimentResult
        from pytest_crystallize.core.store.records import ExperimentRun, NewRun
        from pytest_crystallize.core.versions import package_versions

        try:
            experiments = []
            for nodeid in sorted(self.records):
                data = json.loads(self.records[nodeid])
                experiments.append(ExperimentRun(
                    nodeid=nodeid, result=ExperimentResult.from_dict(data["result"], source=nodeid),
                    definition=data["definition"], fingerprint=data["fingerprint"], gate=data["gate"],
                ))
            run = NewRun(
                experiments=tuple(experiments), name=self.settings.save_name,
                git=git_info(self.config.rootpath), machine=machine_info(), versions=package_versions(),
                options=self._options(),
            )
            self.saved = self.store.save(run)
        except (OSError, CrystallizeError) as exc:
            self.problems.append(f"could not save the run to {self.store.root}: {exc}")

    def _options(self) -> dict[str, Any]:
        from pytest_crystallize.pytest_plugin.session import SESSION_KEY

        session = self.config.stash.get(SESSION_KEY, None)
        settings = {} if session is None else {**session.settings.defaults, **session.settings.overrides}
        options = {"args": list(self.config.invocation_params.args), "settings": settings,
                   "gate": {"margin": self.settings.margin, "relative": self.settings.relative,
                            "strict": self.settings.strict} if self.settings.gate else None}
        return dict(json.loads(json.dumps(options, default=repr)))

    def _write_json(self) -> None:
        path = self.settings.json_path
        if path is None:
            return
        experiments = [
            {"nodeid": nodeid, "outcome": self.outcomes.get(nodeid), "summary": json.loads(self.payloads[nodeid]),
             "comparison": self.gates[nodeid].to_dict() if nodeid in self.gates else None}
            for nodeid in sorted(self.payloads)
        ]
        document = {
            "format": REPORT_FORMAT, "version": 1, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "saved_run": None if self.saved is None else self.saved.id,
            "compared_with": None if self.reference is None else self.reference.id,
            "gate": self.settings.gate, "experiments": experiments,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(document, indent=2, allow_nan=False).encode())
        except OSError as exc:
            self.problems.append(f"could not write the JSON report {path}: {exc}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the comparison with the saved run, then where the run was saved."""
        write = terminalreporter.write_line
        if self.gates and self.reference is not None:
            terminalreporter.write_sep("=", f"crystallize compare with {self.reference.label}")
            for nodeid in sorted(self.gates):
                for line in gate_lines(self.gates[nodeid]):
                    write(line)
                write("")
            failed = any(g.failed for g in self.gates.values())
            write(gate_totals(self.gates.values()), bold=True, **({"red": True} if failed else {"green": True}))
        if self.saved is not None:
            write(f"crystallize: saved run {self.saved.label} to {self.saved.location}")
        elif self.settings.save and not self.records and not self.problems:
            write("crystallize: no experiment ran, nothing saved")
        for problem in self.problems:
            write(f"crystallize: ERROR: {problem}", red=True, bold=True)


def configure(config: pytest.Config, enabled: bool) -> CrystallizeStorage:
    """Make, register and stash the storage object; resolve the run to compare with."""
    storage = CrystallizeStorage(config, read_storage_settings(config))
    storage.resolve_reference(enabled)
    config.stash[STORAGE_KEY] = storage
    config.pluginmanager.register(storage, _PLUGIN_NAME)
    return storage


def unconfigure(config: pytest.Config) -> None:
    """Drop the storage object."""
    storage = config.stash.get(STORAGE_KEY, None)
    if storage is not None:
        config.pluginmanager.unregister(storage)
        del config.stash[STORAGE_KEY]
