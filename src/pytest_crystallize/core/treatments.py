"""Treatments: named changes to the baseline's context values or datasources.

A treatment's values are merged into the baseline's: a dotted key such as
``"llm.temperature"`` is a path into nested mappings, and a mapping value is
merged into the baseline's mapping at that key, key by key, instead of
replacing it. So ``{"llm.temperature": 0.9}`` and ``{"llm": {"temperature":
0.9}}`` both change one field of ``ctx["llm"]`` and keep its others; no key
named ``"llm.temperature"`` is ever written. Only top-level keys are paths:
keys inside nested mappings are taken literally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.errors import TreatmentError

__all__ = ["BASELINE", "Treatment", "check_treatments", "merge_params", "split_path"]

#: The name of the condition without a treatment; no treatment may take it.
BASELINE: Final = "baseline"

_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Treatment:
    """A condition: ``params`` change the context, ``datasource`` swaps the input.

    ``params`` add to or override the baseline's context values. ``datasource``
    is a :class:`DataSource` (it replaces the experiment's only datasource
    parameter, or the one with its name) or a mapping from parameter name to
    datasource.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    datasource: DataSource | Mapping[str, DataSource] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            msg = f"a treatment needs a non-empty string name, got {self.name!r}"
            raise TreatmentError(msg)
        if not isinstance(self.params, Mapping):
            msg = f"treatment {self.name!r}: params must be a mapping, got {type(self.params).__name__}"
            raise TreatmentError(msg)
        bad = [k for k in self.params if not isinstance(k, str)]
        if bad:
            msg = f"treatment {self.name!r}: parameter names must be strings, got {bad[0]!r}"
            raise TreatmentError(msg)
        # Copy, then freeze: later edits to the caller's dict must not leak in.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        source = self.datasource
        if isinstance(source, Mapping):
            if not all(isinstance(s, DataSource) for s in source.values()):
                msg = f"treatment {self.name!r}: datasource mapping values must be @data_source functions"
                raise TreatmentError(msg)
            object.__setattr__(self, "datasource", MappingProxyType(dict(source)))
        elif source is not None and not isinstance(source, DataSource):
            msg = (
                f"treatment {self.name!r}: datasource must be a @data_source function, "
                f"got {type(source).__name__}"
            )
            raise TreatmentError(msg)
        for key in self.params:
            split_path(key, f"treatment {self.name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Read-only mapping views do not pickle; rebuild from plain dicts (process workers, grids).
        source = self.datasource
        return (Treatment, (self.name, dict(self.params), dict(source) if isinstance(source, Mapping) else source))

    def datasource_for(self, parameters: tuple[str, ...]) -> dict[str, DataSource]:
        """Map the experiment's datasource ``parameters`` to this treatment's swaps.

        Raises TreatmentError when the swap cannot be matched to a parameter.
        """
        source = self.datasource
        if source is None:
            return {}
        if isinstance(source, Mapping):
            unknown = sorted(set(source) - set(parameters))
            if unknown:
                msg = (
                    f"treatment {self.name!r} swaps datasource parameter {unknown[0]!r}, "
                    f"but the experiment's datasource parameters are {list(parameters)}"
                )
                raise TreatmentError(msg)
            return dict(source)
        if len(parameters) == 1:
            return {parameters[0]: source}
        if source.name in parameters:
            return {source.name: source}
        msg = (
            f"treatment {self.name!r} swaps in datasource {source.name!r}, but the "
            f"experiment has datasource parameters {list(parameters)}: pass "
            f"datasource={{'<parameter>': {source.name}}} to say which one it replaces"
        )
        raise TreatmentError(msg)


def check_treatments(treatments: Iterable[object]) -> tuple[Treatment, ...]:
    """Return ``treatments`` as a tuple, checking types and that names are unique.

    The reserved name is checked here rather than in ``Treatment`` so that the
    error can name the experiment instead of failing the module's import.
    """
    seen: set[str] = set()
    out = []
    for treatment in treatments:
        if not isinstance(treatment, Treatment):
            msg = f"treatments must be Treatment objects, got {treatment!r}"
            raise TreatmentError(msg)
        if treatment.name == BASELINE:
            msg = (
                f"treatment name {BASELINE!r} is reserved for the condition without a "
                f"treatment; give the treatment another name"
            )
            raise TreatmentError(msg)
        if treatment.name in seen:
            msg = f"treatment name {treatment.name!r} is used twice; treatment names must be unique"
            raise TreatmentError(msg)
        seen.add(treatment.name)
        out.append(treatment)
    return tuple(out)


def split_path(key: str, owner: str) -> tuple[str, ...]:
    """Split a dotted parameter key into its path; raise TreatmentError on an empty segment."""
    path = tuple(key.split("."))
    if not all(path):
        msg = f"{owner}: parameter {key!r} is not a valid dotted path (empty part); write e.g. 'llm.temperature'"
        raise TreatmentError(msg)
    return path


def merge_params(base: Mapping[str, Any], changes: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Return ``base`` with ``changes`` merged in (see the module docstring); inputs are not modified.

    Raises TreatmentError naming ``owner`` and the key when a path runs through
    a value that is not a mapping.
    """
    out = dict(base)
    for key, value in changes.items():
        path = split_path(key, owner)
        target = out
        for depth, part in enumerate(path[:-1]):
            current = target.get(part, _MISSING)
            if current is _MISSING:
                child: dict[str, Any] = {}
            elif isinstance(current, Mapping):
                child = dict(current)  # copy on write: the baseline's mapping stays as it was
            else:
                where = ".".join(path[: depth + 1])
                msg = (
                    f"{owner}: parameter {key!r} reaches into {where!r}, which is "
                    f"{type(current).__name__} {current!r:.40}, not a mapping"
                )
                raise TreatmentError(msg)
            target[part] = child
            target = child
        target[path[-1]] = _merged(target.get(path[-1], _MISSING), value)
    return out


def _merged(current: Any, value: Any) -> Any:
    """``value`` merged into ``current`` when both are mappings, else ``value``."""
    if not (isinstance(value, Mapping) and isinstance(current, Mapping)):
        return value
    out = dict(current)
    for key, item in value.items():
        out[key] = _merged(out.get(key, _MISSING), item)
    return out
