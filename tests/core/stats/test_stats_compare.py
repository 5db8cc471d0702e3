"""compare(): choosing tests, directions, degenerate data, bad input, results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import DIRECTIONS, TESTS, Comparison, compare
from pytest_crystallize.errors import CrystallizeError, StatisticsError

REL = 1e-6
RNG = np.random.default_rng(20240601)
BASE = RNG.normal(10.0, 2.0, size=30)
TREAT = BASE + RNG.normal(0.8, 1.0, size=30)


def test_public_names() -> None:
    assert DIRECTIONS == ("maximize", "minimize", "two-sided", "no_worse", "equivalent")
    assert "auto" in TESTS
    assert {"welch_t", "student_t", "paired_t", "mann_whitney", "fisher_exact", "mcnemar"} <= set(TESTS)


@pytest.mark.parametrize(
    ("base", "treat", "paired", "expected"),
    [
        (BASE, TREAT, False, "welch_t"),
        (BASE, TREAT, True, "paired_t"),
        (np.array([0.0, 1, 1, 0]), np.array([1.0, 1, 1, 0]), False, "fisher_exact"),
        (np.array([0.0, 1, 1, 0]), np.array([1.0, 1, 1, 0]), True, "mcnemar"),
        (np.array([0.0, 1, 2]), np.array([1.0, 1, 1]), False, "welch_t"),
    ],
)
def test_auto_rule(base: np.ndarray, treat: np.ndarray, paired: bool, expected: str) -> None:
    got = compare(base, treat, paired=paired)
    assert got.test == expected
    assert got.test_reason
    assert "\n" not in got.test_reason


def test_unpaired_test_ignores_pairing() -> None:
    got = compare(BASE, TREAT, paired=True, test="welch_t")
    assert not got.paired
    assert got.effect_size_name == "hedges_g"


def test_paired_test_without_pairs_is_an_error() -> None:
    with pytest.raises(StatisticsError, match="paired=True"):
        compare(BASE, TREAT, test="paired_t")


def test_unknown_test_and_direction() -> None:
    with pytest.raises(StatisticsError, match="unknown test 'ttest'"):
        compare(BASE, TREAT, test="ttest")
    with pytest.raises(StatisticsError, match="unknown direction"):
        compare(BASE, TREAT, direction="up")


def test_direction_ok_and_one_sided_p() -> None:
    up = compare(BASE, TREAT, paired=True, direction="maximize")
    down = compare(BASE, TREAT, paired=True, direction="minimize")
    both = compare(BASE, TREAT, paired=True)
    assert up.direction_ok
    assert not down.direction_ok
    assert both.direction_ok
    assert up.p_value == pytest.approx(both.p_value / 2, rel=REL)
    assert down.p_value == pytest.approx(1 - up.p_value, rel=REL)


def test_descriptive_fields() -> None:
    got = compare(BASE, TREAT)
    assert got.n_baseline == got.n_treatment == 30
    assert got.mean_baseline == pytest.approx(BASE.mean(), rel=REL)
    assert got.difference == pytest.approx(TREAT.mean() - BASE.mean(), rel=REL)
    assert got.relative_difference == pytest.approx(got.difference / abs(BASE.mean()), rel=REL)
    assert math.isnan(got.odds_ratio)
    assert math.isnan(got.power)
    assert got.replicates_needed is None


def test_to_dict_is_plain_json() -> None:
    got = compare(BASE, TREAT)
    data = got.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["odds_ratio"] is None
    assert data["test"] == "welch_t"
    assert set(data) == set(Comparison.__dataclass_fields__)


def test_comparison_is_frozen() -> None:
    got = compare(BASE, TREAT)
    with pytest.raises(AttributeError):
        got.p_value = 0.0  # type: ignore[misc]


class TestDegenerate:
    def test_identical_constants(self) -> None:
        got = compare(np.full(10, 3.0), np.full(10, 3.0), direction="maximize")
        assert got.p_value == 1.0
        assert got.degenerate == "no variation: both conditions gave the same constant value"
        assert not got.direction_ok

    def test_identical_constant_not_exactly_representable(self) -> None:
        # The mean of ten 0.1s is not exactly 0.1: no-variation must still be seen.
        got = compare(np.full(10, 0.1), np.full(10, 0.1), paired=True)
        assert got.p_value == 1.0
        assert got.degenerate == "no variation: both conditions gave the same constant value"

    def test_different_constants_use_label_shuffle(self) -> None:
        got = compare(np.full(4, 2.0), np.full(5, 3.0), direction="maximize")
        assert got.p_value == pytest.approx(1 / math.comb(9, 4), rel=REL)
        assert "always 2" in got.degenerate
        two = compare(np.full(4, 2.0), np.full(5, 3.0))
        assert two.p_value == pytest.approx(2 / math.comb(9, 4), rel=REL)
        wrong = compare(np.full(4, 2.0), np.full(5, 3.0), direction="minimize")
        assert wrong.p_value == 1.0

    def test_constant_paired_shift_uses_sign_flip(self) -> None:
        base = np.arange(12.0)
        got = compare(base, base + 0.5, paired=True, direction="maximize")
        assert got.p_value == pytest.approx(0.5**12, rel=REL)
        assert "paired differences" in got.degenerate
        assert math.isnan(got.effect_size)
        big = compare(np.arange(2000.0), np.arange(2000.0) + 1, paired=True, direction="maximize")
        assert big.p_value == 0.0

    def test_rank_test_on_constants(self) -> None:
        got = compare(np.full(6, 1.5), np.full(6, 1.5), test="mann_whitney")
        assert got.p_value == 1.0
        assert not math.isnan(got.p_value)


class TestNonFinite:
    def test_raise_names_side_and_positions(self) -> None:
        treat = TREAT.copy()
        treat[[3, 17]] = [np.nan, np.inf]
        with pytest.raises(StatisticsError, match="treatment has 2 non-finite") as info:
            compare(BASE, treat)
        assert info.value.side == "treatment"
        assert info.value.positions == (3, 17)
        assert isinstance(info.value, CrystallizeError)
        assert isinstance(info.value, ValueError)

    def test_omit_unpaired_drops_each_side(self) -> None:
        base = BASE.copy()
        base[0] = np.nan
        got = compare(base, TREAT, nan_policy="omit")
        assert (got.n_baseline, got.n_treatment) == (29, 30)
        ref = stats.ttest_ind(TREAT, BASE[1:], equal_var=False)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_omit_paired_drops_pairs(self) -> None:
        base, treat = BASE.copy(), TREAT.copy()
        base[0], treat[5] = np.nan, np.nan
        got = compare(base, treat, paired=True, nan_policy="omit")
        assert got.n_baseline == got.n_treatment == 28
        keep = np.ones(30, bool)
        keep[[0, 5]] = False
        ref = stats.ttest_rel(TREAT[keep], BASE[keep])
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)

    def test_unknown_policy(self) -> None:
        with pytest.raises(StatisticsError, match="nan_policy"):
            compare(BASE, TREAT, nan_policy="propagate")


def test_too_few_values_says_the_minimum() -> None:
    with pytest.raises(StatisticsError, match="at least 2"):
        compare(np.array([1.0]), np.array([2.0, 3.0]), test="welch_t")
    with pytest.raises(StatisticsError, match="at least 2 pairs"):
        compare(np.array([1.0]), np.array([2.0]), paired=True)


def test_paired_lengths_must_match() -> None:
    with pytest.raises(StatisticsError, match="equal lengths"):
        compare(BASE, TREAT[:-1], paired=True)


class TestUserCallable:
    def test_float_result(self) -> None:
        seen: list[str] = []

        def my_test(base: np.ndarray, treat: np.ndarray, alternative: str) -> float:
            seen.append(alternative)
            return float(stats.ttest_ind(treat, base, alternative=alternative).pvalue)

        got = compare(BASE, TREAT, test=my_test, direction="maximize")
        assert got.test == "my_test"
        assert seen == ["greater"]
        ref = stats.ttest_ind(TREAT, BASE, alternative="greater")
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert math.isnan(got.statistic)

    def test_scipy_result_object(self) -> None:
        def brunner(base: np.ndarray, treat: np.ndarray, alternative: str) -> object:
            return stats.brunnermunzel(treat, base, alternative=alternative)

        got = compare(BASE, TREAT, test=brunner)
        ref = stats.brunnermunzel(TREAT, BASE)
        assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
        assert got.statistic == pytest.approx(ref.statistic, rel=REL)

    def test_mapping_result(self) -> None:
        def fixed(base: np.ndarray, treat: np.ndarray, alternative: str) -> Mapping[str, float]:
            return {"pvalue": 0.25, "statistic": 1.5}

        got = compare(BASE, TREAT, test=fixed)
        assert (got.p_value, got.statistic) == (0.25, 1.5)

    def test_bad_result(self) -> None:
        def broken(base: np.ndarray, treat: np.ndarray, alternative: str) -> object:
            return "significant"

        with pytest.raises(StatisticsError, match="'broken' returned 'significant'"):
            compare(BASE, TREAT, test=broken)
