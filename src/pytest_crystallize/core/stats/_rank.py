"""Rank tests: Mann-Whitney U (unpaired) and Wilcoxon signed-rank (paired).

Both delegate to scipy (exact distributions for small samples without ties,
the tie-corrected normal approximation otherwise). Their intervals are the
t-intervals of the mean difference (see the package docstring): a
Hodges-Lehmann interval would cost O(n^2) differences.
"""

from __future__ import annotations

from pytest_crystallize.errors import StatisticsError

from ._inputs import Samples
from ._pvalues import clip_p

__all__ = ["mann_whitney", "wilcoxon"]


def mann_whitney(samples: Samples, alternative: str) -> tuple[float, float]:
    """Mann-Whitney U test; ``statistic`` is U of the treatment sample."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    result = stats.mannwhitneyu(samples.treatment, samples.baseline, alternative=alternative, method="auto")
    return float(result.statistic), clip_p(result.pvalue)


def wilcoxon(samples: Samples, alternative: str) -> tuple[float, float]:
    """Wilcoxon signed-rank test of the paired differences (zeros dropped).

    ``statistic`` is the sum of the ranks of the positive differences.

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
