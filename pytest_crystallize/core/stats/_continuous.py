"""Student's t family: Welch, pooled (Student) and paired t-tests and intervals.

All three work from the moments :func:`~._inputs.prepare` computed, so a
million values cost no more than the two means and variances already taken.
"""

from __future__ import annotations

import math

from ._describe import t_quantile
from ._inputs import Samples
from ._pvalues import t_pvalue

__all__ = [
    "paired_interval",
    "paired_t",
    "student_interval",
    "student_t",
    "welch_df",
    "welch_interval",
    "welch_se",
    "welch_t",
]


def welch_se(samples: Samples) -> float:
    """Return the standard error of the mean difference (unequal variances)."""
    return math.sqrt(samples.var_baseline / samples.n_baseline + samples.var_treatment / samples.n_treatment)


def welch_df(samples: Samples) -> float:
    """Return the Welch-Satterthwaite degrees of freedom."""
    vb = samples.var_baseline / samples.n_baseline
    vt = samples.var_treatment / samples.n_treatment
    denominator = vb * vb / (samples.n_baseline - 1) + vt * vt / (samples.n_treatment - 1)
    return (vb + vt) ** 2 / denominator


def _pooled_se_df(samples: Samples) -> tuple[float, int]:
    nb, nt = samples.n_baseline, samples.n_treatment
    df = nb + nt - 2
    # A single value contributes no spread (0 * nan would poison the sum).
    ss_b = (nb - 1) * samples.var_baseline if nb > 1 else 0.0
    ss_t = (nt - 1) * samples.var_treatment if nt > 1 else 0.0
    pooled = (ss_b + ss_t) / df
    return math.sqrt(pooled * (1.0 / nb + 1.0 / nt)), df


def _difference(samples: Samples) -> float:
    return samples.mean_treatment - samples.mean_baseline


def welch_t(samples: Samples, alternative: str) -> tuple[float, float]:
    """Welch's unequal-variance t-test of treatment versus baseline means."""
    statistic = _difference(samples) / welch_se(samples)
    return statistic, t_pvalue(statistic, welch_df(samples), alternative)


def student_t(samples: Samples, alternative: str) -> tuple[float, float]:
    """Student's two-sample t-test with a pooled variance."""
    se, df = _pooled_se_df(samples)
    statistic = _difference(samples) / se
    return statistic, t_pvalue(statistic, df, alternative)


def paired_t(samples: Samples, alternative: str) -> tuple[float, float]:
    """Paired t-test on the per-replicate differences (treatment - baseline)."""
    n = samples.n_baseline
    statistic = samples.mean_diff / math.sqrt(samples.var_diff / n)
    return statistic, t_pvalue(statistic, n - 1, alternative)


def welch_interval(samples: Samples, confidence: float) -> tuple[float, float]:
    """Welch confidence interval of the mean difference."""
    se = welch_se(samples)
    if se == 0.0:
        return _difference(samples), _difference(samples)
    half = t_quantile(confidence, welch_df(samples)) * se
    return _difference(samples) - half, _difference(samples) + half


def student_interval(samples: Samples, confidence: float) -> tuple[float, float]:
    """Pooled-variance confidence interval of the mean difference."""
    se, df = _pooled_se_df(samples)
    half = t_quantile(confidence, df) * se
    return _difference(samples) - half, _difference(samples) + half


def paired_interval(samples: Samples, confidence: float) -> tuple[float, float]:
    """Paired t confidence interval of the mean difference."""
    n = samples.n_baseline
    half = t_quantile(confidence, n - 1) * math.sqrt(samples.var_diff / n)
    return samples.mean_diff - half, samples.mean_diff + half
