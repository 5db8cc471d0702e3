"""Futility stops: replicates='auto' with futility=True ends hopeless hypotheses early and says so."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import ConfigurationError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report.text import summarize, summary_lines
from pytest_crystallize.core.stats import SequentialPlan


def _independent(ctx):
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))


def _run(shift: float, *, seed: int = 1, direction: str = "maximize", margin: float | None = None, **kw):
    options = {"max_replicates": 100, "looks": 5, "futility": True, **kw}
    return run_experiment(
        _independent, seed=seed, replicates="auto", treatments=[Treatment("t", {"shift": shift})],
        hypotheses=[hypothesis("x", direction, test="welch_t", margin=margin)], **options,
    )


def test_a_hopeless_hypothesis_stops_for_futility_and_the_verdict_says_so() -> None:
    result = _run(-0.5)
    verdict = result.verdicts[0]
    seq = verdict.details["sequential"]
    assert not verdict.holds
    assert seq["stopped"] == "futility"
    assert verdict.reason.startswith(f"stopped for futility at look {seq['look']} of 5")
    assert result.provenance.replicates == seq["replicates"] < 100
    # The p-value at that look is the plain Welch test, above the plan's futility threshold.
    _, base = result.select("x", "baseline")
    _, treat = result.select("x", "t")
    p = stats.ttest_ind(treat, base, equal_var=False, alternative="greater").pvalue
    plan = SequentialPlan(100, 5, 0.05, futility="non_binding")
    assert verdict.p_value == pytest.approx(p, rel=1e-9)
    assert p >= plan.futility_p(seq["look"])
    assert verdict.details["design"] == "group-sequential design (O'Brien-Fleming spending, non-binding futility)"


def test_a_clear_effect_still_stops_for_efficacy() -> None:
    verdict = _run(1.5).verdicts[0]
    assert verdict.holds
    assert verdict.details["sequential"]["stopped"] == "efficacy"


def test_without_futility_a_hopeless_hypothesis_runs_to_the_last_look() -> None:
    result = _run(-0.5, futility=False)
    assert result.provenance.replicates == 100
    assert result.verdicts[0].details["design"] == "group-sequential design (O'Brien-Fleming spending)"


def test_equivalence_hypotheses_never_stop_for_futility() -> None:
    result = _run(3.0, direction="equivalent", margin=0.1)
    assert result.provenance.replicates == 100
    assert result.verdicts[0].details["sequential"]["futility"] == "none"


def test_the_verdict_line_names_the_design_and_the_futility_stop() -> None:
    result = _run(-0.5)
    look = result.verdicts[0].details["sequential"]["look"]
    line = next(line for line in summary_lines(summarize(result)) if "vs baseline" in line)
    assert "group-sequential design (O'Brien-Fleming spending, non-binding futility), welch_t: " in line
    assert line.endswith(f"stopped for futility at look {look} of 5"), line


def test_a_fixed_design_says_so() -> None:
    result = run_experiment(
        _independent, replicates=10, treatments=[Treatment("t", {"shift": 1.0})],
        hypotheses=[hypothesis("x", "maximize")],
    )
    assert result.verdicts[0].details["design"] == "fixed design"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"futility": "sometimes"}, "futility must be True, False, 'non_binding' or 'binding'"),
        ({"futility_spending": "linear"}, "unknown futility_spending 'linear'"),
        ({"power": 1.5}, "power must be a number strictly between 0 and 1"),
    ],
)
def test_bad_futility_options_name_the_experiment(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        run_experiment(
            _independent, name="seq", replicates="auto", max_replicates=40, treatments=[Treatment("t")],
            hypotheses=[hypothesis("x", "maximize")], **options,
        )
    assert "experiment 'seq'" in str(info.value)


def test_futility_keeps_the_false_positive_rate_and_saves_replicates_under_the_null() -> None:
    """250 null experiments end to end: rejections within binomial noise of alpha, most stopped early."""
    experiments, alpha = 250, 0.05
    results = [_run(0.0, seed=seed, max_replicates=20, looks=4) for seed in range(experiments)]
    rejected = sum(r.verdicts[0].holds for r in results)
    assert rejected <= stats.binom.ppf(0.999, experiments, alpha), rejected
    used = np.mean([r.provenance.replicates for r in results])
    assert used < 0.8 * 20, used
