"""Rank tests: Mann-Whitney U (unpaired) and Wilcoxon signed-rank (paired).

Both delegate to scipy (exact distributions for small samples without ties,
the tie-corrected normal approximation otherwise). Their intervals are the
t-intervals of the mean difference (see the package docstring): a
Hodges-Lehmann interval would cost O(n^2) differences.
"""

from __future__ import annotations

import math

import numpy as np

from pytest_crystallize.errors import StatisticsError

from ._inputs import Samples
from ._pvalues import clip_p, z_pvalue

__all__ = ["mann_whitney", "wilcoxon"]


_EXACT_MAX = 8  # scipy's exact Mann-Whitney distribution is used up to this size


def mann_whitney(samples: Samples, alternative: str) -> tuple[float, float]:
    """Mann-Whitney U test; ``statistic`` is U of the treatment sample.

    Up to 8 values on a side scipy decides (exact distribution without
    ties); above, the tie-corrected normal approximation with continuity
    correction is computed here from two sorts, the same formula as scipy's
    ``method="asymptotic"`` but about five times faster on a million values.
    """
    nb, nt = samples.n_baseline, samples.n_treatment
    if min(nb, nt) <= _EXACT_MAX:
        from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

        result = stats.mannwhitneyu(samples.treatment, samples.baseline, alternative=alternative)
        return float(result.statistic), clip_p(result.pvalue)
    base = np.sort(samples.baseline)
    treat = np.sort(samples.treatment)
    # U of the treatment: pairs where it is larger, plus half the ties.
    below = np.searchsorted(base, treat, side="left").sum(dtype=np.float64)
    not_above = np.searchsorted(base, treat, side="right").sum(dtype=np.float64)
    u_treat = (below + not_above) / 2.0
    n = nb + nt
    pooled = np.sort(np.concatenate((base, treat)), kind="stable")  # merges two sorted runs
    tie_term = 0.0
    if np.any(pooled[1:] == pooled[:-1]):
        starts = np.flatnonzero(np.r_[True, pooled[1:] != pooled[:-1]])
        sizes = np.diff(np.r_[starts, n]).astype(np.float64)
        tie_term = float(np.sum(sizes**3 - sizes))
    sd = math.sqrt(nb * nt / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    mean = nb * nt / 2.0
    if alternative == "greater":
        u, factor = u_treat, 1.0
    elif alternative == "less":
        u, factor = nb * nt - u_treat, 1.0
    else:
        u, factor = max(u_treat, nb * nt - u_treat), 2.0
    z = (u - mean - 0.5) / sd
    return u_treat, clip_p(factor * z_pvalue(z, "greater"))


def wilcoxon(samples: Samples, alternative: str) -> tuple[float, float]:
    """Wilcoxon signed-rank test of the paired differences (zeros dropped).

    ``statistic`` is scipy's: ``min(R+, R-)`` two-sided, ``R+`` one-sided.

    Raises:
        StatisticsError: every difference is zero after the margin shift, so
            no rank carries a sign.

    """
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    differences = samples.differences
    if differences is None or not differences.any():
        msg = (
            "wilcoxon needs at least one non-zero paired difference: "
            "every treatment value equals its baseline"
        )
        raise StatisticsError(msg)
    result = stats.wilcoxon(differences, alternative=alternative, zero_method="wilcox")
    return float(result.statistic), clip_p(result.pvalue)
