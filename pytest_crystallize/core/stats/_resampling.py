"""Resampling tests: permutation (sign-flip / label-shuffle) and bootstrap.

Both test the mean difference (treatment - baseline) and are seeded by
``compare(seed=...)``, so a run is reproducible.

* ``permutation``: paired samples flip the sign of each paired difference;
  unpaired samples shuffle the condition labels. The null distribution is
  enumerated exactly when it has at most ``RESAMPLES`` members (e.g. up to 13
  pairs, or 7 + 7 values), otherwise ``RESAMPLES`` random members are drawn
  and the p-value is ``(hits + 1) / (RESAMPLES + 1)``, which stays valid.
  Its interval is the t-interval of the mean difference.
* ``bootstrap``: ``RESAMPLES`` resamples (of pairs when paired, of each
  condition separately otherwise); the interval is the percentile interval
  and the p-value inverts it: the one-sided p-value is the share (with the
  +1 correction) of bootstrap differences on the wrong side of the null, so
  ``p < 1 - confidence`` (two-sided) when, up to interpolation, the interval
  excludes the null.
  Percentile intervals are a little narrow for small samples: prefer the
  permutation test below ~20 replicates.

Memory stays bounded whatever the sample size: resamples are drawn and
reduced in chunks of about ``_CHUNK_ELEMENTS`` values. The paired sign-flip
is computed here, drawing exactly the random numbers
``scipy.stats.permutation_test(..., permutation_type="samples")`` draws for
one sample (one 32-bit draw per pair and resample, its lowest bit choosing
the sign), so a seed gives the p-value scipy gives, without scipy's
resamples x pairs x 2 index arrays; label shuffles go through scipy in
batches, which changes none of its draws.
"""

from __future__ import annotations

import weakref
from typing import Final

import numpy as np

from ._inputs import Samples
from ._pvalues import clip_p

__all__ = ["RESAMPLES", "bootstrap", "bootstrap_distribution", "bootstrap_interval", "permutation"]

RESAMPLES = 9999
_CHUNK_ELEMENTS = 1 << 22  # resampled values held in memory at once
#: Null values within this many machine epsilons of the observed statistic count as ties (as scipy counts them).
_TIE_EPS: Final = 100.0 * float(np.finfo(np.float64).eps)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def _sign_flip_null(differences: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """The null distribution of the mean of ``differences`` under random signs, and whether it is exact.

    Every one of the ``2**n`` sign patterns when there are at most
    ``RESAMPLES``; otherwise ``RESAMPLES`` random ones, the sign of pair ``i``
    in resample ``k`` being the lowest bit of the ``(k * n + i)``-th 32-bit
    draw (plus when set), as scipy's shuffles of ``(d, -d)`` pairs draw them.
    Each mean adds its signed values in pair order, as scipy's does, so the
    null values are scipy's to the last bit.
    """
    n = differences.size
    if n < 14 and 2**n <= RESAMPLES:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        return _signed_means(bits.astype(bool), differences), True
    null = np.empty(RESAMPLES)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, RESAMPLES, chunk):
        k = min(chunk, RESAMPLES - start)
        draws = rng.integers(0, 2**32, size=(k, n), dtype=np.uint32)
        null[start : start + k] = _signed_means((draws & 1).astype(bool), differences)
    return null, False


def _signed_means(plus: np.ndarray, differences: np.ndarray) -> np.ndarray:
    """Row means of ``differences`` signed by ``plus`` (True: +, False: -), summed in pair order."""
    column = differences[:, None]
    signed = np.empty((differences.size, plus.shape[0]))
    np.copyto(signed, -column)
    np.copyto(signed, column, where=plus.T)
    # Reducing the first axis of a C-ordered array adds row after row: pair order, as scipy adds.
    return np.asarray(np.add.reduce(signed, axis=0) / differences.size)


def _pvalue(null: np.ndarray, observed: float, alternative: str, exact: bool) -> float:
    """Share of the null at least as extreme as ``observed`` (+1 correction when drawn at random)."""
    adjustment = 0 if exact else 1
    gamma = abs(_TIE_EPS * observed)
    total = null.size + adjustment
    less = (np.count_nonzero(null <= observed + gamma) + adjustment) / total
    greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / total
    if alternative == "less":
        return clip_p(less)
    if alternative == "greater":
        return clip_p(greater)
    return clip_p(2.0 * min(less, greater))


def permutation(samples: Samples, alternative: str, seed: int) -> tuple[float, float]:
    """Permutation test of the mean difference; ``statistic`` is that difference."""
    rng = np.random.default_rng(seed)
    if samples.differences is not None:
        observed = float(np.mean(samples.differences))
        null, exact = _sign_flip_null(samples.differences, rng)
        return observed, _pvalue(null, observed, alternative, exact)
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    result = stats.permutation_test(
        (samples.treatment, samples.baseline),
        _mean_difference,
        permutation_type="independent",
        vectorized=True,
        n_resamples=RESAMPLES,
        alternative=alternative,
        batch=max(1, _CHUNK_ELEMENTS // (samples.n_treatment + samples.n_baseline)),
        rng=rng,
    )
    return float(result.statistic), clip_p(result.pvalue)


class _LastDistribution:
    """The most recent bootstrap distribution, and the samples and seed it was drawn for.

    A verdict asks for the same resamples twice (its p-value, then its
    interval); this keeps them from being drawn twice. The samples are held
    by weak references, so nothing is kept alive and a new array at a reused
    address never matches.
    """

    __slots__ = ("_entry",)

    def __init__(self) -> None:
        self._entry: tuple[tuple[weakref.ref[np.ndarray] | None, ...], int, np.ndarray] | None = None

    @staticmethod
    def _arrays(samples: Samples) -> tuple[np.ndarray | None, ...]:
        return samples.baseline, samples.treatment, samples.differences

    def get(self, samples: Samples, seed: int) -> np.ndarray | None:
        entry = self._entry  # one read: another thread may replace it
        if entry is None or entry[1] != seed:
            return None
        refs, _, distribution = entry
        arrays = self._arrays(samples)
        same = all(a is None if ref is None else ref() is a for ref, a in zip(refs, arrays, strict=True))
        return distribution if same else None

    def put(self, samples: Samples, seed: int, distribution: np.ndarray) -> None:
        refs = tuple(None if a is None else weakref.ref(a) for a in self._arrays(samples))
        self._entry = (refs, seed, distribution)


_LAST = _LastDistribution()


def bootstrap_distribution(samples: Samples, seed: int) -> np.ndarray:
    """``RESAMPLES`` bootstrap replicates of the mean difference (read-only)."""
    cached = _LAST.get(samples, seed)
    if cached is not None:
        return cached
    rng = np.random.default_rng(seed)
    out = np.empty(RESAMPLES)
    size = max(samples.n_baseline, samples.n_treatment)
    chunk = max(1, _CHUNK_ELEMENTS // size)
    for start in range(0, RESAMPLES, chunk):
        k = min(chunk, RESAMPLES - start)
        if samples.differences is not None:
            d = samples.differences
            out[start : start + k] = d[rng.integers(0, d.size, size=(k, d.size))].mean(axis=1)
        else:
            t, b = samples.treatment, samples.baseline
            treat = t[rng.integers(0, t.size, size=(k, t.size))].mean(axis=1)
            base = b[rng.integers(0, b.size, size=(k, b.size))].mean(axis=1)
            out[start : start + k] = treat - base
    out.setflags(write=False)
    _LAST.put(samples, seed, out)
    return out


def bootstrap(samples: Samples, alternative: str, seed: int) -> tuple[float, float]:
    """Bootstrap test of "mean difference = 0" by percentile-interval inversion."""
    replicates = bootstrap_distribution(samples, seed)
    below = (np.count_nonzero(replicates <= 0.0) + 1) / (RESAMPLES + 1)
    above = (np.count_nonzero(replicates >= 0.0) + 1) / (RESAMPLES + 1)
    if alternative == "greater":
        p = below
    elif alternative == "less":
        p = above
    else:
        p = 2.0 * min(below, above)
    return samples.mean_treatment - samples.mean_baseline, clip_p(p)


def bootstrap_interval(samples: Samples, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean difference."""
    replicates = bootstrap_distribution(samples, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)
