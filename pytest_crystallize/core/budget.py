"""The time budget: stop every experiment when the time is spent, and say what that means for its verdicts.

``--crystallize-budget=SECONDS`` (``run_experiment(budget=...)``) gives a
deadline. The runner checks it between batches of replicates and stops the
experiment at the first check past it. What a verdict is worth then depends
on the design:

* ``replicates="anytime"``: valid. Its e-processes allow any stopping time.
* ``replicates="auto"``: valid but weaker. The verdicts are those of the last
  completed look; stopping a group-sequential design early without rejecting
  never adds false positives, it only loses power.
* fixed ``replicates=N``: not valid. A fixed test is calibrated for N; cut
  short at a time that may depend on how the replicates went (slow ones are
  often the unusual ones) it makes no claim: each verdict fails and says
  "stopped by budget: not valid".
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pytest_crystallize.core.hypotheses import Verdict

__all__ = ["BUDGET", "BUDGET_BATCHES", "Deadline", "cut_short", "replicate_steps"]

#: With a budget, a fixed design or a look runs in about this many batches, so a stop comes soon after the deadline.
BUDGET_BATCHES: Final = 20
#: The label of what stopped a run.
BUDGET: Final = "budget"


@dataclasses.dataclass(frozen=True, slots=True)
class Deadline:
    """A point in wall-clock time (``time.time()``) after which experiments stop."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.time() + seconds)

    @property
    def passed(self) -> bool:
        """True once the time is spent."""
        return time.time() >= self.at


def replicate_steps(start: int, stop: int, total: int, deadline: Deadline | None) -> list[tuple[int, int]]:
    """Replicate ranges to run from ``start`` to ``stop``: one without a deadline, else about ``total / 20`` each."""
    if deadline is None or stop <= start:
        return [(start, stop)]
    size = max(1, math.ceil(total / BUDGET_BATCHES))
    return [(lo, min(stop, lo + size)) for lo in range(start, stop, size)]


def cut_short(
    verdicts: tuple[Verdict, ...], done: int, planned: int, design: str = "fixed design"
) -> tuple[Verdict, ...]:
    """The verdicts of a fixed-size ``design`` the budget stopped after ``done`` of ``planned`` replicates: all fail."""
    lead = (f"stopped by budget after {done} of {planned} replicates: not valid (a fixed design is valid only "
            f"at its planned size; replicates='anytime' stays valid at any stop)")
    return tuple(
        dataclasses.replace(
            v, holds=False, reason=f"{lead}; the test on the replicates run said: {v.reason}",
            details={**v.details, "design": f"{design}, stopped by budget: not valid"},
        )
        for v in verdicts
    )
