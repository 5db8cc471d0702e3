"""direction="best" and covariate= through run_experiment: the verdicts a user reads."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import statsmodels.api as sm

from pytest_crystallize import HypothesisError, Treatment, grid, hypothesis, run_experiment
from pytest_crystallize.core.report.text import summarize, summary_lines


def _quality(ctx):
    # Common random numbers: the replicate's difficulty is shared by every condition.
    difficulty = np.random.default_rng(ctx.seed).normal(0, 1)
    noise = np.random.default_rng([ctx.seed, zlib.crc32(ctx.condition.encode())]).normal(0, 0.2)
    ctx.metrics.add("quality", difficulty + ctx.get("gain", 0.0) + noise)


def test_best_names_the_winner_with_simultaneous_intervals():
    treatments = [Treatment("small", {"gain": 0.1}), Treatment("large", {"gain": 1.0})]
    result = run_experiment(_quality, replicates=20, treatments=treatments,
                            hypotheses=[hypothesis("quality", direction="best")])
    (verdict,) = result.verdicts
    assert verdict.holds
    assert verdict.treatment == "large"
    assert verdict.test == "mcb"
    assert verdict.details["candidates"] == ["large"]
    assert set(verdict.details["conditions"]) == {"baseline", "small", "large"}  # baseline included
    low, high = verdict.details["conditions"]["large"]["low"], verdict.details["conditions"]["large"]["high"]
    assert low == 0.0 < high
    assert "'large' is best with 95% simultaneous confidence" in verdict.reason
    lines = summary_lines(summarize(result))
    assert any(line.startswith("  PASS 'quality best': 'large' is best: large [+0, +") and "(mcb, 95% simultaneous)"
               in line for line in lines), lines


def test_best_that_cannot_be_separated_names_every_candidate_and_fails():
    treatments = [Treatment("a", {"gain": 0.5}), Treatment("b", {"gain": 0.5})]
    result = run_experiment(_quality, replicates=10, treatments=treatments,
                            hypotheses=[hypothesis("quality", direction="best")])
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert set(verdict.details["candidates"]) == {"a", "b"}
    assert "cannot separate" in verdict.reason
    line = next(line for line in summary_lines(summarize(result)) if "'quality best'" in line)
    assert line.startswith("  FAIL 'quality best': cannot separate ")
    assert "'a'" in line
    assert "'b'" in line


def test_best_within_a_margin_and_lower_is_better():
    treatments = grid(gain=[0.0, -0.05, -1.0])  # lower is better: -1.0 wins clearly
    result = run_experiment(_quality, replicates=20, treatments=treatments,
                            hypotheses=[hypothesis("quality", direction="best", better="lower"),
                                        hypothesis("quality", direction="best", better="lower", margin=2.0)])
    strict, loose = result.verdicts
    assert strict.treatment == "gain=-1.0"
    assert strict.holds
    assert loose.holds
    assert "or within 2 of the best" in loose.reason


def test_best_refuses_what_it_cannot_do():
    with pytest.raises(HypothesisError, match="use test='auto'"):
        hypothesis("quality", direction="best", test="welch_t").check("here")
    with pytest.raises(Exception, match="needs a fixed number of replicates"):
        run_experiment(_quality, replicates="auto", max_replicates=20, treatments=[Treatment("a", {"gain": 1})],
                       hypotheses=[hypothesis("quality", direction="best")])


def _with_covariate(ctx):
    # Each condition draws its own evaluation set; its difficulty is measured before the treatment acts.
    rng = np.random.default_rng([ctx.seed, zlib.crc32(ctx.condition.encode())])
    difficulty = rng.normal(0, 1)
    ctx.metrics.add("difficulty", difficulty)
    ctx.metrics.add("score", 2 * difficulty + ctx.get("gain", 0.0) + rng.normal(0, 0.3))


def test_covariate_adjustment_reports_the_variance_reduction_and_matches_statsmodels():
    result = run_experiment(_with_covariate, replicates=30, treatments=[Treatment("better", {"gain": 0.4})],
                            hypotheses=[hypothesis("score", direction="maximize", covariate="difficulty")])
    (verdict,) = result.verdicts
    assert verdict.test == "covariate_adjusted_t"
    assert verdict.details["variance_reduction"] > 0.8
    y_b, y_t = (result.select("score", c)[1] for c in ("baseline", "better"))
    x_b, x_t = (result.select("difficulty", c)[1] for c in ("baseline", "better"))
    fit = sm.OLS(y_t - y_b, np.column_stack([np.ones(30), x_t - x_b])).fit(cov_type="HC2")
    assert verdict.difference == pytest.approx(fit.params[0], rel=1e-10)
    assert verdict.holds
    line = next(line for line in summary_lines(summarize(result)) if "better vs baseline" in line)
    assert "covariate_adjusted_t (covariate 'difficulty': variance -" in line


def test_a_missing_covariate_fails_the_verdict_naming_the_replicates():
    def partly(ctx):
        ctx.metrics.add("score", float(ctx.rng.random()) + ctx.get("gain", 0.0))
        if ctx.replicate != 3:
            ctx.metrics.add("pre", float(ctx.rng.random()))

    result = run_experiment(partly, replicates=8, treatments=[Treatment("t", {"gain": 1.0})],
                            hypotheses=[hypothesis("score", covariate="pre")])
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert "covariate 'pre' is missing in condition 'baseline', replicate(s) 3" in verdict.reason


@pytest.mark.parametrize(
    ("options", "match"),
    [({"covariate": "score"}, "is the metric itself"), ({"covariate": "pre", "test": "welch_t"}, "use test='auto'"),
     ({"test": "covariate_adjusted_t"}, "needs covariate=")],
)
def test_bad_covariate_hypotheses_are_refused(options, match):
    with pytest.raises(HypothesisError, match=match):
        hypothesis("score", **options).check("experiment 'x'")
