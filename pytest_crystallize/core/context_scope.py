"""What every replicate context of one condition shares in a run: its values, seeds, sink and hooks.

A :class:`~pytest_crystallize.core.context.FrozenContext` is made for every
replicate; what does not change between the replicates of a condition is
made once per batch, as a :class:`ContextScope`, and each context keeps a
reference to it rather than a copy of each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_crystallize.core.designs import Design
    from pytest_crystallize.core.seeds import ReplicateSeeds
    from pytest_crystallize.core.sink import MetricSink

__all__ = ["ContextScope"]


@dataclass(frozen=True, slots=True)
class ContextScope:
    """The condition a context belongs to, and where its replicates record."""

    #: The condition's values (the experiment's, with its treatment's applied); contexts never write them.
    values: Mapping[str, Any]
    #: The condition's name (``"baseline"`` or a treatment's) and its code in the run.
    condition: str
    condition_code: int
    seeds: ReplicateSeeds
    #: Where the replicates' metrics go.
    sink: MetricSink
    #: The run's step-hook caller, or None when no plugin watches steps.
    step_hooks: Any = None
    #: The experiment's design (``cv``, ``holdout``), which ``ctx.folds`` splits by.
    design: Design | None = None
