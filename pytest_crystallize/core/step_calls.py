"""What a pipeline step's call hands its plugins: the step hooks of a replicate, and one call's :class:`StepCall`.

``crystallize_step_before`` / ``crystallize_step_after`` run through
:class:`StepHooks` (attached to the replicate's context, absent when no
plugin implements them); ``crystallize_step_call`` receives a
:class:`StepCall`, which a plugin (the step cache) may :meth:`~StepCall.supply`
instead of running the step. :mod:`pytest_crystallize.core.pipeline` makes both.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import PipelineStep

__all__ = ["StepCall", "StepHooks", "ready"]


class StepHooks:
    """The step hooks a replicate's plugins implement, attached to its context (None when none).

    Built by the replicate runner; each caller is None unless some plugin
    other than the built-in defaults implements that hook, so steps of an
    experiment without step plugins pay nothing.
    """

    __slots__ = ("_after", "_before", "call", "experiment")

    def __init__(self, experiment: Experiment, *, before: Any, call: Any, after: Any) -> None:
        self.experiment = experiment
        self._before = before
        self.call = call
        self._after = after

    def before(self, step: PipelineStep, data: Any, ctx: FrozenContext | None) -> None:
        """Call ``crystallize_step_before`` if some plugin implements it."""
        if self._before is not None:
            self._before(experiment=self.experiment, step=step, data=data, ctx=ctx)

    def after(self, step: PipelineStep, output: Any, ctx: FrozenContext | None) -> None:
        """Call ``crystallize_step_after`` if some plugin implements it."""
        if self._after is not None:
            self._after(experiment=self.experiment, step=step, data=output, ctx=ctx)


class StepCall:
    """One call of a pipeline step, as ``crystallize_step_call`` sees it.

    ``step``, ``data`` and ``ctx`` are what the step was called with,
    ``kwargs`` the keyword arguments it receives (explicit ones and those
    filled from the context, ``ctx`` left out; read-only). A plugin may :meth:`supply` the
    output instead of running the step; the built-in default then returns it
    without calling the step (see :meth:`proceed`). Lives for one call.
    """

    __slots__ = ("_args", "_kwargs", "ctx", "data", "kwargs", "output", "step", "supplied")

    def __init__(
        self, step: PipelineStep, data: Any, ctx: FrozenContext | None, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.step = step
        self.data = data
        self.ctx = ctx
        self._args = args
        self._kwargs = kwargs
        self.kwargs: Mapping[str, Any] = MappingProxyType({k: v for k, v in kwargs.items() if k != "ctx"})
        self.output: Any = None
        self.supplied = False

    def __repr__(self) -> str:
        return f"<StepCall {self.step.name!r} supplied={self.supplied}>"

    def supply(self, output: Any) -> None:
        """Make ``output`` the step's output without running it (for an async step: the awaited value)."""
        self.output = output
        self.supplied = True

    def proceed(self) -> Any:
        """The step's output: the supplied one, or the function called now.

        For an ``async def`` step it is an awaitable either way.
        """
        if not self.supplied:
            return self.step.function(*self._args, **self._kwargs)
        return ready(self.output) if self.step.is_async else self.output


async def ready(value: Any) -> Any:
    """``value``, as an awaitable: a supplied output of an ``async def`` step."""
    return value
