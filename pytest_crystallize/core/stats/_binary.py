"""Tests and intervals for 0/1 outcomes (success / failure per replicate).

Unpaired data form the 2x2 table ``[[treatment successes, treatment
failures], [baseline successes, baseline failures]]``; paired data the
discordant counts ``n01`` (only the treatment succeeded) and ``n10`` (only the
baseline did). The interval of every 0/1 test is the risk-difference interval:
Newcombe's hybrid score interval (1998, method 10) unpaired, and Newcombe's
square-and-add interval for paired proportions (1998b, as in Altman et al.,
*Statistics with Confidence*, 2000, and Fagerland et al. 2017, ch. 8) paired.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pytest_crystallize.errors import StatisticsError

from ._inputs import Samples
from ._pvalues import clip_p, z_pvalue

__all__ = [
    "Counts",
    "binary_outcome",
    "boschloo",
    "check_binary",
    "chi_square",
    "counts",
    "fisher_exact",
    "is_binary",
    "mcnemar",
    "newcombe_interval",
    "odds_ratio",
    "paired_newcombe_interval",
    "wilson_interval",
]


@dataclass(frozen=True, slots=True)
class Counts:
    """Success counts of two 0/1 samples (discordant pairs when paired)."""

    successes_treatment: int
    n_treatment: int
    successes_baseline: int
    n_baseline: int
    both: int = 0
    only_treatment: int = 0
    only_baseline: int = 0
    neither: int = 0

    def table(self) -> list[list[int]]:
        """Return the unpaired 2x2 table: treatment row first, successes column first."""
        return [
            [self.successes_treatment, self.n_treatment - self.successes_treatment],
            [self.successes_baseline, self.n_baseline - self.successes_baseline],
        ]


def is_binary(values: np.ndarray) -> bool:
    """Whether every value is exactly 0 or 1 (an empty sample is not binary)."""
    return bool(values.size) and bool(np.all((values == 0.0) | (values == 1.0)))


def binary_outcome(conditions: Iterable[object]) -> bool:
    """Whether a metric is a 0/1 outcome: every condition's values are 0 or 1.

    One condition alone cannot say: a count or a sum that happens to be all
    zeros (or all ones) in the baseline is not a proportion when another
    condition recorded 3. Conditions without values are ignored; a metric
    with no values at all is not binary.
    """
    arrays = [np.asarray(values, dtype=np.float64).ravel() for values in conditions]
    arrays = [a[np.isfinite(a)] for a in arrays]
    arrays = [a for a in arrays if a.size]
    return bool(arrays) and all(is_binary(a) for a in arrays)


def check_binary(samples: Samples, test: str) -> None:
    """Raise unless both samples hold only 0 and 1."""
    for side, values in (("baseline", samples.baseline), ("treatment", samples.treatment)):
        bad = np.flatnonzero((values != 0.0) & (values != 1.0))
        if bad.size:
            msg = (
                f"{test} needs 0/1 outcomes, but {side} holds {float(values[bad[0]])!r} at "
                f"position {int(bad[0])}: record successes as 0 or 1, or choose a "
                "test for continuous values (welch_t, mann_whitney, ...)"
            )
            raise StatisticsError(msg, side=side, positions=tuple(int(p) for p in bad[:100]))


def counts(samples: Samples) -> Counts:
    """Success counts of 0/1 samples, with the paired cells when paired."""
    s_t = int(np.count_nonzero(samples.treatment))
    s_b = int(np.count_nonzero(samples.baseline))
    if not samples.paired:
        return Counts(s_t, samples.n_treatment, s_b, samples.n_baseline)
    treat = samples.treatment != 0.0
    base = samples.baseline != 0.0
    both = int(np.count_nonzero(treat & base))
    return Counts(
        s_t,
        samples.n_treatment,
        s_b,
        samples.n_baseline,
        both=both,
        only_treatment=s_t - both,
        only_baseline=s_b - both,
        neither=samples.n_baseline - s_t - s_b + both,
    )


def odds_ratio(c: Counts, *, paired: bool) -> float:
    """Sample odds ratio of success, treatment versus baseline.

    Unpaired: ``(a d) / (b c)`` of the 2x2 table; paired: the conditional
    ``n01 / n10``. ``inf`` or nan when a needed cell is zero.
    """
    if paired:
        num, den = float(c.only_treatment), float(c.only_baseline)
    else:
        (a, b), (cc, d) = c.table()
        num, den = float(a * d), float(b * cc)
    if den == 0.0:
        return float("nan") if num == 0.0 else math.inf
    return num / den


def fisher_exact(samples: Samples, alternative: str) -> tuple[float, float]:
    """Fisher's exact test of the 2x2 table; ``statistic`` is the odds ratio."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    check_binary(samples, "fisher_exact")
    result = stats.fisher_exact(counts(samples).table(), alternative=alternative)
    return float(result.statistic), clip_p(result.pvalue)


def boschloo(samples: Samples, alternative: str) -> tuple[float, float]:
    """Boschloo's exact unconditional test; ``statistic`` is Fisher's p-value.

    Uniformly more powerful than Fisher's exact test; slower (it maximises
    over the nuisance success probability).
    """
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    check_binary(samples, "boschloo")
    (s_t, f_t), (s_b, f_b) = counts(samples).table()
    # scipy wants the two binomial samples as columns, treatment first.
    result = stats.boschloo_exact([[s_t, s_b], [f_t, f_b]], alternative=alternative)
    return float(result.statistic), clip_p(result.pvalue)


#: The usual rule for the chi-square approximation: every expected cell count >= 5.
CHI_SQUARE_MIN_EXPECTED = 5.0


def chi_square(samples: Samples, alternative: str) -> tuple[float, float]:
    """Pearson's chi-square test of the 2x2 table, without continuity correction.

    Computed as the equivalent pooled two-proportion z-test so that it can be
    one-sided: ``statistic`` is the signed z (chi-square = z**2). Needs large
    counts (all expected cells >= 5 as a rule of thumb); prefer Fisher's or
    Boschloo's exact tests otherwise.
    """
    check_binary(samples, "chi_square")
    c = counts(samples)
    n_t, n_b = c.n_treatment, c.n_baseline
    pooled = (c.successes_treatment + c.successes_baseline) / (n_t + n_b)
    smallest = min(n * share for n in (n_t, n_b) for share in (pooled, 1.0 - pooled))
    if 0.0 < smallest < CHI_SQUARE_MIN_EXPECTED:
        msg = (
            f"chi_square needs every expected count of the 2x2 table to be at least "
            f"{CHI_SQUARE_MIN_EXPECTED:g}, but the smallest is {smallest:.3g}: the asymptotic "
            "p-value would be wrong; use test='fisher_exact' or 'boschloo' (exact), or run more replicates"
        )
        raise StatisticsError(msg)
    variance = pooled * (1.0 - pooled) * (1.0 / n_t + 1.0 / n_b)
    if variance == 0.0:
        return 0.0, 1.0
    z = (c.successes_treatment / n_t - c.successes_baseline / n_b) / math.sqrt(variance)
    return z, z_pvalue(z, alternative)


def mcnemar(samples: Samples, alternative: str) -> tuple[float, float]:
    """Exact McNemar test: binomial test of ``n01`` among the discordant pairs.

    ``statistic`` is ``n01``, the pairs where only the treatment succeeded.
    With no discordant pair the p-value is 1.
    """
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    check_binary(samples, "mcnemar")
    c = counts(samples)
    discordant = c.only_treatment + c.only_baseline
    if discordant == 0:
        return 0.0, 1.0
    result = stats.binomtest(c.only_treatment, discordant, 0.5, alternative=alternative)
    return float(c.only_treatment), clip_p(result.pvalue)


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def newcombe_interval(c: Counts, confidence: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p_treatment - p_baseline``."""
    p1 = c.successes_treatment / c.n_treatment
    p2 = c.successes_baseline / c.n_baseline
    l1, u1 = wilson_interval(c.successes_treatment, c.n_treatment, confidence)
    l2, u2 = wilson_interval(c.successes_baseline, c.n_baseline, confidence)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def paired_newcombe_interval(c: Counts, confidence: float) -> tuple[float, float]:
    """Newcombe's square-and-add interval of a paired risk difference."""
    n = c.n_treatment
    p1 = c.successes_treatment / n
    p2 = c.successes_baseline / n
    l1, u1 = wilson_interval(c.successes_treatment, n, confidence)
    l2, u2 = wilson_interval(c.successes_baseline, n, confidence)
    phi = _paired_correlation(c)
    d = p1 - p2
    lower = (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
    upper = (u1 - p1) ** 2 + (p2 - l2) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
    return d - math.sqrt(max(lower, 0.0)), d + math.sqrt(max(upper, 0.0))


def _paired_correlation(c: Counts) -> float:
    """Newcombe's continuity-adjusted phi between the two paired proportions."""
    n = c.n_treatment
    margins = (
        c.successes_treatment,
        n - c.successes_treatment,
        c.successes_baseline,
        n - c.successes_baseline,
    )
    if 0 in margins:
        return 0.0
    a = c.both * c.neither - c.only_treatment * c.only_baseline
    if 0 <= a <= n / 2:
        return 0.0
    adjusted = a - n / 2 if a > n / 2 else a
    return adjusted / math.sqrt(math.prod(float(m) for m in margins))
