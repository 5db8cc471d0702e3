"""Score tests of a risk difference against a margin (0/1 outcomes).

A location shift cannot carry a margin into 0/1 data (shifted values are no
longer 0 or 1), so non-inferiority and equivalence of proportions use score
tests of ``p_treatment - p_baseline = delta``, whose variance is taken at the
maximum-likelihood estimate restricted to the null:

* ``farrington_manning``: independent samples, Farrington & Manning (1990),
  the closed-form restricted MLE of Miettinen & Nurminen (1985) without
  their n/(n-1) variance factor.
* ``tango``: paired samples, Tango (1998), Stat. Med. 17:891-908.

With ``delta = 0`` they reduce to the pooled two-proportion z-test
(Pearson's chi-square) and the asymptotic McNemar test.
"""

from __future__ import annotations

import math

from ._binary import Counts, check_binary, counts
from ._inputs import Samples
from ._pvalues import z_pvalue

__all__ = [
    "farrington_manning",
    "farrington_manning_z",
    "restricted_proportions",
    "tango",
    "tango_restricted_q21",
    "tango_z",
]


def restricted_proportions(p1: float, p2: float, n1: float, n2: float, delta: float) -> tuple[float, float]:
    """MLE of (p_treatment, p_baseline) restricted to ``p_treatment - p_baseline = delta``.

    ``p1``/``p2`` are the observed (or expected) treatment/baseline proportions
    out of ``n1``/``n2``; the closed form solves the likelihood's cubic.
    """
    if delta == 0.0:
        pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
        return pooled, pooled
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (27.0 * a**3) - b * c / (6.0 * a * a) + d / (2.0 * a)
    u = math.copysign(math.sqrt(max(b * b / (9.0 * a * a) - c / (3.0 * a), 0.0)), v)
    ratio = 0.0 if u == 0.0 else max(-1.0, min(1.0, v / u**3))
    w = (math.pi + math.acos(ratio)) / 3.0
    restricted = 2.0 * u * math.cos(w) - b / (3.0 * a)
    return restricted, restricted - delta


def tango_restricted_q21(n: float, x12: float, x21: float, delta: float) -> float:
    """MLE of P(only baseline succeeds) restricted to ``p12 - p21 = delta``.

    ``x12``/``x21`` count pairs where only the treatment / only the baseline
    succeeded; the restricted likelihood's score equation is the quadratic
    ``2n q^2 + W q - x21 delta (1 - delta) = 0``.
    """
    w = -x12 - x21 + (2.0 * n - x12 + x21) * delta
    discriminant = w * w + 8.0 * n * x21 * delta * (1.0 - delta)
    return (math.sqrt(max(discriminant, 0.0)) - w) / (4.0 * n)


def _ratio(observed: float, variance: float) -> float:
    if variance <= 0.0:
        return 0.0 if observed == 0.0 else math.copysign(math.inf, observed)
    return observed / math.sqrt(variance)


def farrington_manning_z(c: Counts, delta: float) -> float:
    """Score statistic of ``p_treatment - p_baseline = delta`` (independent)."""
    n1, n2 = c.n_treatment, c.n_baseline
    p1, p2 = c.successes_treatment / n1, c.successes_baseline / n2
    r1, r2 = restricted_proportions(p1, p2, n1, n2, delta)
    return _ratio(p1 - p2 - delta, r1 * (1.0 - r1) / n1 + r2 * (1.0 - r2) / n2)


def tango_z(c: Counts, delta: float) -> float:
    """Tango's score statistic of a paired risk difference ``= delta``."""
    n = c.n_treatment
    x12, x21 = c.only_treatment, c.only_baseline
    q21 = tango_restricted_q21(n, x12, x21, delta)
    return _ratio(x12 - x21 - n * delta, n * (2.0 * q21 + delta * (1.0 - delta)))


def farrington_manning(samples: Samples, delta: float, alternative: str) -> tuple[float, float]:
    """Farrington-Manning score test; ``statistic`` is z."""
    check_binary(samples, "farrington_manning")
    z = farrington_manning_z(counts(samples), delta)
    return z, z_pvalue(z, alternative)


def tango(samples: Samples, delta: float, alternative: str) -> tuple[float, float]:
    """Tango's paired score test; ``statistic`` is z."""
    check_binary(samples, "tango")
    z = tango_z(counts(samples), delta)
    return z, z_pvalue(z, alternative)
