"""The regression gate: is the current run significantly worse than a saved one.

For every condition and every metric with a known good direction (a
:class:`GateSpec`, from the experiment's hypotheses or the marker's
``gate=`` mapping) the current values are compared with the saved ones; see
:mod:`._compare` for the statistics. :func:`gate_experiment` compares one
experiment (leaving what a changed definition touches uncompared);
``gate_lines`` and ``gate_failure`` turn a :class:`GateReport` into text.
"""

from __future__ import annotations

from ._compare import (
    CHANGED,
    COMPARED,
    FAILING,
    IMPROVED,
    INCONCLUSIVE,
    MISSING,
    NEVER_RECORDED,
    NEW,
    NO_CHANGE,
    NO_WORSE,
    NOT_COMPARED,
    NOT_FINITE,
    REGRESSED,
    TESTED,
    UNREADABLE,
    GateReport,
    GateRow,
    compare_results,
    gate_experiment,
)
from ._specs import GateSpec, check_gate_option, gate_specs, parse_margin
from ._text import gate_failure, gate_heading, gate_lines, gate_totals

__all__ = [
    "CHANGED",
    "COMPARED",
    "FAILING",
    "IMPROVED",
    "INCONCLUSIVE",
    "MISSING",
    "NEVER_RECORDED",
    "NEW",
    "NOT_COMPARED",
    "NOT_FINITE",
    "NO_CHANGE",
    "NO_WORSE",
    "REGRESSED",
    "TESTED",
    "UNREADABLE",
    "GateReport",
    "GateRow",
    "GateSpec",
    "check_gate_option",
    "compare_results",
    "gate_experiment",
    "gate_failure",
    "gate_heading",
    "gate_lines",
    "gate_specs",
    "gate_totals",
    "parse_margin",
]
