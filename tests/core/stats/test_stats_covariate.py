"""Covariate adjustment (CUPED; Lin 2013): against statsmodels, and by simulation.

Known answers: statsmodels' OLS with HC2 standard errors on Lin's
interacted regression (independent samples) and on the paired differences
regressed on the covariate difference. Simulations: under the null the
false-positive rate stays inside the binomial interval around alpha, and
a covariate that explains most of the outcome removes most of its variance.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from pytest_crystallize.core.stats import compare, compare_adjusted

ALPHA = 0.05


def _se(c) -> float:
    return c.difference / c.statistic


def _unpaired_data(seed: int, nb: int = 25, nt: int = 30):
    rng = np.random.default_rng(seed)
    xb, xt = rng.normal(10, 2, nb), rng.normal(10, 2, nt)
    yb = 3 + 0.8 * xb + rng.normal(0, 1, nb) * (1 + 0.2 * np.abs(xb - 10))
    yt = 3.5 + 1.1 * xt + rng.normal(0, 1, nt)
    return yb, yt, xb, xt


def test_unpaired_matches_statsmodels_hc2_on_lins_interacted_regression():
    yb, yt, xb, xt = _unpaired_data(1)
    y = np.concatenate([yb, yt])
    treated = np.r_[np.zeros(yb.size), np.ones(yt.size)]
    x = np.concatenate([xb, xt])
    xc = x - x.mean()
    fit = sm.OLS(y, np.column_stack([np.ones_like(y), treated, xc, treated * xc])).fit(cov_type="HC2")
    adjusted = compare_adjusted(yb, yt, xb, xt, paired=False)
    c = adjusted.comparison
    assert c.test == "covariate_adjusted_t"
    assert c.difference == pytest.approx(fit.params[1], rel=1e-10)
    assert _se(c) == pytest.approx(fit.bse[1], rel=1e-10)
    df = y.size - 4
    assert c.p_value == pytest.approx(2 * stats.t.sf(abs(fit.params[1] / fit.bse[1]), df), rel=1e-9)
    half = stats.t.ppf(0.975, df) * fit.bse[1]
    assert (c.ci_low, c.ci_high) == pytest.approx((fit.params[1] - half, fit.params[1] + half), rel=1e-10)
    welch_var = yb.var(ddof=1) / yb.size + yt.var(ddof=1) / yt.size
    assert adjusted.variance_reduction == pytest.approx(1 - fit.bse[1] ** 2 / welch_var, rel=1e-10)
    assert adjusted.slope == pytest.approx(fit.params[2], rel=1e-10)


def test_paired_matches_statsmodels_hc2_on_the_differences():
    rng = np.random.default_rng(2)
    n = 30
    xb, xt = rng.normal(0, 1, n), rng.normal(0, 1, n)  # each condition's own pre-treatment draw
    shared = rng.normal(0, 1, n)
    yb = shared + 2 * xb + rng.normal(0, 0.5, n)
    yt = shared + 2 * xt + 0.3 + rng.normal(0, 0.5, n)
    d, dx = yt - yb, xt - xb
    fit = sm.OLS(d, np.column_stack([np.ones(n), dx])).fit(cov_type="HC2")
    adjusted = compare_adjusted(yb, yt, xb, xt, paired=True, direction="maximize")
    c = adjusted.comparison
    assert c.difference == pytest.approx(fit.params[0], rel=1e-10)
    assert _se(c) == pytest.approx(fit.bse[0], rel=1e-10)
    assert c.p_value == pytest.approx(stats.t.sf(fit.params[0] / fit.bse[0], n - 2), rel=1e-9)
    assert adjusted.variance_reduction == pytest.approx(1 - fit.bse[0] ** 2 / (d.var(ddof=1) / n), rel=1e-10)
    assert adjusted.variance_reduction > 0.8


def test_hc2_without_the_covariate_is_the_paired_t():
    # The premise of variance_reduction: the unadjusted HC2 variance is the paired t's s_d^2 / n.
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1, 20)
    fit = sm.OLS(d, np.ones((20, 1))).fit(cov_type="HC2")
    assert fit.bse[0] ** 2 == pytest.approx(d.var(ddof=1) / 20, rel=1e-12)


def test_the_same_covariate_in_both_conditions_is_not_adjusted_for():
    rng = np.random.default_rng(4)
    x = rng.normal(size=20)
    yb, yt = x + rng.normal(size=20), x + 0.5 + rng.normal(size=20)
    adjusted = compare_adjusted(yb, yt, x, x, paired=True)
    plain = compare(yb, yt, paired=True, test="paired_t")
    assert adjusted.variance_reduction == 0.0
    assert "pairing already removes" in adjusted.note
    assert adjusted.comparison.p_value == pytest.approx(plain.p_value, rel=1e-10)


def test_a_covariate_of_the_wrong_length_names_the_side():
    with pytest.raises(ValueError, match="treatment covariate has 2 values but the metric has 3"):
        compare_adjusted([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0], paired=True)


# -- simulations ------------------------------------------------------------------

SIMULATIONS = 800
LOW, HIGH = (stats.binom.ppf(q, SIMULATIONS, ALPHA) / SIMULATIONS for q in (0.0005, 0.9995))


@pytest.mark.parametrize("paired", [True, False])
def test_calibrated_under_the_null_and_a_real_variance_reduction(paired):
    rng = np.random.default_rng(2013 + paired)
    n = 24
    rejections, reductions = [], []
    for _ in range(SIMULATIONS):
        xb, xt = rng.normal(0, 1, n), rng.normal(0, 1, n)
        # The covariate explains 80% of the outcome's variance; noise grows with it (heteroskedastic).
        yb = 2 * xb + rng.normal(0, 1, n) * (0.5 + 0.5 * np.abs(xb))
        yt = 2 * xt + rng.normal(0, 1, n) * (0.5 + 0.5 * np.abs(xt))
        adjusted = compare_adjusted(yb, yt, xb, xt, paired=paired)
        rejections.append(adjusted.comparison.p_value < ALPHA)
        reductions.append(adjusted.variance_reduction)
    assert LOW <= np.mean(rejections) <= HIGH
    assert np.mean(reductions) > 0.6
