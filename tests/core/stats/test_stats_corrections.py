"""adjust_pvalues() against statsmodels' multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from pytest_crystallize.core.stats import CORRECTIONS, adjust_pvalues
from pytest_crystallize.errors import StatisticsError

PVALUES = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9, 0.0001]
SM_NAMES = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni"}


@pytest.mark.parametrize("method", ["holm", "bh", "bonferroni"])
def test_matches_statsmodels(method: str) -> None:
    expected = multipletests(PVALUES, method=SM_NAMES[method])[1]
    np.testing.assert_allclose(adjust_pvalues(PVALUES, method), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["holm", "bh", "bonferroni"])
def test_random_sets_match_statsmodels(method: str) -> None:
    rng = np.random.default_rng(11)
    for size in (1, 2, 7, 50):
        p = rng.uniform(size=size) ** 3
        expected = multipletests(p, method=SM_NAMES[method])[1]
        np.testing.assert_allclose(adjust_pvalues(p, method), expected, rtol=1e-12)


def test_textbook_holm_example() -> None:
    # Holm (1979) step-down written out for p = (0.01, 0.04, 0.03): sorted
    # 0.01*3, max(0.03*2, 0.03), max(0.04*1, 0.06) -> 0.03, 0.06, 0.06.
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03], "holm"), [0.03, 0.06, 0.06])


def test_none_and_empty() -> None:
    assert CORRECTIONS == ("holm", "bh", "bonferroni", "none")
    np.testing.assert_array_equal(adjust_pvalues(PVALUES, "none"), PVALUES)
    assert adjust_pvalues([], "holm").size == 0


def test_errors() -> None:
    with pytest.raises(StatisticsError, match="unknown correction 'fdr'"):
        adjust_pvalues(PVALUES, "fdr")
    with pytest.raises(StatisticsError, match="position 1") as info:
        adjust_pvalues([0.1, float("nan")], "holm")
    assert info.value.positions == (1,)
