"""Futility bounds of group-sequential plans: gsDesign's published tables, an independent
multivariate-normal computation of every exit probability, and a bounded simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import SequentialPlan
from pytest_crystallize.errors import StatisticsError


def _gsdesign_default(looks: int) -> SequentialPlan:
    # gsDesign(k=looks, test.type=4): one-sided alpha 0.025, 90% power, Hwang-Shih-DeCani spending,
    # gamma -4 for efficacy and -2 for futility, non-binding, equally spaced looks.
    return SequentialPlan(
        looks * 20, looks, 0.025, spending="hsd", futility="non_binding", futility_spending="hsd", power=0.9
    )


def test_published_gsdesign_three_looks() -> None:
    # gsDesign's own snapshot tests (tests/testthat/_snaps/independent-test-gsBoundSummary.md,
    # "Probability Of Success"): efficacy 3.0107, 2.5465, 1.9992; futility -0.2387, 0.9411, 1.9992.
    plan = _gsdesign_default(3)
    assert plan.boundaries == pytest.approx((3.0107, 2.5465, 1.9992), abs=1e-4)
    assert plan.futility_bounds == pytest.approx((-0.2387, 0.9411, 1.9992), abs=1e-4)


def test_published_gsdesign_five_looks() -> None:
    # The same snapshot file, "gsDesign Object, test.type > 1": k=5 at 20% steps.
    plan = _gsdesign_default(5)
    assert plan.boundaries == pytest.approx((3.2527, 2.9860, 2.6917, 2.3737, 2.0253), abs=1e-4)
    assert plan.futility_bounds == pytest.approx((-0.9016, -0.0367, 0.6945, 1.3603, 2.0253), abs=1e-4)
    # Its sample-size ratio N / fixed-design N is 1.1 at the last look: (drift / fixed drift)^2.
    fixed = stats.norm.isf(0.025) + stats.norm.isf(0.1)
    assert (plan.drift / fixed) ** 2 == pytest.approx(1.10, abs=0.005)


def _rectangle(lower: np.ndarray, upper: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    # An infinite limit stands 12 SDs out (mass below 1e-32): scipy's integrator mishandles some infinities.
    lower, upper = np.clip(lower, mean - 12, mean + 12), np.clip(upper, mean - 12, mean + 12)
    return float(stats.multivariate_normal.cdf(
        upper, mean, cov, lower_limit=lower, abseps=1e-8, releps=1e-8, maxpts=400_000, rng=np.random.default_rng(0),
    ))


def _exits(plan: SequentialPlan, theta: float, *, futility: bool) -> tuple[list[float], list[float]]:
    """P(stop for efficacy at look k), P(stop for futility at look k): Z_k ~ N(theta sqrt(t_k), 1),
    corr(Z_i, Z_j) = sqrt(t_i / t_j), each a rectangle probability of scipy's multivariate normal."""
    t = np.array(plan.schedule) / plan.max_replicates
    b = np.array(plan.boundaries)
    a = np.array(plan.futility_bounds) if futility else np.full(len(t), -np.inf)
    efficacy, futile = [], []
    for k in range(1, len(t) + 1):
        cov = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        mean = theta * np.sqrt(t[:k])
        low, high = a[:k].copy(), b[:k].copy()
        high[-1], low[-1] = np.inf, b[k - 1]
        efficacy.append(_rectangle(low, high, mean, cov))
        if k < len(t):
            low, high = a[:k].copy(), b[:k].copy()
            low[-1], high[-1] = -np.inf, a[k - 1]
            futile.append(_rectangle(low, high, mean, cov))
    return efficacy, futile


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock"])
def test_non_binding_exit_probabilities_match_multivariate_normal(spending: str) -> None:
    plan = SequentialPlan(60, (15, 30, 45, 60), 0.05, spending=spending, futility="non_binding", power=0.8)
    t = np.array(plan.schedule) / 60
    beta = [0.2 * math.expm1(2 * x) / math.expm1(2) for x in t]  # HSD(-2), written out
    # Under the design alternative, futility spends beta(t_k) by look k, and power is exactly 80%.
    efficacy, futile = _exits(plan, plan.drift, futility=True)
    assert np.cumsum(futile) == pytest.approx(beta[:-1], abs=1e-5)
    assert sum(efficacy) == pytest.approx(0.8, abs=1e-5)
    # Under the null, ignoring the futility stops, the efficacy bounds spend alpha as without futility.
    efficacy, _ = _exits(plan, 0.0, futility=False)
    assert np.cumsum(efficacy) == pytest.approx([plan.cumulative_alpha(k) for k in range(1, 5)], abs=1e-5)
    assert plan.boundaries == pytest.approx(SequentialPlan(60, (15, 30, 45, 60), 0.05, spending=spending).boundaries)


def test_binding_bounds_spend_alpha_on_the_paths_futility_leaves() -> None:
    plan = SequentialPlan(60, 4, 0.05, futility="binding", power=0.8)
    efficacy, _ = _exits(plan, 0.0, futility=True)
    assert np.cumsum(efficacy) == pytest.approx([plan.cumulative_alpha(k) for k in range(1, 5)], abs=1e-5)
    efficacy, _ = _exits(plan, plan.drift, futility=True)
    assert sum(efficacy) == pytest.approx(0.8, abs=1e-5)
    # Binding bounds are lower than non-binding ones after the first look: the reward for obeying them.
    loose = SequentialPlan(60, 4, 0.05, futility="non_binding", power=0.8)
    assert all(b < n for b, n in zip(plan.boundaries[1:], loose.boundaries[1:], strict=True))


def test_decide_names_futility() -> None:
    plan = SequentialPlan(40, 4, 0.05, futility="non_binding")
    assert plan.decide(2, 0.9) == "futility"
    assert plan.decide(2, plan.futility_p(2)) == "futility"
    assert plan.decide(2, 1e-6) == "reject"
    assert plan.decide(4, 0.9) == "stop"  # the last look: the bounds meet, no separate futility
    assert SequentialPlan(40, 4, 0.05).decide(2, 0.9) == "continue"  # no futility bounds


def test_two_sided_futility_is_on_the_absolute_z() -> None:
    plan = SequentialPlan(40, 4, 0.05, two_sided=True, futility="non_binding")
    assert plan.boundaries == pytest.approx(SequentialPlan(40, 4, 0.05, two_sided=True).boundaries)
    a = plan.futility_boundary(3)
    assert a > 0
    assert plan.futility_p(3) == pytest.approx(2 * stats.norm.sf(a))
    assert plan.decide(3, 0.95) == "futility"


def test_futility_options_are_checked() -> None:
    with pytest.raises(StatisticsError, match="unknown futility 'maybe'"):
        SequentialPlan(40, 4, futility="maybe")  # type: ignore[arg-type]
    with pytest.raises(StatisticsError, match="power must lie strictly between 0 and 1"):
        SequentialPlan(40, 4, futility="non_binding", power=1.0)
    with pytest.raises(StatisticsError, match="unknown futility_spending"):
        SequentialPlan(40, 4, futility="non_binding", futility_spending="linear")  # type: ignore[arg-type]


def _simulate(plan: SequentialPlan, effect: float, runs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paired experiments (normal differences with mean ``effect`` SDs), a one-sided paired t-test at
    each look, decided by the plan: (rejected, stopped for futility, replicates used) per run."""
    rng = np.random.default_rng(seed)
    diffs = rng.normal(effect, 1.0, size=(runs, plan.max_replicates))
    rejected = np.zeros(runs, dtype=bool)
    futile = np.zeros(runs, dtype=bool)
    used = np.full(runs, plan.max_replicates)
    open_ = np.ones(runs, dtype=bool)
    for look, n in enumerate(plan.schedule, start=1):
        p = stats.ttest_1samp(diffs[:, :n], 0.0, axis=1, alternative="greater").pvalue
        for i in np.flatnonzero(open_):
            decision = plan.decide(look, float(p[i]))
            if decision in ("reject", "futility", "stop"):
                rejected[i], futile[i], used[i], open_[i] = decision == "reject", decision == "futility", n, False
    return rejected, futile, used


def test_simulated_type_one_error_and_power_hold_what_the_design_promises() -> None:
    """2,000 null and 2,000 alternative experiments of 80 paired replicates in 4 looks."""
    runs, alpha = 2000, 0.05
    plan = SequentialPlan(80, 4, alpha, futility="non_binding", power=0.8)
    rejected, _, used = _simulate(plan, 0.0, runs, seed=1)
    high = stats.binom.ppf(0.999, runs, alpha)
    assert rejected.sum() <= high, f"{rejected.sum()} of {runs} null experiments rejected"
    assert used.mean() < 0.75 * plan.max_replicates  # futility ends most null experiments early
    # The design alternative: the drift the plan solved for, per replicate.
    effect = plan.drift / math.sqrt(plan.max_replicates)
    rejected, _, _ = _simulate(plan, effect, runs, seed=2)
    low = stats.binom.ppf(0.001, runs, plan.power)
    assert rejected.sum() >= low, f"power {rejected.mean():.3f} below the promised {plan.power}"
    # The fixed design of 80 replicates would have had this power; the loss is what the plan states.
    fixed = stats.norm.sf(stats.norm.isf(alpha) - plan.drift)
    assert fixed - plan.power < 0.06
