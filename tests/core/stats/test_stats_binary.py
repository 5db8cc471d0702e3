"""Known answers for the 0/1 tests, risk-difference intervals and odds ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep

from pytest_crystallize.core.stats import compare

REL = 1e-6


def _outcomes(successes: int, n: int) -> np.ndarray:
    return np.r_[np.ones(successes), np.zeros(n - successes)]


def _paired(both: int, only_base: int, only_treat: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.r_[np.ones(both), np.ones(only_base), np.zeros(only_treat), np.zeros(neither)]
    treat = np.r_[np.ones(both), np.zeros(only_base), np.ones(only_treat), np.zeros(neither)]
    return base, treat


# Fisher's tea-tasting-like table: treatment 9/12 successes, baseline 3/11.
BASE = _outcomes(3, 11)
TREAT = _outcomes(9, 12)


@pytest.mark.parametrize(
    ("direction", "alternative"),
    [("two-sided", "two-sided"), ("maximize", "greater"), ("minimize", "less")],
)
def test_fisher_matches_scipy(direction: str, alternative: str) -> None:
    ref = stats.fisher_exact([[9, 3], [3, 8]], alternative=alternative)
    got = compare(BASE, TREAT, direction=direction)
    assert got.test == "fisher_exact"
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert got.odds_ratio == pytest.approx(9 * 8 / (3 * 3), rel=REL)
    assert got.effect_size_name == "risk_difference"
    assert got.effect_size == pytest.approx(9 / 12 - 3 / 11, rel=REL)


def test_newcombe_interval_matches_statsmodels() -> None:
    low, high = confint_proportions_2indep(9, 12, 3, 11, method="newcomb", compare="diff")
    got = compare(BASE, TREAT, test="fisher_exact")
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), rel=REL)


def test_mcnemar_exact_matches_statsmodels_and_binomial() -> None:
    # Cavo et al. (2012) via Fagerland, Lydersen & Laake (2017), ch. 8:
    # 59 both, 6 only before (baseline), 16 only after (treatment), 80 neither.
    base, treat = _paired(59, 6, 16, 80)
    two_sided = sm_mcnemar([[59, 6], [16, 80]], exact=True).pvalue
    got = compare(base, treat, paired=True)
    assert got.test == "mcnemar"
    assert got.paired
    assert got.p_value == pytest.approx(two_sided, rel=REL)
    greater = compare(base, treat, paired=True, direction="maximize")
    assert greater.p_value == pytest.approx(stats.binom.sf(15, 22, 0.5), rel=REL)
    assert greater.odds_ratio == pytest.approx(16 / 6, rel=REL)


def test_paired_newcombe_interval_published_value() -> None:
    # Fagerland et al. (2017), Table 8.x / R package contingencytables:
    # Newcombe square-and-add, Cavo data: -0.0621 (95% CI -0.1186 to -0.0046)
    # with "before" as the first variable. Ours is treatment - baseline with the
    # baseline as "before" (6 = only before), so the interval is mirrored.
    base, treat = _paired(59, 6, 16, 80)
    got = compare(base, treat, paired=True)
    assert got.difference == pytest.approx(10 / 161, rel=REL)
    assert got.ci_low == pytest.approx(0.0046, abs=5e-5)
    assert got.ci_high == pytest.approx(0.1186, abs=5e-5)


def test_paired_newcombe_interval_formula() -> None:
    # Newcombe (1998b) method 10 written out (Altman et al. 2000, p. 52).
    a, b, c, d = 59, 6, 16, 80  # both, only baseline, only treatment, neither
    n = a + b + c + d
    z = stats.norm.ppf(0.975)

    def wilson(x: int) -> tuple[float, float]:
        p = x / n
        centre = (2 * x + z**2) / (2 * (n + z**2))
        half = z * math.sqrt(z**2 + 4 * x * (1 - p)) / (2 * (n + z**2))
        return centre - half, centre + half

    p_t, p_b = (a + c) / n, (a + b) / n
    (l1, u1), (l2, u2) = wilson(a + c), wilson(a + b)
    cross = a * d - b * c
    phi = (cross - n / 2) / math.sqrt((a + c) * (b + d) * (a + b) * (c + d)) if cross > n / 2 else 0.0
    low = (p_t - p_b) - math.sqrt((p_t - l1) ** 2 - 2 * phi * (p_t - l1) * (u2 - p_b) + (u2 - p_b) ** 2)
    high = (p_t - p_b) + math.sqrt((u1 - p_t) ** 2 - 2 * phi * (u1 - p_t) * (p_b - l2) + (p_b - l2) ** 2)
    base, treat = _paired(a, b, c, d)
    got = compare(base, treat, paired=True)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), rel=REL)


def test_no_discordant_pairs_is_degenerate_not_nan() -> None:
    base, treat = _paired(5, 0, 0, 5)
    got = compare(base, treat, paired=True, direction="maximize")
    assert got.p_value == 1.0
    assert "paired differences" in got.degenerate


def test_all_zero_both_sides() -> None:
    got = compare(np.zeros(6), np.zeros(6))
    assert got.p_value == 1.0
    assert got.degenerate == "no variation: both conditions gave the same constant value"
    assert math.isnan(got.odds_ratio)


def test_all_failures_versus_all_successes_is_exact() -> None:
    got = compare(np.zeros(5), np.ones(5), direction="maximize")
    assert got.p_value == pytest.approx(1 / math.comb(10, 5), rel=REL)
    assert got.odds_ratio == math.inf
    assert got.to_dict()["odds_ratio"] is None


def test_boschloo_matches_scipy_documented_example() -> None:
    # scipy.stats.boschloo_exact docs: [[74, 31], [43, 32]] (columns = samples),
    # alternative "greater": p = 0.0355.
    base, treat = _outcomes(31, 63), _outcomes(74, 117)
    ref = stats.boschloo_exact([[74, 31], [43, 32]], alternative="greater")
    got = compare(base, treat, test="boschloo", direction="maximize")
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert got.p_value == pytest.approx(0.0355, abs=1e-3)


def test_chi_square_matches_scipy_and_statsmodels() -> None:
    from statsmodels.stats.proportion import proportions_ztest

    chi2, p, _, _ = stats.chi2_contingency([[9, 3], [3, 8]], correction=False)
    got = compare(BASE, TREAT, test="chi_square")
    assert got.statistic**2 == pytest.approx(chi2, rel=REL)
    assert got.p_value == pytest.approx(p, rel=REL)
    z, p_one = proportions_ztest([9, 3], [12, 11], alternative="larger")
    one = compare(BASE, TREAT, test="chi_square", direction="maximize")
    assert one.statistic == pytest.approx(z, rel=REL)
    assert one.p_value == pytest.approx(p_one, rel=REL)


def test_binary_test_rejects_continuous_values() -> None:
    from pytest_crystallize.errors import StatisticsError

    with pytest.raises(
        StatisticsError, match=r"needs 0/1 outcomes, but treatment holds 0\.5 at position 1"
    ) as info:
        compare(BASE, np.array([1.0, 0.5, 0.0]), test="fisher_exact")
    assert info.value.side == "treatment"
    assert info.value.positions == (1,)
