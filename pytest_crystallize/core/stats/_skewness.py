"""Skewness: the screen ``auto`` runs before a t-test, and the skewness-corrected t.

A t-test of a mean assumes the mean's sampling distribution is nearly
symmetric. Skewed values (latencies, costs, counts) break that at small n:
lognormal(0, 1.5) values against near-constant ones with equal means make a
paired t reject 21-33% of null experiments at alpha 0.05 (n = 10 and 30).
No test of a mean can be valid for every distribution at a fixed n (Bahadur
& Savage 1956), so ``auto`` looks at the skewness the data show and acts on
it; the rule is in the package docstring, point 2.

* The screen: the sample L-skewness ``t3`` (Hosking 1990) of each condition
  (of the paired differences when paired), tested one-sided against its
  distribution under normality, in the direction that makes the tested tail
  too liberal: right skew for ``"less"``, left skew for ``"greater"``, for
  two-sided the skew that points away from the observed t. L-skewness is
  used rather than the moment skewness because a small sample cannot show a
  large moment skewness (it is bounded by about sqrt(n)), while ``t3`` keeps
  its power at 10 replicates. Unpaired samples combine both conditions'
  scores (Stouffer) with the weight of each in the skewness of the mean
  difference, so a near-constant condition counts for nothing.
* Skewness found, and ``n > 28 + 25 G1^2`` (Sugden, Smith & Jones 2000,
  refining Cochran 1977): Hall's (1992) skewness-corrected t, which removes
  the n^-1/2 skewness term of the t statistic's distribution; for two samples
  the skewness of the mean difference is used, as Zhou & Dinh (2005) do.
* Skewness found, fewer replicates than that: no claim. The p-value is 1 (a
  test that cannot reject) and the note says why and how many replicates
  the rule asks for; with the skewness a small sample shows, that is a lower
  bound.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np

from ._continuous import paired_t, welch_df, welch_t
from ._inputs import Samples
from ._pvalues import t_pvalue

__all__ = [
    "COCHRAN_OFFSET",
    "COCHRAN_SLOPE",
    "MIN_SCREENED",
    "SkewCheck",
    "corrected_t",
    "l_skewness",
    "screen_level",
    "screened_t",
]

#: Sugden, Smith & Jones (2000): the mean is near-normal for ``n > 28 + 25 G1^2``.
COCHRAN_OFFSET: Final = 28
COCHRAN_SLOPE: Final = 25.0
#: Fewer values than this cannot show skewness: the t-test runs unscreened.
MIN_SCREENED: Final = 5
#: Screen levels: below COCHRAN_OFFSET values the screen is the only protection.
_LEVEL_SMALL: Final = 0.10
_LEVEL_LARGE: Final = 0.01
#: Draws of the null distribution of t3 (normal samples), per sample size.
_REFERENCE_DRAWS: Final = 20_000
_REFERENCE_MAX_N: Final = 100
_REFERENCE_SEED: Final = 19_900_101
_NORMAL = NormalDist()


def screen_level(n: int) -> float:
    """Level of the one-sided skewness screen for ``n`` values (pairs, or the smaller condition)."""
    return _LEVEL_SMALL if n < COCHRAN_OFFSET else _LEVEL_LARGE


def l_skewness(values: np.ndarray) -> np.ndarray:
    """Sample L-skewness ``t3 = l3 / l2`` along the last axis (Hosking 1990, unbiased PWMs).

    nan where the values have no spread; needs at least 3 values.
    """
    x = np.sort(np.asarray(values, dtype=np.float64), axis=-1)
    n = x.shape[-1]
    i = np.arange(n, dtype=np.float64)
    b0 = x.mean(axis=-1)
    b1 = (x * (i / (n - 1))).mean(axis=-1)
    b2 = (x * (i * (i - 1) / ((n - 1) * (n - 2)))).mean(axis=-1)
    l2 = 2.0 * b1 - b0
    l3 = 6.0 * b2 - 6.0 * b1 + b0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(l2 > 0.0, l3 / l2, np.nan))


@functools.lru_cache(maxsize=32)
def _normal_reference(n: int) -> np.ndarray:
    """Sorted t3 of ``_REFERENCE_DRAWS`` normal samples of size n: its null distribution."""
    rng = np.random.default_rng([_REFERENCE_SEED, n])
    reference = np.sort(l_skewness(rng.standard_normal((_REFERENCE_DRAWS, n))))
    reference.flags.writeable = False
    return reference


def _skew_z(values: np.ndarray) -> float:
    """Normal score of the upper-tail screen p-value of t3 (large = right-skewed)."""
    t3 = float(l_skewness(values))
    if math.isnan(t3):
        return 0.0
    n = values.size
    if n > _REFERENCE_MAX_N:
        # Hosking (1990): under normality var(t3) ~ 0.1866/n + 0.8/n^2, accurate from ~50 on.
        return t3 / math.sqrt(0.1866 / n + 0.8 / n**2)
    reference = _normal_reference(n)
    above = reference.size - int(np.searchsorted(reference, t3, side="left"))
    p_upper = (above + 1) / (reference.size + 1)
    return -_NORMAL.inv_cdf(min(p_upper, 1.0 - 0.5 / (reference.size + 1)))


def _k_statistics(values: np.ndarray) -> tuple[float, float]:
    """Unbiased second and third cumulants (k2, k3) of ``values``."""
    n = values.size
    centred = values - values.mean()
    m2 = float(np.dot(centred, centred)) / n
    m3 = float(np.dot(centred * centred, centred)) / n
    return m2 * n / (n - 1), m3 * n * n / ((n - 1) * (n - 2))


@dataclass(frozen=True, slots=True)
class _Group:
    values: np.ndarray
    sign: float  # +1: its right skew makes the mean difference right-skewed


def _groups(samples: Samples) -> tuple[_Group, ...]:
    if samples.differences is not None:
        return (_Group(samples.differences, 1.0),)
    return (_Group(samples.treatment, 1.0), _Group(samples.baseline, -1.0))


@dataclass(frozen=True, slots=True)
class _Shape:
    """The skewness of the mean difference, as one sample of ``n_eff`` values would have it."""

    gamma: float  # skewness of the estimator: G1 / sqrt(n) for one sample
    n_eff: float  # n paired; Welch df + 1 unpaired
    z: float  # screen score: large = the estimator is right-skewed
    spread: float  # sum of the conditions' variances (a scale for the sizes needed)
    ratio: float  # (sum s^2)^2 / sum s^4: how n_eff grows with the replicates
    third: float  # signed sum of the conditions' k3

    @property
    def g1(self) -> float:
        """The single-sample skewness equivalent: ``gamma * sqrt(n_eff)``."""
        return self.gamma * math.sqrt(self.n_eff)


def _shape(samples: Samples) -> _Shape:
    groups = _groups(samples)
    moments = [(*_k_statistics(g.values), g.values.size, g.sign) for g in groups]
    variance = sum(k2 / n for k2, _, n, _ in moments)
    third = sum(sign * k3 / (n * n) for _, k3, n, sign in moments)
    gamma = third / variance**1.5
    # Stouffer over conditions, weighted by each one's share of the estimator's skewness.
    weights = [((k2 / n) / variance) ** 1.5 / n for k2, _, n, _ in moments]
    scores = [sign * _skew_z(g.values) for g, (_, _, _, sign) in zip(groups, moments, strict=True)]
    norm = math.sqrt(sum(w * w for w in weights))
    z = sum(w * s for w, s in zip(weights, scores, strict=True)) / norm if norm > 0.0 else 0.0
    n_eff = float(groups[0].values.size) if len(groups) == 1 else welch_df(samples) + 1.0
    spreads = [k2 for k2, _, _, _ in moments]
    ratio = sum(spreads) ** 2 / sum(s * s for s in spreads)
    signed_third = sum(sign * k3 for _, k3, _, sign in moments)
    return _Shape(gamma, n_eff, z, sum(spreads), ratio, signed_third)


def _enough(n_eff: float, g1: float) -> bool:
    return n_eff > COCHRAN_OFFSET + COCHRAN_SLOPE * g1 * g1


def _replicates_for(shape: _Shape) -> int:
    """Smallest equal replicates per condition satisfying the rule at the skewness seen."""
    gamma_1 = shape.third / shape.spread**1.5  # the estimator's skewness at one replicate each

    def enough(n: int) -> bool:
        n_eff = 1.0 + (n - 1) * shape.ratio
        return _enough(n_eff, gamma_1 * math.sqrt(n_eff / n))

    low, high = 1, 2
    while not enough(high):  # the margin grows with n: this ends
        low, high = high, 2 * high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def corrected_t(samples: Samples, alternative: str) -> tuple[float, float]:
    """Hall's (1992) skewness-corrected t: paired on the differences, else Welch's.

    ``T + g T^2 / 3 + g^2 T^3 / 27 + g / 6`` with ``g`` the estimated skewness
    of the mean difference, referred to the same t distribution; the cubic
    term keeps the transformation monotone.
    """
    statistic, _ = paired_t(samples, alternative) if samples.paired else welch_t(samples, alternative)
    if min(samples.n_baseline, samples.n_treatment) < 3:
        return _t_outcome(samples, statistic, alternative)
    g = _shape(samples).gamma
    corrected = statistic + g * statistic**2 / 3.0 + g * g * statistic**3 / 27.0 + g / 6.0
    return corrected, t_pvalue(corrected, _df(samples), alternative)


def _df(samples: Samples) -> float:
    return samples.n_baseline - 1.0 if samples.paired else welch_df(samples)


def _t_outcome(samples: Samples, statistic: float, alternative: str) -> tuple[float, float]:
    return statistic, t_pvalue(statistic, _df(samples), alternative)


@dataclass(frozen=True, slots=True)
class SkewCheck:
    """What the screen did to one t-test: ``action`` is ``"t"``, ``"corrected"`` or ``"refused"``."""

    statistic: float
    p_value: float
    action: str
    note: str = ""
    replicates_needed: int | None = None


def screened_t(samples: Samples, alternative: str, alpha: float = 0.05) -> SkewCheck:
    """The t-test ``auto`` runs: screened for skewness, corrected or refused when it is found.

    A refusal only replaces a p-value below ``alpha``: one the t-test would
    not have called significant claims nothing already and is kept.
    """
    statistic, p = paired_t(samples, alternative) if samples.paired else welch_t(samples, alternative)
    n = min(samples.n_baseline, samples.n_treatment)
    if n < MIN_SCREENED or not math.isfinite(statistic):
        return SkewCheck(statistic, p, "t")
    shape = _shape(samples)
    if alternative == "less":
        danger = shape.z
    elif alternative == "greater":
        danger = -shape.z
    else:
        # The tail the observed t lies in: right skew inflates the lower one, left skew the upper.
        danger = shape.z if statistic < 0.0 else -shape.z if statistic > 0.0 else -math.inf
    screen_p = 1.0 - _NORMAL.cdf(danger)
    if not screen_p < screen_level(n):
        return SkewCheck(statistic, p, "t")
    side = "right" if shape.z > 0 else "left"
    what = "paired differences" if samples.paired else "values"
    found = f"{side}-skewed {what} (L-skewness screen p={screen_p:.2g}, skewness {shape.g1:.2g})"
    if _enough(shape.n_eff, shape.g1):
        corrected, p_corrected = corrected_t(samples, alternative)
        return SkewCheck(corrected, p_corrected, "corrected", f"{found}: Hall's skewness-corrected t")
    if not p < alpha:
        return SkewCheck(statistic, p, "t")
    needed = _replicates_for(shape)
    unit = "pairs" if samples.paired else "replicates per condition"
    note = (
        f"{found}: with {n} {unit} a t-test's p-value ({p:.2g}) is not reliable, so auto claims "
        f"nothing (p set to 1); about {needed} {unit} would be needed "
        f"(Sugden et al.: n > {COCHRAN_OFFSET} + {COCHRAN_SLOPE:g} x skewness^2, a lower bound at this "
        "skewness), or name a test that fits the data"
    )
    return SkewCheck(statistic, 1.0, "refused", note, needed)
