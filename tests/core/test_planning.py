"""Power planning (mde, LowPowerWarning) and non-finite values in verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import LowPowerWarning, Treatment, hypothesis, run_experiment


def _independent(ctx):
    # No shared randomness between conditions: a condition-specific stream.
    rng = np.random.default_rng([ctx.seed, 0 if ctx.condition == "baseline" else 1])
    ctx.metrics.add("score", rng.normal(0.0, 1.0) + ctx.get("shift", 0.0))


def test_an_underpowered_hypothesis_warns_with_the_power_and_replicates_needed() -> None:
    with pytest.warns(LowPowerWarning) as caught:
        result = run_experiment(
            _independent, name="tiny", replicates=8, seed=5,
            treatments=[Treatment("shifted", {"shift": 0.2})],
            hypotheses=[hypothesis("score", "maximize", test="welch_t", mde=0.5)],
        )
    message = str(caught[0].message)
    details = result.verdicts[0].details
    assert details["power"] < 0.8
    assert "experiment 'tiny': hypothesis 'score maximize' for treatment 'shifted'" in message
    assert f"{details['power']:.0%} power to detect an effect of 0.5 with 8 replicates" in message
    assert f"about {details['replicates_needed']} replicates per condition would give 80%" in message
    assert details["replicates_needed"] > 8


def test_power_and_replicates_needed_match_statsmodels_for_a_welch_design() -> None:
    from statsmodels.stats.power import TTestIndPower

    result = run_experiment(
        _independent, replicates=20, seed=11, treatments=[Treatment("t", {"shift": 0.3})],
        hypotheses=[hypothesis("score", "maximize", test="welch_t", mde=1.0)],
    )
    _, base = result.select("score", "baseline")
    _, treat = result.select("score", "t")
    sd = math.sqrt((base.var(ddof=1) + treat.var(ddof=1)) / 2)
    expected = TTestIndPower().power(effect_size=1.0 / sd, nobs1=20, alpha=0.05, alternative="larger")
    details = result.verdicts[0].details
    assert details["power"] == pytest.approx(expected, rel=0.02)
    assert details["power"] > 0.8


def _with_nan(ctx):
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    value = math.nan if (ctx.replicate == 3 and ctx.condition == "t") else rng.normal()
    ctx.metrics.add("score", value + ctx.get("shift", 0.0))


def test_a_nan_fails_the_verdict_naming_metric_condition_and_replicate() -> None:
    result = run_experiment(
        _with_nan, name="nanny", replicates=6, treatments=[Treatment("t", {"shift": 1.0})],
        hypotheses=[hypothesis("score", "maximize")],
    )
    verdict = result.verdicts[0]
    assert not verdict.holds
    assert "metric 'score' in condition 't', replicate(s) [3]" in verdict.reason
    assert "nan_policy='omit'" in verdict.reason


def test_nan_policy_omit_drops_the_pair_and_tests_the_rest() -> None:
    result = run_experiment(
        _with_nan, replicates=6, seed=2, treatments=[Treatment("t", {"shift": 1.0})],
        hypotheses=[hypothesis("score", "maximize", nan_policy="omit")],
    )
    _, base = result.select("score", "baseline")
    _, treat = result.select("score", "t")
    keep = np.isfinite(base) & np.isfinite(treat)
    expected = stats.ttest_rel(treat[keep], base[keep], alternative="greater").pvalue
    verdict = result.verdicts[0]
    assert verdict.n_baseline == verdict.n_treatment == 5
    assert verdict.p_value == pytest.approx(expected, rel=1e-9)
