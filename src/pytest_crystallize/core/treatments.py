"""Treatments: named changes to the baseline's context values or datasources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.errors import TreatmentError

__all__ = ["BASELINE", "Treatment", "check_treatments"]

#: The name of the condition without a treatment; no treatment may take it.
BASELINE: Final = "baseline"


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
