"""Known answers for the t family, Hedges' g, Cohen's d_z and describe().

References are computed independently: scipy.stats called directly, or the
textbook formula written out here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from pytest_crystallize.core.stats import compare, describe

REL = 1e-6

# Two small samples (e.g. latency in ms), fixed so failures are reproducible.
BASE = np.array([12.1, 10.4, 11.8, 13.0, 9.7, 12.5, 11.1, 10.9])
TREAT = np.array([13.4, 12.0, 12.2, 14.9, 11.0, 13.8, 12.6, 11.9])


@pytest.mark.parametrize(
    ("direction", "alternative"),
    [("two-sided", "two-sided"), ("maximize", "greater"), ("minimize", "less")],
)
def test_welch_matches_scipy(direction: str, alternative: str) -> None:
    ref = stats.ttest_ind(TREAT, BASE, equal_var=False, alternative=alternative)
    got = compare(BASE, TREAT, test="welch_t", direction=direction)
    assert got.statistic == pytest.approx(ref.statistic, rel=REL)
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert got.alternative == alternative


def test_welch_interval_matches_scipy() -> None:
    ref = stats.ttest_ind(TREAT, BASE, equal_var=False).confidence_interval(0.95)
    got = compare(BASE, TREAT, test="welch_t")
    assert (got.ci_low, got.ci_high) == pytest.approx((ref.low, ref.high), rel=REL)


def test_student_matches_scipy() -> None:
    ref = stats.ttest_ind(TREAT, BASE, equal_var=True, alternative="greater")
    interval = stats.ttest_ind(TREAT, BASE, equal_var=True).confidence_interval(0.9)
    got = compare(BASE, TREAT, test="student_t", direction="maximize", confidence=0.9)
    assert got.statistic == pytest.approx(ref.statistic, rel=REL)
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert (got.ci_low, got.ci_high) == pytest.approx((interval.low, interval.high), rel=REL)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_paired_matches_scipy(alternative: str) -> None:
    direction = {"two-sided": "two-sided", "greater": "maximize", "less": "minimize"}[alternative]
    ref = stats.ttest_rel(TREAT, BASE, alternative=alternative)
    got = compare(BASE, TREAT, test="paired_t", paired=True, direction=direction)
    assert got.paired
    assert got.statistic == pytest.approx(ref.statistic, rel=REL)
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)


def test_paired_interval_matches_scipy() -> None:
    ref = stats.ttest_rel(TREAT, BASE).confidence_interval(0.95)
    got = compare(BASE, TREAT, test="paired_t", paired=True)
    assert (got.ci_low, got.ci_high) == pytest.approx((ref.low, ref.high), rel=REL)


def test_hedges_g_textbook_formula() -> None:
    # Hedges & Olkin (1985), eq. 5.7 with the exact gamma-function correction.
    n1, n2 = BASE.size, TREAT.size
    df = n1 + n2 - 2
    pooled = math.sqrt(((n1 - 1) * BASE.var(ddof=1) + (n2 - 1) * TREAT.var(ddof=1)) / df)
    j = special.gamma(df / 2) / (math.sqrt(df / 2) * special.gamma((df - 1) / 2))
    expected = j * (TREAT.mean() - BASE.mean()) / pooled
    got = compare(BASE, TREAT, test="welch_t")
    assert got.effect_size_name == "hedges_g"
    assert got.effect_size == pytest.approx(expected, rel=REL)
    # The familiar approximation J ~ 1 - 3 / (4 df - 1) agrees to ~1e-3.
    assert j == pytest.approx(1 - 3 / (4 * df - 1), rel=1e-3)


def test_cohens_dz_textbook_formula() -> None:
    diff = TREAT - BASE
    got = compare(BASE, TREAT, paired=True)
    assert got.effect_size_name == "cohens_dz"
    assert got.effect_size == pytest.approx(diff.mean() / diff.std(ddof=1), rel=REL)


def test_describe_matches_scipy_t_interval() -> None:
    low, high = stats.t.interval(0.95, BASE.size - 1, loc=BASE.mean(), scale=stats.sem(BASE))
    got = describe(BASE)
    assert got.n == BASE.size
    assert got.mean == pytest.approx(BASE.mean(), rel=REL)
    assert got.std == pytest.approx(BASE.std(ddof=1), rel=REL)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), rel=REL)


def test_describe_single_value_and_constant() -> None:
    one = describe(np.array([3.0]))
    assert one.n == 1
    assert one.mean == 3.0
    assert math.isnan(one.std)
    assert math.isnan(one.ci_low)
    assert math.isnan(one.ci_high)
    flat = describe(np.full(5, 2.5))
    assert (flat.std, flat.ci_low, flat.ci_high) == (0.0, 2.5, 2.5)
    assert flat.to_dict()["std"] == 0.0
    assert one.to_dict()["std"] is None
