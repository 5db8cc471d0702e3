"""From recorded values to verdicts: one per hypothesis and treatment.

A fixed design (:func:`evaluate`) tests every hypothesis x treatment pair
once, after the last replicate, and corrects the p-values of all pairs of
the experiment together. A sequential design (``replicates="auto"``) runs
in looks: after each look :class:`SequentialMonitor` tests every undecided
pair on the replicates so far against a group-sequential boundary
(Lan-DeMets alpha spending, O'Brien-Fleming type by default; see
:class:`~pytest_crystallize.core.stats.SequentialPlan`). A pair whose
p-value crosses its boundary is decided ("holds"); the run stops as soon as
every pair is decided, or at ``max_replicates``. With ``futility=True`` a
pair whose p-value rises above its futility boundary (beta spending; see
the plan) stops too, and its verdict says "stopped for futility at look k
of K"; without it, a hypothesis that will not hold runs to the last look.
Equivalence hypotheses get no futility stop (their two one-sided tests have
no single design alternative), nor does a comparison flagged degenerate
(too little data for the test to make a claim yet). With a correction
other than ``"none"`` and several pairs, each pair's plan gets an equal
share of alpha (Bonferroni), which keeps the familywise false-positive rate
at alpha across all looks. An adaptive sweep (``adaptive=True``) gives the
replicates of each look only to the baseline and the treatments with an
open pair (:meth:`SequentialMonitor.open_treatments`): a decided pair's test
never sees another treatment's data, so dropping a treatment changes no
other pair's error rate, and the Bonferroni share keeps the familywise rate.

Both build each verdict with :mod:`~pytest_crystallize.core.verdicts`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.attribution import warn_at
from pytest_crystallize.core.defaults import TARGET_POWER
from pytest_crystallize.core.verdicts import Decision, PairComparison, build_verdict, compare_pair
from pytest_crystallize.errors import LowPowerWarning

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment, SequentialDesign
    from pytest_crystallize.core.hypotheses import Hypothesis, Verdict
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import SequentialPlan

__all__ = ["SequentialMonitor", "evaluate", "low_power_messages", "warn_low_power"]


def evaluate(experiment: Experiment, result: ExperimentResult) -> tuple[Verdict, ...]:
    """Check every hypothesis of ``experiment`` for every treatment in ``result``."""
    if not experiment.hypotheses or not experiment.treatments:
        return ()
    from pytest_crystallize.core.best import best_verdict, compare_conditions
    from pytest_crystallize.core.stats import adjust_pvalues

    pairs = [
        compare_pair(experiment, result, h, t.name)
        for h in experiment.hypotheses if h.direction != "best" for t in experiment.treatments
    ]
    # direction="best": one comparison of every condition per hypothesis, in the same family.
    bests = [compare_conditions(experiment, result, h) for h in experiment.hypotheses if h.direction == "best"]
    p_values = [None if p.comparison is None else p.comparison.p_value for p in pairs] + [b.p_value for b in bests]
    tested = [(i, p) for i, p in enumerate(p_values) if p is not None]
    adjusted = adjust_pvalues([p for _, p in tested], experiment.correction)
    p_adjusted = {i: float(a) for (i, _), a in zip(tested, adjusted, strict=True)}
    return tuple(build_verdict(experiment, p, p_adjusted.get(i, math.nan)) for i, p in enumerate(pairs)) + tuple(
        best_verdict(experiment, b, p_adjusted.get(len(pairs) + i, math.nan)) for i, b in enumerate(bests)
    )


@functools.lru_cache(maxsize=64)
def _plan(max_replicates: int, design: SequentialDesign, alpha: float, two_sided: bool) -> SequentialPlan:
    """Plans are immutable and cost tens of milliseconds (with futility, up to a second) to compute: share them."""
    from pytest_crystallize.core.stats import SequentialPlan

    return SequentialPlan(
        max_replicates=max_replicates, looks=design.looks, alpha=alpha, spending=design.spending,
        two_sided=two_sided, futility=design.futility, futility_spending=design.futility_spending,
        power=design.power,
    )


_SPENDING_NAMES = {"obrien_fleming": "O'Brien-Fleming", "pocock": "Pocock", "hsd": "Hwang-Shih-DeCani"}


def _design_label(plan: SequentialPlan, adaptive: bool) -> str:
    futility = {"none": "", "non_binding": ", non-binding futility", "binding": ", binding futility"}[plan.futility]
    sweep = ", adaptive sweep" if adaptive else ""
    return f"group-sequential design ({_SPENDING_NAMES[plan.spending]} spending{futility}{sweep})"


@dataclass(slots=True)
class _PairState:
    """One hypothesis x treatment pair across looks: its plan, its latest test, the look that decided it."""

    hypothesis: Hypothesis
    treatment: str
    plan: SequentialPlan
    latest: PairComparison | None = None
    decided_at: int | None = None
    futile_at: int | None = None
    #: The p-value at each look taken while undecided (None where no test could run), for reports.
    p_values: list[float | None] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Neither shown nor stopped for futility yet."""
        return self.decided_at is None and self.futile_at is None


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
        self._states: list[_PairState] = []
        for h, treatment in pairs:
            alpha = (h.alpha or experiment.alpha) / share
            own = design if h.direction != "equivalent" else dataclasses.replace(design, futility="none")
            plan = _plan(experiment.replicates, own, alpha, h.direction == "two-sided")
            self._states.append(_PairState(h, treatment, plan))
        self.looks_taken = 0

    @property
    def schedule(self) -> tuple[int, ...]:
        """Replicates per condition after each look."""
        return self._states[0].plan.schedule if self._states else (self.experiment.replicates,)

    def observe(self, result: ExperimentResult, look: int) -> bool:
        """Test every undecided pair on ``result`` (the replicates so far); True when all are decided."""
        self.looks_taken = look
        for state in self._states:
            if not state.open:
                continue
            state.latest = pair = compare_pair(self.experiment, result, state.hypothesis, state.treatment)
            c = pair.comparison
            state.p_values.append(None if c is None or not math.isfinite(c.p_value) else c.p_value)
            if c is None:
                continue
            decision = state.plan.decide(look, c.p_value)
            if decision == "reject" and c.direction_ok and pair.predicate_ok is not False:
                state.decided_at = look
            elif decision == "futility" and not c.degenerate:
                state.futile_at = look
        return look == len(self.schedule) or not any(s.open for s in self._states)

    def open_treatments(self) -> tuple[str, ...]:
        """The treatments with a hypothesis not yet decided, in the experiment's order."""
        open_ = {s.treatment for s in self._states if s.open}
        return tuple(t.name for t in self.experiment.treatments if t.name in open_)

    def verdicts(self, *, stopped_by: str = "") -> tuple[Verdict, ...]:
        """One verdict per pair, from the look at which it was decided (or the last one taken).

        ``stopped_by`` names what ended the run before its design did
        (``"budget"``): the open pairs say so; a pair without any look fails.
        """
        return tuple(
            self._verdict(s, s.latest, stopped_by) if s.latest is not None else build_verdict(
                self.experiment, PairComparison(
                    s.hypothesis, s.treatment, None, f"stopped by {stopped_by} before the first look: no claim"
                ), math.nan,
            )
            for s in self._states
        )

    def _verdict(self, state: _PairState, pair: PairComparison, stopped_by: str = "") -> Verdict:
        look = state.decided_at or state.futile_at or self.looks_taken
        plan = state.plan
        nominal, spent = plan.nominal_alpha(look), plan.cumulative_alpha(look)
        p_value = pair.comparison.p_value if pair.comparison is not None else math.nan
        looks = len(plan.schedule)
        sequential: dict[str, Any] = {
            "look": look, "looks": looks, "looks_taken": self.looks_taken,
            "replicates": plan.schedule[look - 1], "max_replicates": plan.max_replicates,
            "nominal_alpha": nominal, "alpha_spent": spent, "plan_alpha": plan.alpha,
            "spending": plan.spending, "futility": plan.futility,
            "stopped": "efficacy" if state.decided_at else "futility" if state.futile_at else stopped_by or "last look",
            # Look by look, for plots: the p-values so far against every planned boundary.
            "p_values": list(state.p_values), "schedule": list(plan.schedule),
            "boundaries": [plan.nominal_alpha(k) for k in range(1, looks + 1)],
        }
        outcome = f"stopped by {stopped_by} after look {look} of {looks}" if stopped_by and state.open else ""
        threshold = f"boundary {nominal:.3g} (alpha spent {spent:.3g} of {plan.alpha:g})"
        if plan.futility != "none":
            futility_p, bound = plan.futility_p(look), plan.futility_boundary(look)
            sequential.update(  # plain JSON: no infinities (a look that spends no beta has none)
                futility_spending=plan.futility_spending, design_power=plan.power, drift=plan.drift,
                futility_bound=bound if math.isfinite(bound) else None,
                futility_p=futility_p if math.isfinite(futility_p) else None,
                # Look by look, for plots: stop for futility at p at or above these (None: no stop there).
                futility_boundaries=[_finite(plan.futility_p(k)) for k in range(1, looks + 1)],
            )
            if state.futile_at:
                outcome = f"stopped for futility at look {look} of {looks}"
                threshold += f"; futility threshold p >= {futility_p:.3g}"
        decision = Decision(
            significant=state.decided_at is not None,
            shown=f"p={p_value:.3g} at look {look} of {looks}",
            threshold=threshold,
            details={"sequential": sequential, "design": _design_label(plan, self.design.adaptive)},
            outcome=outcome,
        )
        return build_verdict(self.experiment, pair, p_value, decision)


def _finite(value: float) -> float | None:
    """``value``, or None when it is infinite (plain JSON has no infinity)."""
    return value if math.isfinite(value) else None


def low_power_messages(result: ExperimentResult) -> list[str]:
    """One message per verdict whose power at its ``mde`` is below :data:`TARGET_POWER`."""
    out = []
    for v in result.verdicts:
        d = v.details
        power = d.get("power")
        if power is None or power >= TARGET_POWER:
            continue
        needed = d.get("replicates_needed")
        advice = (
            f"about {needed} replicates per condition would give {TARGET_POWER:.0%}"
            if needed is not None else f"no replicate count reaches {TARGET_POWER:.0%}"
        )
        out.append(
            f"experiment {result.experiment!r}: hypothesis {v.hypothesis!r} for treatment "
            f"{v.treatment!r} has {power:.0%} power to detect an effect of {d.get('mde'):g} with "
            f"{min(v.n_baseline, v.n_treatment)} replicates; {advice}"
        )
    return out


def warn_low_power(function: Any, result: ExperimentResult) -> None:
    """Issue a LowPowerWarning per underpowered verdict, attributed to the experiment's own code.

    Called after the run, so that warnings turned into errors (``-W error``)
    cannot lose the result.
    """
    for message in low_power_messages(result):
        warn_at(function, LowPowerWarning(message))
