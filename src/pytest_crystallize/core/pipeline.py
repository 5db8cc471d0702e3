"""Pipeline steps: ``@pipeline_step()`` functions called as ``step(data, ctx)``.

A step's keyword parameters are filled from the context when the caller does
not pass them, so a treatment that sets ``{"threshold": 0.9}`` reaches
``def classify(data, ctx, threshold=0.5)`` without plumbing. A step called
without a context (from another step, or from the experiment function) uses
the context of the replicate that is running.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final, overload

from pytest_crystallize.core.context import CURRENT_CONTEXT, FrozenContext
from pytest_crystallize.errors import ConfigurationError

__all__ = ["PipelineStep", "pipeline_step"]

#: Attribute set on an exception to name the step it escaped from.
STEP_ATTRIBUTE: Final = "__crystallize_step__"

_FILLABLE_KINDS: Final = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


class PipelineStep:
    """A function wrapped as a step: context injection, hooks, error labels.

    Immutable after construction.
    """

    def __init__(self, function: Callable[..., Any], name: str | None = None) -> None:
        self.function = function
        self.name = name or function.__name__
        self.is_async = inspect.iscoroutinefunction(function)
        params = list(inspect.signature(function).parameters.values())
        self.takes_ctx = any(p.name == "ctx" for p in params)
        first = params[0] if params else None
        self.takes_data = first is not None and first.name != "ctx" and first.kind in (
            first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD
        )
        rest = params[1:] if self.takes_data else params
        fillable = [p for p in rest if p.name != "ctx" and p.kind in _FILLABLE_KINDS]
        self._fillable = tuple(p.name for p in fillable)
        self._required = frozenset(p.name for p in fillable if p.default is p.empty)
        functools.update_wrapper(self, function)  # copies __doc__, __name__, __wrapped__

    def __repr__(self) -> str:
        return f"<pipeline_step {self.name!r}>"

    def __call__(self, data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
        """Run the step on ``data`` with ``ctx`` (default: the running replicate's)."""
        if ctx is None and not self.takes_data and isinstance(data, FrozenContext):
            ctx, data = data, None  # a step without data called as step(ctx)
        if ctx is None:
            ctx = CURRENT_CONTEXT.get()
            if ctx is None and (self.takes_ctx or self._required.difference(kwargs)):
                msg = (
                    f"step {self.name!r} was called without a context outside an "
                    f"experiment: pass one, e.g. {self.name}(data, standalone_context())"
                )
                raise ConfigurationError(msg)
        args = self._arguments(data, ctx, kwargs)
        if self.is_async:
            return self._call_async(ctx, data, args, kwargs)
        hooks = ctx.step_hooks if ctx is not None else None
        if hooks is not None:
            hooks.before(self, data, ctx)
        try:
            result = self.function(*args, **kwargs)
        except Exception as exc:
            if not hasattr(exc, STEP_ATTRIBUTE):
                setattr(exc, STEP_ATTRIBUTE, self.name)
            raise
        if hooks is not None:
            hooks.after(self, result, ctx)
        return result

    async def _call_async(
        self, ctx: FrozenContext | None, data: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        hooks = ctx.step_hooks if ctx is not None else None
        if hooks is not None:
            hooks.before(self, data, ctx)
        try:
            result = await self.function(*args, **kwargs)
        except Exception as exc:
            if not hasattr(exc, STEP_ATTRIBUTE):
                setattr(exc, STEP_ATTRIBUTE, self.name)
            raise
        if hooks is not None:
            hooks.after(self, result, ctx)
        return result

    def _arguments(
        self, data: Any, ctx: FrozenContext | None, kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Fill ``kwargs`` from the context; return the positional arguments."""
        if ctx is not None:
            for name in self._fillable:
                if name not in kwargs and name in ctx:
                    kwargs[name] = ctx.get(name)
        missing = self._required.difference(kwargs) if self._required else ()
        if missing:
            names = ", ".join(repr(n) for n in sorted(missing))
            msg = (
                f"step {self.name!r} needs {names}: pass it when calling the step, "
                f"or put it in the context (ctx.add, a Treatment's params)"
            )
            raise ConfigurationError(msg)
        if self.takes_ctx:
            kwargs["ctx"] = ctx
        return (data,) if self.takes_data else ()


@overload
def pipeline_step(function: Callable[..., Any], /) -> PipelineStep: ...
@overload
def pipeline_step(*, name: str | None = None) -> Callable[[Callable[..., Any]], PipelineStep]: ...


def pipeline_step(
    function: Callable[..., Any] | None = None, /, *, name: str | None = None
) -> PipelineStep | Callable[[Callable[..., Any]], PipelineStep]:
    """Declare a pipeline step: ``@pipeline_step()`` (or bare ``@pipeline_step``).

    The step is called as ``step(data, ctx)``; keyword parameters it declares
    are taken from the context unless passed explicitly. An exception it
    raises becomes an error of the replicate, not a crash of the run.
    """
    if function is not None:
        return PipelineStep(function, name)

    def decorate(fn: Callable[..., Any]) -> PipelineStep:
        return PipelineStep(fn, name)

    return decorate
