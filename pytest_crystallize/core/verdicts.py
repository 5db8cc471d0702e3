"""One verdict from one pair of conditions: a hypothesis, the baseline and a treatment.

:func:`compare_pair` runs the hypothesis' test on the aligned values of its
metric (:mod:`~pytest_crystallize.core.alignment`) and returns a
:class:`PairComparison`: the statistics, or the problem that kept the test
from running. :func:`build_verdict` turns it into a
:class:`~pytest_crystallize.core.hypotheses.Verdict`, given the p-value
after correction or a :class:`Decision` of a sequential design. A fixed
design (:func:`~pytest_crystallize.core.analysis.evaluate`) and the
look-by-look monitor (:class:`~pytest_crystallize.core.analysis.SequentialMonitor`)
share both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.alignment import Aligned, aligned_values
from pytest_crystallize.core.defaults import TARGET_POWER
from pytest_crystallize.core.hypotheses import Hypothesis, Verdict
from pytest_crystallize.core.procedures import needs_special_comparison, special_comparison
from pytest_crystallize.core.treatments import BASELINE
from pytest_crystallize.errors import StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import Comparison

__all__ = ["Decision", "PairComparison", "build_verdict", "compare_pair", "design_label"]


@dataclass(frozen=True, slots=True)
class PairComparison:
    """What testing one hypothesis on the baseline and one treatment found.

    ``comparison`` is None when the test could not run; ``problem`` then
    says why. ``predicate_ok`` is the hypothesis' own predicate (None
    without one), ``predicate_note`` why it failed if it raised.
    """

    hypothesis: Hypothesis
    treatment: str
    comparison: Comparison | None
    problem: str = ""
    predicate_ok: bool | None = None
    predicate_note: str = ""
    #: The most values one replicate recorded (above 1: tested on per-replicate means).
    per_replicate: int = 1
    #: What a design's corrected test or a covariate adjustment adds to the verdict's details.
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """How a sequential design decided a pair at a look, instead of ``p_adjusted < alpha``.

    ``shown`` is the p-value text of the verdict's reason, ``threshold`` what
    it was compared with; ``details`` are added to the verdict's details
    (``"design"`` names the design that decided). ``outcome``, when given,
    leads the reason: how the design stopped (``"stopped for futility at
    look 2 of 5"``).
    """

    significant: bool
    shown: str
    threshold: str
    details: Mapping[str, Any] = field(default_factory=dict)
    outcome: str = ""


def _missing(result: ExperimentResult, metric: str, conditions: list[str], pair: tuple[str, str]) -> str:
    where = " and ".join(repr(c) for c in conditions)
    if any(len(result.select(metric, c)[0]) for c in conditions):  # recorded, then left out as failed
        failed = sorted({e.replicate for e in result.errors if e.condition in pair})
        shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        return (
            f"metric missing: every replicate of {where} that recorded {metric!r} failed, in {pair[0]!r} or "
            f"{pair[1]!r}, and a failed replicate is left out of both (failed replicates: {shown}; see the errors)"
        )
    recorded = ", ".join(repr(m) for m in result.metrics) or "none"
    return f"metric missing: no replicate of {where} recorded {metric!r} (recorded metrics: {recorded})"


def _bad_value_message(exc: StatisticsError, metric: str, treatment: str, aligned: Aligned) -> str:
    condition = BASELINE if exc.side == "baseline" else treatment
    if exc.positions:
        replicates = aligned.baseline_replicates if exc.side == "baseline" else aligned.treatment_replicates
        where = [int(replicates[p]) for p in exc.positions if p < len(replicates)]
        return f"metric {metric!r} in condition {condition!r}, replicate(s) {where}: {exc}"
    return f"metric {metric!r}: {exc}"


def design_label(experiment: Experiment) -> str:
    """What a fixed-size experiment's verdicts say produced them: ``"fixed design"`` or ``"design cv(k=10, ...)"``."""
    return "fixed design" if experiment.design is None else f"design {experiment.design}"


def compare_pair(experiment: Experiment, result: ExperimentResult, h: Hypothesis, treatment: str) -> PairComparison:
    """Test ``h`` on ``treatment`` versus the baseline in ``result``; a problem is a result, not an exception.

    Raises only when a built-in test fails unexpectedly (a bug of ours);
    a user's own test or predicate that raises is reported in the result.
    """
    from pytest_crystallize.core.stats import compare

    aligned = aligned_values(result, h.metric, treatment, omit_non_finite=h.nan_policy == "omit")
    baseline, treated, paired = aligned.baseline, aligned.treatment, aligned.paired
    empty = [c for c, v in ((BASELINE, baseline), (treatment, treated)) if len(v) == 0]
    if empty:
        return PairComparison(h, treatment, None, _missing(result, h.metric, empty, (BASELINE, treatment)))
    extra: dict[str, Any] = {}
    try:
        if needs_special_comparison(experiment, h):
            comparison, extra = special_comparison(experiment, result, h, treatment, aligned)
        else:
            comparison = compare(
                baseline, treated, test=h.test, direction=h.direction,
                alpha=h.alpha or experiment.alpha, paired=paired,
                margin=None if h.margin is None else float(h.margin),  # check() refused anything else
                relative_margin=h.relative_margin, better=h.better, seed=experiment.seed, mde=h.mde,
                nan_policy=h.nan_policy,
            )
    except StatisticsError as exc:
        return PairComparison(h, treatment, None, _bad_value_message(exc, h.metric, treatment, aligned))
    except Exception as exc:  # a user's own test raised: a failed verdict that says where, not a crash
        if isinstance(h.test, str):
            raise
        return PairComparison(h, treatment, None, f"test {h.test_name!r} raised {type(exc).__name__}: {exc}")
    predicate_ok, note = None, ""
    if h.predicate is not None:
        try:
            predicate_ok = bool(h.predicate(baseline, treated))
        except Exception as exc:  # the user's predicate: report, do not crash the run
            predicate_ok, note = False, f"predicate raised {type(exc).__name__}: {exc}"
    return PairComparison(h, treatment, comparison, "", predicate_ok, note, aligned.per_replicate, extra)


def build_verdict(
    experiment: Experiment, pair: PairComparison, p_adjusted: float, decision: Decision | None = None
) -> Verdict:
    """The verdict of ``pair``: significant when ``p_adjusted < alpha``, or as ``decision`` says."""
    h, c = pair.hypothesis, pair.comparison
    alpha = h.alpha or experiment.alpha
    common: dict[str, Any] = {
        "hypothesis": h.label, "metric": h.metric, "treatment": pair.treatment,
        "direction": h.direction, "alpha": alpha,
    }
    if c is None:
        return Verdict(
            **common, test=h.test_name, n_baseline=0, n_treatment=0, mean_baseline=math.nan,
            mean_treatment=math.nan, difference=math.nan, p_value=math.nan, p_adjusted=math.nan,
            holds=False, reason=pair.problem,
        )
    if decision is None:
        shown = (f"p={c.p_value:.3g}" if experiment.correction == "none"
                 else f"p={c.p_value:.3g}, {experiment.correction}-adjusted {p_adjusted:.3g}")
        decision = Decision(p_adjusted < alpha, shown, f"alpha {alpha:g}")
    holds, reason = _judge(h, c, pair, decision)
    if decision.outcome:
        reason = f"{decision.outcome}: {reason}"
    details = {"design": design_label(experiment), **c.to_dict(), **pair.details, **decision.details}
    if pair.per_replicate > 1:
        reason += f" (on per-replicate means of up to {pair.per_replicate} values)"
        details["values_per_replicate"] = pair.per_replicate
    return Verdict(
        **common, test=c.test, n_baseline=c.n_baseline, n_treatment=c.n_treatment,
        mean_baseline=c.mean_baseline, mean_treatment=c.mean_treatment, difference=c.difference,
        p_value=c.p_value, p_adjusted=p_adjusted, holds=holds, reason=reason, details=details,
    )


def _judge(h: Hypothesis, c: Comparison, pair: PairComparison, decision: Decision) -> tuple[bool, str]:
    shown, threshold = decision.shown, decision.threshold
    if pair.predicate_ok is False:
        return False, pair.predicate_note or f"predicate {h.label!r} returned false ({shown})"
    if c.difference == 0 and h.direction in ("maximize", "minimize", "two-sided"):
        return False, f"no difference: both conditions have mean {c.mean_baseline:.4g} ({shown})"
    if not c.direction_ok and h.direction == "no_worse" and math.isfinite(c.margin):
        worse = -c.difference if h.better == "higher" else c.difference
        return False, f"worse by {worse:.4g}, more than the margin {c.margin:.4g} ({shown})"
    if not c.direction_ok and h.direction == "equivalent" and math.isfinite(c.margin):
        return False, f"difference {c.difference:+.4g} lies outside ±{c.margin:.4g} ({shown})"
    if not c.direction_ok:
        return False, (
            f"wrong direction: treatment mean {c.mean_treatment:.4g} vs baseline "
            f"{c.mean_baseline:.4g}, but the hypothesis is {h.direction!r} ({shown})"
        )
    if not decision.significant:
        note = f"; {c.degenerate}" if c.degenerate else ""
        if not math.isnan(c.power) and c.power < TARGET_POWER:
            note += f"; underpowered: {c.power:.0%} power at mde {c.mde:g}"
            if c.replicates_needed is not None:
                note += f", about {c.replicates_needed} replicates needed"
        return False, f"not significant: {shown} >= {threshold}{note}"
    return True, f"significant: {shown} < {threshold}"
