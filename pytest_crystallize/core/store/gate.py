"""The regression gate's verdict on one experiment: compared with the saved run, or why not.

:func:`gate_experiment` finds the experiment in the saved run, decides what
can still be compared when its definition changed, reads the saved result
and compares it row by row (:mod:`pytest_crystallize.core.store.gate_rows`,
which says how each condition and metric is tested); the
:class:`GateReport` says whether the experiment fails. :func:`nothing_compared`
keeps a gate that compared nothing from reading as passed.

When the experiment's definition changed since the saved run, only what
the change touches is left uncompared: conditions whose inputs changed
(:func:`~pytest_crystallize.core.store.definitions.changed_conditions`; also
treatments not run this time) and, when hypotheses changed, metrics whose
good direction is not the same in both runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.defaults import DEFAULT_CORRECTION
from pytest_crystallize.core.store.definitions import changed_conditions, definition_changes, fingerprint
from pytest_crystallize.core.store.gate_rows import (
    FAILING,
    INCONCLUSIVE,
    NOT_COMPARED,
    TESTED,
    GateRow,
    compare_results,
)
from pytest_crystallize.core.store.gate_specs import GateSpec
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.records import RunRecord

__all__ = ["CHANGED", "COMPARED", "NEW", "UNREADABLE", "GateReport", "gate_experiment", "nothing_compared"]

#: Experiment-level outcomes: compared, or why not.
COMPARED: Final = "compared"
NEW: Final = "not in saved run"
CHANGED: Final = "definition changed"
UNREADABLE: Final = "saved result unreadable"


@dataclass(frozen=True, slots=True)
class GateReport:
    """One experiment compared with a saved run; ``failed`` decides the experiment's item.

    ``enforced`` is false when comparing only to report (no gate); ``strict``
    also fails inconclusive rows and experiments that could not be compared.
    """

    nodeid: str
    saved_run: str
    status: str
    rows: tuple[GateRow, ...] = ()
    notes: tuple[str, ...] = ()
    alpha: float = 0.05
    correction: str = DEFAULT_CORRECTION
    enforced: bool = True
    strict: bool = False

    @property
    def failing_rows(self) -> tuple[GateRow, ...]:
        """The rows that fail the gate (when enforced)."""
        bad = FAILING | {INCONCLUSIVE, NOT_COMPARED} if self.strict else FAILING
        return tuple(r for r in self.rows if r.status in bad)

    @property
    def compared_anything(self) -> bool:
        """True when at least one metric was tested against the saved run."""
        return self.status == COMPARED and any(r.status in TESTED for r in self.rows)

    @property
    def failed(self) -> bool:
        """True when the gate fails the experiment."""
        if not self.enforced:
            return False
        if self.status == UNREADABLE or (self.strict and self.status != COMPARED):
            return True
        return bool(self.failing_rows)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rows"] = [r.to_dict() for r in self.rows]
        out["notes"] = list(self.notes)
        out["failed"] = self.failed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        """Rebuild from :meth:`to_dict` output."""
        values = {k: v for k, v in data.items() if k != "failed"}
        values["rows"] = tuple(GateRow.from_dict(r) for r in values.get("rows", ()))
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def _direction_changes(saved_gate: Mapping[str, Any], specs: Iterable[GateSpec]) -> dict[str, str]:
    """Gated metrics whose good direction is not the same in the saved run, each with the reason."""
    changed = {}
    for spec in specs:
        saved = saved_gate.get(spec.metric)
        before = saved.get("better") if isinstance(saved, Mapping) else None
        if before is None:
            changed[spec.metric] = "hypotheses changed and the saved run did not gate this metric"
        elif before != spec.better:
            changed[spec.metric] = f"hypotheses changed its good direction: {before} was better, now {spec.better}"
    return changed


def gate_experiment(
    nodeid: str, current: ExperimentResult, definition: Mapping[str, Any], specs: Iterable[GateSpec],
    record: RunRecord, load: Callable[[], ExperimentResult], *, margin: float = 0.0, relative: bool = False,
    enforced: bool = True, strict: bool = False,
) -> GateReport:
    """Compare one experiment with its result in the saved run ``record``.

    ``load`` reads the saved result (only when something can be compared).
    A missing experiment is reported, not compared. When the definition
    changed, the conditions and metrics the change touches are not compared
    (see the module docstring) and the change is listed; only when that
    leaves nothing to compare is the whole experiment not compared.
    """
    specs = tuple(specs)
    common: dict[str, Any] = {"nodeid": nodeid, "saved_run": record.label, "alpha": current.provenance.alpha,
              "correction": current.provenance.correction, "enforced": enforced, "strict": strict}
    entry = record.experiments.get(nodeid)
    if entry is None:
        return GateReport(**common, status=NEW, notes=(f"{nodeid!r} is not in saved run {record.id}",))
    conditions_changed: dict[str, str] = {}
    metrics_changed: dict[str, str] = {}
    notes: tuple[str, ...] = ()
    if entry.fingerprint != fingerprint(definition):
        saved_def = entry.definition
        conditions_changed = changed_conditions(saved_def, definition)
        if saved_def.get("hypotheses") != definition.get("hypotheses"):
            metrics_changed = _direction_changes(entry.gate, specs)
        old = list(saved_def.get("conditions") or ())
        not_run = [c for c in old if c not in (definition.get("conditions") or ())]
        changes = [line for line in definition_changes(saved_def, definition)
                   if not any(line == f"treatment {t!r} removed" for t in not_run)]
        comparable = [c for c in definition.get("conditions") or () if c in old and c not in conditions_changed]
        if not comparable or (specs and all(s.metric in metrics_changed for s in specs)):
            said = (f"its hypotheses or treatments changed since saved run {record.id}; not compared:", *changes)
            return GateReport(**common, status=CHANGED, notes=said)
        if changes:
            notes += (f"definition changed since saved run {record.id}; what it touches is not compared:",
                      *(f"  {line}" for line in changes))
        if not_run:
            notes += (f"treatments not run this time, so not compared: {', '.join(repr(t) for t in not_run)}",)
    try:
        saved = load()
    except ResultsError as exc:
        return GateReport(**common, status=UNREADABLE, notes=(str(exc),))
    rows = compare_results(current, saved, specs, margin=margin, relative=relative,
                           conditions_changed=conditions_changed, metrics_changed=metrics_changed)
    if saved.provenance.master_seed != current.provenance.master_seed:
        notes += (f"master seeds differ (saved {saved.provenance.master_seed}, current "
                  f"{current.provenance.master_seed}): values compared unpaired",)
    if not rows:
        notes += ("no metric has a known good direction: add a maximize, minimize, no_worse or best hypothesis, "
                  "or gate= to the marker",)
    return GateReport(**common, status=COMPARED, rows=rows, notes=notes)


def nothing_compared(reports: Iterable[GateReport]) -> str | None:
    """Why a gated session compared nothing with the saved run (so it must fail), or None if it compared something.

    A gate that compared nothing must never read as passed: every experiment
    new to the saved run, changed, unreadable or without a tested metric.
    """
    enforced = [r for r in reports if r.enforced]
    if not enforced or any(r.compared_anything for r in enforced):
        return None
    counts: dict[str, int] = {}
    for report in enforced:
        counts[report.status] = counts.get(report.status, 0) + 1
    why = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return (
        f"the regression gate compared nothing with saved run {enforced[0].saved_run} ({why}): a gate that "
        f"tested no metric cannot pass. Gate against a run that holds these experiments (save one on the "
        f"main branch with --crystallize-save=main), or run without --crystallize-gate"
    )
