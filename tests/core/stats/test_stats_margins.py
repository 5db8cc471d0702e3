"""Non-inferiority and equivalence: continuous (location shift) and 0/1 (score tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from pytest_crystallize.core.stats import compare
from pytest_crystallize.errors import StatisticsError

REL = 1e-6
RNG = np.random.default_rng(7)
BASE = RNG.normal(50.0, 5.0, size=25)
TREAT = BASE + RNG.normal(-0.5, 2.0, size=25)


def _outcomes(successes: int, n: int) -> np.ndarray:
    return np.r_[np.ones(successes), np.zeros(n - successes)]


def _paired(both: int, only_base: int, only_treat: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.r_[np.ones(both), np.ones(only_base), np.zeros(only_treat), np.zeros(neither)]
    treat = np.r_[np.ones(both), np.zeros(only_base), np.ones(only_treat), np.zeros(neither)]
    return base, treat


class TestContinuous:
    def test_equivalence_welch_matches_statsmodels_tost(self) -> None:
        p, _, _ = ttost_ind(TREAT, BASE, -3.0, 3.0, usevar="unequal")
        got = compare(BASE, TREAT, test="welch_t", direction="equivalent", margin=3.0)
        assert got.alternative == "equivalence"
        assert got.p_value == pytest.approx(p, rel=REL)

    def test_equivalence_paired_matches_statsmodels_tost(self) -> None:
        p, _, _ = ttost_paired(TREAT, BASE, -1.0, 1.0)
        got = compare(BASE, TREAT, paired=True, direction="equivalent", margin=1.0)
        assert got.test == "paired_t"
        assert got.p_value == pytest.approx(p, rel=REL)

    def test_no_worse_is_a_shifted_one_sided_test(self) -> None:
        # H1: mean(treatment) - mean(baseline) > -2  <=>  t-test of (treatment + 2) vs baseline.
        ref = stats.ttest_rel(TREAT + 2.0, BASE, alternative="greater")
        got = compare(BASE, TREAT, paired=True, direction="no_worse", margin=2.0)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert got.direction_ok
        assert got.margin == 2.0

    def test_no_worse_when_lower_is_better(self) -> None:
        ref = stats.ttest_ind(TREAT - 2.0, BASE, equal_var=False, alternative="less")
        got = compare(BASE, TREAT, direction="no_worse", margin=2.0, better="lower")
        assert got.alternative == "less"
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_relative_margin(self) -> None:
        margin = 0.04 * abs(BASE.mean())
        ref = stats.ttest_rel(TREAT + margin, BASE, alternative="greater")
        got = compare(BASE, TREAT, paired=True, direction="no_worse", margin=0.04, relative_margin=True)
        assert got.margin == pytest.approx(margin, rel=REL)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_superiority_margin_with_maximize(self) -> None:
        ref = stats.mannwhitneyu(TREAT - 1.0, BASE, alternative="greater")
        got = compare(BASE, TREAT, test="mann_whitney", direction="maximize", margin=1.0)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_identical_constants_are_equivalent(self) -> None:
        got = compare(np.full(10, 2.0), np.full(10, 2.0), direction="equivalent", margin=0.1)
        # Both shifted constants are the most extreme label shuffle: 1 / C(20, 10).
        assert got.p_value == pytest.approx(1 / math.comb(20, 10), rel=REL)
        assert got.direction_ok

    def test_margin_errors(self) -> None:
        with pytest.raises(StatisticsError, match="needs a margin"):
            compare(BASE, TREAT, direction="no_worse")
        with pytest.raises(StatisticsError, match="two-sided"):
            compare(BASE, TREAT, margin=1.0)
        with pytest.raises(StatisticsError, match="margin must be"):
            compare(BASE, TREAT, direction="equivalent", margin=-1.0)
        with pytest.raises(StatisticsError, match="non-zero baseline mean"):
            compare(np.array([-1.0, 1.0]), TREAT, direction="no_worse", margin=0.1, relative_margin=True)
        binary = _outcomes(3, 10)
        with pytest.raises(StatisticsError, match="'fisher_exact' can only test"):
            compare(binary, binary, test="fisher_exact", direction="no_worse", margin=0.1)


class TestBinary:
    @pytest.mark.parametrize(("delta", "better"), [(-0.1, "higher"), (0.15, "lower")])
    def test_farrington_manning_restricted_mle(self, delta: float, better: str) -> None:
        # Farrington & Manning (1990): z = (p1 - p2 - d) / sqrt(r1 (1 - r1) / n1 + r2 (1 - r2) / n2)
        # with (r1, r2) the MLE under p1 - p2 = d, found here numerically.
        # statsmodels 0.15's score test is not used as the reference for d != 0: its
        # restricted MLE has a wrong cubic coefficient (statsmodels issue #10269).
        x1, n1, x2, n2 = 38, 55, 41, 60

        def negative_loglik(r2: float) -> float:
            r1 = r2 + delta
            return -(
                x1 * math.log(r1)
                + (n1 - x1) * math.log(1 - r1)
                + x2 * math.log(r2)
                + (n2 - x2) * math.log(1 - r2)
            )

        bounds = (max(0.0, -delta) + 1e-12, min(1.0, 1 - delta) - 1e-12)
        r2 = optimize.minimize_scalar(
            negative_loglik, bounds=bounds, method="bounded", options={"xatol": 1e-13}
        ).x
        r1 = r2 + delta
        z = (x1 / n1 - x2 / n2 - delta) / math.sqrt(r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2)
        got = compare(
            _outcomes(x2, n2), _outcomes(x1, n1), direction="no_worse", margin=abs(delta), better=better
        )
        assert got.test == "farrington_manning"
        assert got.statistic == pytest.approx(z, rel=1e-6)
        expected_p = stats.norm.sf(z) if better == "higher" else stats.norm.cdf(z)
        assert got.p_value == pytest.approx(expected_p, rel=1e-6)

    def test_farrington_manning_without_margin_is_the_pooled_z_test(self) -> None:
        ref = sm_proportion.test_proportions_2indep(
            38, 55, 41, 60, method="score", compare="diff", alternative="larger", correction=False
        )
        got = compare(_outcomes(41, 60), _outcomes(38, 55), test="farrington_manning", direction="maximize")
        assert got.statistic == pytest.approx(ref.statistic, rel=REL)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_tango_reduces_to_mcnemar_without_margin(self) -> None:
        base, treat = _paired(30, 8, 17, 45)
        chi2 = sm_mcnemar([[30, 8], [17, 45]], exact=False, correction=False).statistic
        got = compare(base, treat, paired=True, test="tango")
        assert got.statistic == pytest.approx(math.sqrt(chi2), rel=REL)
        assert got.statistic == pytest.approx((17 - 8) / math.sqrt(17 + 8), rel=REL)

    def test_tango_restricted_mle_and_score(self) -> None:
        # Tango (1998): z = (x12 - x21 - n d) / sqrt(n (2 q21 + d (1 - d))), with q21 the
        # restricted MLE, found here by maximising the multinomial likelihood numerically.
        x12, x21, n, d = 17, 8, 100, -0.05
        concordant = n - x12 - x21

        def negative_loglik(q: float) -> float:
            return -(x12 * math.log(q + d) + x21 * math.log(q) + concordant * math.log(1 - 2 * q - d))

        q = optimize.minimize_scalar(
            negative_loglik,
            bounds=(-d + 1e-9, (1 - d) / 2 - 1e-9),
            method="bounded",
            options={"xatol": 1e-12},
        ).x
        z = (x12 - x21 - n * d) / math.sqrt(n * (2 * q + d * (1 - d)))
        base, treat = _paired(30, 8, 17, 45)
        got = compare(base, treat, paired=True, direction="no_worse", margin=0.05)
        assert got.test == "tango"
        assert got.statistic == pytest.approx(z, rel=1e-6)
        assert got.p_value == pytest.approx(stats.norm.sf(z), rel=1e-6)

    def test_binary_equivalence_uses_larger_p(self) -> None:
        base, treat = _outcomes(41, 60), _outcomes(38, 55)
        low = compare(base, treat, direction="no_worse", margin=0.2)
        high = compare(base, treat, direction="no_worse", margin=0.2, better="lower")
        got = compare(base, treat, direction="equivalent", margin=0.2)
        assert got.p_value == max(low.p_value, high.p_value)
        assert got.direction_ok
