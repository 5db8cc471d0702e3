"""The report payload: what one experiment run tells the summary, built once.

An experiment item builds one :class:`ReportPayload` after its run and after
the regression gate ran: the plain-JSON digest of the result (see
:func:`~pytest_crystallize.core.report.text.summarize`) and the gate's
outcome. Nobody edits it afterwards. It crosses process boundaries
(pytest-xdist workers, JUnit XML) as a JSON string: :meth:`ReportPayload.to_json`
and :meth:`ReportPayload.from_json`.

A leaf module (the standard library and the errors only): the pytest layer reads payloads
without loading the engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.errors import CrystallizeError

__all__ = ["GATE_FIELD", "GateOutcome", "ReportPayload"]

#: The payload's JSON key of the gate outcome (absent when no gate was enforced).
GATE_FIELD: Final = "gate"


def _frozen(value: Any) -> Any:
    """``value`` with every mapping made read-only and every list a tuple, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The JSON-able twin of a :func:`_frozen` value: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """The regression gate's verdict on one experiment.

    ``saved_run`` is the id of the run it was compared with, or ``None``
    when the saved run could not be read (which fails the gate). ``gated``
    is false when no metric of the experiment was compared (new in this run,
    its definition changed, no gated metric): it neither passed nor failed.
    """

    failed: bool
    saved_run: str | None = None
    gated: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict (``gated`` only when false)."""
        data: dict[str, Any] = {"failed": self.failed, "saved_run": self.saved_run}
        if not self.gated:
            data["gated"] = False
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateOutcome:
        """Rebuild from :meth:`to_dict` output."""
        saved = data.get("saved_run")
        return cls(failed=bool(data.get("failed")), saved_run=None if saved is None else str(saved),
                   gated=data.get("gated", True) is not False)


@dataclass(frozen=True, slots=True)
class ReportPayload:
    """One experiment's outcome for the terminal summary, JUnit XML and the JSON report.

    ``summary`` is the digest of the result (read-only: mappings are
    read-only views, lists are tuples); ``gate`` the regression gate's
    outcome, ``None`` when no gate was enforced.
    """

    summary: Mapping[str, Any]
    gate: GateOutcome | None = None

    def __post_init__(self) -> None:
        summary = dict(self.summary)
        if GATE_FIELD in summary:
            msg = f"a report payload's summary must not hold {GATE_FIELD!r}; give the gate outcome as gate="
            raise CrystallizeError(msg)
        object.__setattr__(self, "summary", _frozen(summary))  # frozen dataclass: the one place it is set

    @property
    def passed(self) -> bool:
        """True when the experiment's hypotheses held and no replicate failed."""
        return bool(self.summary["passed"])

    @property
    def clean(self) -> bool:
        """True when the experiment passed, did not fail the regression gate, and nothing else failed it.

        ``summary["failures"]``, when present, names what else failed the item
        (``--crystallize-require-confirmed``, a warning turned into an error).
        """
        return self.passed and not (self.gate is not None and self.gate.failed) and not self.summary.get("failures")

    def to_dict(self) -> dict[str, Any]:
        """The plain-JSON form: the summary's keys, then ``gate`` when a gate was enforced."""
        data: dict[str, Any] = _plain(self.summary)
        if self.gate is not None:
            data[GATE_FIELD] = self.gate.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportPayload:
        """Rebuild from :meth:`to_dict` output."""
        summary = {k: v for k, v in data.items() if k != GATE_FIELD}
        gate = data.get(GATE_FIELD)
        return cls(summary, None if gate is None else GateOutcome.from_dict(gate))

    def to_json(self) -> str:
        """The payload as a JSON string (strict JSON: a NaN is an error, not ``NaN``)."""
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ReportPayload:
        """Rebuild from :meth:`to_json` output."""
        return cls.from_dict(json.loads(text))
