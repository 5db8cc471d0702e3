"""The replicate is the unit: several values per replicate are averaged before testing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import Treatment, hypothesis, run_experiment


def _clustered(ctx):
    # A random effect shared by every value of the replicate, different per condition:
    # the 20 values of one replicate are far from independent.
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    shared = rng.normal(0.0, 1.0)
    for value in shared + rng.normal(0.0, 0.3, size=20) + ctx.get("shift", 0.0):
        ctx.metrics.add("x", value)


def test_values_of_one_replicate_are_averaged_and_the_test_runs_on_the_means() -> None:
    result = run_experiment(
        _clustered, replicates=10, seed=4, treatments=[Treatment("t", {"shift": 0.5})],
        hypotheses=[hypothesis("x", "maximize", test="welch_t")],
    )
    verdict = result.verdicts[0]
    means = {}
    for condition in ("baseline", "t"):
        replicates, values = result.select("x", condition)
        means[condition] = np.array([values[replicates == r].mean() for r in range(10)])
    expected = stats.ttest_ind(means["t"], means["baseline"], equal_var=False, alternative="greater").pvalue
    assert verdict.n_baseline == verdict.n_treatment == 10
    assert verdict.p_value == pytest.approx(expected, rel=1e-9)
    assert "per-replicate means of up to 20 values" in verdict.reason
    assert verdict.details["values_per_replicate"] == 20


def test_clustered_values_keep_the_false_positive_rate_at_alpha() -> None:
    """2,000 null experiments whose replicates each record 20 correlated values."""
    experiments, alpha = 2000, 0.05
    rejected = sum(
        run_experiment(
            _clustered, replicates=8, seed=seed, treatments=[Treatment("t")],
            hypotheses=[hypothesis("x", "maximize", test="welch_t")],
        ).verdicts[0].holds
        for seed in range(experiments)
    )
    high = stats.binom.ppf(0.9995, experiments, alpha)
    assert rejected <= high, f"{rejected} of {experiments} null experiments rejected"
    assert rejected >= stats.binom.ppf(0.0005, experiments, alpha), rejected


def test_the_summary_shows_per_replicate_means_and_says_so() -> None:
    from pytest_crystallize.core.report.text import summarize, summary_lines

    result = run_experiment(_clustered, replicates=6, treatments=[Treatment("t", {"shift": 0.5})])
    payload = summarize(result)
    assert {row["n"] for row in payload["rows"]} == {6}
    assert any("up to 20 values per replicate" in line for line in summary_lines(payload))
