"""A comparison from an estimated difference, its standard error and t degrees of freedom.

The corrected resampled t (:mod:`~._resampled`) and the covariate-adjusted
difference (:mod:`~._covariate`) both end in an estimate of the difference
with a standard error and a t reference distribution. :func:`from_estimate`
turns one into a :class:`~._comparison.Comparison` for every direction and
margin: the p-value, the interval and the power all come from the same
``(estimate - delta) / se`` statistic, so they never disagree (the
interval excludes the null exactly when the two-sided p-value is below
``1 - confidence``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._comparison import Comparison
from ._describe import t_quantile
from ._inputs import Samples
from ._nulls import Null, absolute_margin, check_options, nulls_for, points_right, true_difference
from ._power import smallest_n
from ._pvalues import t_pvalue
from ._relative import relative_difference

__all__ = ["Estimate", "Labels", "from_estimate"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A difference (treatment minus baseline) with its standard error and t degrees of freedom.

    ``at_size(n)`` gives the ``(se, df)`` the same procedure would have with
    ``n`` replicates per condition at the observed spread; it is what power
    planning asks (None: no planning).
    """

    value: float
    se: float
    df: float
    at_size: Callable[[int], tuple[float, float]] | None = None


@dataclass(frozen=True, slots=True)
class Labels:
    """How a comparison is named and described in a verdict."""

    test: str
    reason: str
    effect_size: float
    effect_size_name: str


def from_estimate(
    samples: Samples,
    estimate: Estimate,
    labels: Labels,
    *,
    direction: str,
    better: str,
    alpha: float,
    margin: float | None,
    relative_margin: bool,
    mde: float | None,
    confidence: float = 0.95,
) -> Comparison:
    """The comparison of ``samples`` whose difference is ``estimate``.

    ``samples`` give the sizes and the raw means shown next to the
    estimate; the test is ``t = (estimate - delta) / se`` on ``df`` degrees
    of freedom for each null of the direction (the larger p-value of the two
    one-sided tests for ``equivalent``).
    """
    check_options(direction, alpha, better, confidence)
    abs_margin = absolute_margin(direction, margin, relative_margin, samples)
    nulls = nulls_for(direction, better, abs_margin)
    value, se, df = estimate.value, estimate.se, estimate.df
    outcomes = [_outcome(value, se, df, null, samples.n_baseline) for null in nulls]
    statistic, p_value = max(outcomes, key=lambda o: o[1])
    degenerate = "" if se > 0.0 else "no spread: the standard error is 0, so p is the exact sign-flip bound"
    half = t_quantile(confidence, df) * se if se > 0.0 else 0.0
    power, needed = _power(estimate, nulls, alpha, true_difference(direction, mde))
    return Comparison(
        test=labels.test,
        test_reason=labels.reason,
        direction=direction,
        alternative="equivalence" if len(nulls) == 2 else nulls[0].alternative,
        paired=samples.paired,
        n_baseline=samples.n_baseline,
        n_treatment=samples.n_treatment,
        mean_baseline=samples.mean_baseline,
        mean_treatment=samples.mean_treatment,
        difference=value,
        relative_difference=relative_difference(samples, value, confidence),
        ci_low=value - half,
        ci_high=value + half,
        confidence=confidence,
        effect_size=labels.effect_size,
        effect_size_name=labels.effect_size_name,
        odds_ratio=math.nan,
        statistic=statistic,
        p_value=p_value,
        alpha=alpha,
        margin=abs_margin if abs_margin is not None else math.nan,
        better=better,
        direction_ok=all(points_right(value, null) for null in nulls),
        degenerate=degenerate,
        no_variation=None,
        mde=math.nan if mde is None else float(mde),
        power=power,
        replicates_needed=needed,
    )


def _outcome(value: float, se: float, df: float, null: Null, n: int) -> tuple[float, float]:
    """(statistic, p-value) of one null; without spread, the sign-flip bound 2^-n or 1."""
    shift = value - null.delta
    if se > 0.0:
        statistic = shift / se
        return statistic, t_pvalue(statistic, df, null.alternative)
    if shift == 0.0:
        return math.nan, 1.0
    right_way = null.alternative == "two-sided" or (shift > 0.0) == (null.alternative == "greater")
    bound = 0.5**n * (2.0 if null.alternative == "two-sided" else 1.0)
    return math.nan, min(1.0, bound) if right_way else 1.0


def _power(
    estimate: Estimate, nulls: Sequence[Null], alpha: float, true: float | None
) -> tuple[float, int | None]:
    """Power at the observed size, and replicates for 80%, of the same t statistic (nan/None: not planned)."""
    if true is None or estimate.at_size is None or len(nulls) != 1 or not estimate.se > 0.0:
        return math.nan, None
    null = nulls[0]
    at_size = estimate.at_size

    def power_at(n: int) -> float:
        se, df = at_size(n)
        return _t_power(se, df, true - null.delta, null.alternative, alpha)

    return _t_power(estimate.se, estimate.df, true - null.delta, null.alternative, alpha), smallest_n(power_at, 3)


def _t_power(se: float, df: float, shift: float, alternative: str, alpha: float) -> float:
    """P(reject) of a t test on ``df`` degrees of freedom when the estimate is off its null by ``shift``."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    if not (se > 0.0 and df > 0.0):
        return math.nan
    ncp = shift / se
    if alternative == "two-sided":
        critical = float(stats.t.ppf(1.0 - alpha / 2.0, df))
        return float(stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp))
    critical = float(stats.t.ppf(1.0 - alpha, df))
    sign = 1.0 if alternative == "greater" else -1.0
    return float(stats.nct.sf(critical, df, sign * ncp))
