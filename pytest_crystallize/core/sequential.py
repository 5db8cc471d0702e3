"""Sequential stopping: run replicates in looks and stop once every hypothesis is decided.

``replicates="auto"`` with ``max_replicates=N`` runs replicates in ``looks``
equal groups. After each look every undecided hypothesis x treatment pair is
tested on the replicates so far and compared with a group-sequential boundary
(Lan-DeMets alpha spending, O'Brien-Fleming type by default; see
:class:`~pytest_crystallize.core.stats.SequentialPlan`). A pair whose p-value
crosses its boundary is decided ("holds"); the run stops as soon as every
pair is decided, or at ``max_replicates``. Only efficacy boundaries are used:
a hypothesis that will not hold is only decided at the last look.

Multiple comparisons: with a correction other than ``"none"`` and several
pairs, each pair's plan gets an equal share of alpha (Bonferroni), which
keeps the familywise false-positive rate at alpha across all looks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.analysis import _compare, _Pending, _verdict

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.hypotheses import Verdict
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import SequentialPlan

__all__ = ["SequentialDesign", "SequentialMonitor"]

_TWO_SIDED: Final = frozenset({"two-sided"})


@functools.lru_cache(maxsize=64)
def _plan(max_replicates: int, looks: int, alpha: float, spending: str, two_sided: bool) -> SequentialPlan:
    """Plans are immutable and cost tens of milliseconds to compute: share them."""
    from pytest_crystallize.core.stats import SequentialPlan

    return SequentialPlan(
        max_replicates=max_replicates, looks=looks, alpha=alpha, spending=spending, two_sided=two_sided
    )


@dataclass(frozen=True, slots=True)
class SequentialDesign:
    """How a sequential experiment looks at its data: ``looks`` and the spending function."""

    looks: int = 5
    spending: str = "obrien_fleming"


@dataclass(slots=True)
class _Pair:
    """The state of one hypothesis x treatment pair across looks."""

    pending: _Pending
    plan: SequentialPlan
    decided_at: int | None = None


class SequentialMonitor:
    """Decides, look after look, which pairs have crossed their boundary.

    Lifecycle: made by the runner for one sequential run; :meth:`observe` is
    called once per look with the result so far; :meth:`verdicts` at the end.
    """

    def __init__(self, experiment: Experiment, design: SequentialDesign) -> None:
        self.experiment = experiment
        self.design = design
        pairs = [(h, t.name) for h in experiment.hypotheses for t in experiment.treatments]
        share = len(pairs) if experiment.correction != "none" and len(pairs) > 1 else 1
        self._plans: dict[tuple[float, bool], SequentialPlan] = {}
        self._pairs: list[tuple[Any, str, SequentialPlan]] = []
        for h, treatment in pairs:
            key = ((h.alpha or experiment.alpha) / share, h.direction in _TWO_SIDED)
            if key not in self._plans:
                self._plans[key] = _plan(experiment.replicates, design.looks, key[0], design.spending, key[1])
            self._pairs.append((h, treatment, self._plans[key]))
        self._state: list[_Pair | None] = [None] * len(self._pairs)
        self.looks_taken = 0

    @property
    def schedule(self) -> tuple[int, ...]:
        """Replicates per condition after each look."""
        return next(iter(self._plans.values())).schedule if self._plans else (self.experiment.replicates,)

    def observe(self, result: ExperimentResult, look: int) -> bool:
        """Test every undecided pair on ``result`` (the replicates so far); True when all are decided."""
        self.looks_taken = look
        last = look == len(self.schedule)
        for i, (h, treatment, plan) in enumerate(self._pairs):
            state = self._state[i]
            if state is not None and state.decided_at is not None:
                continue
            pending = _compare(self.experiment, result, h, treatment)
            state = self._state[i] = _Pair(pending, plan)
            c = pending.comparison
            crossed = (
                c is not None and c.direction_ok and pending.predicate_ok is not False
                and plan.decide(look, c.p_value) == "reject"
            )
            if crossed or last:
                state.decided_at = look if crossed else None
        return last or all(s is not None and s.decided_at is not None for s in self._state)

    def verdicts(self) -> tuple[Verdict, ...]:
        """One verdict per pair, from the look at which it was decided (or the last one)."""
        out = []
        for state in self._state:
            if state is None:
                continue
            look = state.decided_at or self.looks_taken
            plan, c = state.plan, state.pending.comparison
            nominal = plan.nominal_alpha(look)
            extra = {"sequential": {
                "look": look, "looks": len(plan.schedule), "looks_taken": self.looks_taken,
                "replicates": plan.schedule[look - 1], "max_replicates": plan.max_replicates,
                "nominal_alpha": nominal, "alpha_spent": plan.cumulative_alpha(look),
                "plan_alpha": plan.alpha, "spending": plan.spending,
            }}
            p_value = c.p_value if c is not None else float("nan")
            out.append(_verdict(
                self.experiment, state.pending, p_value,
                significant=state.decided_at is not None,
                shown=f"p={p_value:.3g} at look {look} of {len(plan.schedule)}",
                threshold=f"boundary {nominal:.3g} (alpha spent {plan.cumulative_alpha(look):.3g} of {plan.alpha:g})",
                extra=extra,
            ))
        return tuple(out)
