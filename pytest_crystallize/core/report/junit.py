"""Each verdict as JUnit XML properties a CI dashboard can read without parsing JSON.

An experiment's test case in JUnit XML (``pytest --junitxml``) holds its whole
report payload as one JSON property; :func:`verdict_properties` adds one
property per field of each verdict, named ``crystallize.verdict.<i>.<field>``
with ``i`` counting the experiment's verdicts from 1, in the order of the
summary. The fields (:data:`VERDICT_FIELDS`):

* ``hypothesis``, ``metric``, ``treatment``, ``test``: names (a
  ``direction="best"`` verdict's treatment is the condition it found best);
* ``outcome``: ``pass`` or ``fail``;
* ``difference``, ``ci_low``, ``ci_high``, ``confidence``, ``p``,
  ``p_adjusted``: numbers (6 significant digits), left out when the
  statistic is undefined (no spread, no value);
* ``reason``: the verdict's reason in words (why it failed: not
  significant, stopped for futility, stopped by the budget, which
  conditions may be best, ...).

A leaf module (the standard library only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["VERDICT_FIELDS", "VERDICT_PREFIX", "verdict_properties"]

#: Every verdict property is named ``<prefix>.<i>.<field>``.
VERDICT_PREFIX: Final = "crystallize.verdict"
VERDICT_FIELDS: Final = (
    "hypothesis", "metric", "treatment", "outcome", "difference", "ci_low", "ci_high", "confidence",
    "p", "p_adjusted", "test", "reason",
)


def _number(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return f"{value:.6g}"


def _fields(verdict: Mapping[str, Any]) -> dict[str, str | None]:
    details = verdict.get("details") or {}
    return {
        "hypothesis": str(verdict["hypothesis"]), "metric": str(verdict["metric"]),
        "treatment": str(verdict["treatment"]), "outcome": "pass" if verdict["holds"] else "fail",
        "difference": _number(verdict.get("difference")), "ci_low": _number(details.get("ci_low")),
        "ci_high": _number(details.get("ci_high")), "confidence": _number(details.get("confidence")),
        "p": _number(verdict.get("p_value")), "p_adjusted": _number(verdict.get("p_adjusted")),
        "test": str(verdict.get("test") or "") or None, "reason": str(verdict.get("reason") or "") or None,
    }


def verdict_properties(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, value)`` pairs for every verdict of a report payload's ``summary``, fields in a fixed order."""
    properties = []
    for index, verdict in enumerate(summary.get("verdicts", ()), start=1):
        fields = _fields(verdict)
        properties += [
            (f"{VERDICT_PREFIX}.{index}.{name}", value)
            for name in VERDICT_FIELDS if (value := fields[name]) is not None
        ]
    return properties
