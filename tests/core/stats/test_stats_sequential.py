"""Group-sequential plans: boundaries against published tables and an independent
multivariate-normal computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import SPENDING, SequentialPlan
from pytest_crystallize.errors import StatisticsError


def test_single_look_is_the_fixed_test() -> None:
    assert SequentialPlan(50, 1, 0.05).boundary(1) == pytest.approx(stats.norm.ppf(0.95), rel=1e-6)
    two = SequentialPlan(50, 1, 0.05, two_sided=True)
    assert two.boundary(1) == pytest.approx(stats.norm.ppf(0.975), rel=1e-6)
    assert two.nominal_alpha(1) == pytest.approx(0.05, rel=1e-6)


def test_first_boundary_closed_form() -> None:
    # Lan & DeMets (1983): alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)); the first look spends alpha(t1).
    plan = SequentialPlan(100, 4, 0.05)
    spent = 2 - 2 * stats.norm.cdf(stats.norm.ppf(0.975) / math.sqrt(0.25))
    assert plan.boundary(1) == pytest.approx(stats.norm.isf(spent), rel=1e-6)
    assert plan.cumulative_alpha(1) == pytest.approx(spent, rel=1e-6)
    assert plan.cumulative_alpha(4) == pytest.approx(0.05, rel=1e-12)


def test_published_obrien_fleming_two_sided_five_looks() -> None:
    # Lan-DeMets O'Brien-Fleming-type, two-sided alpha 0.05, 5 equally spaced looks, as
    # tabulated by ldbounds / gsDesign (Reboussin et al. 2000, Control. Clin. Trials 21:190).
    plan = SequentialPlan(100, 5, 0.05, two_sided=True)
    assert plan.boundaries == pytest.approx((4.8769, 3.3570, 2.6803, 2.2898, 2.0310), abs=2e-4)


def test_published_pocock_type_two_sided_five_looks() -> None:
    # Lan-DeMets Pocock-type spending, same design (ldbounds, iuse=2).
    plan = SequentialPlan(100, 5, 0.05, spending="pocock", two_sided=True)
    assert plan.boundaries == pytest.approx((2.4380, 2.4268, 2.4102, 2.3966, 2.3860), abs=2e-4)


def test_published_one_sided_four_looks() -> None:
    # SeqBounds.jl README: one-sided O'Brien-Fleming-type, alpha 0.05, t = 0.25 .. 1.
    plan = SequentialPlan(100, 4, 0.05)
    assert plan.boundaries == pytest.approx((3.74955, 2.53993, 2.01604, 1.72014), abs=2e-4)


@pytest.mark.parametrize("spending", SPENDING)
@pytest.mark.parametrize("two_sided", [False, True])
def test_crossing_probabilities_match_multivariate_normal(spending: str, two_sided: bool) -> None:
    # Independent check: Z_k at information t_k has corr(Z_i, Z_j) = sqrt(t_i / t_j); the
    # probability of crossing by look k must equal the alpha spent by then.
    plan = SequentialPlan(60, (10, 25, 40, 60), 0.05, spending=spending, two_sided=two_sided)
    t = np.array(plan.schedule) / 60
    for k in range(1, 5):
        cov = np.sqrt(np.minimum.outer(t[:k], t[:k]) / np.maximum.outer(t[:k], t[:k]))
        upper = np.array(plan.boundaries[:k])
        lower = -upper if two_sided else np.full(k, -np.inf)
        inside = stats.multivariate_normal.cdf(
            upper,
            np.zeros(k),
            cov,
            lower_limit=lower,
            abseps=1e-7,
            releps=1e-7,
            maxpts=200_000,
            rng=np.random.default_rng(0),
        )
        crossed = 1 - inside  # probability of crossing some boundary by look k
        # Genz's quasi-Monte Carlo is good to a few 1e-6 in four dimensions at this maxpts.
        assert crossed == pytest.approx(plan.cumulative_alpha(k), abs=5e-6)


def test_decide() -> None:
    plan = SequentialPlan(40, 4, 0.05)
    assert plan.schedule == (10, 20, 30, 40)
    assert plan.look_at(20) == 2
    assert plan.look_at(21) is None
    assert plan.decide(1, 0.01) == "continue"  # OBF: early looks need overwhelming evidence
    assert plan.decide(1, 1e-5) == "reject"
    assert plan.decide(4, plan.nominal_alpha(4)) == "reject"
    assert plan.decide(4, 0.2) == "stop"
    assert plan.nominal_alpha(4) < 0.05


def test_errors() -> None:
    with pytest.raises(StatisticsError, match="numbered from 1"):
        SequentialPlan(40, 4).boundary(0)
    with pytest.raises(StatisticsError, match="increasing replicate counts ending at"):
        SequentialPlan(40, (10, 30, 20, 40))
    with pytest.raises(StatisticsError, match="unknown spending"):
        SequentialPlan(40, 4, spending="haybittle")
    with pytest.raises(StatisticsError, match="p_value must lie"):
        SequentialPlan(40, 4).decide(1, 1.5)
