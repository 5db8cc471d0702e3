"""Boundaries of group-sequential designs, from exit probabilities found by numerical integration.

The canonical joint distribution (Jennison & Turnbull 2000, ch. 3): at look
``k``, with information fraction ``t_k``, the statistic is ``Z_k = S_k /
sqrt(t_k)`` where ``S`` is a Brownian motion with drift ``theta``
(``S_k ~ N(theta t_k, t_k)``, independent increments). ``theta`` is the
expected ``Z`` at ``t = 1``: 0 under the null hypothesis, the drift of the
design alternative otherwise. The sub-density of ``S`` over the paths that
have not stopped is carried from look to look on a Simpson grid over the
continuation region (Armitage, McPherson & Rowe 1969; Jennison & Turnbull
2000, ch. 19).

* :func:`efficacy_bounds`: the z-values that spend a cumulative alpha at each
  look under the null, ignoring any futility stop (Lan & DeMets 1983).
* :func:`futility_design`: futility bounds that spend a cumulative beta at
  each look under the design alternative, with ``theta`` solved so that the
  two bounds meet at the last look (then the power at ``theta`` is exactly
  ``1 - beta``); this is gsDesign's ``test.type=4`` (non-binding: efficacy
  bounds as above) and ``test.type=3`` (binding: efficacy bounds computed
  on the paths futility has not stopped). Two-sided designs stop for futility
  when ``|Z_k| < a_k``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["FutilityDesign", "efficacy_bounds", "futility_design"]

_NORMAL = NormalDist()
#: Grid points per interval of the continuation region (odd: Simpson's rule).
EFFICACY_POINTS = 1201
#: Coarser for the futility design, which integrates for every trial drift; Simpson stays accurate to ~1e-6.
DESIGN_POINTS = 401
_TAIL_SDS = 9.0  # an infinite end of the region is cut this many SDs from the mean of S
_Z_CAP = 40.0  # a boundary that spends nothing lies beyond any reachable z


@dataclass(frozen=True, slots=True)
class _Path:
    """The sub-density of ``S`` at information ``t`` on the paths that have not stopped (none before look 1)."""

    theta: float
    t: float = 0.0
    grid: np.ndarray | None = None
    weighted: np.ndarray | None = None  # Simpson weight x density at each grid point

    def mass(self, t: float, low: float, high: float) -> float:
        """P(not stopped before, ``low < Z(t) < high``); bounds on the z scale, possibly infinite."""
        from scipy import special  # local: keep scipy out of `import pytest_crystallize`

        root, dt = math.sqrt(t), t - self.t
        lo, hi = low * root, high * root
        if self.grid is None or self.weighted is None:
            return float(special.ndtr((hi - self.theta * t) / root) - special.ndtr((lo - self.theta * t) / root))
        sd, shift = math.sqrt(dt), self.grid + self.theta * dt
        return float(np.dot(self.weighted, special.ndtr((hi - shift) / sd) - special.ndtr((lo - shift) / sd)))

    def advance(self, t: float, region: Sequence[tuple[float, float]], points: int) -> _Path:
        """The sub-density at information ``t`` on ``region`` (z-scale intervals): who continues past this look."""
        root, mean = math.sqrt(t), self.theta * t
        grids, weights = [], []
        for low, high in region:
            lo = max(low * root, mean - _TAIL_SDS * root)
            hi = min(high * root, mean + _TAIL_SDS * root)
            if hi > lo:
                grids.append(np.linspace(lo, hi, points))
                weights.append(_simpson_weights(points, (hi - lo) / (points - 1)))
        if not grids:
            return _Path(self.theta, t, np.zeros(1), np.zeros(1))
        grid, weight = np.concatenate(grids), np.concatenate(weights)
        if self.grid is None or self.weighted is None:
            density = np.exp(-0.5 * ((grid - mean) / root) ** 2) / (root * math.sqrt(2.0 * math.pi))
        else:
            sd = math.sqrt(t - self.t)
            kernel = np.exp(-0.5 * ((grid[:, None] - self.grid[None, :] - self.theta * (t - self.t)) / sd) ** 2)
            density = kernel @ self.weighted / (sd * math.sqrt(2.0 * math.pi))
        return _Path(self.theta, t, grid, weight * density)

    def efficacy(self, t: float, c: float, two_sided: bool) -> float:
        """P(not stopped before, cross the efficacy bound ``c`` at ``t``)."""
        upper = self.mass(t, c, math.inf)
        return upper + self.mass(t, -math.inf, -c) if two_sided else upper

    def futility(self, t: float, a: float, two_sided: bool) -> float:
        """P(not stopped before, fall below the futility bound ``a`` at ``t`` (``|Z| < a`` two-sided))."""
        if two_sided:
            return self.mass(t, -a, a) if a > 0 else 0.0
        return self.mass(t, -math.inf, a)


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.ones(points)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return weights * step / 3.0


def _region(a: float, b: float, two_sided: bool) -> list[tuple[float, float]]:
    """Where ``Z`` continues past a look with futility bound ``a`` and efficacy bound ``b``."""
    if not two_sided:
        return [(a, b)]
    return [(-b, b)] if a <= 0 else [(-b, -a), (a, b)]


def _solve_efficacy(path: _Path, t: float, target: float, two_sided: bool) -> float:
    from scipy import optimize  # local: keep scipy out of `import pytest_crystallize`

    if target <= 0.0:
        return math.inf
    if path.grid is None:
        return _NORMAL.inv_cdf(1.0 - target / (2.0 if two_sided else 1.0))
    if path.efficacy(t, 0.0, two_sided) < target:  # cannot spend it all: every continuing path crosses
        return 0.0
    return float(optimize.brentq(lambda c: path.efficacy(t, c, two_sided) - target, 0.0, _Z_CAP, xtol=1e-12))


def efficacy_bounds(
    fractions: Sequence[float], spent: Sequence[float], two_sided: bool, *, points: int = EFFICACY_POINTS
) -> tuple[float, ...]:
    """Efficacy bounds (z scale) spending cumulative ``spent`` at ``fractions`` under the null, no futility stop."""
    bounds: list[float] = []
    path = _Path(0.0)
    previous = 0.0
    for t, cumulative in zip(fractions, spent, strict=True):
        c = _solve_efficacy(path, t, cumulative - previous, two_sided)
        bounds.append(c)
        path = path.advance(t, _region(-math.inf, min(c, _Z_CAP), two_sided), points)
        previous = cumulative
    return tuple(bounds)


@dataclass(frozen=True, slots=True)
class FutilityDesign:
    """Both bounds of a design with futility stops, and the drift they were computed for.

    ``futility[k]`` is ``-inf`` at a look that spends no beta; at the last
    look it equals ``efficacy[-1]``. ``drift`` is the expected final ``Z``
    of the design alternative (power ``1 - beta``).
    """

    efficacy: tuple[float, ...]
    futility: tuple[float, ...]
    drift: float


def _solve_futility(path: _Path, t: float, target: float, b: float, two_sided: bool) -> float:
    from scipy import optimize  # local: keep scipy out of `import pytest_crystallize`

    if target <= 0.0:
        return -math.inf
    if path.futility(t, b, two_sided) <= target:  # the bounds would cross: stop at this look whatever Z is
        return b
    low = 0.0 if two_sided else -_Z_CAP
    return float(optimize.brentq(lambda a: path.futility(t, a, two_sided) - target, low, b, xtol=1e-12))


def futility_design(
    fractions: Sequence[float],
    alpha_spent: Sequence[float],
    beta_spent: Sequence[float],
    *,
    two_sided: bool = False,
    binding: bool = False,
    points: int = DESIGN_POINTS,
) -> FutilityDesign:
    """Efficacy and futility bounds, and the drift at which the design has power ``1 - beta_spent[-1]``.

    Non-binding (the default): the efficacy bounds ignore futility, so alpha
    holds whether or not the futility stops are obeyed. Binding: they are
    computed on the paths futility has not stopped (lower, so more power, but
    alpha holds only if every futility stop is obeyed).
    """
    from scipy import optimize  # local: keep scipy out of `import pytest_crystallize`

    fixed = None if binding else efficacy_bounds(fractions, alpha_spent, two_sided)

    def run(theta: float) -> tuple[list[float], list[float], float]:
        null, alternative = _Path(0.0), _Path(theta)
        efficacy: list[float] = []
        futility: list[float] = []
        before_alpha = before_beta = 0.0
        for k, (t, alpha, beta) in enumerate(zip(fractions[:-1], alpha_spent, beta_spent, strict=False)):
            b = fixed[k] if fixed is not None else _solve_efficacy(null, t, alpha - before_alpha, two_sided)
            a = _solve_futility(alternative, t, beta - before_beta, min(b, _Z_CAP), two_sided)
            efficacy.append(b)
            futility.append(a)
            region = _region(a, min(b, _Z_CAP), two_sided)
            alternative = alternative.advance(t, region, points)
            if binding:
                null = null.advance(t, region, points)
            before_alpha, before_beta = alpha, beta
        # The last look: the bounds meet; how far the beta spent misses its target is the drift's error.
        t = fractions[-1]
        b = fixed[-1] if fixed is not None else _solve_efficacy(null, t, alpha_spent[-1] - before_alpha, two_sided)
        b = min(b, _Z_CAP)
        excess = alternative.futility(t, b, two_sided) - (beta_spent[-1] - before_beta)
        return [*efficacy, b], [*futility, b], excess

    drift = float(optimize.brentq(lambda theta: run(theta)[2], 0.0, 2.0 * _Z_CAP, xtol=1e-10))
    efficacy, futility, _ = run(drift)
    if fixed is not None:
        efficacy = list(fixed)
    return FutilityDesign(tuple(efficacy), tuple(futility), drift)
