"""Calibration: under the null, tests reject at most alpha of the time.

Each scenario simulates SIMULATIONS null experiments in one vectorised draw and
runs compare() on every one. The observed rejection rate must lie inside the
99.9% binomial interval around alpha (or below its upper end for exact tests
of discrete data, which are conservative by construction).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import SequentialPlan, adjust_pvalues, compare

ALPHA = 0.05
SIMULATIONS = 2000
LOW, HIGH = (stats.binom.ppf(q, SIMULATIONS, ALPHA) / SIMULATIONS for q in (0.0005, 0.9995))


def _rate(rejections: list[bool]) -> float:
    return float(np.mean(rejections))


def test_auto_welch_unequal_variances() -> None:
    rng = np.random.default_rng(101)
    base = rng.normal(5.0, 1.0, size=(SIMULATIONS, 12))
    treat = rng.normal(5.0, 3.0, size=(SIMULATIONS, 20))
    results = [compare(b, t) for b, t in zip(base, treat, strict=True)]
    assert {r.test for r in results} == {"welch_t"}
    assert LOW <= _rate([r.p_value <= ALPHA for r in results]) <= HIGH


def test_auto_paired_t_one_sided_with_common_random_numbers() -> None:
    rng = np.random.default_rng(202)
    shared = rng.normal(0.0, 5.0, size=(SIMULATIONS, 15))  # the replicate's seed effect
    base = shared + rng.normal(size=(SIMULATIONS, 15))
    treat = shared + rng.normal(size=(SIMULATIONS, 15))
    results = [compare(b, t, paired=True, direction="maximize") for b, t in zip(base, treat, strict=True)]
    assert {r.test for r in results} == {"paired_t"}
    assert LOW <= _rate([r.p_value <= ALPHA for r in results]) <= HIGH


@pytest.mark.parametrize("paired", [False, True])
def test_auto_exact_tests_on_binary_outcomes(paired: bool) -> None:
    rng = np.random.default_rng(103 + paired)
    base = (rng.random((SIMULATIONS, 40)) < 0.4).astype(float)
    treat = (rng.random((SIMULATIONS, 40)) < 0.4).astype(float)
    results = [compare(b, t, paired=paired) for b, t in zip(base, treat, strict=True)]
    assert {r.test for r in results} == {"mcnemar" if paired else "fisher_exact"}
    assert _rate([r.p_value <= ALPHA for r in results]) <= HIGH  # exact tests are conservative


def test_holm_controls_the_familywise_rate() -> None:
    rng = np.random.default_rng(104)
    hypotheses = 4
    base = rng.normal(size=(SIMULATIONS, 20))
    treats = rng.normal(size=(hypotheses, SIMULATIONS, 20))
    any_rejected, any_uncorrected = [], []
    for i in range(SIMULATIONS):
        pvalues = [compare(base[i], treats[h, i], paired=True).p_value for h in range(hypotheses)]
        any_rejected.append(bool((adjust_pvalues(pvalues, "holm") <= ALPHA).any()))
        any_uncorrected.append(min(pvalues) <= ALPHA)
    assert _rate(any_rejected) <= HIGH
    # The check has teeth: without a correction the familywise rate is far above alpha.
    assert _rate(any_uncorrected) > HIGH


def test_sequential_plan_keeps_alpha_over_four_looks() -> None:
    rng = np.random.default_rng(105)
    plan = SequentialPlan(max_replicates=60, looks=4, alpha=ALPHA)
    base = rng.normal(size=(SIMULATIONS, 60))
    treat = rng.normal(size=(SIMULATIONS, 60))
    rejected = []
    naive = []
    for b, t in zip(base, treat, strict=True):
        decisions = []
        pvalues = []
        for look, n in enumerate(plan.schedule, start=1):
            p = compare(b[:n], t[:n], paired=True, direction="maximize").p_value
            pvalues.append(p)
            decisions.append(plan.decide(look, p))
            if decisions[-1] != "continue":
                break
        rejected.append(decisions[-1] == "reject")
        naive.append(min(pvalues) <= ALPHA)
    assert LOW <= _rate(rejected) <= HIGH
    # Peeking at every look without the plan inflates the error rate.
    assert _rate(naive) > HIGH
