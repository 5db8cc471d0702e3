"""Multiple comparisons with the best (Hsu's constrained MCB intervals).

Known answers: Hsu's interval formula worked here with per-pair standard
errors and the Bonferroni t quantile; with two conditions MCB is the
one-sided t interval; against Hsu's exact Dunnett constant (scipy's
``dunnett``, equal sizes and a common variance) our intervals are wider,
but by less than 10%. Simulations: the simultaneous coverage holds with one
best just above the others (every comparison with the best active), paired
with unequal variances and unpaired alike, and with a clear winner.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import compare_best
from pytest_crystallize.errors import StatisticsError

ALPHA = 0.05


def _hsu_by_hand(values: dict[str, np.ndarray], paired: bool) -> dict[str, tuple[float, float]]:
    """Hsu's constrained MCB intervals, c_ij = t_{1-alpha/(k-1)}(df_ij) se_ij, computed from the formula."""
    names = list(values)
    k = len(names)
    out = {}
    for i in names:
        lows, highs = [], []
        for j in names:
            if i == j:
                continue
            a, b = values[i], values[j]
            if paired:
                d = a - b
                se, df = d.std(ddof=1) / math.sqrt(d.size), d.size - 1
            else:
                va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
                se = math.sqrt(va + vb)
                df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
            c = stats.t.ppf(1 - ALPHA / (k - 1), df) * se
            lows.append(a.mean() - b.mean() - c)
            highs.append(a.mean() - b.mean() + c)
        out[i] = (min(0.0, min(lows)), max(0.0, min(highs)))
    return out


def _paired_values(seed: int, means: list[float], n: int = 25) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 2, n)
    return {f"c{i}": shared + m + rng.normal(0, 0.5 + 0.3 * i, n) for i, m in enumerate(means)}


@pytest.mark.parametrize("paired", [True, False])
def test_intervals_match_hsus_formula(paired):
    values = _paired_values(1, [0.0, 0.3, 0.9, 1.0])
    if not paired:
        values["c1"] = values["c1"][:18]
    best = compare_best(values, paired=paired)
    for name, (low, high) in _hsu_by_hand(values, paired).items():
        assert best.interval(name) == pytest.approx((low, high), abs=1e-12)
    assert best.winner == "c3"
    assert best.candidates == tuple(n for n in values if _hsu_by_hand(values, paired)[n][1] > 0)


def test_two_conditions_give_the_one_sided_t_interval():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1, 20), rng.normal(0.0, 1, 20)
    best = compare_best({"a": a, "b": b}, paired=True)
    d = a - b
    half = stats.t.ppf(0.95, 19) * d.std(ddof=1) / math.sqrt(20)
    assert best.interval("a") == pytest.approx((min(0, d.mean() - half), max(0, d.mean() + half)))
    # ... and the p-value is the one-sided paired t's.
    assert best.p_value == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)


def test_hsus_dunnett_constant_is_within_ten_percent_of_ours():
    # Equal sizes, common variance, independent samples: Hsu's exact constant is the
    # one-sided Dunnett quantile, which scipy's dunnett gives through its interval.
    rng = np.random.default_rng(3)
    samples = [rng.normal(0, 1, 30) for _ in range(5)]
    dunnett = stats.dunnett(*samples[1:], control=samples[0], alternative="greater")
    low = dunnett.confidence_interval(1 - ALPHA).low
    pooled_sd = math.sqrt(np.mean([s.var(ddof=1) for s in samples]))
    hsu_constant = (samples[1].mean() - samples[0].mean() - low[0]) / (pooled_sd * math.sqrt(2 / 30))
    best = compare_best({f"c{i}": s for i, s in enumerate(samples)}, paired=False)
    assert hsu_constant < best.critical < 1.1 * hsu_constant


def test_the_decision_agrees_with_the_interval():
    values = _paired_values(4, [0.0, 0.0, 1.5])
    best = compare_best(values, paired=True)
    assert best.identified
    assert best.p_value < ALPHA
    assert best.interval("c2")[0] == 0.0
    assert best.candidates == ("c2",)
    rng = np.random.default_rng(5)
    shared = rng.normal(0, 1, 20)
    close = {"c0": shared, "c1": shared + 1.0 + rng.normal(0, 0.5, 20)}
    close["c2"] = close["c1"] + rng.normal(0, 0.5, 20) - 0.05
    tied = compare_best(close, paired=True)
    assert not tied.identified
    assert tied.p_value >= ALPHA
    assert set(tied.candidates) == {"c1", "c2"}
    # Within a margin of the best: the same data, a claim the data support.
    near = compare_best(close, paired=True, margin=0.5)
    assert near.identified
    assert near.interval(near.winner)[0] > -0.5
    assert set(near.near_best) >= {near.winner}


@pytest.mark.parametrize(("n", "identified"), [(2, False), (6, True)])
def test_a_winner_without_spread_gets_the_exact_sign_flip_bound(n, identified):
    """Constant paired differences have no t statistic. The exact sign-flip test of n differences
    all +1 has one-sided p = 2^-n (only the all-positive sign pattern is as extreme); against the
    two others, MCB's p is 2 x 2^-n: 0.5 with 2 replicates, 1/32 with 6. A t-based p of 0 would
    have named a winner from two replicates."""
    c = compare_best({"a": [1.0] * n, "b": [0.0] * n, "c": [0.0] * n}, paired=True)
    assert c.p_value == pytest.approx(2 * 0.5**n)
    assert c.identified is identified
    assert c.winner == "a"


def test_two_constant_conditions_get_the_exact_label_shuffle_bound():
    """Unpaired, 3 values each, every a above every b: 1 of the C(6, 3) = 20 labellings is as
    extreme, p = 0.05, which is not below alpha 0.05."""
    c = compare_best({"a": [1.0, 1.0, 1.0], "b": [0.0, 0.0, 0.0]}, paired=False)
    assert c.p_value == pytest.approx(1 / math.comb(6, 3))
    assert not c.identified


def test_conditions_tied_without_spread_are_all_candidates():
    values = [0.9, 0.8, 0.85]
    c = compare_best({"a": values, "b": values, "c": [v - 0.1 for v in values]}, paired=True)
    assert c.candidates == ("a", "b")  # either may be best; 'c' is worse than both
    assert not c.identified


def test_lower_is_better_flips_the_winner():
    values = _paired_values(6, [0.0, 1.0, 2.0])
    assert compare_best(values, paired=True, better="lower").winner == "c0"
    assert compare_best(values, paired=True, better="higher").winner == "c2"


def test_a_resampling_design_widens_every_interval():
    values = _paired_values(7, [0.0, 0.2, 0.4])
    plain = compare_best(values, paired=True)
    corrected = compare_best(values, paired=True, test_train_ratio=1 / 9)
    for name in values:
        assert corrected.interval(name)[0] <= plain.interval(name)[0]
        assert corrected.interval(name)[1] >= plain.interval(name)[1]


@pytest.mark.parametrize(
    ("values", "match"),
    [({"a": [1.0, 2.0]}, "at least 2 to compare"), ({"a": [1.0], "b": [1.0, 2.0]}, "at least 2"),
     ({"a": [1.0, float("nan")], "b": [1.0, 2.0]}, "non-finite")],
)
def test_unusable_values_are_refused(values, match):
    with pytest.raises(StatisticsError, match=match):
        compare_best(values)


# -- simulations ------------------------------------------------------------------

SIMULATIONS = 1000


def _coverage(draw, means: np.ndarray, paired: bool) -> float:
    truth = {f"c{i}": means[i] - np.delete(means, i).max() for i in range(len(means))}
    covered = 0
    for _ in range(SIMULATIONS):
        best = compare_best(draw(), paired=paired)
        covered += all(best.interval(n)[0] <= truth[n] <= best.interval(n)[1] for n in truth)
    return covered / SIMULATIONS


@pytest.mark.parametrize("paired", [True, False])
def test_simultaneous_coverage_holds_with_the_rest_tied_just_below_the_best(paired):
    # With every mean equal the constrained intervals cover trivially (all contain 0). The
    # demanding shape is one best just above the others: every comparison with it is active.
    rng = np.random.default_rng(1996 + paired)
    means = np.array([0.0, 0.0, 0.0, 0.05])
    sds = np.array([0.5, 1.0, 1.5, 1.0])

    def draw() -> dict[str, np.ndarray]:
        shared = rng.normal(0, 3, 15) if paired else 0.0
        return {f"c{i}": shared + means[i] + rng.normal(0, sds[i], 15) for i in range(4)}

    floor = 1 - ALPHA - 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)
    assert _coverage(draw, means, paired) >= floor


def test_simultaneous_coverage_holds_with_a_clear_winner():
    rng = np.random.default_rng(1981)
    means = np.array([0.0, 0.4, 0.5, 1.0])

    def draw() -> dict[str, np.ndarray]:
        shared = rng.normal(0, 1, 20)
        return {f"c{i}": shared + means[i] + rng.normal(0, 1, 20) for i in range(4)}

    floor = 1 - ALPHA - 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)
    assert _coverage(draw, means, paired=True) >= floor
