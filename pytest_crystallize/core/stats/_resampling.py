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
"""

from __future__ import annotations

import numpy as np

from ._inputs import Samples
from ._pvalues import clip_p

__all__ = ["RESAMPLES", "bootstrap", "bootstrap_distribution", "bootstrap_interval", "permutation"]

RESAMPLES = 9999
_CHUNK_ELEMENTS = 1 << 22  # resample indices held in memory at once


def _mean_last_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis))


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))


def permutation(samples: Samples, alternative: str, seed: int) -> tuple[float, float]:
    """Permutation test of the mean difference; ``statistic`` is that difference."""
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    rng = np.random.default_rng(seed)
    if samples.differences is not None:
        result = stats.permutation_test(
            (samples.differences,),
            _mean_last_axis,
            permutation_type="samples",
            vectorized=True,
            n_resamples=RESAMPLES,
            alternative=alternative,
            rng=rng,
        )
    else:
        result = stats.permutation_test(
            (samples.treatment, samples.baseline),
            _mean_difference,
            permutation_type="independent",
            vectorized=True,
            n_resamples=RESAMPLES,
            alternative=alternative,
            rng=rng,
        )
    return float(result.statistic), clip_p(result.pvalue)


def bootstrap_distribution(samples: Samples, seed: int) -> np.ndarray:
    """``RESAMPLES`` bootstrap replicates of the mean difference."""
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
