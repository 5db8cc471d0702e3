"""Group-sequential designs: look at the data early without inflating alpha, and stop for futility.

The design is the classical group-sequential one with Lan-DeMets alpha
spending (Lan & DeMets 1983): its boundaries are the ones clinical-trial
software publishes and its power loss against a single final test is small
(about 1-3% with O'Brien-Fleming-type spending). Spending functions, with
``t`` the information fraction (replicates so far / ``max_replicates``):

* ``"obrien_fleming"``: ``alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``,
  almost nothing early, nearly the full alpha at the end;
* ``"pocock"``: ``alpha(t) = alpha ln(1 + (e - 1) t)``, even spending;
* ``"hsd"``: Hwang, Shih & DeCani (1990), ``alpha (1 - e^(-g t)) / (1 - e^(-g))``
  with ``g = spending_gamma`` (-4 resembles O'Brien-Fleming, 1 Pocock).

Futility (``futility="non_binding"`` or ``"binding"``): beta spending
(``futility_spending``, Hwang-Shih-DeCani with ``g = -2`` by default, as
gsDesign) under the *design alternative*, the effect at which the design has
power ``power`` at ``max_replicates``: the plan solves for its drift (the
expected final z), so ``max_replicates`` is read as sized for that power.
A hypothesis whose z falls below the futility bound at a look stops: it
cannot reasonably reach significance. Non-binding (the default) keeps the
efficacy bounds of the design without futility, so alpha holds even when a
futility stop is ignored; binding lowers them (a little more power) and
alpha holds only when every futility stop is obeyed. Two-sided plans stop
for futility when ``|z|`` falls below the bound. Boundaries come from
recursive numerical integration (``_crossing``) and match gsDesign's
published tables. The boundaries hold for the planned look schedule.

Usage: at look ``k`` (1-based) run ``compare()`` on the replicates so far and
pass its p-value to :meth:`SequentialPlan.decide`: ``"reject"`` stops with the
hypothesis shown, ``"futility"`` stops without it, ``"continue"`` runs to the
next look, ``"stop"`` means the last look passed without rejecting.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist

from pytest_crystallize.core.defaults import TARGET_POWER
from pytest_crystallize.core.vocabulary import FUTILITY, SPENDING, Futility, Spending
from pytest_crystallize.errors import StatisticsError

from ._crossing import efficacy_bounds, futility_design

__all__ = ["FUTILITY", "SPENDING", "SequentialPlan"]

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class SequentialPlan:
    """A group-sequential plan: looks, alpha spending, boundaries, and optional futility bounds.

    Args:
        max_replicates: replicates per condition at the final look.
        looks: number of equally spaced looks, or the replicate counts at
            each look (increasing, the last equal to ``max_replicates``).
        alpha: overall significance level.
        spending: ``"obrien_fleming"``, ``"pocock"`` (Lan-DeMets type) or ``"hsd"``.
        two_sided: boundaries for two-sided p-values (symmetric); otherwise
            one-sided p-values (maximize, minimize, no_worse, and each half of
            an equivalence test).
        futility: ``"none"``, ``"non_binding"`` or ``"binding"`` futility bounds.
        futility_spending: the beta-spending function of the futility bounds.
        power: the power the design has at its design alternative; the
            futility bounds spend ``beta = 1 - power``.
        spending_gamma, futility_gamma: the parameter of ``"hsd"`` spending.

    Raises:
        StatisticsError: an impossible schedule or option.

    """

    max_replicates: int
    looks: int | tuple[int, ...] = 5
    alpha: float = 0.05
    spending: Spending = "obrien_fleming"
    two_sided: bool = False
    futility: Futility = "none"
    futility_spending: Spending = "hsd"
    power: float = TARGET_POWER
    spending_gamma: float = -4.0
    futility_gamma: float = -2.0
    schedule: tuple[int, ...] = field(init=False)
    boundaries: tuple[float, ...] = field(init=False)
    #: Futility bounds (z scale, on ``|z|`` when two-sided); ``-inf`` at a look without one; empty without futility.
    futility_bounds: tuple[float, ...] = field(init=False)
    #: The expected final z of the design alternative (power ``power``); nan without futility.
    drift: float = field(init=False)

    def __post_init__(self) -> None:
        schedule = _schedule(self.max_replicates, self.looks)
        for name, function in (("spending", self.spending), ("futility_spending", self.futility_spending)):
            if function not in SPENDING:
                msg = f"unknown {name} {function!r}: use one of {SPENDING}"
                raise StatisticsError(msg)
        if self.futility not in FUTILITY:
            msg = f"unknown futility {self.futility!r}: use one of {FUTILITY}"
            raise StatisticsError(msg)
        for name, value in (("alpha", self.alpha), ("power", self.power)):
            if not 0.0 < value < 1.0:
                msg = f"{name} must lie strictly between 0 and 1, got {value!r}"
                raise StatisticsError(msg)
        if self.futility != "none" and self.power <= self.alpha:
            msg = f"power={self.power!r} must exceed alpha={self.alpha!r} for futility bounds"
            raise StatisticsError(msg)
        fractions = [n / self.max_replicates for n in schedule]
        spent = [self._spent(t) for t in fractions]
        # Frozen dataclass: derived fields are set once, here.
        object.__setattr__(self, "schedule", schedule)
        if self.futility == "none":
            object.__setattr__(self, "boundaries", efficacy_bounds(fractions, spent, self.two_sided))
            object.__setattr__(self, "futility_bounds", ())
            object.__setattr__(self, "drift", math.nan)
            return
        beta = 1.0 - self.power
        beta_spent = [_spend(self.futility_spending, beta, t, self.futility_gamma) for t in fractions]
        design = futility_design(
            fractions, spent, beta_spent, two_sided=self.two_sided, binding=self.futility == "binding"
        )
        object.__setattr__(self, "boundaries", design.efficacy)
        object.__setattr__(self, "futility_bounds", design.futility)
        object.__setattr__(self, "drift", design.drift)

    def _index(self, look: int) -> int:
        if not 1 <= look <= len(self.schedule):
            msg = f"look must be between 1 and {len(self.schedule)} (looks are numbered from 1), got {look!r}"
            raise StatisticsError(msg)
        return look - 1

    def boundary(self, look: int) -> float:
        """Return the z-value the test statistic must reach at ``look`` (1-based)."""
        return self.boundaries[self._index(look)]

    def futility_boundary(self, look: int) -> float:
        """Return the z-value (``|z|`` two-sided) below which ``look`` stops for futility; ``-inf`` if none."""
        index = self._index(look)
        return self.futility_bounds[index] if self.futility_bounds else -math.inf

    def cumulative_alpha(self, look: int) -> float:
        """Return the alpha spent up to and including ``look``."""
        return self._spent(self.schedule[self._index(look)] / self.max_replicates)

    def _spent(self, t: float) -> float:
        # Two-sided plans spend alpha/2 on each side (as ldbounds and gsDesign).
        sides = 2 if self.two_sided else 1
        return sides * _spend(self.spending, self.alpha / sides, t, self.spending_gamma)

    def _p_of(self, z: float) -> float:
        tail = 1.0 - _NORMAL.cdf(z) if math.isfinite(z) else (0.0 if z > 0 else 1.0)
        return 2.0 * tail if self.two_sided else tail

    def nominal_alpha(self, look: int) -> float:
        """Return the p-value threshold at ``look``: reject when ``p <= nominal_alpha``."""
        return self._p_of(self.boundary(look))

    def futility_p(self, look: int) -> float:
        """Return the p-value at or above which ``look`` stops for futility (above 1: never)."""
        a = self.futility_boundary(look)
        if self.two_sided and a <= 0:
            return math.inf
        return self._p_of(a) if math.isfinite(a) else math.inf

    def look_at(self, replicates: int) -> int | None:
        """Return the look (1-based) planned at ``replicates``, or ``None``."""
        return self.schedule.index(replicates) + 1 if replicates in self.schedule else None

    def decide(self, look: int, p_value: float) -> str:
        """Return ``"reject"``, ``"futility"``, ``"continue"`` or ``"stop"`` for ``p_value`` at ``look``."""
        if not 0.0 <= p_value <= 1.0:
            msg = f"p_value must lie in [0, 1], got {p_value!r}"
            raise StatisticsError(msg)
        if p_value <= self.nominal_alpha(look):
            return "reject"
        if look == len(self.schedule):
            return "stop"
        return "futility" if p_value >= self.futility_p(look) else "continue"


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


def _spend(spending: str, alpha: float, t: float, gamma: float) -> float:
    """The cumulative ``alpha`` (or beta) spent by information fraction ``t``."""
    if t <= 0.0:
        return 0.0
    t = min(t, 1.0)
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    if spending == "hsd":
        return alpha * t if gamma == 0 else alpha * math.expm1(-gamma * t) / math.expm1(-gamma)
    return 2.0 - 2.0 * _NORMAL.cdf(_NORMAL.inv_cdf(1.0 - alpha / 2.0) / math.sqrt(t))
