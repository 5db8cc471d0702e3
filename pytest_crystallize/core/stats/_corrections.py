"""Multiple-testing corrections of p-values (Holm, Benjamini-Hochberg, Bonferroni)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pytest_crystallize.core.vocabulary import CORRECTIONS
from pytest_crystallize.errors import StatisticsError

__all__ = ["CORRECTIONS", "adjust_pvalues"]



def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str) -> np.ndarray:
    """Return adjusted p-values in input order, as ``multipletests`` gives them.

    ``holm`` (step-down, controls the familywise error rate under any
    dependence), ``bh`` (Benjamini-Hochberg step-up, controls the false
    discovery rate for independent or positively dependent tests),
    ``bonferroni``, or ``none``. Compare each adjusted value with alpha.

    Raises:
        StatisticsError: an unknown method, or p-values outside [0, 1] or nan.

    """
    if method not in CORRECTIONS:
        msg = f"unknown correction {method!r}: use one of {CORRECTIONS}"
        raise StatisticsError(msg)
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    bad = np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))
    if bad.size:
        msg = (
            f"p-values must lie in [0, 1], got {p[bad[0]]!r} at position {int(bad[0])}: "
            "adjust only p-values of tests that ran"
        )
        raise StatisticsError(msg, positions=tuple(int(i) for i in bad))
    m = p.size
    if method == "none" or m == 0:
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        scaled = ranked * m / np.arange(1, m + 1)
        adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(1.0, adjusted)
    return out
