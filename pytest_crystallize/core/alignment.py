"""A metric's values by replicate, aligned across two conditions.

The replicate is the unit of analysis: a replicate that recorded a metric
several times contributes the mean of its values. Values are aligned by
replicate: when the same replicates have values in both conditions (the
usual case with common seeds), the comparison may be paired. Replicates that
failed in either condition are dropped from both sides so the alignment
survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pytest_crystallize.core.treatments import BASELINE

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["Aligned", "aligned_values", "replicate_means"]


@dataclass(frozen=True, slots=True)
class Aligned:
    """The values of one metric in the baseline and one treatment, and their replicates.

    One value per replicate (the mean when a replicate recorded several);
    both sides are sorted by replicate, and when ``paired`` element ``i`` of
    each came from the same replicate (the same seed).
    """

    baseline: np.ndarray
    treatment: np.ndarray
    baseline_replicates: np.ndarray
    treatment_replicates: np.ndarray
    paired: bool
    #: The most values one replicate recorded; above 1 the values are per-replicate means.
    per_replicate: int = 1


def replicate_means(
    replicates: np.ndarray, values: np.ndarray, *, omit_non_finite: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Average the values of each replicate: ``(replicates, means, most values in one replicate)``.

    The replicate is the experimental unit: values recorded in one replicate
    share its seed and its random effects, so testing them as independent
    observations would inflate the false-positive rate far beyond alpha.
    Replicates come back sorted. With ``omit_non_finite`` NaN and infinite
    values are dropped before averaging; otherwise they make their
    replicate's mean non-finite, so the test reports that replicate.
    """
    if omit_non_finite:
        keep = np.isfinite(values)
        replicates, values = replicates[keep], values[keep]
    order = np.argsort(replicates, kind="stable")
    replicates, values = replicates[order], values[order]
    unique, starts, counts = np.unique(replicates, return_index=True, return_counts=True)
    if len(unique) == len(replicates):
        return replicates, values, int(len(values) > 0)
    return unique, np.add.reduceat(values, starts) / counts, int(counts.max())


def aligned_values(
    result: ExperimentResult, metric: str, treatment: str, *, omit_non_finite: bool = False
) -> Aligned:
    """Return the per-replicate values of ``metric``; failed replicates are left out of both sides."""
    base_rep, base_val = result.select(metric, BASELINE)
    treat_rep, treat_val = result.select(metric, treatment)
    failed = {e.replicate for e in result.errors if e.condition in (BASELINE, treatment)}
    if failed:
        keep_b = ~np.isin(base_rep, list(failed))
        keep_t = ~np.isin(treat_rep, list(failed))
        base_rep, base_val = base_rep[keep_b], base_val[keep_b]
        treat_rep, treat_val = treat_rep[keep_t], treat_val[keep_t]
    pairable = np.array_equal(np.unique(base_rep), np.unique(treat_rep))
    base_rep, base_val, k_base = replicate_means(base_rep, base_val, omit_non_finite=omit_non_finite)
    treat_rep, treat_val, k_treat = replicate_means(treat_rep, treat_val, omit_non_finite=omit_non_finite)
    if pairable and omit_non_finite and not np.array_equal(base_rep, treat_rep):
        # Omitting non-finite values drops a replicate from one side: drop it from both (pairwise).
        common = np.intersect1d(base_rep, treat_rep)
        keep_b, keep_t = np.isin(base_rep, common), np.isin(treat_rep, common)
        base_rep, base_val = base_rep[keep_b], base_val[keep_b]
        treat_rep, treat_val = treat_rep[keep_t], treat_val[keep_t]
    paired = len(base_rep) > 0 and np.array_equal(base_rep, treat_rep)
    return Aligned(base_val, treat_val, base_rep, treat_rep, paired=paired, per_replicate=max(k_base, k_treat))
