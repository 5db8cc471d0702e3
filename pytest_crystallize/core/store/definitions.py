"""What an experiment claims and compares, as plain data with a fingerprint.

A saved run stores, for each experiment, the *definition* of its hypotheses,
treatments and the inputs of each condition (plain JSON) and a short
fingerprint of it. When the fingerprints differ, :func:`definition_changes`
says what changed, in words, and :func:`changed_conditions` which conditions
(baseline or treatment) now run with other inputs: the gate leaves only
those uncompared instead of comparing them silently.

Values are described by stable text: callables and datasources by their
qualified names, other objects by ``repr`` with memory addresses removed, so
the same code gives the same fingerprint in every process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["changed_conditions", "definition_changes", "definition_of", "definition_problem", "fingerprint"]

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


def _hypothesis_fields(h: Any) -> dict[str, Any]:
    fields = _fields(h, _IGNORED_HYPOTHESIS_FIELDS)
    if fields.get("covariate", "") is None:  # fields added later are left out unset: old fingerprints stay valid
        del fields["covariate"]
    return fields


def definition_of(experiment: Experiment) -> dict[str, Any]:
    """The hypotheses and treatments of ``experiment`` as plain JSON data.

    ``inputs`` holds what each condition runs with: its context values (the
    baseline's params, merged with a treatment's) and its datasources. A
    condition is comparable with a saved run when its inputs are unchanged.
    """
    out = {
        "conditions": list(experiment.condition_names),
        "inputs": {
            c.name: {"params": _stable(c.values), "datasources": _stable(dict(c.datasources))}
            for c in experiment.conditions()
        },
        "treatments": {t.name: _fields(t) for t in experiment.treatments},
        "hypotheses": [_hypothesis_fields(h) for h in experiment.hypotheses],
    }
    if experiment.design is not None:  # other folds are other inputs (absent: fingerprints stay as they were)
        out["design"] = str(experiment.design)
    return out


def definition_problem(definition: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of a loaded definition, or None (absent keys are fine)."""
    def objects(value: object) -> bool:
        return isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())

    checks: dict[str, Callable[[Any], bool]] = {
        "conditions": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "treatments": objects,
        "inputs": objects,
        "hypotheses": lambda v: isinstance(v, list) and all(isinstance(x, Mapping) for x in v),
    }
    for key, check in checks.items():
        if key in definition and not check(definition[key]):
            return f"definition: {key} is {definition[key]!r:.60}, not what pytest-crystallize writes"
    return None


def fingerprint(definition: Mapping[str, Any]) -> str:
    """A short, stable hash of a definition (16 hex digits of SHA-256)."""
    text = json.dumps(dict(definition), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _inputs(definition: Mapping[str, Any]) -> Mapping[str, Any] | None:
    inputs = definition.get("inputs")
    return inputs if isinstance(inputs, Mapping) else None


def changed_conditions(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, str]:
    """The conditions of both definitions whose inputs differ, each with what changed.

    A treatment also changes when a baseline change reaches it (a param it
    does not set, a datasource it does not swap). Without ``inputs`` on
    either side (a definition saved by an older version) every shared
    condition counts as changed.
    """
    old, new = _inputs(saved), _inputs(current)
    names = [n for n in current.get("conditions") or () if n in (saved.get("conditions") or ())]
    if old is None or new is None:
        return {str(n): "the saved run does not describe the inputs of its conditions" for n in names}
    changed = {}
    for name in (n for n in new if n in old and old[n] != new[n]):
        before, after = old[name], new[name]
        if not isinstance(before, Mapping) or not isinstance(after, Mapping):
            changed[name] = f"inputs {before!r} -> {after!r}"
            continue
        keys = sorted(set(before) | set(after))
        changed[name] = "; ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in keys
                                  if before.get(k) != after.get(k))
    return changed


def definition_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two definitions, one readable line per change."""
    changes: list[str] = []
    old_base, new_base = (_inputs(d) or {} for d in (saved, current))
    if old_base.get("baseline") != new_base.get("baseline") and old_base and new_base:
        changes.append(f"baseline: {changed_conditions(saved, current).get('baseline', 'inputs changed')}")
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
