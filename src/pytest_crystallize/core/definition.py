"""What an experiment claims and compares, as plain data with a fingerprint.

A saved run stores, for each experiment, the *definition* of its hypotheses
and treatments (plain JSON) and a short fingerprint of it. Comparing a later
run with the saved one is only meaningful when both have the same
definition; when the fingerprints differ, :func:`definition_changes` says
what changed, in words, instead of the runs being compared silently.

Values are described by stable text: callables and datasources by their
qualified names, other objects by ``repr`` with memory addresses removed, so
the same code gives the same fingerprint in every process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["definition_changes", "definition_of", "fingerprint"]

#: Hypothesis fields that change what is reported, not what is tested.
_IGNORED_HYPOTHESIS_FIELDS: Final = frozenset({"mde"})
_ADDRESS: Final = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable(value: Any) -> Any:
    """Plain JSON data describing ``value``, identical across processes."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _stable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    function = getattr(value, "function", None)
    name = getattr(value, "name", None)
    if callable(function) and isinstance(name, str):  # a DataSource
        return f"datasource {name} ({_qualname(function)})"
    if callable(value) and hasattr(value, "__qualname__"):
        return _qualname(value)
    return _ADDRESS.sub("", repr(value))


def _qualname(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def _fields(obj: Any, ignored: frozenset[str] = frozenset()) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _stable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in ignored}
    return {"repr": _stable(obj)}


def definition_of(experiment: Experiment) -> dict[str, Any]:
    """The hypotheses and treatments of ``experiment`` as plain JSON data."""
    return {
        "conditions": list(experiment.condition_names),
        "treatments": {t.name: _fields(t) for t in experiment.treatments},
        "hypotheses": [_fields(h, _IGNORED_HYPOTHESIS_FIELDS) for h in experiment.hypotheses],
    }


def fingerprint(definition: Mapping[str, Any]) -> str:
    """A short, stable hash of a definition (16 hex digits of SHA-256)."""
    text = json.dumps(dict(definition), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def definition_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two definitions, one readable line per change."""
    changes: list[str] = []
    old_t: Mapping[str, Any] = saved.get("treatments") or {}
    new_t: Mapping[str, Any] = current.get("treatments") or {}
    changes += [f"treatment {name!r} added" for name in new_t if name not in old_t]
    changes += [f"treatment {name!r} removed" for name in old_t if name not in new_t]
    for name in (n for n in new_t if n in old_t):
        changes += [
            f"treatment {name!r}: {key} {old_t[name].get(key)!r} -> {new_t[name].get(key)!r}"
            for key in sorted(set(old_t[name]) | set(new_t[name]))
            if old_t[name].get(key) != new_t[name].get(key)
        ]
    old_h = [json.dumps(h, sort_keys=True) for h in saved.get("hypotheses") or []]
    new_h = [json.dumps(h, sort_keys=True) for h in current.get("hypotheses") or []]
    if old_h != new_h:
        changes += [f"hypothesis added: {_hypothesis_label(h)}" for h in new_h if h not in old_h]
        changes += [f"hypothesis removed: {_hypothesis_label(h)}" for h in old_h if h not in new_h]
        if sorted(old_h) == sorted(new_h):
            changes.append("hypotheses reordered")
    if not changes and dict(saved) != dict(current):
        changes.append("the definition differs (conditions or fields this version does not describe)")
    return changes


def _hypothesis_label(text: str) -> str:
    data = json.loads(text)
    label = data.get("name") or f"{data.get('metric')} {data.get('direction')}"
    shown = ("test", "margin", "alpha", "better")
    extras = [f"{k}={data[k]!r}" for k in shown if data.get(k) not in (None, "auto", "higher")]
    return f"{label!r}" + (f" ({', '.join(extras)})" if extras else "")
