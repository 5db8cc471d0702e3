"""Permutation and bootstrap tests: exact enumeration written out, seeding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import compare

REL = 1e-6
BASE = np.array([4.1, 5.3, 3.8, 6.0, 5.1, 4.7, 5.9, 4.4])
TREAT = np.array([5.0, 5.9, 4.1, 6.8, 5.0, 5.6, 6.9, 4.6])


def test_sign_flip_exact_enumeration() -> None:
    d = TREAT - BASE
    observed = d.mean()
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    null = (flips * d).mean(axis=1)
    expected = np.mean(null >= observed - 1e-12)  # all 256 sign patterns, equally likely
    got = compare(BASE, TREAT, test="permutation", paired=True, direction="maximize")
    assert got.paired
    assert got.p_value == pytest.approx(expected, rel=REL)
    assert got.statistic == pytest.approx(observed, rel=REL)


def test_label_shuffle_exact_enumeration() -> None:
    base, treat = BASE[:5], TREAT[:6]
    pooled = np.r_[treat, base]
    observed = treat.mean() - base.mean()
    null = []
    for chosen in itertools.combinations(range(pooled.size), treat.size):
        mask = np.zeros(pooled.size, bool)
        mask[list(chosen)] = True
        null.append(pooled[mask].mean() - pooled[~mask].mean())
    null_arr = np.array(null)  # all C(11, 6) = 462 relabellings
    greater = np.mean(null_arr >= observed - 1e-12)
    less = np.mean(null_arr <= observed + 1e-12)
    got = compare(base, treat, test="permutation")
    assert not got.paired
    assert got.p_value == pytest.approx(min(1.0, 2 * min(greater, less)), rel=REL)


def test_monte_carlo_permutation_is_seeded_and_close_to_t() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=40)
    treat = rng.normal(0.4, size=40)
    first = compare(base, treat, test="permutation", seed=1)
    again = compare(base, treat, test="permutation", seed=1)
    other = compare(base, treat, test="permutation", seed=2)
    assert first.p_value == again.p_value
    assert first.p_value != other.p_value
    assert first.p_value == pytest.approx(stats.ttest_ind(treat, base).pvalue, abs=0.02)
    assert first.p_value >= 1 / 10000  # (hits + 1) / (resamples + 1) is never 0


def test_bootstrap_agrees_with_normal_theory_for_large_samples() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(10, 2, size=400)
    treat = rng.normal(10.3, 2, size=400)
    got = compare(base, treat, test="bootstrap")
    welch = stats.ttest_ind(treat, base, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert got.ci_low == pytest.approx(interval.low, abs=0.03)
    assert got.ci_high == pytest.approx(interval.high, abs=0.03)
    assert got.p_value == pytest.approx(welch.pvalue, abs=0.01)
    assert compare(base, treat, test="bootstrap").to_dict() == got.to_dict()


def test_bootstrap_interval_and_p_value_agree() -> None:
    rng = np.random.default_rng(9)
    for shift in (0.0, 0.3, 0.6, 1.0):
        base = rng.normal(size=30)
        treat = base + rng.normal(shift, 1.0, size=30)
        got = compare(base, treat, test="bootstrap", paired=True)
        excludes_zero = got.ci_low > 0 or got.ci_high < 0
        if abs(got.p_value - 0.05) > 0.005:  # away from the boundary the two must agree
            assert excludes_zero == (got.p_value < 0.05)


def test_bootstrap_needs_two_values() -> None:
    from pytest_crystallize.errors import StatisticsError

    with pytest.raises(StatisticsError, match="bootstrap needs at least 2"):
        compare(np.array([1.0]), np.array([2.0, 3.0]), test="bootstrap")


def _monte_carlo_se(p: float, resamples: int = 9999) -> float:
    """Standard error of a p-value estimated from ``resamples`` random resamples."""
    return float(np.sqrt(max(p * (1 - p), 1e-4) / resamples))


def _scipy_sign_flip(differences: np.ndarray, seed: int, alternative: str = "two-sided") -> float:
    """scipy's paired permutation p-value of the mean difference (9,999 random sign flips)."""
    return float(stats.permutation_test(
        (differences,), np.mean, permutation_type="samples", n_resamples=9999, alternative=alternative,
        rng=np.random.default_rng(seed),
    ).pvalue)


def test_paired_permutation_agrees_with_scipy_permutation_test() -> None:
    rng = np.random.default_rng(21)
    base = rng.normal(10, 2, size=150)
    treat = base + rng.normal(0.2, 1.0, size=150)
    d = treat - base
    got = compare(base, treat, test="permutation", paired=True, seed=4)
    # Independent resamples (another seed): equal up to the Monte Carlo error of both estimates.
    independent = _scipy_sign_flip(d, seed=99)
    assert 0.01 < got.p_value < 0.99  # not at an edge, where the Monte Carlo error vanishes
    assert got.p_value == pytest.approx(independent, abs=4 * np.sqrt(2) * _monte_carlo_se(got.p_value))
    # The same seed draws scipy's very resamples: the same p-value, one-sided too.
    one_sided = compare(base, treat, test="permutation", paired=True, direction="maximize", seed=4)
    assert one_sided.p_value == _scipy_sign_flip(d, seed=4, alternative="greater")


def test_paired_permutation_with_tied_differences_matches_scipy_draw_for_draw() -> None:
    rng = np.random.default_rng(22)
    base = rng.integers(0, 2, size=60).astype(float)
    treat = rng.integers(0, 2, size=60).astype(float)
    got = compare(base, treat, test="permutation", paired=True, seed=8)
    assert got.p_value == _scipy_sign_flip(treat - base, seed=8)


def test_unpaired_permutation_in_batches_matches_scipy_unbatched() -> None:
    rng = np.random.default_rng(23)
    base = rng.normal(size=300)
    treat = rng.normal(0.2, size=310)
    got = compare(base, treat, test="permutation", seed=6)
    whole = stats.permutation_test(
        (treat, base), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent", n_resamples=9999, vectorized=True, rng=np.random.default_rng(6),
    )
    assert got.p_value == whole.pvalue


def test_bootstrap_interval_agrees_with_scipy_bootstrap() -> None:
    from scipy.stats import norm

    rng = np.random.default_rng(24)
    base = rng.normal(10, 2, size=200)
    treat = base + rng.normal(0.3, 1.5, size=200)
    d = treat - base
    got = compare(base, treat, test="bootstrap", paired=True, seed=3)
    independent = stats.bootstrap(
        (d,), np.mean, n_resamples=9999, confidence_level=0.95, method="percentile",
        rng=np.random.default_rng(77),
    ).confidence_interval
    # Monte Carlo error of a 2.5 % quantile of 9,999 draws from a normal with sd s / sqrt(n).
    q = 0.025
    spread = d.std(ddof=1) / np.sqrt(d.size)
    se = np.sqrt(q * (1 - q) / 9999) / norm.pdf(norm.ppf(q)) * spread
    tolerance = 4 * np.sqrt(2) * se
    assert got.ci_low == pytest.approx(independent.low, abs=tolerance)
    assert got.ci_high == pytest.approx(independent.high, abs=tolerance)
