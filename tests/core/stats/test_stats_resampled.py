"""The corrected resampled t (Nadeau & Bengio 2003; Bouckaert & Frank 2004).

Known answers are the papers' formula worked here with numpy and scipy:
t = mean(d) / sqrt((1/J + n_test/n_train) var(d)), df = J - 1. The
simulation compares two equally good classifiers (nearest centroid on
feature 1 versus on feature 2 of a symmetric problem) over repeated 10-fold
cross-validation of many small data sets: the naive paired t rejects about
half of them, the corrected test about alpha.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.designs import cv, replicate_split
from pytest_crystallize.core.stats import compare_resampled, corrected_variance_factor
from pytest_crystallize.errors import StatisticsError

ALPHA = 0.05


def _folds_data(seed: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.80, 0.03, size=j)
    return base, base + rng.normal(0.01, 0.02, size=j)


def _by_hand(base: np.ndarray, treat: np.ndarray, ratio: float) -> tuple[float, float, float, float]:
    d = treat - base
    j = d.size
    se = math.sqrt((1 / j + ratio) * np.var(d, ddof=1))
    t = d.mean() / se
    half = stats.t.ppf(0.975, j - 1) * se
    return t, 2 * stats.t.sf(abs(t), j - 1), d.mean() - half, d.mean() + half


def test_repeated_kfold_matches_bouckaert_and_franks_formula():
    base, treat = _folds_data(1, 100)  # 10 x 10-fold: J = 100, n_test / n_train = 1/9
    t, p, low, high = _by_hand(base, treat, 1 / 9)
    c = compare_resampled(base, treat, test_train_ratio=cv(k=10, repeats=10).test_train_ratio,
                          test="corrected_repeated_kfold_t")
    assert c.test == "corrected_repeated_kfold_t"
    assert c.statistic == pytest.approx(t, rel=1e-12)
    assert c.p_value == pytest.approx(p, rel=1e-10)
    assert (c.ci_low, c.ci_high) == pytest.approx((low, high), rel=1e-12)
    # The naive paired t on the same folds is far more confident.
    assert stats.ttest_rel(treat, base).pvalue < c.p_value / 100


def test_holdout_ratio_and_one_sided_direction():
    base, treat = _folds_data(2, 30)
    ratio = 0.3 / 0.7  # 70/30 splits
    d = treat - base
    t = d.mean() / math.sqrt((1 / 30 + ratio) * d.var(ddof=1))
    c = compare_resampled(base, treat, test_train_ratio=ratio, direction="maximize")
    assert c.test == "corrected_resampled_t"
    assert c.p_value == pytest.approx(stats.t.sf(t, 29), rel=1e-10)


def test_margin_shifts_the_null():
    base, treat = _folds_data(3, 50)
    d = treat - base
    se = math.sqrt((1 / 50 + 1 / 4) * d.var(ddof=1))
    c = compare_resampled(base, treat, test_train_ratio=1 / 4, direction="no_worse", margin=0.02)
    assert c.p_value == pytest.approx(stats.t.sf((d.mean() + 0.02) / se, 49), rel=1e-10)


def test_interval_and_effect_size_agree_with_the_test():
    base, treat = _folds_data(4, 40)
    c = compare_resampled(base, treat, test_train_ratio=1 / 9)
    assert (c.ci_low > 0) == (c.p_value < ALPHA)
    d = treat - base
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))
    assert c.statistic == pytest.approx(c.effect_size / math.sqrt(corrected_variance_factor(40, 1 / 9)))


def test_more_folds_cannot_buy_power_past_the_corrections_floor():
    # var(d) (1/J + 1/9) never falls below var(d) / 9: a tiny effect stays unreachable.
    base, treat = _folds_data(5, 20)
    c = compare_resampled(base, treat, test_train_ratio=1 / 9, direction="maximize", mde=0.001)
    assert c.power < 0.2
    assert c.replicates_needed is None
    reachable = compare_resampled(base, treat, test_train_ratio=1 / 9, direction="maximize", mde=0.03)
    assert reachable.replicates_needed is not None


@pytest.mark.parametrize("ratio", [0, -1, float("inf"), "0.1"])
def test_a_bad_ratio_is_refused(ratio):
    with pytest.raises(StatisticsError, match="test_train_ratio"):
        compare_resampled([1.0, 2.0], [2.0, 3.0], test_train_ratio=ratio)


def test_one_resample_is_refused():
    with pytest.raises(StatisticsError, match="at least 2 resamples"):
        compare_resampled([1.0], [2.0], test_train_ratio=0.1)


def test_identical_learners_give_p_one():
    c = compare_resampled([0.8, 0.9, 0.85], [0.8, 0.9, 0.85], test_train_ratio=0.1)
    assert c.p_value == 1.0


# -- the simulation ---------------------------------------------------------------

DATA_SETS = 300
N = 100


def _fold_accuracies(test: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-centroid accuracy on one feature, for every fold at once (``test`` is folds x samples)."""
    train = (~test).astype(float)
    ones = (y == 1).astype(float)
    m1 = train @ (x * ones) / (train @ ones)
    m0 = train @ (x * (1 - ones)) / (train @ (1 - ones))
    predicted = np.abs(x[None, :] - m1[:, None]) < np.abs(x[None, :] - m0[:, None])
    return ((predicted == (y == 1)[None, :]) & test).sum(axis=1) / test.sum(axis=1)


def test_null_cv_comparisons_the_corrected_test_stays_near_alpha_where_the_naive_t_does_not():
    design = cv(k=10, repeats=10)
    test = np.zeros((design.replicates, N), dtype=bool)
    for r in range(design.replicates):
        test[r, replicate_split(design, N, r, master_seed=7)[1]] = True
    rng = np.random.default_rng(2004)
    corrected = naive = 0
    for _ in range(DATA_SETS):
        # Two features equally informative by symmetry: the two classifiers are equally good.
        y = rng.integers(0, 2, N)
        x = rng.normal(size=(N, 2)) + np.where(y == 1, 0.5, -0.5)[:, None]
        a, b = _fold_accuracies(test, x[:, 0], y), _fold_accuracies(test, x[:, 1], y)
        corrected += compare_resampled(a, b, test_train_ratio=design.test_train_ratio).p_value < ALPHA
        naive += stats.ttest_rel(b, a).pvalue < ALPHA
    se = math.sqrt(ALPHA * (1 - ALPHA) / DATA_SETS)
    assert corrected / DATA_SETS <= ALPHA + 3 * se
    assert naive / DATA_SETS > ALPHA + 3 * se
