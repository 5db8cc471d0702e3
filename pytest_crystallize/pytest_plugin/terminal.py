"""The terminal summary: every section pytest-crystallize writes, in one place.

* ``crystallize``: a table per experiment (from its report payload), then
  the totals, green when every experiment passed and none failed the gate;
* ``crystallize compare with <saved run>``: each experiment's comparison
  with the saved run, then the gate's totals;
* where the run was saved, or why nothing was, and what went wrong.

The session object's one ``pytest_terminal_summary`` calls
:func:`write_summary`. The words come from the renderers in
``core.report`` (imported only when there is something to write); this
module only writes their lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from pytest_crystallize.core.report.payload import ReportPayload
    from pytest_crystallize.pytest_plugin.storage import CrystallizeStorage

__all__ = ["write_comparison", "write_experiments", "write_saved_run", "write_summary"]


def write_summary(
    reporter: pytest.TerminalReporter, payloads: Mapping[str, ReportPayload],
    storage: CrystallizeStorage | None, *, verbose: bool,
) -> None:
    """Write every section: the experiments, then (with saved runs in use) the comparison and the saved run."""
    write_experiments(reporter, payloads, verbose=verbose)
    if storage is not None:
        write_comparison(reporter, storage)
        write_saved_run(reporter, storage)


def write_experiments(
    reporter: pytest.TerminalReporter, payloads: Mapping[str, ReportPayload], *, verbose: bool
) -> None:
    """The ``crystallize`` section: a table per experiment and the totals (nothing without experiments)."""
    if not payloads:
        return
    from pytest_crystallize.core.report.text import summary_lines, totals_line

    reporter.write_sep("=", "crystallize")
    for nodeid in sorted(payloads):
        for line in summary_lines(payloads[nodeid].to_dict(), title=nodeid, verbose=verbose):
            reporter.write_line(line)
        reporter.write_line("")
    markup = {"green": True} if all(p.clean for p in payloads.values()) else {"red": True}
    reporter.write_line(totals_line(p.to_dict() for p in payloads.values()), bold=True, **markup)


def write_comparison(reporter: pytest.TerminalReporter, storage: CrystallizeStorage) -> None:
    """The comparison with the saved run, experiment by experiment, then the gate's totals."""
    if not storage.gates or storage.reference is None:
        return
    from pytest_crystallize.core.report.gate_text import gate_lines, gate_totals

    reference = storage.reference
    reporter.write_sep("=", f"crystallize compare with {reference.label}, saved {reference.created_at}")
    for nodeid in sorted(storage.gates):
        for line in gate_lines(storage.gates[nodeid]):
            reporter.write_line(line)
        reporter.write_line("")
    failed = any(g.failed for g in storage.gates.values())
    markup = {"red": True} if failed else {"green": True}
    reporter.write_line(gate_totals(storage.gates.values()), bold=True, **markup)


def write_saved_run(reporter: pytest.TerminalReporter, storage: CrystallizeStorage) -> None:
    """Where the run was saved (or that nothing ran to save), then any problem saving or writing reports."""
    if storage.saved is not None:
        reporter.write_line(f"crystallize: saved run {storage.saved.label} to {storage.saved.location}")
    elif storage.settings.save and not storage.records and not storage.problems:
        reporter.write_line("crystallize: no experiment ran, nothing saved")
    for problem in storage.problems:
        reporter.write_line(f"crystallize: ERROR: {problem}", red=True, bold=True)
