"""Which metrics are 0/1 outcomes, and when a relative difference means something."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import Treatment, run_experiment
from pytest_crystallize.core.report.text import summarize
from pytest_crystallize.core.report.verdict_text import verdict_lines
from pytest_crystallize.core.stats import compare, describe


def test_a_metric_is_binary_only_when_every_condition_is() -> None:
    from pytest_crystallize.core.stats import binary_outcome

    assert binary_outcome([np.zeros(5), np.array([0.0, 1.0, 1.0])])
    assert not binary_outcome([np.zeros(5), np.array([0.0, 3.0, 1.0])])
    assert not binary_outcome([np.zeros(5), np.array([2.0])])
    assert not binary_outcome([np.array([]), np.array([])])


def test_a_declared_continuous_sample_of_zeros_gets_the_t_interval() -> None:
    s = describe(np.zeros(10), binary=False)
    assert s.method == "t"
    assert (s.ci_low, s.ci_high) == (0.0, 0.0)  # no spread: a zero-width t-interval, not Wilson's [0, 0.28]


def _sum_of_errors(ctx) -> None:
    # A count: 0 in every baseline replicate, 0 to 3 under the treatment.
    ctx.metrics.add("errors", 0 if ctx.condition == "baseline" else ctx.replicate % 4)


def test_the_summary_does_not_treat_an_all_zero_baseline_count_as_a_proportion() -> None:
    result = run_experiment(_sum_of_errors, replicates=10, treatments=[Treatment("t")])
    rows = {row["condition"]: row for row in summarize(result)["rows"]}
    wilson_high = stats.binomtest(0, 10).proportion_ci(method="wilson").high
    assert rows["baseline"]["ci_high"] != pytest.approx(wilson_high)
    assert rows["baseline"]["ci_low"] == rows["baseline"]["ci_high"] == 0.0


def test_a_relative_difference_needs_a_baseline_mean_clearly_away_from_zero() -> None:
    # Values of +-1 cancel to a mean of ~1e-12: dividing by it printed "+50499781640406.3%".
    base = np.array([1.0, -1.0] * 10) + np.r_[np.full(19, 0.0), 2e-11]
    treat = base + 0.5
    got = compare(base, treat, paired=True)
    assert abs(got.mean_baseline) < 1e-11
    assert math.isnan(got.relative_difference)
    assert got.to_dict()["relative_difference"] is None


def test_rounding_residue_is_no_baseline_to_divide_by() -> None:
    rng = np.random.default_rng(1)
    base = np.full(12, 1e-12)  # constant: its interval excludes 0, but it is 1e-12 of the data's size
    treat = rng.normal(0.5, 0.1, size=12)
    assert math.isnan(compare(base, treat).relative_difference)


def test_a_clear_baseline_keeps_its_relative_difference() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(10.0, 1.0, size=15)
    treat = rng.normal(11.0, 1.0, size=15)
    got = compare(base, treat)
    assert got.relative_difference == pytest.approx((treat.mean() - base.mean()) / base.mean(), rel=1e-12)


def test_a_proportion_above_zero_keeps_its_relative_difference() -> None:
    base = np.r_[np.ones(1), np.zeros(19)]  # 1 in 20: its t-interval holds 0, its Wilson interval does not
    treat = np.r_[np.ones(4), np.zeros(16)]
    got = compare(base, treat)
    assert got.relative_difference == pytest.approx(3.0)


def test_the_verdict_line_prints_no_percentage_for_a_baseline_near_zero() -> None:
    base = np.array([1.0, -1.0] * 10) + np.r_[np.full(19, 0.0), 2e-11]
    got = compare(base, base + 0.5, paired=True)
    verdict = {"hypothesis": "h", "treatment": "t", "holds": True, "difference": got.difference,
               "p_value": got.p_value, "p_adjusted": got.p_value, "test": got.test,
               "reason": "significant: p < alpha", "n_baseline": 20, "n_treatment": 20,
               "mean_baseline": got.mean_baseline, "mean_treatment": got.mean_treatment, "alpha": 0.05,
               "details": got.to_dict()}
    (line,) = verdict_lines(verdict)
    assert "diff +0.5 [95% CI" in line  # no "(+...%)" between the difference and its interval
