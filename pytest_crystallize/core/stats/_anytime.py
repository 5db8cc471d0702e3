"""Anytime-valid tests: e-processes checked after every replicate, valid whenever the run stops.

An e-process ``E_n`` is a nonnegative process with ``E[E_tau] <= 1`` under the
null hypothesis at every stopping time ``tau``; by Ville's inequality
``P(E_n >= 1/alpha for some n) <= alpha``. So the data may be looked at after
every replicate, and the run stopped at any time, for any reason (a clear
answer, a time budget, a user's Ctrl-C), and a hypothesis shown when
``E_n >= 1/alpha`` keeps its false-positive rate at alpha. The price: more
replicates than a fixed design needs for the same power at the same effect.

Both e-processes work on the paired differences ``d_i = treatment_i -
baseline_i`` of replicates run with the same seed, in replicate order:

``"t_mixture"`` (continuous metrics): the Bayes factor of the one-sample t-test
    with a right-Haar prior on the unknown scale and a normal prior
    ``N(0, scale^2)`` on the standardized effect ``mu / sigma`` (Lai 1976;
    Rouder et al. 2009, with a normal prior; Perez-Ortiz, Lardy, de Heide &
    Grunwald 2024, "E-statistics, group invariance and anytime-valid
    testing"). In closed form, with ``nu = n - 1``, ``g = scale^2`` and ``t``
    the one-sample t statistic of the first ``n`` differences::

        BF_n = (1 + n g)^(-1/2) * ((1 + t^2/nu) / (1 + t^2/(nu (1 + n g))))^(n/2)

    It needs no variance: under i.i.d. normal differences with mean 0 it is a
    test martingale for every sigma (it is the likelihood ratio of the
    scale-invariant part of the data). **Assumption: the differences are
    (close to) normal.** Heavy skewness breaks it as it breaks the t-test.
    Two-sided: shown when ``BF_n >= 1/alpha``. One-sided: stop the first time
    ``BF_n >= 1/(2 alpha)`` and show the claim when ``t > 0`` there; the null
    law is symmetric under ``d -> -d``, which keeps ``BF`` and flips ``t``,
    so that rule errs with probability at most alpha at ``mu = 0``. When the
    first crossing has ``t < 0`` the claim is decided false. The confidence
    sequence inverts the two-sided test: ``mean +- s t*_n / sqrt(n)``, with
    ``t*_n`` solving ``BF_n = 1/(1 - confidence)``, intersected over time.

``"betting"`` (0/1 metrics, differences in [-1, 1]): the hedged capital of
    Waudby-Smith & Ramdas (2024, JRSS-B, "Estimating means of bounded random
    variables by betting") with predictable plug-in bets, on ``x = (y - lo) /
    (hi - lo)`` in [0, 1], null mean ``m``::

        K+_n = prod (1 + l+_i (x_i - m)),   K-_n = prod (1 - l-_i (x_i - m))
        l_i = sqrt(2 log(1/a) / (v_{i-1} i log(1 + i))),  l+_i = min(l_i, c/m), l-_i = min(l_i, c/(1-m))
        mu_i = (1/2 + sum_{j<=i} x_j) / (i + 1),  v_i = (1/4 + sum_{j<=i} (x_j - mu_j)^2) / (i + 1),  v_0 = 1/4

    with ``c = 1/2``, ``a = alpha`` (one-sided) or ``alpha/2`` (two-sided).
    Nonparametric and exact for any distribution on the bounds. One-sided:
    shown when ``K+ >= 1/alpha``, decided false when ``K- >= 1/alpha``;
    two-sided: ``(K+ + K-)/2 >= 1/alpha``.

Always-valid p-values are ``1 / max E`` up to ``n``, capped at 1. One-sided
t-mixture: ``1 / (2 BF)`` at the largest record of ``BF`` whose mean was
positive (1 if none). It is exactly valid at every level up to the
verdict's alpha (the run stops at the first crossing); above alpha the one
rule per level is not nested, and Ville's bound only gives ``P(p <= u) <=
2u`` (in 4,000 null runs of 300 replicates it stayed below ``u``: 0.150 at
``u = 0.2``, 0.236 at 0.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from pytest_crystallize.errors import StatisticsError

__all__ = [
    "ANYTIME_METHODS",
    "AnytimeMethod",
    "AnytimeOutcome",
    "anytime_test",
    "betting_capital",
    "t_mixture_bayes_factor",
]

AnytimeMethod = Literal["t_mixture", "betting"]
ANYTIME_METHODS: Final[tuple[AnytimeMethod, ...]] = ("t_mixture", "betting")
#: The betting fraction cap ``c`` of Waudby-Smith & Ramdas.
_BET_CAP: Final = 0.5
_CS_GRID: Final = 2001


@dataclass(frozen=True, slots=True)
class AnytimeOutcome:
    """What an anytime-valid test found, at the replicate it decided (or the last one).

    ``decided`` is ``"holds"``, ``"fails"`` or ``""`` (not decided);
    ``n`` the differences used; ``p_value`` the always-valid p-value at
    ``n``; ``ci_low``/``ci_high`` the confidence sequence of the mean
    difference at ``n`` (level ``confidence``).
    """

    method: AnytimeMethod
    decided: str
    n: int
    p_value: float
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float


def t_mixture_bayes_factor(differences: np.ndarray, scale: float) -> np.ndarray:
    """``BF_n`` for ``n = 1..N`` (``BF_1 = 1``: one value says nothing scale-free about the mean)."""
    d = np.asarray(differences, dtype=np.float64)
    n = np.arange(1, len(d) + 1, dtype=np.float64)
    t2 = _t_squared(d)
    ng = n * scale * scale
    nu = np.maximum(n - 1.0, 1.0)
    with np.errstate(invalid="ignore"):
        ratio = np.log1p(t2 / nu) - np.log1p(t2 / (nu * (1.0 + ng)))
    # No spread but a mean (t = inf): the ratio's limit is 1 + n g.
    ratio = np.where(np.isinf(t2), np.log1p(ng), ratio)
    log_bf = -0.5 * np.log1p(ng) + 0.5 * n * ratio
    if len(log_bf):
        log_bf[0] = 0.0
    bf: np.ndarray = np.exp(np.minimum(log_bf, 700.0))
    return bf


def _t_squared(d: np.ndarray) -> np.ndarray:
    """The squared one-sample t statistic of each prefix: inf where a prefix has a mean but no spread."""
    if not len(d):
        return d
    n = np.arange(1, len(d) + 1, dtype=np.float64)
    centred = d - d[0]  # sums about the first value keep the sum of squares accurate
    s1, s2 = np.cumsum(centred), np.cumsum(centred * centred)
    ss = np.maximum(s2 - s1 * s1 / n, 0.0)
    mean = d[0] + s1 / n
    spread = ss > 1e-24 * np.maximum(s2 + n * d[0] * d[0], 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.where(spread, n * (n - 1.0) * mean * mean / ss, np.where(mean == 0.0, 0.0, np.inf))
    t2[0] = 0.0
    return t2


def _t_mixture(y: np.ndarray, alpha: float, sided: bool, scale: float) -> tuple[str, int, float]:
    """First crossing of a one- or two-sided t-mixture test: (decided, n, p-value)."""
    bf = t_mixture_bayes_factor(y, scale)
    threshold = 1.0 / (2.0 * alpha) if sided else 1.0 / alpha
    crossed = np.flatnonzero(bf >= threshold)
    n = int(crossed[0]) + 1 if len(crossed) else len(y)
    evidence = _one_sided_evidence(y[:n], bf[:n]) if sided else float(np.max(bf[:n]))
    p = min(1.0, 1.0 / evidence) if evidence > 0.0 else 1.0
    if not len(crossed):
        return "", n, p
    if sided and float(np.mean(y[:n])) <= 0.0:
        return "fails", n, 1.0
    return "holds", n, p


def _one_sided_evidence(y: np.ndarray, bf: np.ndarray) -> float:
    """``2 BF`` at the largest record of ``BF`` set while the mean was positive (0 if none), from replicate 2 on.

    The one-sided rule at level ``u`` claims when ``BF`` first reaches
    ``1 / (2u)`` and the mean is positive there; the thresholds first reached
    at a record are those between the previous record and it. So ``1 / (2
    BF)`` at the largest record with a positive mean is the smallest level
    whose rule has claimed. A record set while the mean points the wrong way
    is evidence against the claim and never lowers the p-value (the old
    ``1 / (2 max BF)`` gave a maximize hypothesis with a clearly negative
    effect a p-value near alpha), and ``BF_1 = 1`` is no evidence at all.
    """
    previous = np.concatenate(([-np.inf], np.maximum.accumulate(bf)[:-1]))
    records = (bf > previous) & (np.cumsum(y) > 0.0)
    records[:1] = False
    chosen = bf[records]
    return 2.0 * float(np.max(chosen)) if len(chosen) else 0.0


def _t_mixture_interval(d: np.ndarray, confidence: float, scale: float) -> tuple[float, float]:
    """The confidence sequence of the mean at ``len(d)``: the running intersection of ``mean +- s t* / sqrt(n)``."""
    n = np.arange(1, len(d) + 1, dtype=np.float64)
    mean = np.cumsum(d) / n
    g, target = scale * scale, 1.0 / (1.0 - confidence)
    nu = np.maximum(n - 1.0, 1.0)
    # BF = target  <=>  (1 + t2/nu) = r (1 + t2 / (nu (1 + n g))),  r = (target^2 (1 + n g))^(1/n).
    r = np.exp((2.0 * math.log(target) + np.log1p(n * g)) / n)
    denominator = 1.0 - r / (1.0 + n * g)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = np.where(denominator > 0, np.sqrt(nu * (r - 1.0) / denominator), np.inf)
    sq = np.cumsum(d * d)
    var = np.maximum(sq - n * mean * mean, 0.0) / nu
    with np.errstate(invalid="ignore"):
        radius = np.where(var > 0, t_star * np.sqrt(var / n), np.where(np.isfinite(t_star), 0.0, np.inf))
    radius[0] = np.inf
    low, high = mean - radius, mean + radius
    return float(np.max(low)), float(np.min(high))


def betting_capital(x: np.ndarray, m: float, alpha: float, *, sided: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(K+_n, K-_n)`` for ``n = 1..N``: bets that the mean of ``x`` (in [0, 1]) is above / below ``m``."""
    x = np.asarray(x, dtype=np.float64)
    i = np.arange(1, len(x) + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(x)) / (i + 1.0)
    v = (0.25 + np.cumsum((x - mu) ** 2)) / (i + 1.0)
    v_before = np.concatenate(([0.25], v[:-1]))
    level = alpha if sided else alpha / 2.0
    bet = np.sqrt(2.0 * math.log(1.0 / level) / (v_before * i * np.log1p(i)))
    up = np.minimum(bet, _BET_CAP / m) if m > 0 else bet  # at m = 0 (or 1) any bet up (down) is safe
    down = np.minimum(bet, _BET_CAP / (1.0 - m)) if m < 1 else bet
    with np.errstate(divide="ignore"):
        plus = np.exp(np.cumsum(np.log1p(up * (x - m))))
        minus = np.exp(np.cumsum(np.log1p(-down * (x - m))))
    return plus, minus


def _betting(y: np.ndarray, low: float, high: float, alpha: float, sided: bool) -> tuple[str, int, float]:
    m = min(max((0.0 - low) / (high - low), 1e-9), 1.0 - 1e-9)  # a margin of 1 or more leaves no null inside
    plus, minus = betting_capital((y - low) / (high - low), m, alpha, sided=sided)
    evidence = plus if sided else 0.5 * (plus + minus)
    shown = np.flatnonzero(evidence >= 1.0 / alpha)
    against = np.flatnonzero(minus >= 1.0 / alpha) if sided else np.array([], dtype=np.int64)
    first_shown = int(shown[0]) + 1 if len(shown) else None
    first_against = int(against[0]) + 1 if len(against) else None
    if first_against is not None and (first_shown is None or first_against < first_shown):
        return "fails", first_against, 1.0
    n = first_shown or len(y)
    p = min(1.0, 1.0 / float(np.max(evidence[:n])))
    return ("holds" if first_shown else ""), n, p


def _betting_interval(d: np.ndarray, low: float, high: float, confidence: float) -> tuple[float, float]:
    """The two-sided betting confidence set of the mean of ``d`` (in [low, high]) at ``len(d)``, on a grid."""
    x = (d - low) / (high - low)
    i = np.arange(1, len(x) + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(x)) / (i + 1.0)
    v_before = np.concatenate(([0.25], ((0.25 + np.cumsum((x - mu) ** 2)) / (i + 1.0))[:-1]))
    bet = np.sqrt(2.0 * math.log(2.0 / (1.0 - confidence)) / (v_before * i * np.log1p(i)))
    m = np.linspace(0.0, 1.0, _CS_GRID)[:, None]  # every candidate mean at once: the bets are the same
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.minimum(bet, np.where(m > 0, _BET_CAP / m, np.inf))
        down = np.minimum(bet, np.where(m < 1, _BET_CAP / (1.0 - m), np.inf))
        plus = np.exp(np.sum(np.log1p(up * (x - m)), axis=1))
        minus = np.exp(np.sum(np.log1p(-down * (x - m)), axis=1))
    kept = m[:, 0][0.5 * (plus + minus) < 1.0 / (1.0 - confidence)]
    if not len(kept):  # every mean rejected: only floating-point rounding can get here
        kept = np.array([float(np.mean(x))])
    return float(low + (high - low) * kept.min()), float(low + (high - low) * kept.max())


def anytime_test(
    differences: np.ndarray,
    *,
    direction: str,
    alpha: float,
    margin: float = 0.0,
    better: str = "higher",
    method: AnytimeMethod = "t_mixture",
    scale: float = 0.5,
    confidence: float = 0.95,
    interval: bool = True,
) -> AnytimeOutcome:
    """Test a hypothesis on paired ``differences`` (treatment - baseline, in replicate order) after each one.

    ``direction``, ``margin`` and ``better`` mean what they mean for
    :func:`compare` (absolute margins only). ``method="betting"`` needs the
    differences in [-1, 1] (0/1 metrics). Returns the outcome at the first
    replicate that decides, or after the last one; ``interval=False`` skips
    the confidence sequence (nan), the costly part of the betting test.
    """
    d = np.asarray(differences, dtype=np.float64)
    if method not in ANYTIME_METHODS:
        msg = f"unknown anytime method {method!r}: use one of {ANYTIME_METHODS}"
        raise StatisticsError(msg)
    if not np.all(np.isfinite(d)):
        msg = "anytime tests need finite differences; drop non-finite values first (nan_policy='omit')"
        raise StatisticsError(msg)
    if method == "betting" and (np.any(d < -1.0) or np.any(d > 1.0)):
        msg = "the betting test needs differences in [-1, 1] (0/1 metrics)"
        raise StatisticsError(msg)
    sides = _one_sided(direction, margin, better)
    outcomes = []
    for sign, shift in sides:
        y = sign * d + shift
        if method == "t_mixture":
            outcomes.append(_t_mixture(y, alpha, direction != "two-sided", scale))
        else:
            outcomes.append(_betting(y, shift - 1.0, shift + 1.0, alpha, direction != "two-sided"))
    decided, n, p = _combine(outcomes, len(d))
    used = d[:n]
    low = high = math.nan
    if interval and n and method == "t_mixture":
        low, high = _t_mixture_interval(used, confidence, scale)
    elif interval and n:
        low, high = _betting_interval(used, -1.0, 1.0, confidence)
    estimate = float(np.mean(used)) if n else math.nan
    return AnytimeOutcome(method, decided, n, p, estimate, low, high, confidence)


def _one_sided(direction: str, margin: float, better: str) -> list[tuple[float, float]]:
    """``(sign, shift)`` per test: the claim is ``E[sign * d + shift] > 0`` (two-sided: ``!= 0``)."""
    if direction == "maximize":
        return [(1.0, -margin)]
    if direction == "minimize":
        return [(-1.0, -margin)]
    if direction == "two-sided":
        return [(1.0, 0.0)]
    if direction == "no_worse":
        return [(1.0, margin)] if better == "higher" else [(-1.0, margin)]
    if direction == "equivalent":
        return [(1.0, margin), (-1.0, margin)]
    msg = f"unknown direction {direction!r}"
    raise StatisticsError(msg)


def _combine(outcomes: list[tuple[str, int, float]], total: int) -> tuple[str, int, float]:
    """One test as is; both halves of an equivalence test: holds when both hold, fails when either fails."""
    if len(outcomes) == 1:
        return outcomes[0]
    failed = [o for o in outcomes if o[0] == "fails"]
    if failed:
        return min(failed, key=lambda o: o[1])
    p = max(o[2] for o in outcomes)
    if all(o[0] == "holds" for o in outcomes):
        return "holds", max(o[1] for o in outcomes), p
    return "", total, p
