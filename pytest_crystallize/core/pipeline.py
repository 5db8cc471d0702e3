"""Pipeline steps: ``@pipeline_step()`` functions called as ``step(data, ctx)``.

A step's keyword parameters are filled from the context when the caller does
not pass them, so a treatment that sets ``{"threshold": 0.9}`` reaches
``def classify(data, ctx, threshold=0.5)`` without plumbing. A parameter
annotated with a dataclass or a Pydantic model receives it built from the
context (:mod:`~pytest_crystallize.core.binding`).

Nesting: a step called without a context (from another step, from the
experiment function, from a helper) uses the context of the replicate that
is running, found through a context variable, never by reading source code.
Context variables follow ``await``, ``asyncio.create_task``, ``asyncio.gather``
and ``asyncio.to_thread``; a thread started by hand does not inherit them:
run its work with ``contextvars.copy_context().run(...)`` (a step called
there without a context says so). An ``async def`` step returns a coroutine:
a plain ``def`` experiment that calls one without running it gets a
replicate error saying to make the experiment ``async def`` and await it.
:func:`~pytest_crystallize.core.running.current_context` returns the running replicate's context to any code.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import FunctionType
from typing import TYPE_CHECKING, Any, Final, cast, overload

from pytest_crystallize.core.context import FrozenContext
from pytest_crystallize.core.running import running_context
from pytest_crystallize.core.step_calls import StepCall, StepHooks
from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.binding import Binding

__all__ = [
    "PipelineStep",
    "StepCall",
    "StepHooks",
    "cached_steps_declared",
    "label_origin",
    "pipeline_step",
]

#: Attribute set on an exception to name the step (or datasource, evaluator) it escaped from.
STEP_ATTRIBUTE: Final = "__crystallize_step__"
#: Attribute of the function :func:`pipeline_step` returns: its PipelineStep.
STEP_DEFINITION: Final = "__crystallize_definition__"
#: The public attributes of a PipelineStep that the function users call carries too.
_PUBLIC: Final = ("name", "function", "cache", "cache_key", "is_async", "takes_ctx", "takes_data")


def label_origin(exc: BaseException, origin: str) -> None:
    """Record where ``exc`` escaped from; the innermost label wins (a nested step names itself)."""
    if not hasattr(exc, STEP_ATTRIBUTE):
        setattr(exc, STEP_ATTRIBUTE, origin)

_FILLABLE_KINDS: Final = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


class _StepType(type):
    """PipelineStep's type: a step made by :func:`pipeline_step`, a function, is an instance too."""

    def __instancecheck__(cls, instance: object) -> bool:
        if type(instance) is FunctionType:
            instance = instance.__dict__.get(STEP_DEFINITION)
        return type.__instancecheck__(cls, instance)


class PipelineStep(metaclass=_StepType):
    """A function wrapped as a step: context injection, typed binding, hooks, error labels.

    Immutable after construction, except that annotations naming classes not
    yet defined are resolved on the first call.

    :func:`pipeline_step` returns a plain function that carries this
    definition, not the instance itself: a call of a function costs a third
    of a call through ``__call__``, and a step is called in every replicate.
    ``isinstance(step, PipelineStep)`` holds for that function, it has the
    public attributes below (copies, to read), and the hooks receive it as
    ``step``. Like any function, it binds when read from a class's instance:
    a step defined in a class body is declared ``@staticmethod`` above
    ``@pipeline_step()``.
    """

    # Slots for what a call reads: ``functools.update_wrapper`` fills ``__dict__``, and an attribute read
    # from a filled instance dict costs a sixth of a plain step call. ``__dict__`` keeps what it copies
    # (``__doc__``, ``__wrapped__``, the function's own attributes); ``__weakref__``: _CACHED_STEPS.
    __slots__ = (
        "__dict__", "__weakref__", "_bindings", "_data_ctx_shape", "_data_name", "_direct", "_fillable", "_front",
        "_localns", "_plain", "_plain_fills", "_required", "cache", "cache_key", "function", "is_async", "name",
        "takes_ctx", "takes_data",
    )

    def __init__(
        self, function: Callable[..., Any], name: str | None = None, *, localns: Mapping[str, Any] | None = None,
        cache: bool = False, cache_key: Callable[..., Any] | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        #: Whether a cache plugin may keep and replay this step's calls (``@pipeline_step(cache=True)``).
        self.cache, self.cache_key = _cache_options(self.name, cache, cache_key)
        if self.cache:
            _CACHED_STEPS.add(self)
        self.is_async = inspect.iscoroutinefunction(function)
        params = list(inspect.signature(function).parameters.values())
        self.takes_ctx = any(p.name == "ctx" for p in params)
        first = params[0] if params else None
        self.takes_data = first is not None and first.name != "ctx" and first.kind in (
            first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD
        )
        #: The data parameter's name, which a call may also pass it by (as the signature shows).
        self._data_name = first.name if self.takes_data and first is not None else None
        rest = params[1:] if self.takes_data else params
        fillable = [p for p in rest if p.name != "ctx" and p.kind in _FILLABLE_KINDS]
        self._fillable = tuple(p.name for p in fillable)
        self._required = frozenset(p.name for p in fillable if p.default is p.empty)
        self._localns = localns
        self._bindings: tuple[Binding, ...] | None = None
        #: No typed parameter and nothing to await: called directly when no plugin watches steps (set
        #: once the bindings are known).
        self._direct = False
        # Declared (data, ctx, then only optional parameters), the commonest steps: called positionally
        # with nothing checked per call but the context's step hooks, for speed (_plain is set with _direct).
        self._data_ctx_shape = self.takes_data and len(params) >= 2 and params[1].name == "ctx" and all(
            p.kind is p.POSITIONAL_OR_KEYWORD and (p.default is not p.empty or p is params[1]) for p in params[1:]
        )
        #: ``(name, default)`` of the optional parameters after ``ctx``, when declared that way.
        self._plain_fills = tuple((p.name, p.default) for p in params[2:])
        self._plain = False
        #: What the hooks receive as ``step``: the function users call, once step_function made one.
        self._front: PipelineStep = self
        self._resolve_bindings(first_call=False)
        functools.update_wrapper(self, function)  # copies __doc__, __name__, __wrapped__

    def _resolve_bindings(self, *, first_call: bool) -> tuple[Binding, ...]:
        """Find the typed parameters; before the first call, only if every annotation resolves."""
        from pytest_crystallize.core.binding import parameter_bindings

        try:
            found, unresolved = parameter_bindings(self.function, self._localns)
        except ConfigurationError as exc:
            msg = f"step {self.name!r}: {exc}"
            raise ConfigurationError(msg) from None
        bindings = tuple(b for name, b in found.items() if name in self._fillable)
        if first_call or not unresolved:
            self._bindings = bindings
            self._direct = not bindings and not self.is_async
            self._plain = self._direct and self._data_ctx_shape
        return bindings

    def __repr__(self) -> str:
        return f"<pipeline_step {self.name!r}>"

    def __call__(self, data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
        """Run the step on ``data`` with ``ctx`` (default: the running replicate's)."""
        if ctx is not None and self._direct and not kwargs and ctx.step_hooks is None:
            # The common call, step(data, ctx): what the path below does, less work.
            if self._fillable:
                ctx.fill(self._fillable, kwargs)
                if self._required and not self._required <= kwargs.keys():
                    raise ConfigurationError(self._missing_message(self._required.difference(kwargs)))
            try:
                if kwargs:  # a call spelling out its keywords costs a third of one unpacking a dict
                    if self.takes_ctx:
                        kwargs["ctx"] = ctx
                    return self.function(data, **kwargs) if self.takes_data else self.function(**kwargs)
                if self.takes_ctx:
                    return self.function(data, ctx=ctx) if self.takes_data else self.function(ctx=ctx)
                return self.function(data) if self.takes_data else self.function()
            except Exception as exc:
                label_origin(exc, self.name)
                raise
        if "ctx" in kwargs or (self._data_name is not None and self._data_name in kwargs):
            data, ctx = self._by_keyword(data, ctx, kwargs)
        if ctx is None and not self.takes_data and isinstance(data, FrozenContext):
            ctx, data = data, None  # a step without data called as step(ctx)
        if ctx is None:
            ctx = running_context()
            if ctx is None and (self.takes_ctx or self._required.difference(kwargs)):
                raise ConfigurationError(_no_context_message(self.name))
        args = self._arguments(data, ctx, kwargs)
        hooks = ctx.step_hooks if ctx is not None else None
        if self.is_async:
            coroutine = self._call_async(hooks, ctx, data, args, kwargs)
            if ctx is not None:  # a sync replicate checks it was awaited (see ReplicateRunner)
                if ctx.step_coroutines is None:
                    ctx.step_coroutines = []
                ctx.step_coroutines.append((self.name, coroutine))
            return coroutine
        if hooks is None:  # no plugin watches steps: the call itself (what _invoke does, one call less)
            try:
                return self.function(*args, **kwargs)
            except Exception as exc:
                label_origin(exc, self.name)
                raise
        hooks.before(self._front, data, ctx)
        output = self._invoke(hooks, ctx, data, args, kwargs)
        hooks.after(self._front, output, ctx)
        return output

    def _by_keyword(self, data: Any, ctx: FrozenContext | None, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """``data`` and ``ctx`` taken out of ``kwargs`` when passed by name, as the step's signature allows."""
        passed = [data, ctx]
        for index, name in enumerate((self._data_name, "ctx")):
            if name is not None and name in kwargs:
                if passed[index] is not None:
                    msg = f"step {self.name!r} got {name!r} twice: by position and by keyword"
                    raise TypeError(msg)
                passed[index] = kwargs.pop(name)
        return passed[0], passed[1]

    async def _call_async(
        self, hooks: StepHooks | None, ctx: FrozenContext | None, data: Any, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        if hooks is not None:
            hooks.before(self._front, data, ctx)
        awaitable = self._invoke(hooks, ctx, data, args, kwargs)
        try:
            output = await awaitable
        except Exception as exc:
            label_origin(exc, self.name)
            raise
        if hooks is not None:
            hooks.after(self._front, output, ctx)
        return output

    def _invoke(
        self, hooks: StepHooks | None, ctx: FrozenContext | None, data: Any, args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Call the function, through ``crystallize_step_call`` when a plugin wraps steps.

        What it raises is labelled with the step's name. For an ``async def``
        step the output is the awaitable to await.
        """
        try:
            if hooks is None or hooks.call is None:
                return self.function(*args, **kwargs)
            return hooks.call(experiment=hooks.experiment, call=StepCall(self._front, data, ctx, args, kwargs))
        except Exception as exc:
            label_origin(exc, self.name)
            raise

    def _arguments(
        self, data: Any, ctx: FrozenContext | None, kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Fill ``kwargs`` from the context; return the positional arguments."""
        bindings = self._bindings
        if bindings is None:
            bindings = self._resolve_bindings(first_call=True)
        if ctx is not None:
            for binding in bindings:
                if binding.parameter not in kwargs:
                    try:
                        supplied, value = binding.resolve(ctx)
                    except ConfigurationError as exc:
                        msg = f"step {self.name!r}: {exc}"
                        raise ConfigurationError(msg) from None
                    if supplied:
                        kwargs[binding.parameter] = value
            if self._fillable:
                ctx.fill(self._fillable, kwargs)
        missing = self._required.difference(kwargs) if self._required else ()
        if missing:
            raise ConfigurationError(self._missing_message(missing))
        if self.takes_ctx:
            kwargs["ctx"] = ctx
        return (data,) if self.takes_data else ()

    def _missing_message(self, missing: Iterable[str]) -> str:
        names = ", ".join(repr(n) for n in sorted(missing))
        return (
            f"step {self.name!r} needs {names}: pass it when calling the step, "
            f"or put it in the context (ctx.add, a Treatment's params)"
        )


def _no_context_message(name: str) -> str:
    """Why step ``name`` found no context: outside an experiment, or in a thread that did not inherit it."""
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return (
            f"step {name!r} was called without a context outside an "
            f"experiment: pass one, e.g. {name}(data, standalone_context())"
        )
    return (
        f"step {name!r} was called without a context in thread {thread.name!r}, where no experiment "
        f"replicate is running. Threads do not inherit the replicate's context (a context variable): "
        f"run the work with it, e.g. pool.submit(contextvars.copy_context().run, work, item) "
        f"(asyncio.to_thread does this for you), or pass ctx explicitly: {name}(data, ctx)"
    )


#: The steps declared with ``cache=True`` that still exist: without any, a run needs no cache plugin.
_CACHED_STEPS: weakref.WeakSet[PipelineStep] = weakref.WeakSet()


def cached_steps_declared() -> bool:
    """True when some living step was declared with ``cache=True`` (so a cache plugin has work)."""
    return len(_CACHED_STEPS) > 0


def _cache_options(
    name: str, cache: object, cache_key: object
) -> tuple[bool, Callable[..., Any] | None]:
    """Check ``cache=`` and ``cache_key=`` of step ``name``."""
    if not isinstance(cache, bool):
        msg = f"step {name!r}: cache= must be True or False, got {cache!r}"
        raise ConfigurationError(msg)
    if cache_key is not None and not callable(cache_key):
        msg = (
            f"step {name!r}: cache_key= must be a function called like the step (without ctx) that "
            f"returns what identifies its input, got {type(cache_key).__name__}"
        )
        raise ConfigurationError(msg)
    if cache_key is not None and not cache:
        msg = f"step {name!r}: cache_key= describes the input of a cached step; add cache=True"
        raise ConfigurationError(msg)
    return cache, cache_key


@overload
def pipeline_step(function: Callable[..., Any], /) -> PipelineStep: ...
@overload
def pipeline_step(
    *, name: str | None = None, cache: bool = False, cache_key: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], PipelineStep]: ...


def pipeline_step(
    function: Callable[..., Any] | None = None, /, *, name: str | None = None, cache: bool = False,
    cache_key: Callable[..., Any] | None = None,
) -> PipelineStep | Callable[[Callable[..., Any]], PipelineStep]:
    """Declare a pipeline step: ``@pipeline_step()`` (or bare ``@pipeline_step``).

    The step is called as ``step(data, ctx)``; keyword parameters it declares
    are taken from the context unless passed explicitly. An exception it
    raises becomes an error of the replicate, not a crash of the run.

    ``cache=True`` lets the step cache (on unless ``--crystallize-no-cache``;
    ``run_experiment(..., cache=...)`` outside pytest) keep each call and
    replay it when the same call comes again: same code, arguments, input
    data and context values read. ``cache_key`` is called like the step
    (without ``ctx``) and returns what identifies its input, for inputs the
    cache cannot digest itself.
    """
    if function is not None:
        return _step_function(PipelineStep(function, name, localns=_defining_locals(function)))

    def decorate(fn: Callable[..., Any]) -> PipelineStep:
        return _step_function(PipelineStep(fn, name, localns=_defining_locals(fn), cache=cache, cache_key=cache_key))

    return decorate


def _step_function(definition: PipelineStep) -> PipelineStep:
    """The function users call for ``definition``: the common call inline, any other through it.

    The common call is ``step(data, ctx)`` of a step declared ``(data, ctx,
    then only optional parameters)`` with no typed parameter, nothing to
    await and no plugin watching steps (``definition._plain``, known once the
    annotations resolve): the function is called with the optional
    parameters read from the context, what ``PipelineStep.__call__`` would do.
    """
    function, name, call = definition.function, definition.name, definition.__call__
    fills = definition._plain_fills if definition._data_ctx_shape else None
    # One closure per shape, spelt out: a comprehension over no or one fill costs as much as the rest of the call.

    if fills is None:  # another shape: every call goes through the definition
        def step(data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
            return call(data, ctx, **kwargs)

    elif not fills:
        def step(data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
            if definition._plain and ctx is not None and not kwargs and ctx.step_hooks is None:
                try:
                    return function(data, ctx)
                except Exception as exc:
                    label_origin(exc, name)
                    raise
            return call(data, ctx, **kwargs)

    elif len(fills) == 1:
        ((fill, default),) = fills

        def step(data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
            if definition._plain and ctx is not None and not kwargs and ctx.step_hooks is None:
                try:
                    return function(data, ctx, ctx.get(fill, default))
                except Exception as exc:
                    label_origin(exc, name)
                    raise
            return call(data, ctx, **kwargs)

    else:
        def step(data: Any = None, ctx: FrozenContext | None = None, /, **kwargs: Any) -> Any:
            if definition._plain and ctx is not None and not kwargs and ctx.step_hooks is None:
                try:
                    return function(data, ctx, *[ctx.get(fill, default) for fill, default in fills])
                except Exception as exc:
                    label_origin(exc, name)
                    raise
            return call(data, ctx, **kwargs)

    functools.update_wrapper(step, function)  # __name__, __qualname__, __doc__, __wrapped__, its attributes
    for attribute in _PUBLIC:
        setattr(step, attribute, getattr(definition, attribute))
    setattr(step, STEP_DEFINITION, definition)
    front = cast("PipelineStep", step)
    definition._front = front
    return front


def _defining_locals(function: Callable[..., Any]) -> dict[str, Any] | None:
    """The locals of the function that defines ``function`` (two frames up), when it is one.

    Lets annotations such as ``cfg: Config`` resolve when ``Config`` is a class
    defined in the same test function (``from __future__ import annotations``
    turns annotations into strings resolved later).
    """
    if "<locals>" not in getattr(function, "__qualname__", "") or not hasattr(sys, "_getframe"):
        return None
    try:
        return dict(sys._getframe(2).f_locals)
    except ValueError:  # no such frame
        return None
