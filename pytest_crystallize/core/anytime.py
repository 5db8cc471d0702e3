"""Anytime-valid monitoring (``replicates="anytime"``): a verdict that stays valid however the run stops.

:class:`AnytimeMonitor` checks every hypothesis x treatment pair after every
replicate with an e-process on the paired differences (see
:func:`~pytest_crystallize.core.stats.anytime_test`): the t-mixture for
continuous metrics (it assumes roughly normal differences, not their
variance), Waudby-Smith & Ramdas' betting test for 0/1 metrics (exact). A
pair is decided the first time its e-process crosses ``1/alpha``; the run
stops when every pair is decided, at ``max_replicates``, or whenever it is
stopped (the time budget, Ctrl-C): each verdict is valid at that moment, so
there is no plan to break. Each decided pair's verdict is built on the
replicates up to the one that decided it. With several pairs and a
correction other than ``"none"`` each gets an equal share of alpha
(Bonferroni).

The runner feeds the monitor the result after each batch of replicates;
the monitor walks the replicates of the batch one by one, so the batch size
changes the work done, not the decisions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.alignment import aligned_values
from pytest_crystallize.core.stats import ANYTIME_METHODS
from pytest_crystallize.core.verdicts import Decision, PairComparison, build_verdict, compare_pair
from pytest_crystallize.errors import StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import AnytimeDesign, Experiment
    from pytest_crystallize.core.hypotheses import Hypothesis, Verdict
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import AnytimeMethod, AnytimeOutcome

__all__ = ["AnytimeMonitor", "replicates_before"]

#: What each e-process is, for the verdict's design label.
DESIGN_LABELS: Final = {
    "t_mixture": "anytime design (t-mixture e-process, normal differences assumed)",
    "betting": "anytime design (betting e-process, 0/1 values)",
}
#: The fewest paired replicates worth testing: one difference carries no scale-free evidence.
MIN_PAIRS: Final = 2


@dataclass(slots=True)
class _AnytimePair:
    """One hypothesis x treatment pair: its alpha, its e-process, the replicate count that decided it."""

    hypothesis: Hypothesis
    treatment: str
    alpha: float
    #: Named by the hypothesis' ``test=``, else chosen from the first values.
    method: AnytimeMethod | None = None
    #: Replicates (by index, exclusive) up to the one that decided the pair; None while undecided.
    decided_upto: int | None = None
    problem: str = ""


def _named(test: object) -> AnytimeMethod | None:
    """The e-process a hypothesis names with ``test=``, or None (``"auto"``: chosen from the metric's values)."""
    return next((method for method in ANYTIME_METHODS if test == method), None)


def replicates_before(result: ExperimentResult, stop: int) -> ExperimentResult:
    """``result`` with only the replicates numbered below ``stop`` (values and errors)."""
    keep = result.replicates < stop
    return dataclasses.replace(
        result, condition_codes=result.condition_codes[keep], replicates=result.replicates[keep],
        metric_codes=result.metric_codes[keep], values=result.values[keep],
        tags=tuple(t for t, k in zip(result.tags, keep, strict=True) if k),
        errors=tuple(e for e in result.errors if e.replicate < stop),
        provenance=dataclasses.replace(result.provenance, replicates=min(stop, result.provenance.replicates)),
    )


class AnytimeMonitor:
    """Decides, replicate after replicate, which pairs their e-process has settled.

    Lifecycle: made by the runner for one anytime run; :meth:`observe` is
    called after each batch with the result so far; :meth:`verdicts` once
    at the end, with the final result.
    """

    def __init__(self, experiment: Experiment, design: AnytimeDesign) -> None:
        self.experiment = experiment
        self.design = design
        pairs = [(h, t.name) for h in experiment.hypotheses for t in experiment.treatments]
        share = len(pairs) if experiment.correction != "none" and len(pairs) > 1 else 1
        self._states = [_AnytimePair(h, t, (h.alpha or experiment.alpha) / share, _named(h.test)) for h, t in pairs]

    def observe(self, result: ExperimentResult) -> bool:
        """Run each open pair's e-process over the replicates so far; True when every pair is decided."""
        for state in self._states:
            if state.decided_upto is None and not state.problem:
                outcome, replicates = self._test(state, result, interval=False)
                if outcome is not None and outcome.decided:
                    state.decided_upto = int(replicates[outcome.n - 1]) + 1
        return all(s.decided_upto is not None or s.problem for s in self._states)

    def _test(
        self, state: _AnytimePair, result: ExperimentResult, *, interval: bool
    ) -> tuple[AnytimeOutcome | None, np.ndarray]:
        """The pair's e-process on the paired differences so far, and the replicate of each difference."""
        from pytest_crystallize.core.stats import anytime_test, binary_outcome

        h = state.hypothesis
        aligned = aligned_values(result, h.metric, state.treatment, omit_non_finite=h.nan_policy == "omit")
        if not aligned.paired or len(aligned.baseline) < MIN_PAIRS:
            return None, aligned.baseline_replicates
        if state.method is None:  # chosen once, from the first values: a metric does not change its kind
            state.method = "betting" if binary_outcome([aligned.baseline, aligned.treatment]) else "t_mixture"
        method = state.method
        try:
            outcome = anytime_test(
                aligned.treatment - aligned.baseline, direction=h.direction, alpha=state.alpha,
                margin=float(h.margin or 0.0), better=h.better, method=method, scale=self.design.scale,
                interval=interval,
            )
        except StatisticsError as exc:
            state.problem = f"metric {h.metric!r}: {exc}"
            if method == "betting" and _named(h.test) is None:
                state.problem += (
                    f"; its first replicates held only 0 and 1, so the anytime design chose the betting test: "
                    f"for a metric that is not 0/1, declare hypothesis({h.metric!r}, ..., test='t_mixture')"
                )
            return None, aligned.baseline_replicates
        return outcome, aligned.baseline_replicates

    def verdicts(self, result: ExperimentResult, *, stopped_by: str = "") -> tuple[Verdict, ...]:
        """One verdict per pair, on the replicates up to the one that decided it (or all of them).

        ``stopped_by`` names what ended the run early (``"budget"``), for the
        reason of the pairs still open.
        """
        return tuple(self._verdict(s, result, stopped_by) for s in self._states)

    def _verdict(self, state: _AnytimePair, result: ExperimentResult, stopped_by: str) -> Verdict:
        h, treatment = state.hypothesis, state.treatment
        upto = state.decided_upto or result.provenance.replicates
        seen = replicates_before(result, upto) if state.decided_upto else result
        # The means, effect size and power come from the fixed comparison of the same data (a named
        # e-process is not a fixed test); p-value and interval are replaced by the e-process' below.
        described = h if _named(h.test) is None else dataclasses.replace(h, test="auto")
        pair = dataclasses.replace(compare_pair(self.experiment, seen, described, treatment), hypothesis=h)
        outcome, _ = (None, None) if state.problem else self._test(state, seen, interval=True)
        if pair.comparison is None or outcome is None:
            problem = state.problem or pair.problem or (
                f"anytime design needs at least {MIN_PAIRS} paired replicates (the same replicates in "
                f"the baseline and {treatment!r}); it has {len(aligned_values(seen, h.metric, treatment).baseline)}"
            )
            if stopped_by and not state.problem:
                problem = f"stopped by {stopped_by} after {result.provenance.replicates} replicates: {problem}"
            return build_verdict(self.experiment, PairComparison(h, treatment, None, problem), math.nan)
        method: AnytimeMethod = state.method or "t_mixture"
        comparison = dataclasses.replace(
            pair.comparison, test=method, p_value=outcome.p_value, ci_low=outcome.ci_low, ci_high=outcome.ci_high,
            confidence=outcome.confidence, degenerate="",
            test_reason=f"anytime design: {DESIGN_LABELS[method].split('(')[1].rstrip(')')}, checked after every "
                        f"replicate",
        )
        maximum = self.experiment.replicates
        shown = f"always-valid p={outcome.p_value:.3g} after {outcome.n} of {maximum} replicates"
        details: dict[str, Any] = {
            "design": DESIGN_LABELS[method],
            "anytime": {
                "method": method, "decided": outcome.decided, "replicates": outcome.n, "max_replicates": maximum,
                "alpha": state.alpha, "scale": self.design.scale, "stopped_by": stopped_by or None,
            },
        }
        if outcome.decided == "fails":
            lead = f"stopped at replicate {outcome.n} of {maximum}: shown not to hold"
        elif not outcome.decided and stopped_by:
            lead = f"stopped by {stopped_by} after {outcome.n} of {maximum} replicates (still valid)"
        else:
            lead = ""
        decision = Decision(
            significant=outcome.decided == "holds", shown=shown, threshold=f"alpha {state.alpha:g}",
            details=details, outcome=lead,
        )
        return build_verdict(
            self.experiment, dataclasses.replace(pair, comparison=comparison), outcome.p_value, decision
        )
