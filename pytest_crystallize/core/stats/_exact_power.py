"""Power of the exact 0/1 tests, by exact enumeration of their rejection regions.

A normal approximation overstates the power of Fisher's, Boschloo's and the
exact McNemar test (they are discrete and conservative), so the power and the
replicates needed that a comparison reports for them are computed for the
test itself:

* Fisher (unpaired): the rejection region is the set of 2x2 tables, one per
  (treatment successes, baseline successes), whose p-value is at most alpha
  (one-sided: the hypergeometric tail; two-sided: scipy's rule, the tables no
  more probable than the observed one); its power sums the two binomial
  probabilities of those tables.
* Boschloo: the region is Fisher's p-value at most ``alpha*``, the largest
  critical value whose size, maximised over the common success rate, stays
  within alpha (Boschloo 1970); the maximum is taken on a grid of rates.
  Two-sided is two one-sided tests at alpha/2 (scipy's definition). Above
  ``BOSCHLOO_MAX`` per condition Fisher's region is used instead, a lower
  bound that the two tests' power converges to.
* McNemar (paired, exact): for each number of discordant pairs, the binomial
  test's critical counts; the power sums over the binomial number of
  discordant pairs.

Regions depend only on the sizes, alpha and the alternative, and are cached.
"""

from __future__ import annotations

import functools
from typing import Final

import numpy as np

__all__ = ["BOSCHLOO_MAX", "EXACT_TESTS", "FISHER_MAX", "exact_power"]

#: The 0/1 tests whose power is enumerated here.
EXACT_TESTS: Final = ("fisher_exact", "boschloo", "mcnemar")
#: Largest replicates per condition enumerated (tables grow as n^2); above, nan
#: (the caller falls back on the normal approximation, by then close).
FISHER_MAX: Final = 1000
BOSCHLOO_MAX: Final = 300
_RATES: Final = np.linspace(0.001, 0.999, 250)  # nuisance grid for Boschloo's size
_TIE: Final = 1.0 + 1e-7  # scipy's relative tolerance for equally probable tables


def _fisher_one_sided(n_t: int, n_b: int, alternative: str) -> np.ndarray:
    """Fisher's one-sided p-value of every table, indexed [treatment successes, baseline successes]."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    x_t = np.arange(n_t + 1)[:, None]
    total = x_t + np.arange(n_b + 1)[None, :]
    if alternative == "greater":
        return np.asarray(stats.hypergeom.sf(x_t - 1, n_t + n_b, total, n_t))
    return np.asarray(stats.hypergeom.cdf(x_t, n_t + n_b, total, n_t))


def _fisher_two_sided(n_t: int, n_b: int) -> np.ndarray:
    from scipy import special  # local: keep scipy out of `import pytest_crystallize`

    n = n_t + n_b
    x = np.arange(n_t + 1)[:, None]
    successes = np.arange(n + 1)[None, :]
    inside = (x <= successes) & (n_t - x <= n - successes)

    def log_choose(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.asarray(special.gammaln(top + 1) - special.gammaln(bottom + 1) - special.gammaln(top - bottom + 1))

    with np.errstate(invalid="ignore"):
        log_pmf = log_choose(successes, np.minimum(x, successes)) + log_choose(
            n - successes, np.clip(n_t - x, 0, n - successes)
        ) - log_choose(np.array(n), np.array(n_t))
    pmf = np.where(inside, np.exp(log_pmf), 0.0)  # [x, successes]: hypergeometric pmf per column
    p = np.ones((n_t + 1, n_b + 1))
    for total in range(n + 1):
        column = pmf[:, total]
        ordered = np.sort(column)
        tail = np.cumsum(ordered)
        at_most = np.searchsorted(ordered, column * _TIE, side="right") - 1
        rows = np.flatnonzero(inside[:, total])
        p[rows, total - rows] = np.minimum(1.0, tail[at_most[rows]])
    return p


@functools.lru_cache(maxsize=32)
def _fisher_p(n_t: int, n_b: int, alternative: str) -> np.ndarray:
    p = _fisher_two_sided(n_t, n_b) if alternative == "two-sided" else _fisher_one_sided(n_t, n_b, alternative)
    p.flags.writeable = False
    return p


def _binomials(n: int, rates: np.ndarray) -> np.ndarray:
    """P(k successes of n) for each rate: shape (rates, n + 1)."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    return np.asarray(stats.binom.pmf(np.arange(n + 1)[None, :], n, np.asarray(rates)[:, None]))


def _region_size(region: np.ndarray, b_t: np.ndarray, b_b: np.ndarray) -> float:
    """Largest P(region) over the nuisance grid, both conditions at the same rate."""
    return float(np.max(np.sum((b_t @ region.astype(np.float64)) * b_b, axis=1)))


@functools.lru_cache(maxsize=32)
def _boschloo_one_sided(n_t: int, n_b: int, alpha: float, alternative: str) -> np.ndarray:
    """Boschloo's one-sided region: Fisher's p <= alpha*, the largest critical value of size <= alpha."""
    p = _fisher_p(n_t, n_b, alternative)
    b_t, b_b = _binomials(n_t, _RATES), _binomials(n_b, _RATES)
    candidates = np.unique(p)
    low, high = -1, candidates.size - 1  # candidates[low] has size <= alpha (-1: none has)
    while low < high:
        mid = (low + high + 1) // 2
        if _region_size(p <= candidates[mid] * (1 + 1e-13), b_t, b_b) <= alpha:
            low = mid
        else:
            high = mid - 1
    region = p <= candidates[low] * (1 + 1e-13) if low >= 0 else np.zeros_like(p, dtype=bool)
    region.flags.writeable = False
    return region


def _unpaired_region(test: str, n_t: int, n_b: int, alpha: float, alternative: str) -> np.ndarray:
    if test == "fisher_exact" or max(n_t, n_b) > BOSCHLOO_MAX:
        return np.asarray(_fisher_p(n_t, n_b, alternative) <= alpha)
    if alternative == "two-sided":
        both = _boschloo_one_sided(n_t, n_b, alpha / 2, "greater") | _boschloo_one_sided(n_t, n_b, alpha / 2, "less")
        return np.asarray(both)
    return _boschloo_one_sided(n_t, n_b, alpha, alternative)


def _unpaired_power(
    test: str, n_t: int, n_b: int, p_t: float, p_b: float, alpha: float, alternative: str
) -> float:
    if max(n_t, n_b) > FISHER_MAX:
        return float("nan")
    region = _unpaired_region(test, n_t, n_b, alpha, alternative)
    b_t = _binomials(n_t, np.array([p_t]))[0]
    b_b = _binomials(n_b, np.array([p_b]))[0]
    return float(b_t @ region.astype(np.float64) @ b_b)


@functools.lru_cache(maxsize=256)
def _mcnemar_critical(n: int, alpha: float, alternative: str) -> tuple[np.ndarray, np.ndarray]:
    """Per number of discordant pairs d: reject when n01 >= upper[d] or n01 <= lower[d]."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    d = np.arange(n + 1)
    upper = np.full(n + 1, np.iinfo(np.int64).max // 2)
    lower = np.full(n + 1, -1)
    level = alpha / 2 if alternative == "two-sided" else alpha
    # P(K >= k | d, 1/2) <= level: k >= the smallest such count (binomtest's one-sided p).
    if alternative in ("greater", "two-sided"):
        k = stats.binom.isf(level, d, 0.5) + 1
        ok = stats.binom.sf(k - 1, d, 0.5) <= level * (1 + 1e-12)
        upper = np.where(ok & (d > 0), k, upper).astype(np.int64)
    if alternative in ("less", "two-sided"):
        k = stats.binom.ppf(level, d, 0.5)
        k = np.where(stats.binom.cdf(k, d, 0.5) <= level * (1 + 1e-12), k, k - 1)
        lower = np.where(d > 0, k, -1).astype(np.int64)
    return upper, lower


def _mcnemar_power(n: int, q01: float, q10: float, alpha: float, alternative: str) -> float:
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    psi = q01 + q10
    if not psi > 0.0:
        return 0.0
    upper, lower = _mcnemar_critical(n, alpha, alternative)
    d = np.arange(n + 1)
    share = q01 / psi
    reject = stats.binom.sf(upper - 1, d, share) + np.where(lower >= 0, stats.binom.cdf(lower, d, share), 0.0)
    return float(np.dot(stats.binom.pmf(d, n, psi), np.minimum(reject, 1.0)))


def exact_power(
    test: str, n_t: int, n_b: int, *, p_baseline: float, discordance: float, true: float, alpha: float,
    alternative: str,
) -> float:
    """Power of ``test`` (one of ``EXACT_TESTS``) when the true risk difference is ``true``.

    Unpaired: the baseline rate is ``p_baseline``; paired: a share
    ``max(discordance, |true|)`` of pairs is discordant. nan when the rates
    leave [0, 1] or the sizes exceed what is enumerated.
    """
    if test == "mcnemar":
        psi = max(discordance, abs(true))
        if not 0.0 <= psi <= 1.0:
            return float("nan")
        return _mcnemar_power(n_b, (psi + true) / 2.0, (psi - true) / 2.0, alpha, alternative)
    p_t = p_baseline + true
    if not (0.0 <= p_t <= 1.0 and 0.0 <= p_baseline <= 1.0):
        return float("nan")
    return _unpaired_power(test, n_t, n_b, p_t, p_baseline, alpha, alternative)
