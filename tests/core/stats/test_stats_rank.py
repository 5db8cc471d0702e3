"""Known answers for the rank tests (Mann-Whitney U, Wilcoxon signed-rank)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize.core.stats import compare

REL = 1e-6

# Hollander & Wolfe (1973), p. 29: Hamilton depression scale before (x) and
# after (y) tranquilizer, nine patients; the textbook's exact one-sided
# p-value for "improvement" (y < x) is 0.0195 (T+ = 5 on x - y < 0 side).
BEFORE = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30])
AFTER = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29])


@pytest.mark.parametrize(
    ("direction", "alternative"),
    [("two-sided", "two-sided"), ("maximize", "greater"), ("minimize", "less")],
)
def test_mann_whitney_matches_scipy(direction: str, alternative: str) -> None:
    ref = stats.mannwhitneyu(AFTER, BEFORE, alternative=alternative)
    got = compare(BEFORE, AFTER, test="mann_whitney", direction=direction)
    assert got.statistic == pytest.approx(ref.statistic, rel=REL)
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)
    assert not got.paired


def test_mann_whitney_large_sample_normal_approximation() -> None:
    # Textbook normal approximation with tie correction, written out.
    rng = np.random.default_rng(3)
    base = rng.integers(0, 20, size=60).astype(float)
    treat = rng.integers(2, 22, size=50).astype(float)
    n1, n2 = treat.size, base.size
    ranks = stats.rankdata(np.r_[treat, base])
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    _, tie_counts = np.unique(np.r_[treat, base], return_counts=True)
    n = n1 + n2
    sigma = np.sqrt(n1 * n2 / 12 * ((n + 1) - (tie_counts**3 - tie_counts).sum() / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / sigma  # continuity correction, as scipy's default
    got = compare(base, treat, test="mann_whitney", direction="maximize")
    assert got.statistic == pytest.approx(u, rel=REL)
    assert got.p_value == pytest.approx(stats.norm.sf(z), rel=REL)


def test_wilcoxon_textbook_exact_p() -> None:
    got = compare(BEFORE, AFTER, test="wilcoxon", paired=True, direction="minimize")
    assert got.p_value == pytest.approx(0.01953125, rel=REL)  # 10 / 2^9, H&W table
    ref = stats.wilcoxon(AFTER - BEFORE, alternative="less")
    assert got.p_value == pytest.approx(ref.pvalue, rel=REL)


def test_mann_whitney_fast_path_matches_scipy_asymptotic_with_ties() -> None:
    rng = np.random.default_rng(4)
    for _ in range(40):
        nb, nt = rng.integers(9, 80, size=2)
        decimals = int(rng.integers(0, 3))  # 0 decimals -> many ties
        base = np.round(rng.normal(size=nb), decimals)
        treat = np.round(rng.normal(0.3, size=nt), decimals)
        for direction, alternative in (("two-sided", "two-sided"), ("maximize", "greater")):
            ref = stats.mannwhitneyu(treat, base, alternative=alternative, method="asymptotic")
            got = compare(base, treat, test="mann_whitney", direction=direction)
            assert got.statistic == ref.statistic
            assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9)
