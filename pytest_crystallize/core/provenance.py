"""What a result records beside its values: where it came from, and which replicates failed.

:class:`Provenance` holds a run's seeds, sizes, design, versions and times;
:class:`ReplicateError` one exception raised while running one replicate of
one condition, kept as strings so it pickles and saves. Both are frozen,
and convert to and from plain JSON-able dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from pytest_crystallize.core.seeds import replicate_seed

__all__ = ["Provenance", "ReplicateError", "plain_fields"]


def plain_fields(obj: Any) -> dict[str, Any]:
    """Fields of a slotted dataclass as a dict of plain values."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class ReplicateError:
    """An exception raised while running one replicate of one condition."""

    condition: str
    replicate: int
    error_type: str
    message: str
    traceback: str
    step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        return plain_fields(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicateError:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)

    @property
    def headline(self) -> str:
        """One line: where it happened and what it was."""
        where = f"condition {self.condition!r}, replicate {self.replicate}"
        if self.step:
            where += f", step {self.step!r}"
        return f"{where}: {self.error_type}: {self.message}"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a result came from: seeds, sizes, versions, times."""

    experiment: str
    master_seed: int
    replicates: int
    conditions: tuple[str, ...]
    treatments: Mapping[str, Mapping[str, str]]
    alpha: float
    correction: str
    started_at: str
    duration_s: float
    versions: Mapping[str, str] = field(default_factory=dict)
    seed_scheme: str = "numpy.random.SeedSequence(master_seed, spawn_key=(replicate,)), first uint32"
    #: Sequential designs only: the most replicates allowed, planned looks, looks taken.
    max_replicates: int | None = None
    looks: int | None = None
    looks_taken: int | None = None
    #: Anytime designs only (``replicates="anytime"``): tested after every replicate.
    anytime: bool = False
    #: What stopped the run before its design would have (``"budget"``), or None.
    stopped_by: str | None = None
    #: Sequential designs only: replicate tasks (condition x replicate) run; fewer than ``replicates x
    #: conditions`` when an adaptive sweep dropped treatments.
    tasks_run: int | None = None
    #: Resumed runs only: replicate tasks taken from the journal of an interrupted run, not run again.
    resumed: int | None = None
    #: What the journal said when resuming (parts discarded, and why).
    journal_notes: tuple[str, ...] = ()
    #: The resampling design the replicates followed (``"cv(k=10, repeats=10)"``), if one was declared.
    design: str | None = None
    #: Datasources that handed several replicates identical data without a declared design.
    shared_data: tuple[str, ...] = ()
    #: Chained experiments only: which conditions read an upstream's baseline, and why.
    upstream_notes: tuple[str, ...] = ()
    #: How the replicates ran, as the execution backend said (a pool too small to gain, a cluster).
    execution: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))
        object.__setattr__(self, "journal_notes", tuple(self.journal_notes))
        object.__setattr__(self, "shared_data", tuple(self.shared_data))
        object.__setattr__(self, "upstream_notes", tuple(self.upstream_notes))
        object.__setattr__(self, "execution", tuple(self.execution))
        object.__setattr__(
            self, "treatments",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.treatments.items()}),
        )
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))

    def replicate_seeds(self) -> tuple[int, ...]:
        """The seed every condition's replicate ``r`` ran with, for each ``r``."""
        return tuple(replicate_seed(self.master_seed, r) for r in range(self.replicates))

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        out = plain_fields(self)
        out["treatments"] = {k: dict(v) for k, v in self.treatments.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)
