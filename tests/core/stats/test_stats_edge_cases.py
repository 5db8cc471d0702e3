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


def test_what_had_no_spread_comes_as_data_beside_the_words() -> None:
    paired = compare([1.0, 4.0, 2.0], [3.0, 6.0, 4.0], direction="maximize", paired=True)
    assert paired.no_variation is not None
    found = paired.no_variation
    assert (found.paired, found.shift, found.n_baseline, found.n_treatment) == (True, 2.0, 3, 3)
    assert math.isnan(found.baseline)  # each side varies; only the shift is constant
    assert math.isnan(found.treatment)
    assert not found.identical
    assert paired.degenerate == (
        "no variation in the paired differences: every treatment value is its baseline + 2; "
        "the p-value is the exact sign-flip one (at best 2^-3 one-sided)"
    )
    constants = compare([0.5] * 4, [0.7] * 3, direction="maximize")
    assert constants.no_variation is not None
    found = constants.no_variation
    assert (found.paired, found.baseline, found.treatment, found.n_baseline, found.n_treatment) == (
        False, 0.5, 0.7, 4, 3)
    assert found.shift == pytest.approx(0.2)
    assert constants.degenerate == (
        "no variation: baseline is always 0.5 and treatment always 0.7; "
        "the p-value is the exact label-shuffle one (at best 1/C(7, 4) one-sided)"
    )
    same = compare([0.5] * 4, [0.5] * 4, paired=True).no_variation
    assert same is not None
    assert same.identical
    assert compare([1.0, 2.0, 4.0], [2.0, 1.0, 3.0]).no_variation is None
    assert paired.to_dict()["no_variation"] == {
        "paired": True, "shift": 2.0, "baseline": None, "treatment": None, "n_baseline": 3, "n_treatment": 3,
    }
