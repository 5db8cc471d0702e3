"""Saved runs, the regression gate and the JSON report, on the pytest side.

One :class:`CrystallizeStorage` is made in ``pytest_configure`` when saved
runs, a comparison or the JSON report are asked for (no object, no import
of the store otherwise), registered as a plugin and kept in
``config.stash`` until ``pytest_unconfigure``.

* In ``pytest_configure`` it resolves the saved run to compare with (once,
  on the controller; pytest-xdist workers get its directory through
  ``workerinput``, so every worker compares with the very same run).
* Each experiment item calls :meth:`CrystallizeStorage.after_run` inside its
  ``runtest``, on whichever process runs it: the gate is computed there
  (reading the saved result from disk), so a regression fails the item
  itself. It returns a :class:`GateCheck`; the item puts the gate's
  outcome into its report payload (built once, after the gate) and ships
  the comparison as a user property (a JSON string, also written to JUnit
  XML). When the run is to be saved, a run in one process keeps the
  result object as it is; a pytest-xdist worker packs it (its Parquet file
  in a JSON string, :mod:`~pytest_crystallize.core.store.packing`) into an
  attribute of the call report.
* The controller (or the only process) collects those results, saves the
  run and writes the JSON report (with the payloads the session object
  collected) in ``pytest_sessionfinish``; ``terminal`` writes the
  comparison and the saved run in the terminal summary. Nothing but what
  crosses from a worker is ever serialised before the store writes it.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.core.report.gate_text import gate_failure
from pytest_crystallize.core.report.payload import GateOutcome
from pytest_crystallize.core.store.definitions import definition_of, fingerprint
from pytest_crystallize.core.store.gate import GateReport, gate_experiment
from pytest_crystallize.core.store.gate_specs import GateSpec, gate_specs
from pytest_crystallize.core.store.stores import DirectoryStore, write_atomic
from pytest_crystallize.errors import CrystallizeError
from pytest_crystallize.pytest_plugin.keys import (
    GATE_PROPERTY,
    RECORD_ATTRIBUTE,
    RECORD_KEY,
    SESSION_KEY,
    STORAGE_KEY,
    STORAGE_PLUGIN,
)
from pytest_crystallize.pytest_plugin.output_settings import StorageSettings

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.records import ExperimentRun, RunRecord

__all__ = ["REPORT_FORMAT", "CrystallizeStorage", "GateCheck", "configure"]

REPORT_FORMAT: Final = "pytest-crystallize/report"
_WORKER_KEY: Final = "crystallize_compare_run"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@dataclass(frozen=True, slots=True)
class GateCheck:
    """What comparing one experiment with the saved run found, for its item to report.

    ``comparison`` is the comparison with the saved run (``None``: no run to
    compare with); ``outcome`` the gate's verdict for the report payload
    (``None``: no gate enforced); ``failure`` the message that fails the
    item, or ``None``.
    """

    comparison: GateReport | None = None
    outcome: GateOutcome | None = None
    failure: str | None = None


class CrystallizeStorage:
    """Per-session state of saving, comparing and gating (see the module docstring)."""

    def __init__(self, config: pytest.Config, settings: StorageSettings) -> None:
        self.config = config
        self.settings = settings
        self.store = DirectoryStore(settings.root)
        self.reference: RunRecord | None = None
        self.reference_error: str | None = None
        #: The experiments to save by node id: runs of this process, or packed text from a worker.
        self.records: dict[str, ExperimentRun | str] = {}
        self.gates: dict[str, GateReport] = {}
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
                source = self.settings.compare_source
                if "baseline" in source and str(exc).startswith("no saved run matches"):
                    msg = (
                        f"regression gate: no saved run named {reference!r} to compare with ({source}): "
                        f"{exc}. Save one on your main branch with "
                        f"--crystallize-save={reference}, name another baseline with --crystallize-baseline=NAME "
                        f"(ini crystallize_baseline), or pick a run with --crystallize-compare=REF"
                    )
                    raise pytest.UsageError(msg) from None
                hint = " (a test path? write --crystallize-compare=REF, with '=')" if reference.endswith(".py") else ""
                msg = f"{source}: {exc}{hint}"
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
    ) -> GateCheck:
        """Compare ``result`` with the saved run and prepare it for saving; say what the item reports."""
        definition = definition_of(experiment)
        specs = gate_specs(experiment.hypotheses, gate, f"experiment {item.nodeid!r}")
        report = self._compare(item.nodeid, result, definition, specs)
        if self.settings.save:
            from pytest_crystallize.core.store.records import ExperimentRun

            run = ExperimentRun(
                nodeid=item.nodeid, result=result, definition=definition, fingerprint=fingerprint(definition),
                gate={s.metric: s.to_dict() for s in specs},
            )
            if _is_worker(self.config):
                from pytest_crystallize.core.store.packing import pack_experiment

                item.stash[RECORD_KEY] = pack_experiment(run)
            else:
                item.stash[RECORD_KEY] = run
        if self.reference_error is not None and self.settings.gate:
            return GateCheck(
                report, GateOutcome(failed=True),
                f"regression gate: the saved run cannot be read on this worker: {self.reference_error}",
            )
        if report is None or not report.enforced:
            return GateCheck(report)
        outcome = GateOutcome(report.failed, report.saved_run, gated=report.failed or report.compared_anything)
        return GateCheck(report, outcome, gate_failure(report) if report.failed else None)

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
        """Put the result to save on the call report: packed text from a worker (xdist-safe), else as it is."""
        report = yield
        record = item.stash.get(RECORD_KEY, None)
        if call.when == "call" and record is not None:
            if isinstance(record, str):
                setattr(report, RECORD_ATTRIBUTE, record)
            else:  # this process saves it: hand the object over, serialise nothing
                self.records[item.nodeid] = record
        return report

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect results to save and comparisons of experiments (also from xdist workers)."""
        if report.when != "call" or _is_worker(self.config):
            return
        record = getattr(report, RECORD_ATTRIBUTE, None)
        if isinstance(record, str):  # packed by an xdist worker
            self.records[report.nodeid] = record
        for key, value in report.user_properties:
            if key == GATE_PROPERTY and isinstance(value, str):
                self.gates[report.nodeid] = GateReport.from_dict(json.loads(value))

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
        if self.settings.gate and self.gates:
            from pytest_crystallize.core.store.gate import nothing_compared

            why = nothing_compared(self.gates.values())
            if why is not None:
                self.problems.append(why)
        if self.problems and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _save(self) -> None:
        from pytest_crystallize.core.arrow_columns import load_pyarrow_on_system_allocator
        from pytest_crystallize.core.environment import git_info, machine_info
        from pytest_crystallize.core.store.packing import unpack_experiment
        from pytest_crystallize.core.store.records import NewRun
        from pytest_crystallize.core.versions import package_versions

        load_pyarrow_on_system_allocator()  # the session ends: the run's freed memory is reused for the write
        try:
            experiments = []
            for nodeid in sorted(self.records):
                record = self.records[nodeid]
                experiments.append(unpack_experiment(record, nodeid) if isinstance(record, str) else record)
            run = NewRun(
                experiments=tuple(experiments), name=self.settings.save_name,
                git=git_info(self.config.rootpath), machine=machine_info(), versions=package_versions(),
                options=self._options(),
            )
            self.saved = self.store.save(run)
        except (OSError, CrystallizeError) as exc:
            self.problems.append(f"could not save the run to {self.store.root}: {exc}")

    def _options(self) -> dict[str, Any]:
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
        session = self.config.stash.get(SESSION_KEY, None)
        payloads = {} if session is None else session.payloads
        outcomes = {} if session is None else session.outcomes
        experiments = [
            {"nodeid": nodeid, "outcome": outcomes.get(nodeid), "summary": payloads[nodeid].to_dict(),
             "comparison": self.gates[nodeid].to_dict() if nodeid in self.gates else None}
            for nodeid in sorted(payloads)
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


def configure(config: pytest.Config, settings: StorageSettings, enabled: bool) -> CrystallizeStorage:
    """Make, register and stash the storage object; resolve the run to compare with."""
    storage = CrystallizeStorage(config, settings)
    storage.resolve_reference(enabled)
    config.stash[STORAGE_KEY] = storage
    config.pluginmanager.register(storage, STORAGE_PLUGIN)
    return storage
