"""Group-sequential designs: look at the data early without inflating alpha.

The design is the classical group-sequential one with Lan-DeMets alpha
spending (Lan & DeMets 1983), chosen over always-valid p-values because its
boundaries are the ones clinical-trial software publishes and its power loss
against a single final test is small (about 1-3% with O'Brien-Fleming-type
spending). Spending functions, with ``t`` the information fraction
(replicates so far / ``max_replicates``):

* ``"obrien_fleming"``: ``alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``,
  almost nothing early, nearly the full alpha at the end;
* ``"pocock"``: ``alpha(t) = alpha ln(1 + (e - 1) t)``, even spending.

Boundaries are found by recursive numerical integration of the sub-density
of the score process (Armitage, McPherson & Rowe 1969; Jennison & Turnbull
2000, ch. 19). Only efficacy boundaries are used (no futility stop). The
boundaries hold for the planned look schedule; looks taken at other counts
should be re-planned with that schedule.

Usage: at look ``k`` (1-based) run ``compare()`` on the replicates so far and
pass its p-value to :meth:`SequentialPlan.decide`: ``"reject"`` stops with the
hypothesis shown, ``"continue"`` runs to the next look, ``"stop"`` means the
last look passed without rejecting.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from pytest_crystallize.core.vocabulary import SPENDING
from pytest_crystallize.errors import StatisticsError

__all__ = ["SPENDING", "SequentialPlan"]

_NORMAL = NormalDist()
_GRID = 1201  # odd: Simpson's rule
_TAIL_SDS = 9.0  # lower end of the one-sided continuation region, in SDs


@dataclass(frozen=True, slots=True)
class SequentialPlan:
    """A group-sequential plan: looks, alpha spending and boundaries.

    Args:
        max_replicates: replicates per condition at the final look.
        looks: number of equally spaced looks, or the replicate counts at
            each look (increasing, the last equal to ``max_replicates``).
        alpha: overall significance level.
        spending: ``"obrien_fleming"`` or ``"pocock"`` (Lan-DeMets type).
        two_sided: boundaries for two-sided p-values (symmetric); otherwise
            one-sided p-values (maximize, minimize, no_worse, and each half of
            an equivalence test).

    Raises:
        StatisticsError: an impossible schedule or option.

    """

    max_replicates: int
    looks: int | tuple[int, ...] = 5
    alpha: float = 0.05
    spending: str = "obrien_fleming"
    two_sided: bool = False
    schedule: tuple[int, ...] = field(init=False)
    boundaries: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        schedule = _schedule(self.max_replicates, self.looks)
        if self.spending not in SPENDING:
            msg = f"unknown spending {self.spending!r}: use one of {SPENDING}"
            raise StatisticsError(msg)
        if not 0.0 < self.alpha < 1.0:
            msg = f"alpha must lie strictly between 0 and 1, got {self.alpha!r}"
            raise StatisticsError(msg)
        fractions = [n / self.max_replicates for n in schedule]
        spent = [self._spent(t) for t in fractions]
        # Frozen dataclass: derived fields are set once, here.
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(self, "boundaries", _boundaries(fractions, spent, self.two_sided))

    def _index(self, look: int) -> int:
        if not 1 <= look <= len(self.schedule):
            msg = f"look must be between 1 and {len(self.schedule)} (looks are numbered from 1), got {look!r}"
            raise StatisticsError(msg)
        return look - 1

    def boundary(self, look: int) -> float:
        """Return the z-value the test statistic must reach at ``look`` (1-based)."""
        return self.boundaries[self._index(look)]

    def cumulative_alpha(self, look: int) -> float:
        """Return the alpha spent up to and including ``look``."""
        return self._spent(self.schedule[self._index(look)] / self.max_replicates)

    def _spent(self, t: float) -> float:
        # Two-sided plans spend alpha/2 on each side (as ldbounds and gsDesign).
        sides = 2 if self.two_sided else 1
        return sides * _spend(self.spending, self.alpha / sides, t)

    def nominal_alpha(self, look: int) -> float:
        """Return the p-value threshold at ``look``: reject when ``p <= nominal_alpha``."""
        tail = 1.0 - _NORMAL.cdf(self.boundary(look)) if math.isfinite(self.boundary(look)) else 0.0
        return 2.0 * tail if self.two_sided else tail

    def look_at(self, replicates: int) -> int | None:
        """Return the look (1-based) planned at ``replicates``, or ``None``."""
        return self.schedule.index(replicates) + 1 if replicates in self.schedule else None

    def decide(self, look: int, p_value: float) -> str:
        """Return ``"reject"``, ``"continue"`` or ``"stop"`` for ``p_value`` at ``look``."""
        if not 0.0 <= p_value <= 1.0:
            msg = f"p_value must lie in [0, 1], got {p_value!r}"
            raise StatisticsError(msg)
        if p_value <= self.nominal_alpha(look):
            return "reject"
        return "stop" if look == len(self.schedule) else "continue"


def _schedule(max_replicates: int, looks: int | tuple[int, ...]) -> tuple[int, ...]:
    if max_replicates < 1:
        msg = f"max_replicates must be at least 1, got {max_replicates!r}"
        raise StatisticsError(msg)
    if isinstance(looks, int):
        if not 1 <= looks <= max_replicates:
            msg = f"looks must be between 1 and max_replicates={max_replicates}, got {looks!r}"
            raise StatisticsError(msg)
        return tuple(math.ceil(max_replicates * k / looks) for k in range(1, looks + 1))
    schedule = tuple(int(n) for n in looks)
    increasing = all(a < b for a, b in itertools.pairwise(schedule))
    if not schedule or not increasing or schedule[0] < 1 or schedule[-1] != max_replicates:
        msg = f"looks {looks!r} must be increasing replicate counts ending at max_replicates={max_replicates}"
        raise StatisticsError(msg)
    return schedule


def _spend(spending: str, alpha: float, t: float) -> float:
    if t <= 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * min(t, 1.0))
    return 2.0 - 2.0 * _NORMAL.cdf(_NORMAL.inv_cdf(1.0 - alpha / 2.0) / math.sqrt(min(t, 1.0)))


def _simpson_weights(points: int, step: float) -> np.ndarray:
    weights = np.ones(points)
    weights[1:-1:2] = 4.0
    weights[2:-1:2] = 2.0
    return weights * step / 3.0


@dataclass(frozen=True, slots=True)
class _SubDensity:
    """Sub-density of the score process on the continuation region of a look."""

    grid: np.ndarray
    weights: np.ndarray
    density: np.ndarray

    def crossing(self, c: float, t: float, sd: float, two_sided: bool) -> float:
        """P(continue so far, then cross ``c`` at information ``t``; increment SD ``sd``)."""
        from scipy import special  # local: keep scipy out of `import pytest_crystallize`

        edge = c * math.sqrt(t)
        upper = special.ndtr((self.grid - edge) / sd)
        if two_sided:
            upper = upper + special.ndtr((-edge - self.grid) / sd)
        return float(np.dot(self.weights, self.density * upper))

    def advance(self, bottom: float, top: float, sd: float) -> _SubDensity:
        """Sub-density at the next look, on its continuation region [bottom, top]."""
        grid = np.linspace(bottom, top, _GRID)
        kernel = np.exp(-0.5 * ((grid[:, None] - self.grid[None, :]) / sd) ** 2)
        density = kernel @ (self.weights * self.density) / (sd * math.sqrt(2.0 * math.pi))
        return _SubDensity(grid, _simpson_weights(_GRID, (top - bottom) / (_GRID - 1)), density)


def _start(bottom: float, top: float, sd: float) -> _SubDensity:
    grid = np.linspace(bottom, top, _GRID)
    density = np.exp(-0.5 * (grid / sd) ** 2) / (sd * math.sqrt(2.0 * math.pi))
    return _SubDensity(grid, _simpson_weights(_GRID, (top - bottom) / (_GRID - 1)), density)


def _boundaries(fractions: list[float], spent: list[float], two_sided: bool) -> tuple[float, ...]:
    """Efficacy boundaries (z scale) spending ``spent`` cumulatively at ``fractions``."""
    from scipy import optimize  # local: keep scipy out of `import pytest_crystallize`

    sides = 2.0 if two_sided else 1.0
    bounds: list[float] = []
    state: _SubDensity | None = None
    previous_t, previous_spent = 0.0, 0.0
    for t, cumulative in zip(fractions, spent, strict=True):
        target = cumulative - previous_spent
        sd = math.sqrt(t - previous_t)
        if target <= 0.0:
            c = math.inf
        elif state is None:
            c = _NORMAL.inv_cdf(1.0 - target / sides)
        else:
            here = state

            def excess(
                c: float, here: _SubDensity = here, t: float = t, sd: float = sd, target: float = target
            ) -> float:
                return here.crossing(c, t, sd, two_sided) - target

            c = float(optimize.brentq(excess, 0.0, 40.0, xtol=1e-12))
        bounds.append(c)
        top = min(c, 40.0) * math.sqrt(t)
        bottom = -top if two_sided else -_TAIL_SDS * math.sqrt(t)
        state = _start(bottom, top, sd) if state is None else state.advance(bottom, top, sd)
        previous_t, previous_spent = t, cumulative
    return tuple(bounds)
