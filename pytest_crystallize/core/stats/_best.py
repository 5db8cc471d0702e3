"""Which condition is best: multiple comparisons with the best (MCB).

Hsu's constrained MCB intervals (Hsu 1981; "Multiple Comparisons", 1996,
ch. 4) bound, for every condition ``i`` at once, how much better it is than
the best of the others, ``mu_i - max_{j != i} mu_j`` (larger is better;
``better="lower"`` flips the metric first):

    L_i = min(0, min_{j != i} (ybar_i - ybar_j - c_ij))
    U_i = max(0, min_{j != i} (ybar_i - ybar_j + c_ij))

with ``c_ij = q se_ij``. ``U_i = 0`` says ``i`` is not the best; ``L_i =
0`` says it is; ``L_i > -delta`` says it is within ``delta`` of the best.
Hsu's proof needs only one event: for the true best ``b``, every
``(ybar_b - ybar_j) - (mu_b - mu_j) > -c_bj``, a one-sided simultaneous
statement about the ``k - 1`` comparisons with ``b``.

Hsu's ``q`` is the one-sided Dunnett quantile, exact for independent
samples of equal size and common variance. Our replicates are usually
paired (common random numbers) and conditions rarely share a variance, so
the comparisons with ``b`` have an unknown correlation. We take each
``se_ij`` from the pair's own data (paired: the SD of the per-replicate
differences, ``n - 1`` degrees of freedom; independent: Welch) and the
Bonferroni quantile ``q_ij = t_{1 - alpha / (k - 1)}(df_ij)``: the union
bound makes the event above hold with probability at least ``1 - alpha``
whatever the correlation and the variances, exactly so for normal paired
differences. The price against Dunnett's constant is small (five
conditions, 30 replicates each, one-sided 95%: 2.36 against Dunnett's 2.18).
With a resampling design the pair variances are corrected as in
:mod:`~._resampled`.

The p-value of "the sample-best condition ``w`` is best (or within
``delta``)" is ``min(1, (k - 1) max_j p_wj)``, with ``p_wj`` the one-sided p
of ``(ybar_w - ybar_j + delta) / se_wj``: it is below alpha exactly when
``L_w > -delta``. A pair without spread (``se_wj = 0``: constant
differences, or two constant conditions) has no t statistic; its ``p_wj``
is then the exact sign-flip (``2^-n``) or label-shuffle (``1 / C(n_w + n_j,
n_w)``) bound, as for the pair tests, so two replicates never identify a
winner; its interval is the point difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_crystallize.errors import StatisticsError

from ._inputs import as_values

__all__ = ["BestComparison", "compare_best"]


@dataclass(frozen=True, slots=True)
class BestComparison:
    """Multiple comparisons with the best: every condition against the best of the others.

    Attributes:
        names: the conditions, in the order given.
        means, sizes: each condition's mean and number of values.
        lower, upper: each condition's simultaneous interval for how much
            better it is than the best of the others (metric units; positive
            means better, whichever way ``better`` points).
        winner: the condition with the best sample mean.
        candidates: the conditions that may be the best (``upper > 0``).
        near_best: the conditions within ``margin`` of the best (``lower > -margin``).
        identified: the winner is best, or within ``margin`` of it, at ``1 - alpha``.
        p_value: the smallest alpha at which ``identified`` would hold.
        critical: the quantile ``q`` of each comparison with the winner.

    """

    names: tuple[str, ...]
    means: tuple[float, ...]
    sizes: tuple[int, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    winner: str
    runner_up: str
    candidates: tuple[str, ...]
    near_best: tuple[str, ...]
    identified: bool
    p_value: float
    alpha: float
    margin: float
    better: str
    paired: bool
    critical: float
    test: str = "mcb"

    @property
    def confidence(self) -> float:
        """The simultaneous confidence of the intervals."""
        return 1.0 - self.alpha

    def interval(self, name: str) -> tuple[float, float]:
        """The simultaneous interval of condition ``name``."""
        i = self.names.index(name)
        return self.lower[i], self.upper[i]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data for a verdict's details."""
        return {
            "procedure": self.test, "winner": self.winner, "runner_up": self.runner_up,
            "candidates": list(self.candidates), "near_best": list(self.near_best),
            "identified": self.identified, "confidence": self.confidence, "margin": self.margin,
            "better": self.better, "paired": self.paired, "critical_value": self.critical,
            "conditions": {
                name: {"mean": mean, "n": n, "low": low, "high": high}
                for name, mean, n, low, high in zip(
                    self.names, self.means, self.sizes, self.lower, self.upper, strict=True
                )
            },
        }


@dataclass(frozen=True, slots=True)
class _Pair:
    difference: float
    se: float
    df: float
    #: The one-sided p-value of a difference without spread: the exact sign-flip (paired) or label-shuffle bound.
    exact: float


def _pair(a: np.ndarray, b: np.ndarray, paired: bool, ratio: float | None) -> _Pair:
    """Difference of means ``a - b``, its standard error and degrees of freedom."""
    if paired:
        d = a - b
        n = d.size
        factor = 1.0 / n + (ratio or 0.0)
        return _Pair(float(d.mean()), math.sqrt(factor * float(d.var(ddof=1))), n - 1.0, 0.5**n)
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    denominator = va * va / (a.size - 1) + vb * vb / (b.size - 1)
    df = (va + vb) ** 2 / denominator if denominator > 0.0 else a.size + b.size - 2.0
    return _Pair(float(a.mean() - b.mean()), se, df, 1.0 / math.comb(a.size + b.size, a.size))


def compare_best(
    values: Mapping[str, object],
    *,
    better: str = "higher",
    alpha: float = 0.05,
    margin: float = 0.0,
    paired: bool = False,
    test_train_ratio: float | None = None,
) -> BestComparison:
    """Multiple comparisons with the best of the conditions in ``values`` (name -> one value per replicate).

    ``paired``: element ``r`` of every condition comes from replicate ``r``.
    ``test_train_ratio`` (a resampling design's ``n_test / n_train``)
    corrects each pair's variance for overlapping training sets.

    Raises:
        StatisticsError: fewer than two conditions, fewer than two values in
            one, unequal lengths when paired, non-finite values, or bad options.

    """
    _check(better, alpha, margin)
    names = tuple(values)
    if len(names) < 2:
        msg = f"the best of {len(names)} condition(s) needs at least 2 to compare"
        raise StatisticsError(msg)
    sign = 1.0 if better == "higher" else -1.0
    arrays = [sign * _finite(as_values(values[name], name), name) for name in names]
    if paired and len({a.size for a in arrays}) > 1:
        msg = "paired conditions must have one value per replicate each: align the replicates or pass paired=False"
        raise StatisticsError(msg)
    k = len(names)
    means = [float(a.mean()) for a in arrays]
    pairs: dict[tuple[int, int], _Pair] = {}
    for i in range(k):
        for j in range(i + 1, k):
            pair = pairs[i, j] = _pair(arrays[i], arrays[j], paired, test_train_ratio)
            pairs[j, i] = _Pair(-pair.difference, pair.se, pair.df, pair.exact)
    keys = list(pairs)
    quantiles = _quantiles(1.0 - alpha / (k - 1), np.array([pairs[key].df for key in keys]))
    quantile = dict(zip(keys, quantiles, strict=True))
    lower, upper, unclamped = [], [], []
    for i in range(k):
        others = [j for j in range(k) if j != i]
        lower.append(min(0.0, min(pairs[i, j].difference - quantile[i, j] * pairs[i, j].se for j in others)))
        unclamped.append(min(pairs[i, j].difference + quantile[i, j] * pairs[i, j].se for j in others))
        upper.append(max(0.0, unclamped[i]))
    order = sorted(range(k), key=lambda i: -means[i])
    w = order[0]
    p_value = min(1.0, (k - 1) * max(_one_sided_p([pairs[w, j] for j in range(k) if j != w], margin)))
    return BestComparison(
        names=names, means=tuple(sign * m for m in means), sizes=tuple(a.size for a in arrays),
        lower=tuple(lower), upper=tuple(upper), winner=names[w], runner_up=names[order[1]],
        # Not shown worse than any other (upper > 0, or = 0 exactly when tied without spread).
        candidates=tuple(names[i] for i in range(k) if unclamped[i] >= 0.0),
        near_best=tuple(names[i] for i in range(k) if lower[i] > -margin or (margin == 0.0 and lower[i] == 0.0)),
        identified=p_value < alpha, p_value=p_value, alpha=alpha, margin=margin, better=better, paired=paired,
        critical=max(quantile[w, j] for j in range(k) if j != w),
    )


def _one_sided_p(pairs: list[_Pair], margin: float) -> list[float]:
    """P-values of "the winner is better than each of these, or worse by less than ``margin``"."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    shifts = np.array([pair.difference + margin for pair in pairs])
    se = np.array([pair.se for pair in pairs])
    df = np.array([pair.df for pair in pairs])
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.asarray(stats.t.sf(shifts / np.where(se > 0.0, se, 1.0), df))
    # Without spread, the exact permutation bound (as the pair tests): a few replicates prove nothing.
    return [
        float(v) if pair.se > 0.0 else (pair.exact if shift > 0.0 else 1.0)
        for v, pair, shift in zip(p, pairs, shifts, strict=True)
    ]


def _quantiles(level: float, dfs: np.ndarray) -> list[float]:
    """Student's t quantiles at ``level`` for each of ``dfs``, in one call (scipy's overhead is per call)."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    unique, index = np.unique(dfs, return_inverse=True)
    return [float(q) for q in np.asarray(stats.t.ppf(level, unique))[index]]


def _finite(array: np.ndarray, name: str) -> np.ndarray:
    if array.size < 2:
        msg = f"condition {name!r} has {array.size} value(s); comparing with the best needs at least 2"
        raise StatisticsError(msg)
    if not np.all(np.isfinite(array)):
        msg = f"condition {name!r} has non-finite values: a test needs finite numbers (or nan_policy='omit')"
        raise StatisticsError(msg)
    return array


def _check(better: str, alpha: float, margin: float) -> None:
    if better not in ("higher", "lower"):
        msg = f"better must be 'higher' or 'lower', got {better!r}"
        raise StatisticsError(msg)
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie strictly between 0 and 1, got {alpha!r}"
        raise StatisticsError(msg)
    if not (math.isfinite(margin) and margin >= 0.0):
        msg = f"margin must be a finite number >= 0, got {margin!r}"
        raise StatisticsError(msg)
