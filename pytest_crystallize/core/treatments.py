"""Treatments: named changes to the baseline's context values or datasources.

A treatment's values are merged into the baseline's: a dotted key such as
``"llm.temperature"`` is a path into nested mappings, and a mapping value is
merged into the baseline's mapping at that key, key by key, instead of
replacing it. So ``{"llm.temperature": 0.9}`` and ``{"llm": {"temperature":
0.9}}`` both change one field of ``ctx["llm"]`` and keep its others; no key
named ``"llm.temperature"`` is ever written. Only top-level keys are paths:
keys inside nested mappings are taken literally.

Two rules catch typos that would otherwise pass silently:

* one treatment (or ``params``, or one configuration entry) may set a path
  once: ``{"llm.model": "x", "llm": {"model": "y"}}`` is a TreatmentError
  naming both spellings, instead of keeping whichever came last;
* a treatment may change the keys of a mapping the baseline has, not add new
  ones: with a baseline ``{"llm": {"model": ..., "temperature": ...}}``,
  ``{"llm.modle": "y"}`` (or ``{"llm": {"modle": "y"}}``) is a TreatmentError
  at definition, naming the treatment, the key and the baseline's keys, with
  a "did you mean". There is deliberately no switch to turn this off: to vary
  a key the baseline's mapping lacks, add it to the baseline (with its
  default value, or None). Exempt: new top-level keys; an empty baseline
  mapping (``{"headers": {}}``), which has nothing to misspell; and the
  mappings an experiment parameter is bound from (typed binding), whose
  model knows its fields, defaulted ones included, and refuses unknown keys
  itself.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.errors import TreatmentError

__all__ = ["BASELINE", "Treatment", "check_paths", "check_treatments", "merge_params", "split_path"]

#: The name of the condition without a treatment; no treatment may take it.
BASELINE: Final = "baseline"

_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Treatment:
    """A condition: ``params`` change the context, ``datasource`` swaps the input.

    ``params`` add to or override the baseline's context values (see the
    module docstring: a path set twice, or a new key under a mapping the
    baseline has, is a TreatmentError). ``datasource``
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
        check_paths(self.params, f"treatment {self.name!r}")

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


def check_paths(params: Mapping[str, Any], owner: str) -> None:
    """Raise TreatmentError naming ``owner`` for a bad dotted key or a path that ``params`` set twice.

    ``{"llm.model": "x", "llm": {"model": "y"}}`` sets ``llm.model`` twice;
    so does ``{"llm": 5, "llm.model": "x"}`` (one replaces what the other
    reaches into). A mapping value sets each of its leaves.
    """
    paths = {key: split_path(key, owner) for key in params}
    if len(paths) < 2:
        return  # one key cannot collide with itself
    leaves: list[tuple[tuple[str, ...], str]] = []
    for key, value in params.items():
        leaves += [(path, key) for path in _leaves(paths[key], value)]
    leaves.sort(key=lambda leaf: leaf[0])
    # Sorted, a path comes right before the paths it is a prefix of: neighbours suffice.
    for (first, key_a), (second, key_b) in itertools.pairwise(leaves):
        if second[: len(first)] == first:
            msg = (
                f"{owner}: {_spelling(key_a, first)} and {_spelling(key_b, second)} both set "
                f"{'.'.join(first)!r}; set each path once"
            )
            raise TreatmentError(msg)


def merge_params(
    base: Mapping[str, Any], changes: Mapping[str, Any], owner: str, *, open_paths: Iterable[tuple[str, ...]] = ()
) -> dict[str, Any]:
    """Return ``base`` with ``changes`` merged in (see the module docstring); inputs are not modified.

    Raises TreatmentError naming ``owner`` and the key when a path runs through
    a value that is not a mapping, when ``changes`` set a path twice, or when
    they add a key to a non-empty mapping of ``base`` that is not at or under
    one of ``open_paths`` (the paths typed bindings read).
    """
    check_paths(changes, owner)
    out = dict(base)
    opened = tuple(open_paths)
    for key, value in changes.items():
        path = split_path(key, owner)
        if base:
            _check_new_keys(base, key, path, value, owner, opened)
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


def _leaves(path: tuple[str, ...], value: Any) -> list[tuple[str, ...]]:
    """The paths ``value`` set at ``path`` sets: itself, or the leaves of a non-empty mapping."""
    if not isinstance(value, Mapping) or not value:
        return [path]
    out: list[tuple[str, ...]] = []
    for key, item in value.items():
        out += _leaves((*path, str(key)), item)
    return out


def _spelling(key: str, path: tuple[str, ...]) -> str:
    """How the user wrote ``path``: ``'llm.model'`` or ``'llm' -> {'model': ...}``."""
    written = tuple(key.split("."))
    if written == path:
        return repr(key)
    rest = path[len(written):]
    return f"{key!r} -> " + "".join("{" + repr(part) + ": " for part in rest) + "..." + "}" * len(rest)


def _check_new_keys(
    base: Mapping[str, Any], key: str, path: tuple[str, ...], value: Any, owner: str,
    opened: tuple[tuple[str, ...], ...],
) -> None:
    """Raise TreatmentError when ``key`` adds a key to a non-empty mapping ``base`` has (a typo, mostly)."""
    node: Any = base.get(path[0], _MISSING)
    for depth in range(1, len(path)):
        if not isinstance(node, Mapping) or not node or _is_open(path[:depth], opened):
            return  # not the baseline's mapping, an empty one or a bound one: nothing to misspell here
        if path[depth] not in node:
            _new_key(owner, key, path[:depth], path[depth], node)
        node = node[path[depth]]
    _check_nested(owner, key, path, value, node, opened)


def _is_open(where: tuple[str, ...], opened: tuple[tuple[str, ...], ...]) -> bool:
    return any(where[: len(prefix)] == prefix for prefix in opened)


def _check_nested(
    owner: str, key: str, where: tuple[str, ...], value: Any, node: Any, opened: tuple[tuple[str, ...], ...]
) -> None:
    """The same rule inside a mapping value merged into the baseline's mapping ``node``."""
    if not (isinstance(value, Mapping) and isinstance(node, Mapping) and node) or _is_open(where, opened):
        return
    for name, item in value.items():
        if name not in node:
            _new_key(owner, key, where, str(name), node)
        _check_nested(owner, key, (*where, str(name)), item, node[name], opened)


def _new_key(owner: str, key: str, where: tuple[str, ...], name: str, node: Mapping[str, Any]) -> None:
    parent = ".".join(where)
    existing = [str(k) for k in node]
    close = difflib.get_close_matches(name, existing, n=1)
    hint = f"did you mean {parent + '.' + close[0]!r}? " if close else ""
    msg = (
        f"{owner}: {key!r} adds a new key {name!r} under {parent!r}, whose keys in the baseline are "
        f"{', '.join(map(repr, existing))}; {hint}A treatment may only change the keys of the baseline's "
        f"mappings: to vary a new one, add {parent + '.' + name!r} to the baseline params (with its default)"
    )
    raise TreatmentError(msg)
