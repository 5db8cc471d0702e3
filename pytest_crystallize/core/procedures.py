"""Pair comparisons that need more than the metric's two samples.

A resampling design (``design=cv(...)``, ``holdout(...)``) tells how much
the replicates' training sets overlap, which the corrected resampled t
needs; a covariate (``hypothesis(..., covariate="x")``) brings a second
metric of the same replicates. :func:`special_comparison` runs either one
for :func:`~pytest_crystallize.core.verdicts.compare_pair` and returns the
comparison with the details its verdict reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.alignment import Aligned, aligned_values
from pytest_crystallize.errors import StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.hypotheses import Hypothesis
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import Comparison

__all__ = ["needs_special_comparison", "special_comparison"]


def needs_special_comparison(experiment: Experiment, h: Hypothesis) -> bool:
    """True when ``h`` is tested by a design's corrected test or a covariate adjustment."""
    return experiment.design is not None or h.covariate is not None


def special_comparison(
    experiment: Experiment, result: ExperimentResult, h: Hypothesis, treatment: str, aligned: Aligned
) -> tuple[Comparison, dict[str, Any]]:
    """The comparison of ``h`` on ``aligned`` and the details to add to its verdict.

    Raises:
        StatisticsError: the values cannot be compared so (unpaired folds, a
            covariate missing in some replicates, too few replicates).

    """
    from pytest_crystallize.core.stats import compare_adjusted, compare_resampled, corrected_variance_factor

    options: dict[str, Any] = {
        "direction": h.direction, "alpha": h.alpha or experiment.alpha,
        "margin": None if h.margin is None else float(h.margin),  # check() refused anything else
        "relative_margin": h.relative_margin, "better": h.better, "mde": h.mde,
    }
    design = experiment.design
    if design is not None:
        if not aligned.paired:
            msg = (
                f"{design} compares conditions fold by fold, but {h.metric!r} was not recorded in the same "
                f"replicates of both conditions: record it in every replicate"
            )
            raise StatisticsError(msg)
        resamples = len(aligned.baseline)
        comparison = compare_resampled(
            aligned.baseline, aligned.treatment, test_train_ratio=design.test_train_ratio, test=design.test,
            reason=design.reason(resamples), nan_policy=h.nan_policy, **options,
        )
        factor = corrected_variance_factor(resamples, design.test_train_ratio)
        return comparison, {"resampling": design.to_dict(), "variance_factor": factor}  # "design" is the label
    covariate = str(h.covariate)
    x = aligned_values(result, covariate, treatment)
    x_base = _matched(x.baseline_replicates, x.baseline, aligned.baseline_replicates, covariate, "baseline")
    x_treat = _matched(x.treatment_replicates, x.treatment, aligned.treatment_replicates, covariate, treatment)
    adjusted = compare_adjusted(
        aligned.baseline, aligned.treatment, x_base, x_treat, paired=aligned.paired, covariate=covariate, **options
    )
    details: dict[str, Any] = {
        "covariate": covariate, "variance_reduction": adjusted.variance_reduction,
        "covariate_slope": adjusted.slope,
    }
    if adjusted.note:
        details["covariate_note"] = adjusted.note
    return adjusted.comparison, details


def _matched(
    replicates: np.ndarray, values: np.ndarray, wanted: np.ndarray, covariate: str, condition: str
) -> np.ndarray:
    """The covariate of each replicate in ``wanted``; a StatisticsError names those that lack it."""
    missing = np.setdiff1d(wanted, replicates)
    if missing.size:
        shown = ", ".join(str(int(r)) for r in missing[:10]) + (", ..." if missing.size > 10 else "")
        msg = (
            f"covariate {covariate!r} is missing in condition {condition!r}, replicate(s) {shown}: "
            f"record it (ctx.metrics.add({covariate!r}, value)) in every replicate that records the metric"
        )
        raise StatisticsError(msg)
    return values[np.searchsorted(replicates, wanted)]
