"""Guards: too few values, small expected counts, and users' tests on degenerate data."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_crystallize import StatisticsError
from pytest_crystallize.core.stats import TESTS, compare

BINARY = {"fisher_exact", "boschloo", "chi_square", "mcnemar", "farrington_manning", "tango"}
MARGIN_ONLY = {"farrington_manning", "tango"}


@pytest.mark.parametrize("test", [t for t in TESTS if t != "auto"])
def test_one_value_per_condition_is_refused_with_the_minimum_or_tested_without_crashing(test: str) -> None:
    baseline, treatment = ([0.0], [1.0]) if test in BINARY else ([0.3], [1.7])
    direction = "no_worse" if test in MARGIN_ONLY else "maximize"
    outcome = _outcome(lambda: compare(np.array(baseline), np.array(treatment), test=test, direction=direction,
                                       paired=True, margin=0.1 if test in MARGIN_ONLY else None))
    if isinstance(outcome, StatisticsError):
        assert "at least" in str(outcome), str(outcome)
    else:
        assert 0.0 <= outcome.p_value <= 1.0


def _outcome(call):
    """The comparison, or the StatisticsError it raised (any other exception propagates)."""
    try:
        return call()
    except StatisticsError as exc:
        return exc


def test_chi_square_refuses_tables_with_small_expected_counts() -> None:
    with pytest.raises(StatisticsError, match=r"expected count .* at least 5.*fisher_exact"):
        compare(np.array([0.0, 0.0]), np.array([1.0, 1.0]), test="chi_square", direction="maximize")


def test_chi_square_runs_when_expected_counts_are_large_enough() -> None:
    from scipy import stats

    base = np.array([1.0] * 20 + [0.0] * 30)
    treat = np.array([1.0] * 32 + [0.0] * 18)
    c = compare(base, treat, test="chi_square", direction="two-sided")
    table = [[32, 18], [20, 30]]
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert c.p_value == pytest.approx(expected, rel=1e-9)


def test_a_users_test_is_called_even_when_the_shift_is_constant() -> None:
    calls = []

    def mine(baseline, treatment, alternative):
        calls.append((len(baseline), alternative))
        return 0.9

    base = np.linspace(0.0, 1.0, 10)
    c = compare(base, base + 0.001, test=mine, direction="maximize", paired=True)
    assert calls == [(10, "greater")]
    assert c.p_value == 0.9
    assert c.test == "mine"


def test_a_users_test_returning_garbage_on_degenerate_data_is_an_error() -> None:
    def broken(baseline, treatment, alternative):
        return "nope"

    base = np.linspace(0.0, 1.0, 10)
    with pytest.raises(StatisticsError, match="user test 'broken' returned 'nope'"):
        compare(base, base + 0.001, test=broken, direction="maximize", paired=True)
