"""The nulls a hypothesis direction tests, and the checks of the options that shape them.

Shared by every comparison (:func:`~._two_sample.compare` and the
estimate-based ones of :mod:`~._estimate`): a direction, a margin and
``better`` become one null (``difference = delta`` against a one- or
two-sided alternative) or two (equivalence, two one-sided tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_crystallize.errors import StatisticsError

from ._inputs import BETTER, DIRECTIONS, Samples

__all__ = ["Null", "absolute_margin", "check_options", "nulls_for", "points_right", "true_difference"]


@dataclass(frozen=True, slots=True)
class Null:
    """One one-sided (or two-sided) null to test: difference = ``delta``."""

    delta: float
    alternative: str


def check_options(direction: str, alpha: float, better: str, confidence: float) -> None:
    """Raise StatisticsError for an unknown direction or ``better``, or alpha/confidence outside (0, 1)."""
    if direction not in DIRECTIONS:
        msg = f"unknown direction {direction!r}: use one of {DIRECTIONS}"
        raise StatisticsError(msg)
    if better not in BETTER:
        msg = f"unknown better={better!r}: use one of {BETTER}"
        raise StatisticsError(msg)
    for name, value in (("alpha", alpha), ("confidence", confidence)):
        if not 0.0 < value < 1.0:
            msg = f"{name} must lie strictly between 0 and 1, got {value!r}"
            raise StatisticsError(msg)


def absolute_margin(direction: str, margin: float | None, relative: bool, samples: Samples) -> float | None:
    """The margin in the metric's units (a relative one times ``|mean baseline|``); None without one."""
    if margin is None:
        if direction in ("no_worse", "equivalent"):
            msg = (
                f"direction {direction!r} needs a margin: pass margin=... (the largest "
                "difference that still counts as 'no worse' / 'equivalent')"
            )
            raise StatisticsError(msg)
        return None
    if direction == "two-sided":
        msg = "a margin has no meaning for a two-sided test: use 'equivalent' or drop the margin"
        raise StatisticsError(msg)
    if not (math.isfinite(margin) and margin >= 0.0) or (direction == "equivalent" and margin == 0):
        msg = f"margin must be a finite number >= 0 (> 0 for 'equivalent'), got {margin!r}"
        raise StatisticsError(msg)
    if not relative:
        return float(margin)
    if samples.mean_baseline == 0.0:
        msg = (
            "relative_margin=True needs a non-zero baseline mean (the margin is a "
            "fraction of it): pass an absolute margin instead"
        )
        raise StatisticsError(msg)
    return float(margin) * abs(samples.mean_baseline)


def nulls_for(direction: str, better: str, margin: float | None) -> tuple[Null, ...]:
    """The null(s) a direction tests: one, or two for ``equivalent`` (two one-sided tests)."""
    m = 0.0 if margin is None else margin
    if direction == "maximize":
        return (Null(m, "greater"),)
    if direction == "minimize":
        return (Null(-m, "less"),)
    if direction == "two-sided":
        return (Null(0.0, "two-sided"),)
    if direction == "no_worse":
        return (Null(-m, "greater"),) if better == "higher" else (Null(m, "less"),)
    return (Null(-m, "greater"), Null(m, "less"))


def points_right(difference: float, null: Null) -> bool:
    """The observed difference lies on the alternative's side of ``null``."""
    if null.alternative == "greater":
        return difference > null.delta
    if null.alternative == "less":
        return difference < null.delta
    return difference != null.delta


def true_difference(direction: str, mde: float | None) -> float | None:
    """The signed difference the power is computed at, from ``mde`` and the direction."""
    if mde is None:
        return None
    if not math.isfinite(mde):
        msg = f"mde must be a finite number, got {mde!r}"
        raise StatisticsError(msg)
    if direction == "minimize":
        return -abs(mde)
    if direction in ("maximize", "two-sided"):
        return abs(mde)
    return float(mde)
