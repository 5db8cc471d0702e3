"""A sync replicate that left a coroutine nobody awaits: a configuration error, not a silent no-op.

An ``async def`` step called from a plain ``def`` experiment returns a
coroutine that never runs, and so does a plain ``def`` experiment function
that returns one. Without a check only Python's "coroutine was never
awaited" warning, and a missing metric, would say so.
"""

from __future__ import annotations

import inspect
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.pipeline import label_origin
from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment

__all__ = ["check_awaited"]


def check_awaited(experiment: Experiment, ctx: FrozenContext, outcome: Any, *, returned_ok: bool) -> None:
    """Raise ConfigurationError when a sync experiment function left a coroutine nobody awaits.

    An ``async def`` step called from a plain ``def`` experiment returns a
    coroutine that never runs: without this, only Python's "coroutine was
    never awaited" warning and a missing metric would say so. ``returned_ok``:
    the caller awaits the returned ``outcome`` itself (the async run path).
    """
    pending = [
        (name, coroutine) for name, coroutine in ctx.step_coroutines or ()
        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
        and not (returned_ok and coroutine is outcome)
    ]
    if pending:
        for _, coroutine in pending:
            coroutine.close()  # never ran: closing it silences "never awaited"
        name = pending[0][0]
        msg = (
            f"async step {name!r} called from the sync experiment {experiment.name!r}, so nothing awaited "
            f"it and it never ran: make the experiment function 'async def' and 'await' the step"
        )
        error = ConfigurationError(msg)
        label_origin(error, name)
        raise error
    if not returned_ok and isinstance(outcome, CoroutineType):
        outcome.close()
        msg = (
            f"experiment {experiment.name!r}: its function is a plain 'def' but returned a coroutine, "
            f"which nothing awaits: make it 'async def' and await what it calls"
        )
        raise ConfigurationError(msg)
