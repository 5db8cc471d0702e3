"""Power of the exact 0/1 tests is the exact test's own, not its normal approximation's.

Each figure is checked against an independent computation: every possible
table enumerated with scipy's own test, or a seeded simulation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import compare

ALPHA = 0.05


def _rates(n: int, successes: int) -> np.ndarray:
    return np.r_[np.ones(successes), np.zeros(n - successes)]


def _fisher_power_by_enumeration(n_t: int, n_b: int, p_t: float, p_b: float, alternative: str) -> float:
    total = 0.0
    for a in range(n_t + 1):
        for b in range(n_b + 1):
            p = stats.fisher_exact([[a, n_t - a], [b, n_b - b]], alternative=alternative).pvalue
            if p <= ALPHA:
                total += stats.binom.pmf(a, n_t, p_t) * stats.binom.pmf(b, n_b, p_b)
    return total


@pytest.mark.parametrize(("direction", "alternative"), [("maximize", "greater"), ("two-sided", "two-sided")])
def test_fisher_power_is_the_exact_tests(direction: str, alternative: str) -> None:
    base, treat = _rates(20, 6), _rates(24, 12)  # baseline rate 0.3
    got = compare(base, treat, direction=direction, mde=0.3)
    assert got.test == "fisher_exact"
    expected = _fisher_power_by_enumeration(24, 20, 0.6, 0.3, alternative)
    assert got.power == pytest.approx(expected, abs=1e-9)


def test_boschloo_power_is_the_exact_tests() -> None:
    n = 7
    base, treat = _rates(n, 2), _rates(n, 5)
    got = compare(base, treat, test="boschloo", direction="maximize", mde=0.5)
    p_b, p_t = 2 / 7, 2 / 7 + 0.5
    expected = sum(
        stats.binom.pmf(a, n, p_t) * stats.binom.pmf(b, n, p_b)
        for a in range(n + 1)
        for b in range(n + 1)
        if stats.boschloo_exact([[a, b], [n - a, n - b]], alternative="greater").pvalue <= ALPHA
    )
    assert got.power == pytest.approx(expected, abs=0.005)
    fisher = _fisher_power_by_enumeration(n, n, p_t, p_b, "greater")
    assert got.power > fisher  # Boschloo is uniformly more powerful


def _mcnemar_power_by_enumeration(n: int, q01: float, q10: float, alternative: str) -> float:
    total = 0.0
    for n01 in range(n + 1):
        for n10 in range(n + 1 - n01):
            d = n01 + n10
            p = 1.0 if d == 0 else stats.binomtest(n01, d, 0.5, alternative=alternative).pvalue
            if p <= ALPHA:
                total += stats.multinomial.pmf([n01, n10, n - d], n, [q01, q10, 1 - q01 - q10])
    return total


@pytest.mark.parametrize(("direction", "alternative"), [("maximize", "greater"), ("two-sided", "two-sided")])
def test_mcnemar_power_is_the_exact_tests(direction: str, alternative: str) -> None:
    # 30 pairs, 9 discordant (share 0.3); at a true difference of 0.2: q01 = 0.25, q10 = 0.05.
    base = np.r_[np.ones(10), np.ones(3), np.zeros(6), np.zeros(11)]
    treat = np.r_[np.ones(10), np.zeros(3), np.ones(6), np.zeros(11)]
    got = compare(base, treat, paired=True, direction=direction, mde=0.2)
    assert got.test == "mcnemar"
    assert got.power == pytest.approx(_mcnemar_power_by_enumeration(30, 0.25, 0.05, alternative), abs=1e-9)


def _simulated(test: str, n: int, p_t: float, p_b: float, alternative: str, rng: np.random.Generator) -> float:
    runs = 2000
    a, b = rng.binomial(n, p_t, runs), rng.binomial(n, p_b, runs)
    rejected = [stats.fisher_exact([[x, n - x], [y, n - y]], alternative=alternative).pvalue <= ALPHA
                for x, y in zip(a, b, strict=True)]
    return float(np.mean(rejected))


@pytest.mark.parametrize("direction", ["maximize", "two-sided"])
def test_the_replicates_said_to_give_80_percent_do(direction: str) -> None:
    rng = np.random.default_rng(11)
    alternative = "greater" if direction == "maximize" else "two-sided"
    got = compare(_rates(40, 12), _rates(40, 20), direction=direction, mde=0.25)
    n = got.replicates_needed
    assert n is not None
    simulated = _simulated("fisher_exact", n, 0.55, 0.3, alternative, rng)
    se = math.sqrt(0.8 * 0.2 / 2000)
    assert simulated >= 0.8 - stats.norm.ppf(0.9995) * se
    # The power reported at the observed size is the exact test's.
    observed = got.power
    assert observed == pytest.approx(_fisher_power_by_enumeration(40, 40, 0.55, 0.3, alternative), abs=1e-9)
