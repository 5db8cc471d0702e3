"""Which replicate is running: the context a step called without ``ctx`` uses.

The runner makes each replicate's context current through a context
variable, so a nested step, a helper or an asyncio task the replicate starts
finds it (:func:`current_context`) without it being passed. Context variables
follow ``await`` and the tasks and ``asyncio.to_thread`` calls a replicate
starts; a thread started by hand does not inherit them.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext

__all__ = ["CURRENT_CONTEXT", "RunningContext", "current_context", "running_context"]


class RunningContext:
    """Where the runner puts the context of the replicate it runs: what :data:`CURRENT_CONTEXT` holds.

    A sync batch sets the variable once and puts each replicate's context in
    this holder as it starts: setting a context variable per replicate costs
    a tenth of a trivial replicate. So work a sync replicate leaves running
    after it returns (a thread given ``contextvars.copy_context()``) sees the
    next replicate's context; pass it ``ctx`` instead. An ``async`` replicate
    gets a holder of its own, so an asyncio task it starts keeps its
    replicate's context even if it outlives it.
    """

    __slots__ = ("ctx",)

    def __init__(self, ctx: FrozenContext | None = None) -> None:
        self.ctx = ctx


#: The holder of the context of the replicate running in this thread or task;
#: lets a step called without ``ctx`` (a nested step) find it. Set by the runner;
#: read it with :func:`running_context`.
CURRENT_CONTEXT: ContextVar[RunningContext | None] = ContextVar(
    "pytest_crystallize_context", default=None
)


def running_context() -> FrozenContext | None:
    """The context of the replicate running in this thread or task, or None outside one."""
    running = CURRENT_CONTEXT.get()
    return None if running is None else running.ctx


def current_context() -> FrozenContext:
    """The context of the replicate running in this thread or asyncio task.

    Raises ConfigurationError outside a replicate (or in a thread started by
    hand, which does not inherit context variables).
    """
    ctx = running_context()
    if ctx is None:
        msg = (
            "no experiment replicate is running here: current_context() works inside an experiment "
            "function, its steps and the asyncio tasks they start; a thread started by hand needs "
            "contextvars.copy_context().run(...)"
        )
        raise ConfigurationError(msg)
    return ctx
