"""A session's results as GitHub-flavoured Markdown: summary, verdict and gate tables, for a CI job's page.

:func:`session_markdown` renders what the terminal summary shows, from the
same sources: each experiment's report payload (its summary table, a table
of its verdicts, its notes) and, when the run was compared with a saved
one, each experiment's comparison (the gate's table and notes). The tables
are the ones the terminal prints (``text``, ``gate_text``), laid out by
:meth:`~pytest_crystallize.core.report.table.Table.markdown`; the words come
from the same renderers, escaped, so the page and the terminal agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.report.table import Table, escape_markdown
from pytest_crystallize.core.report.text import summary_heading, summary_notes, summary_table, totals_line
from pytest_crystallize.core.report.verdict_text import verdict_table

if TYPE_CHECKING:
    from pytest_crystallize.core.store.gate import GateReport

__all__ = ["TITLE", "session_markdown"]

#: The heading of the section, as the terminal names its own.
TITLE: Final = "crystallize"
_PASSED: Final = "✅"
_FAILED: Final = "❌"
_NOT_GATED: Final = "⚪"


def session_markdown(
    payloads: Mapping[str, Mapping[str, Any]], *, gates: Mapping[str, GateReport] | None = None,
    compared_with: str | None = None, saved_run: str | None = None, problems: Sequence[str] = (),
) -> str:
    """The whole section: totals, each experiment, the comparison with the saved run, where the run was saved.

    ``payloads`` are the experiments' report payloads (plain dicts) by node
    id; ``gates`` their comparisons with the saved run ``compared_with``
    (its label); ``saved_run`` the label of the run this session saved;
    ``problems`` what went wrong saving or writing reports.
    """
    lines = [f"## {TITLE}", ""]
    if payloads:
        clean = all(_clean(p) for p in payloads.values())
        lines += [f"{_PASSED if clean else _FAILED} **{escape_markdown(totals_line(payloads.values()))}**", ""]
    else:
        lines += ["No experiment ran.", ""]
    for nodeid in sorted(payloads):
        lines += _experiment(nodeid, payloads[nodeid])
    if gates:
        lines += _comparison(gates, compared_with)
    if saved_run is not None:
        lines += [f"Saved run {escape_markdown(saved_run)}.", ""]
    lines += [f"**ERROR:** {escape_markdown(problem)}" for problem in problems]
    return "\n".join(lines).rstrip("\n") + "\n"


def _clean(payload: Mapping[str, Any]) -> bool:
    return bool(payload["passed"]) and not (payload.get("gate") or {}).get("failed") and not payload.get("failures")


def _experiment(nodeid: str, payload: Mapping[str, Any]) -> list[str]:
    mark = _PASSED if _clean(payload) else _FAILED
    lines = [f"### {mark} {escape_markdown(summary_heading(payload, title=nodeid))}", ""]
    table = summary_table(payload)
    lines += ["No metrics recorded.", ""] if table is None else _table(table)
    if payload["verdicts"]:
        lines += _table(verdict_table(payload["verdicts"]))
    return lines + _bullets(summary_notes(payload))


def _comparison(gates: Mapping[str, GateReport], compared_with: str | None) -> list[str]:
    from pytest_crystallize.core.report.gate_text import gate_heading, gate_notes, gate_table, gate_totals

    title = f"{TITLE}: compared with {compared_with}" if compared_with else f"{TITLE}: compared with the saved run"
    failed = any(g.failed for g in gates.values())
    lines = [f"## {escape_markdown(title)}", "",
             f"{_FAILED if failed else _PASSED} **{escape_markdown(gate_totals(gates.values()))}**", ""]
    for nodeid in sorted(gates):
        report = gates[nodeid]
        mark = _FAILED if report.failed else _PASSED if report.compared_anything else _NOT_GATED
        lines += [f"### {mark} {escape_markdown(f'{nodeid}: {gate_heading(report)}')}", ""]
        table = gate_table(report)
        if table is not None:
            lines += _table(table)
        lines += _bullets(gate_notes(report))
    return lines


def _table(table: Table) -> list[str]:
    return [*table.markdown(), ""]


def _bullets(lines: Iterable[str]) -> list[str]:
    bullets = [f"- {escape_markdown(line)}" for line in lines]
    return [*bullets, ""] if bullets else []
