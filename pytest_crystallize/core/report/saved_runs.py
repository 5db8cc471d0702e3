"""HTML reports of saved runs: one run, or a run compared with a base run (the regression gate's view).

The ``crystallize report`` command reads the run records and results from
the store and gates them (:func:`~pytest_crystallize.core.store.gate.gate_experiment`);
:func:`saved_run_document` turns them into the same views a pytest session's
report shows, built from the same digests (a result's report payload and
evidence, the comparison's ``to_dict()``), and renders the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pytest_crystallize.core.report.evidence import evidence_of
from pytest_crystallize.core.report.html import ExperimentView, RunView, report_document
from pytest_crystallize.core.report.payload import GateOutcome, ReportPayload
from pytest_crystallize.core.report.text import summarize

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.store.gate import GateReport
    from pytest_crystallize.core.store.records import RunRecord

__all__ = ["saved_run_document"]


def _run_view(record: RunRecord, base: RunRecord | None) -> RunView:
    about = [f"saved run at {record.location}"] if record.location else []
    if base is not None:
        about.append(f"compared with base run {base.label}, saved {base.created_at}")
    heading = f"run {record.label}" + ("" if base is None else f" vs base run {base.id}")
    return RunView(
        heading=heading, created_at=f"saved {record.created_at}",
        git=None if record.git is None else record.git.to_dict(), machine=record.machine,
        versions=record.versions, options=record.options, about=tuple(about),
    )


def saved_run_document(
    record: RunRecord, results: Mapping[str, ExperimentResult], *,
    base: RunRecord | None = None, comparisons: Mapping[str, GateReport] | None = None,
) -> str:
    """The HTML report of ``record``'s experiments (``results`` by node id), compared with ``base`` when given.

    ``comparisons`` holds each experiment's comparison with ``base``, by node
    id; an enforced one also shows as the experiment's gate outcome.
    """
    views = []
    for nodeid, result in results.items():
        report = (comparisons or {}).get(nodeid)
        gate = None if report is None or not report.enforced else GateOutcome(report.failed, report.saved_run)
        summary = ReportPayload(summarize(result), gate=gate).to_dict()
        views.append(ExperimentView(nodeid, summary, evidence_of(result),
                                    None if report is None else report.to_dict()))
    return report_document(_run_view(record, base), views)
