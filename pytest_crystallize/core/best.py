"""The verdict of a ``direction="best"`` hypothesis: which condition is best.

:func:`compare_conditions` gathers the metric's per-replicate values in every
condition, baseline included (a replicate that failed in any condition is
left out of all, so the comparison stays paired), and runs multiple
comparisons with the best (:func:`~pytest_crystallize.core.stats.compare_best`).
:func:`best_verdict` turns that into one :class:`~pytest_crystallize.core.hypotheses.Verdict`
naming the winner, or the conditions that cannot be told from it, with the
simultaneous intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.alignment import replicate_means
from pytest_crystallize.core.hypotheses import Hypothesis, Verdict
from pytest_crystallize.errors import StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import BestComparison

__all__ = ["BestOutcome", "best_verdict", "compare_conditions"]


@dataclass(frozen=True, slots=True)
class BestOutcome:
    """What comparing every condition for one hypothesis found, or the problem that kept it from running."""

    hypothesis: Hypothesis
    comparison: BestComparison | None
    problem: str = ""

    @property
    def p_value(self) -> float | None:
        """The p-value that joins the experiment's multiple-comparison correction (None: not tested)."""
        return None if self.comparison is None else self.comparison.p_value


def _values(result: ExperimentResult, h: Hypothesis) -> tuple[dict[str, np.ndarray], bool]:
    """Each condition's per-replicate values, and whether they are aligned by replicate."""
    failed = {e.replicate for e in result.errors}
    by_condition: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for condition in result.conditions:
        replicates, values = result.select(h.metric, condition)
        keep = ~np.isin(replicates, list(failed))
        replicates, values, _ = replicate_means(
            replicates[keep], values[keep], omit_non_finite=h.nan_policy == "omit"
        )
        by_condition[condition] = replicates, values
    sets = [r for r, _ in by_condition.values()]
    common = sets[0]
    for replicates in sets[1:]:
        common = np.intersect1d(common, replicates)
    paired = len(common) >= 2 and all(len(r) == len(common) for r in sets)
    if not paired and h.nan_policy == "omit" and len(common) >= 2:
        paired = True  # omitting a value drops its replicate from every condition, pairwise
    if paired:
        return {c: v[np.isin(r, common)] for c, (r, v) in by_condition.items()}, True
    return {c: v for c, (_, v) in by_condition.items()}, False


def compare_conditions(experiment: Experiment, result: ExperimentResult, h: Hypothesis) -> BestOutcome:
    """Multiple comparisons with the best for ``h`` over every condition of ``result``."""
    from pytest_crystallize.core.stats import compare_best

    values, paired = _values(result, h)
    empty = [c for c, v in values.items() if len(v) == 0]
    if empty:
        recorded = ", ".join(repr(m) for m in result.metrics) or "none"
        where = ", ".join(map(repr, empty))
        return BestOutcome(h, None, f"metric missing: no replicate of {where} recorded {h.metric!r} "
                                    f"(recorded metrics: {recorded})")
    margin = 0.0 if h.margin is None else float(h.margin)
    if h.relative_margin:
        margin *= abs(float(np.mean(next(iter(values.values())))))
    design = experiment.design
    try:
        comparison = compare_best(
            values, better=h.better, alpha=h.alpha or experiment.alpha, margin=margin, paired=paired,
            test_train_ratio=None if design is None else design.test_train_ratio,
        )
    except StatisticsError as exc:
        return BestOutcome(h, None, f"metric {h.metric!r}: {exc}")
    return BestOutcome(h, comparison)


def _signed(value: float) -> str:
    return f"{value:+.4g}"


def _described(c: BestComparison, name: str) -> str:
    low, high = c.interval(name)
    return f"{name} [{_signed(low)}, {_signed(high)}]"


def best_reason(c: BestComparison, holds: bool, p_adjusted: float) -> str:
    """The verdict's reason in words: the winner, or the conditions that cannot be told apart."""
    level = f"{c.confidence:.0%} simultaneous confidence"
    within = f", or within {c.margin:.4g} of the best," if c.margin > 0 else ""
    if holds:
        return (f"significant: {c.winner!r} is best{within} with {level} (mcb: "
                f"{_described(c, c.winner)} better than the best of the others)")
    if c.identified:
        return (f"not significant after correction: {c.winner!r} is best{within} at {level} alone, "
                f"but its adjusted p {p_adjusted:.3g} >= alpha {c.alpha:g}")
    tied = ", ".join(repr(n) for n in c.candidates)
    return (f"not significant: cannot separate {tied}: any of them may be best ({level}, mcb: "
            f"{'; '.join(_described(c, n) for n in c.candidates)})")


def best_verdict(experiment: Experiment, outcome: BestOutcome, p_adjusted: float) -> Verdict:
    """The verdict of a best hypothesis: holds when the winner is identified at alpha after correction."""
    h, c = outcome.hypothesis, outcome.comparison
    alpha = h.alpha or experiment.alpha
    common: dict[str, Any] = {"hypothesis": h.label, "metric": h.metric, "direction": h.direction, "alpha": alpha}
    if c is None:
        return Verdict(
            **common, treatment="", test="mcb", n_baseline=0, n_treatment=0, mean_baseline=math.nan,
            mean_treatment=math.nan, difference=math.nan, p_value=math.nan, p_adjusted=math.nan,
            holds=False, reason=outcome.problem,
        )
    holds = p_adjusted < alpha
    winner, runner = c.names.index(c.winner), c.names.index(c.runner_up)
    low, high = c.interval(c.winner)
    details = {**c.to_dict(), "ci_low": low, "ci_high": high}
    if experiment.design is not None:  # "design" is the label every verdict line shows, as in verdicts.py
        details["design"] = f"design {experiment.design}"
        details["resampling"] = experiment.design.to_dict()
    return Verdict(
        **common, treatment=c.winner, test=c.test, n_baseline=c.sizes[runner], n_treatment=c.sizes[winner],
        mean_baseline=c.means[runner], mean_treatment=c.means[winner],
        difference=c.means[winner] - c.means[runner], p_value=c.p_value, p_adjusted=p_adjusted,
        holds=holds, reason=best_reason(c, holds, p_adjusted), details=details,
    )
