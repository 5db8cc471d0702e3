"""Power and replicates needed, for a comparison and for planning.

A comparison's power is computed at the sizes it had and the spread it saw,
assuming the true difference is the minimum detectable effect (``mde``):
``+|mde|`` for maximize and two-sided, ``-|mde|`` for minimize, and ``mde`` as
given (signed, usually 0) for no_worse and equivalent. Families:

* ``t`` (t-tests): noncentral t, pooled SD with ``nb + nt - 2`` degrees of
  freedom (as statsmodels' ``TTestIndPower``), SD of the differences with
  ``n - 1`` when paired (``TTestPower``);
* ``normal`` (rank, resampling and users' tests): the same with a normal
  statistic (no asymptotic-relative-efficiency adjustment);
* ``binary``, for Fisher's, Boschloo's and the exact McNemar test: the exact
  test's own power by enumeration (:mod:`~._exact_power`), at the observed
  baseline rate or discordance; above the sizes enumerated, and for the other
  0/1 tests (chi-square, score tests against a margin), the
  normal approximation for two proportions at the observed
  baseline rate, null variance at the restricted MLE (Fleiss 1981 for a zero
  null, Farrington & Manning 1990 for a margin); paired: Connor (1987) for
  McNemar with the observed discordance, Tango's restricted MLE for a margin.

Equivalence (two one-sided tests) uses ``max(0, P1 + P2 - 1)``, the usual
approximation to the joint power. ``replicates_needed`` is the smallest equal
number per condition (pairs when paired) reaching 80% power; ``None`` if none
up to a billion does (the effect points the wrong way, or no spread was seen).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol

from pytest_crystallize.core.defaults import TARGET_POWER
from pytest_crystallize.errors import StatisticsError

from ._exact_power import EXACT_TESTS, exact_power
from ._inputs import Samples
from ._margins import restricted_proportions, tango_restricted_q21

__all__ = ["power", "power_and_replicates", "replicates_needed", "smallest_n"]

_MAX_REPLICATES = 10**9
_NORMAL = NormalDist()


class NullLike(Protocol):
    """One tested null: difference ``delta`` against ``alternative``."""

    @property
    def delta(self) -> float:
        """The null difference."""
        ...

    @property
    def alternative(self) -> str:
        """``"greater"``, ``"less"`` or ``"two-sided"``."""
        ...


@dataclass(frozen=True, slots=True)
class _Null:
    delta: float
    alternative: str


@dataclass(frozen=True, slots=True)
class _Model:
    """What the power of one test depends on, besides sizes and the effect."""

    family: str  # "t", "normal", "binary"
    paired: bool
    sd: float = math.nan  # pooled SD, or SD of the paired differences
    p_baseline: float = math.nan  # binary: baseline success rate
    discordance: float = math.nan  # paired binary: share of discordant pairs


@dataclass(frozen=True, slots=True)
class _Tail:
    """One rejection tail: null ``delta``, side ``sign`` (+1 upper), level."""

    delta: float
    sign: float
    level: float


def _one_sided_power(model: _Model, nb: int, nt: int, true: float, tail: _Tail) -> float:
    """P(the one-sided test of ``tail`` rejects) when the true difference is ``true``."""
    shift = tail.sign * (true - tail.delta)
    if model.family == "binary":
        return _binary_power(model, nb, nt, true, tail)
    se = model.sd / math.sqrt(nb) if model.paired else model.sd * math.sqrt(1.0 / nb + 1.0 / nt)
    if not se > 0.0:
        return math.nan
    if model.family == "normal":
        return _NORMAL.cdf(shift / se - _NORMAL.inv_cdf(1.0 - tail.level))
    from scipy import stats  # local: keep scipy out of `import pytest_crystallize`

    df = nb - 1 if model.paired else nb + nt - 2
    return float(stats.nct.sf(stats.t.ppf(1.0 - tail.level, df), df, shift / se))


def _binary_power(model: _Model, nb: int, nt: int, true: float, tail: _Tail) -> float:
    delta = tail.delta
    z = _NORMAL.inv_cdf(1.0 - tail.level)
    if model.paired:
        psi = max(model.discordance, abs(true))
        x12, x21 = nb * (psi + true) / 2.0, nb * (psi - true) / 2.0
        sd1 = math.sqrt(max(psi - true * true, 0.0))
        q21 = tango_restricted_q21(nb, x12, x21, delta)
        sd0 = math.sqrt(max(2.0 * q21 + delta * (1.0 - delta), 0.0))
        shift = tail.sign * (true - delta) * math.sqrt(nb)
    else:
        p_b = model.p_baseline
        p_t = p_b + true
        if not 0.0 <= p_t <= 1.0:
            return math.nan
        r_t, r_b = restricted_proportions(p_t, p_b, nt, nb, delta)
        sd1 = math.sqrt(p_t * (1 - p_t) / nt + p_b * (1 - p_b) / nb)
        sd0 = math.sqrt(max(r_t * (1 - r_t) / nt + r_b * (1 - r_b) / nb, 0.0))
        shift = tail.sign * (true - delta)
    if not sd1 > 0.0:
        return 1.0 if shift > z * sd0 else 0.0
    return _NORMAL.cdf((shift - z * sd0) / sd1)


def _power_of(model: _Model, nb: int, nt: int, true: float, nulls: Sequence[NullLike], alpha: float) -> float:
    powers = []
    for null in nulls:
        tails: tuple[_Tail, ...]
        if null.alternative == "two-sided":
            tails = (_Tail(null.delta, 1.0, alpha / 2.0), _Tail(null.delta, -1.0, alpha / 2.0))
        else:
            tails = (_Tail(null.delta, 1.0 if null.alternative == "greater" else -1.0, alpha),)
        powers.append(sum(_one_sided_power(model, nb, nt, true, tail) for tail in tails))
    if len(powers) == 2:
        return max(0.0, powers[0] + powers[1] - 1.0)
    return min(1.0, powers[0])


def smallest_n(power_at: Callable[[int], float], start: int, target: float = TARGET_POWER) -> int | None:
    """Smallest n >= start with power_at(n) >= target (power grows with n)."""
    low, high = start, start
    while not power_at(high) >= target:
        if high >= _MAX_REPLICATES:
            return None
        low, high = high + 1, min(high * 2, _MAX_REPLICATES)
    while low < high:
        mid = (low + high) // 2
        if power_at(mid) >= target:
            high = mid
        else:
            low = mid + 1
    return high


def _model(family: str, samples: Samples) -> _Model:
    if family == "binary":
        if samples.paired:
            discordant = float(abs(samples.differences).mean()) if samples.differences is not None else 0.0
            return _Model("binary", True, discordance=discordant)
        return _Model("binary", False, p_baseline=samples.mean_baseline)
    if samples.paired:
        return _Model(family, True, sd=math.sqrt(samples.var_diff))
    nb, nt = samples.n_baseline, samples.n_treatment
    ss = (nb - 1) * _nan_to_zero(samples.var_baseline) + (nt - 1) * _nan_to_zero(samples.var_treatment)
    return _Model(family, False, sd=math.sqrt(ss / (nb + nt - 2)) if nb + nt > 2 else math.nan)


def _nan_to_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def power_and_replicates(
    family: str,
    samples: Samples,
    nulls: Sequence[NullLike],
    alpha: float,
    true_difference: float | None,
    test: str = "",
) -> tuple[float, int | None]:
    """Power at the observed sizes and replicates needed for 80%, at ``true_difference``.

    ``test`` names the test that ran: Fisher's, Boschloo's and the exact
    McNemar test get the power of the exact test itself
    (:mod:`~._exact_power`), not of its normal approximation.
    """
    if true_difference is None:
        return math.nan, None
    model = _model(family, samples)

    def power_at(nb: int, nt: int) -> float:
        if test in EXACT_TESTS:
            exact = exact_power(
                test, nt, nb, p_baseline=model.p_baseline, discordance=model.discordance,
                true=true_difference, alpha=alpha, alternative=nulls[0].alternative,
            )
            if not math.isnan(exact) or math.isnan(_power_of(model, nb, nt, true_difference, nulls, alpha)):
                return exact
        return _power_of(model, nb, nt, true_difference, nulls, alpha)

    achieved = power_at(samples.n_baseline, samples.n_treatment)
    if math.isnan(achieved):
        return math.nan, None
    start = 1 if family == "binary" else 2
    needed = smallest_n(lambda n: power_at(n, n), start)
    return achieved, needed


def _planning_null(alternative: str) -> tuple[_Null, ...]:
    if alternative not in ("greater", "less", "two-sided"):
        msg = f"unknown alternative {alternative!r}: use 'greater', 'less' or 'two-sided'"
        raise StatisticsError(msg)
    return (_Null(0.0, alternative),)


def power(
    effect: float,
    sd: float,
    n: int,
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    paired: bool = False,
) -> float:
    """Power of a t-test to detect a true mean difference ``effect``.

    Args:
        effect: true difference, treatment minus baseline.
        sd: SD of one condition (of the paired differences when ``paired``).
        n: replicates per condition (pairs when paired).
        alpha: significance level.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"``.
        paired: paired t-test instead of the two-sample t-test.

    Raises:
        StatisticsError: a non-positive ``sd``, ``n`` too small, or a bad option.

    """
    _check_planning(sd, alpha)
    if n < 2:
        msg = f"a t-test needs at least 2 replicates per condition, got n={n}"
        raise StatisticsError(msg)
    return _power_of(_Model("t", paired, sd=sd), n, n, effect, _planning_null(alternative), alpha)


def replicates_needed(
    effect: float,
    sd: float,
    *,
    alpha: float = 0.05,
    target: float = TARGET_POWER,
    alternative: str = "two-sided",
    paired: bool = False,
) -> int | None:
    """Smallest replicates per condition giving a t-test ``target`` power.

    Same arguments as :func:`power`; ``None`` when no size up to a billion
    reaches the target (e.g. the effect points against a one-sided test).
    """
    _check_planning(sd, alpha)
    if not 0.0 < target < 1.0:
        msg = f"target power must lie strictly between 0 and 1, got {target!r}"
        raise StatisticsError(msg)
    model, nulls = _Model("t", paired, sd=sd), _planning_null(alternative)
    return smallest_n(lambda k: _power_of(model, k, k, effect, nulls, alpha), 2, target)


def _check_planning(sd: float, alpha: float) -> None:
    if not (math.isfinite(sd) and sd > 0.0):
        msg = f"sd must be a positive finite number, got {sd!r}"
        raise StatisticsError(msg)
    if not 0.0 < alpha < 1.0:
        msg = f"alpha must lie strictly between 0 and 1, got {alpha!r}"
        raise StatisticsError(msg)
