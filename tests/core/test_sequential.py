"""Sequential stopping: replicates='auto' stops early on clear effects and keeps alpha."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import ConfigurationError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.stats import SequentialPlan


def _independent(ctx):
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))


def _run(shift: float, *, seed: int = 1, max_replicates: int = 60, looks: int = 4, **kw):
    return run_experiment(
        _independent, seed=seed, replicates="auto", max_replicates=max_replicates, looks=looks,
        treatments=[Treatment("t", {"shift": shift})],
        hypotheses=[hypothesis("x", "maximize", test="welch_t")], **kw,
    )


def test_a_clear_effect_stops_at_the_first_look_that_crosses_the_boundary() -> None:
    result = _run(3.0)
    verdict = result.verdicts[0]
    seq = verdict.details["sequential"]
    assert verdict.holds
    assert seq["look"] < seq["looks"]
    used = seq["replicates"]
    assert result.provenance.replicates == used
    assert set(result.replicates.tolist()) == set(range(used))
    # The p-value at the stopping look is the plain Welch test on the replicates so far,
    # and it is below the plan's nominal threshold computed independently of the runner.
    _, base = result.select("x", "baseline")
    _, treat = result.select("x", "t")
    expected = stats.ttest_ind(treat, base, equal_var=False, alternative="greater").pvalue
    assert verdict.p_value == pytest.approx(expected, rel=1e-9)
    plan = SequentialPlan(max_replicates=60, looks=4, alpha=0.05)
    assert verdict.p_value <= plan.nominal_alpha(seq["look"])
    assert seq["nominal_alpha"] == pytest.approx(plan.nominal_alpha(seq["look"]))
    assert f"at look {seq['look']} of 4" in verdict.reason


def test_a_hypothesis_that_cannot_hold_runs_to_the_maximum_and_says_so() -> None:
    result = _run(-1.0)  # the treatment is worse: "maximize" can never cross the boundary
    verdict = result.verdicts[0]
    assert not verdict.holds
    assert verdict.details["sequential"]["look"] == 4
    assert result.provenance.replicates == 60
    assert result.provenance.looks_taken == 4
    assert "wrong direction" in verdict.reason
    assert "look 4 of 4" in verdict.reason


def test_the_summary_reports_replicates_saved() -> None:
    from pytest_crystallize.core.report.text import summarize, summary_lines

    lines = summary_lines(summarize(_run(3.0)))
    assert any("sequential:" in line and "saved" in line for line in lines), lines


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_replicates": None}, "replicates='auto' needs max_replicates="),
        ({"looks": 100}, "looks=100 exceeds max_replicates=60"),
        ({"spending": "linear"}, "unknown spending 'linear'"),
    ],
)
def test_bad_sequential_options_name_the_experiment(options: dict[str, object], message: str) -> None:
    kw = {"max_replicates": 60, "looks": 4, **options}
    with pytest.raises(ConfigurationError, match=message) as info:
        run_experiment(
            _independent, name="seq", replicates="auto", treatments=[Treatment("t")],
            hypotheses=[hypothesis("x", "maximize")], **kw,
        )
    assert "experiment 'seq'" in str(info.value)


def test_sequential_stopping_keeps_the_false_positive_rate_at_alpha() -> None:
    """2,000 null experiments with 4 looks: the rejection rate stays within binomial noise of 5%."""
    experiments, alpha = 2000, 0.05
    rejected = sum(
        _run(0.0, seed=seed, max_replicates=20, looks=4).verdicts[0].holds for seed in range(experiments)
    )
    low, high = stats.binom.ppf([0.0005, 0.9995], experiments, alpha)
    assert rejected <= high, f"{rejected} of {experiments} null experiments rejected"
    # Peeking at every look with an unadjusted 5% test would reject far more often;
    # the design must not be so conservative that it rejects (almost) never.
    assert rejected >= stats.binom.ppf(0.0005, experiments, alpha / 3), rejected
    del low
