"""P-values of t and normal statistics for the three alternatives."""

from __future__ import annotations

import math

__all__ = ["clip_p", "t_pvalue", "z_pvalue"]



def clip_p(p: float) -> float:
    """``p`` clipped into [0, 1] (rounding in sums can step just outside)."""
    return min(1.0, max(0.0, float(p)))


def t_pvalue(statistic: float, df: float, alternative: str) -> float:
    """P-value of Student's t ``statistic`` with ``df`` degrees of freedom."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    if alternative == "greater":
        return clip_p(stats.t.sf(statistic, df))
    if alternative == "less":
        return clip_p(stats.t.cdf(statistic, df))
    return clip_p(2.0 * stats.t.sf(abs(statistic), df))


def z_pvalue(statistic: float, alternative: str) -> float:
    """P-value of a standard normal ``statistic``."""
    if math.isnan(statistic):
        return float("nan")
    upper = 0.5 * math.erfc(statistic / math.sqrt(2.0))
    if alternative == "greater":
        return clip_p(upper)
    if alternative == "less":
        return clip_p(0.5 * math.erfc(-statistic / math.sqrt(2.0)))
    return clip_p(math.erfc(abs(statistic) / math.sqrt(2.0)))
