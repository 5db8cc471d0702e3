"""Edge cases: rounding noise in constant shifts, and intervals of proportions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_crystallize.core.stats import compare, describe


@pytest.mark.parametrize("magnitude", [1.0, 1e3, 1e6])
def test_a_constant_shift_with_rounding_noise_gets_the_exact_sign_flip_p_value(magnitude: float) -> None:
    # As in an experiment: each replicate averages 50 draws; the treatment adds
    # the same shift to every draw, so the true paired difference is constant.
    draws = np.random.default_rng(3).normal(magnitude, magnitude / 10, size=(20, 50))
    baseline = draws.mean(axis=1)
    treatment = (draws + 0.1 * magnitude).mean(axis=1)
    assert np.ptp(treatment - baseline) > 0  # the arithmetic really did leave rounding noise
    c = compare(baseline, treatment, direction="maximize", paired=True)
    assert c.test == "paired_t"
    # All 2**20 sign flips of a constant positive difference: only one is as extreme.
    assert c.p_value == pytest.approx(2.0**-20, rel=1e-9)
    assert math.isnan(c.effect_size)
    assert "no variation in the paired differences" in c.degenerate


def test_real_spread_is_not_mistaken_for_rounding_noise() -> None:
    from scipy import stats

    rng = np.random.default_rng(4)
    baseline = rng.normal(0, 1, size=20)
    treatment = baseline + 0.5 + rng.normal(0, 1e-6, size=20)
    c = compare(baseline, treatment, direction="maximize", paired=True)
    expected = stats.ttest_rel(treatment, baseline, alternative="greater").pvalue
    assert c.p_value == pytest.approx(expected, rel=1e-6)
    assert c.degenerate == ""


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 5), (10, 10), (37, 120)])
def test_describe_gives_0_1_values_the_wilson_interval(successes: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    values = np.array([1.0] * successes + [0.0] * (n - successes))
    summary = describe(values)
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert summary.method == "wilson"
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low, rel=1e-9, abs=1e-12),
                                                 pytest.approx(high, rel=1e-9, abs=1e-12))
