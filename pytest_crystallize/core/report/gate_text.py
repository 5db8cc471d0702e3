"""Gate reports as plain text lines: a heading, a table of current vs saved, notes."""

from __future__ import annotations

import math
from collections.abc import Iterable

from pytest_crystallize.core.report.table import Column, Table
from pytest_crystallize.core.store.gate import CHANGED, COMPARED, NEW, UNREADABLE, GateReport, nothing_compared
from pytest_crystallize.core.store.gate_rows import FAILING, NOT_COMPARED, TESTED, GateRow

__all__ = ["gate_failure", "gate_heading", "gate_lines", "gate_notes", "gate_table", "gate_totals"]

_NO_WORSE = "p no worse"
_COLUMNS = tuple(Column(h) for h in ("condition", "metric", "better", "n saved/now", "saved", "current", "diff",
                                     "95% CI", "margin", "p worse", "p better", _NO_WORSE, "status"))


def _fmt(value: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _p(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.3g}"


def _cells(row: GateRow) -> tuple[str, ...]:
    if row.n_saved == 0 and row.n_current == 0:
        return (row.condition, row.metric, row.better, "", "", "", "", "", "", "", "", "", row.status.upper())
    relative = "" if not math.isfinite(row.relative_difference) else f" ({row.relative_difference:+.1%})"
    margin = "-" if row.margin == 0 else _fmt(row.margin)
    if row.margin and row.relative_margin and row.status not in TESTED:  # never scaled: still the fraction
        margin = f"{row.margin:.1%} of saved"
    elif row.margin and row.relative_margin and math.isfinite(row.mean_saved) and row.mean_saved:
        margin += f" ({row.margin / abs(row.mean_saved):.1%})"
    return (
        row.condition, row.metric, row.better, f"{row.n_saved}/{row.n_current}", _fmt(row.mean_saved),
        _fmt(row.mean_current), _fmt(row.difference, signed=True) + relative,
        f"[{_fmt(row.ci_low, True)}, {_fmt(row.ci_high, True)}]", margin,
        _p(row.p_worse_adjusted), _p(row.p_better_adjusted), _p(row.p_no_worse_adjusted), row.status.upper(),
    )


def _counts(report: GateReport) -> str:
    counts: dict[str, int] = {}
    for row in report.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing gated"


def gate_heading(report: GateReport) -> str:
    """One line: what was compared with which saved run, and the outcome."""
    if report.status == COMPARED:
        text = f"vs saved run {report.saved_run}: {_counts(report)}"
    elif report.status == NEW:
        text = f"new, not in saved run {report.saved_run}: not compared"
    elif report.status == CHANGED:
        text = f"definition changed since saved run {report.saved_run}: not compared"
    else:
        text = f"saved run {report.saved_run}: {report.status}"
    if report.enforced:  # what compared nothing neither passed nor failed the gate
        outcome = "gate FAILED" if report.failed else "gate passed" if report.compared_anything else "not gated"
        text += f" -> {outcome}"
    return text


def _note_lines(rows: Iterable[GateRow]) -> list[str]:
    """One line per distinct row note, naming every (condition, metric) it belongs to."""
    where: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if row.note:
            where.setdefault(row.note, {}).setdefault(row.metric, []).append(row.condition)
    lines = []
    for note, metrics in where.items():
        if len(metrics) == 1 and len(next(iter(metrics.values()))) == 1:
            ((metric, (condition,)),) = metrics.items()
            label = f"{condition}, {metric}"
        else:
            label = "; ".join(f"{metric}: {', '.join(conditions)}" for metric, conditions in metrics.items())
        lines.append(f"note ({label}): {note}")
    return lines


def _power_lines(rows: Iterable[GateRow]) -> list[str]:
    """What the gate can see: the regression each tested metric catches 4 times in 5 at its replicates."""
    sized = [r for r in rows if math.isfinite(r.detectable) and r.detectable > 0]
    if not sized:
        return []
    parts = []
    for r in sized:
        relative = f" ({r.detectable / abs(r.mean_saved):.1%})" if math.isfinite(r.mean_saved) and r.mean_saved else ""
        parts.append(f"{r.metric} ({r.condition}, n {r.n_current}) {_fmt(r.detectable)}{relative}")
    return [f"80% power to catch a regression of about: {'; '.join(parts)}; more replicates catch smaller ones"]


def gate_table(report: GateReport) -> Table | None:
    """The table of one experiment's comparison: current vs saved per condition and metric (None without rows)."""
    if not report.rows:
        return None
    table = Table(_COLUMNS, tuple(_cells(r) for r in report.rows))
    if not any(math.isfinite(r.p_no_worse) for r in report.rows):  # no margin: no non-inferiority test
        table = table.without(_NO_WORSE)
    return table


def gate_notes(report: GateReport) -> list[str]:
    """What a reader needs besides the table, unindented: power, notes, pairing and tests, the report's notes."""
    lines = _power_lines(report.rows) + _note_lines(report.rows)
    paired = {r.paired for r in report.rows if r.n_saved}
    if paired:
        how = "paired by replicate" if paired == {True} else ("unpaired" if paired == {False} else "mixed pairing")
        tests = sorted({r.test for r in report.rows if r.test})
        lines.append(f"{how}; {', '.join(tests)}; p-values {report.correction}-adjusted, alpha {report.alpha:g}"
                     + ("; strict" if report.strict else ""))
    return lines + list(report.notes)


def gate_lines(report: GateReport, *, title: str | None = None) -> list[str]:
    """The heading, the table of rows and the notes of one experiment's comparison."""
    lines = [f"{title or report.nodeid}: {gate_heading(report)}"]
    table = gate_table(report)
    if table is not None:
        lines += table.lines(indent="  ")
    return lines + [f"  {line}" for line in gate_notes(report)]


def gate_failure(report: GateReport) -> str:
    """The failure message of an experiment that failed the gate."""
    if report.status == UNREADABLE:
        why = "the saved result could not be read"
    elif report.status != COMPARED:
        why = f"strict gate: {report.status}"
    else:
        bad = report.failing_rows
        names = ", ".join(f"{r.metric!r} in {r.condition!r} {r.status}" for r in bad)
        why = f"{len(bad)} of {len(report.rows)} gated metric(s) failed: {names}"
    head = f"regression gate failed for {report.nodeid!r} against saved run {report.saved_run}: {why}"
    return "\n".join([head, *gate_lines(report, title="comparison")])


def gate_totals(reports: Iterable[GateReport]) -> str:
    """The closing line of the comparison section: what was compared, what was not, the outcome."""
    reports = list(reports)
    rows = [r for report in reports for r in report.rows]
    regressed = sum(r.status == "regressed" for r in rows)
    improved = sum(r.status == "improved" for r in rows)
    tested = sum(r.status in TESTED for r in rows)
    failed = sum(report.failed for report in reports)
    skipped = sum(report.status != COMPARED for report in reports)
    line = (f"{regressed} regressed, {improved} improved of {tested} compared metric(s) in "
            f"{len(reports)} experiment{'s' if len(reports) != 1 else ''}")
    untested = {status: sum(r.status == status for r in rows) for status in (*sorted(FAILING - TESTED), NOT_COMPARED)}
    if any(untested.values()):
        line += "; " + ", ".join(f"{n} {status}" for status, n in untested.items() if n) + " metric(s)"
    if skipped:
        line += f"; {skipped} experiment{'s' if skipped != 1 else ''} not compared"
    if any(report.enforced for report in reports):
        if nothing_compared(reports) is not None:
            line += "; gate failed: nothing was compared"
        else:
            line += f"; {failed} failed the gate" if failed else "; gate passed"
    return line
