"""Power and replicates needed, against statsmodels and textbook formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower, TTestPower

from pytest_crystallize.core.stats import compare, power, replicates_needed
from pytest_crystallize.errors import StatisticsError

REL = 1e-6
RNG = np.random.default_rng(12)
BASE = RNG.normal(0.0, 2.0, size=24)
TREAT = RNG.normal(0.5, 2.5, size=30)
PAIRED_T = BASE + RNG.normal(0.3, 1.0, size=24)


@pytest.mark.parametrize(
    ("alternative", "sm_alternative"), [("two-sided", "two-sided"), ("greater", "larger")]
)
def test_planning_power_matches_statsmodels(alternative: str, sm_alternative: str) -> None:
    ref = TTestIndPower().power(effect_size=0.5, nobs1=20, alpha=0.05, alternative=sm_alternative)
    assert power(1.0, 2.0, 20, alternative=alternative) == pytest.approx(ref, rel=REL)
    paired_ref = TTestPower().power(effect_size=0.25, nobs=30, alpha=0.01, alternative=sm_alternative)
    got = power(0.5, 2.0, 30, alpha=0.01, alternative=alternative, paired=True)
    assert got == pytest.approx(paired_ref, rel=REL)


@pytest.mark.parametrize(("effect", "paired"), [(0.5, False), (0.8, False), (0.3, True), (1.2, True)])
def test_replicates_needed_matches_statsmodels(effect: float, paired: bool) -> None:
    solver = TTestPower() if paired else TTestIndPower()
    exact = solver.solve_power(effect_size=effect, power=0.8, alpha=0.05)
    assert replicates_needed(effect, 1.0, paired=paired) == math.ceil(exact)


def test_textbook_replicates_two_sample() -> None:
    # Cohen (1988), Table 2.4.1: d = 0.5, two-sided alpha = 0.05, power 0.80 -> n = 64 per group.
    assert replicates_needed(0.5, 1.0) == 64
    # ... and d = 0.8 -> 26 per group.
    assert replicates_needed(0.8, 1.0) == 26


def test_wrong_way_effect_never_reaches_power() -> None:
    assert replicates_needed(-0.5, 1.0, alternative="greater") is None


def test_comparison_power_for_welch_uses_pooled_sd() -> None:
    pooled = math.sqrt(((24 - 1) * BASE.var(ddof=1) + (30 - 1) * TREAT.var(ddof=1)) / 52)
    got = compare(BASE, TREAT, test="welch_t", direction="maximize", mde=1.0)
    ref = TTestIndPower().power(
        effect_size=1.0 / pooled, nobs1=24, ratio=30 / 24, alpha=0.05, alternative="larger"
    )
    assert got.power == pytest.approx(ref, rel=REL)
    n = TTestIndPower().solve_power(effect_size=1.0 / pooled, power=0.8, alpha=0.05, alternative="larger")
    assert got.replicates_needed == math.ceil(n)


def test_comparison_power_for_paired_t() -> None:
    sd = (PAIRED_T - BASE).std(ddof=1)
    got = compare(BASE, PAIRED_T, paired=True, mde=0.5)
    ref = TTestPower().power(effect_size=0.5 / sd, nobs=24, alpha=0.05, alternative="two-sided")
    assert got.power == pytest.approx(ref, rel=REL)


def test_comparison_power_normal_family_for_rank_tests() -> None:
    pooled = math.sqrt(((24 - 1) * BASE.var(ddof=1) + (30 - 1) * TREAT.var(ddof=1)) / 52)
    got = compare(BASE, TREAT, test="mann_whitney", direction="minimize", mde=1.0)
    ref = NormalIndPower().power(
        effect_size=1.0 / pooled, nobs1=24, ratio=30 / 24, alpha=0.05, alternative="larger"
    )
    assert got.power == pytest.approx(ref, rel=REL)


def test_binary_power_fleiss_formula() -> None:
    # Fleiss, Levin & Paik (2003), eq. 4.14 without continuity correction:
    # n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / (p1 - p2)^2 per group.
    base = np.r_[np.ones(12), np.zeros(28)]  # p = 0.3
    treat = np.r_[np.ones(18), np.zeros(22)]
    p1, p2 = 0.3, 0.45
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    pbar = (p1 + p2) / 2
    n = (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (
        p2 - p1
    ) ** 2
    got = compare(base, treat, mde=0.15, test="chi_square")  # the z-test the formula describes
    assert got.replicates_needed == math.ceil(n)
    sd0 = math.sqrt(pbar * (1 - pbar) * 2 / 40)
    sd1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 40)
    expected = stats.norm.cdf((0.15 - za * sd0) / sd1) + stats.norm.cdf((-0.15 - za * sd0) / sd1)
    assert got.power == pytest.approx(expected, rel=REL)


def test_mcnemar_power_connor_formula() -> None:
    # Connor (1987): n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2, psi = discordant share.
    base = np.r_[np.ones(20), np.ones(6), np.zeros(10), np.zeros(24)]
    treat = np.r_[np.ones(20), np.zeros(6), np.ones(10), np.zeros(24)]
    psi, d = 16 / 60, 0.1
    za, zb = stats.norm.ppf(0.95), stats.norm.ppf(0.8)
    n = (za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)) ** 2 / d**2
    # Tango's score test at a zero margin is the asymptotic McNemar test the formula describes.
    got = compare(base, treat, paired=True, direction="maximize", mde=0.1, test="tango")
    assert got.replicates_needed == math.ceil(n)
    expected = stats.norm.cdf((d * math.sqrt(60) - za * math.sqrt(psi)) / math.sqrt(psi - d * d))
    assert got.power == pytest.approx(expected, rel=REL)


def test_equivalence_power_approximation() -> None:
    # Two one-sided t-tests: power ~ P1 + P2 - 1 with noncentral t (Chow & Liu 2008, 9.2).
    sd = (PAIRED_T - BASE).std(ddof=1)
    n, margin = 24, 1.0
    tcrit = stats.t.ppf(0.95, n - 1)
    se = sd / math.sqrt(n)
    p1 = stats.nct.sf(tcrit, n - 1, margin / se)
    p2 = stats.nct.cdf(-tcrit, n - 1, -margin / se)
    got = compare(BASE, PAIRED_T, paired=True, direction="equivalent", margin=margin, mde=0.0)
    assert got.power == pytest.approx(max(0.0, p1 + p2 - 1), rel=REL)


def test_no_mde_no_power() -> None:
    got = compare(BASE, TREAT)
    assert math.isnan(got.power)
    assert got.replicates_needed is None
    assert got.to_dict()["power"] is None


def test_planning_errors() -> None:
    with pytest.raises(StatisticsError, match="sd must be"):
        power(1.0, 0.0, 10)
    with pytest.raises(StatisticsError, match="at least 2"):
        power(1.0, 1.0, 1)
    with pytest.raises(StatisticsError, match="unknown alternative"):
        replicates_needed(1.0, 1.0, alternative="larger")
