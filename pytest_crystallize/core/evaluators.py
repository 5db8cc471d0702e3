"""Evaluators: functions that score what an experiment function returned, per replicate.

``evaluators=[accuracy]`` (or ``{"accuracy": fn}`` to choose the metric
names) calls each evaluator after the experiment function returns, in the
same replicate. Its parameters are filled by name:

* ``ctx``: the replicate's context;
* ``expected``: the expected answer. It is the value of the experiment's
  datasource parameter named ``expected`` if there is one; otherwise the
  ``expected`` item of the one datasource value that is a mapping with an
  ``"expected"`` key, or the ``expected`` attribute of the one that has such
  an attribute (a sample such as ``{"question": ..., "expected": ...}``);
* the name of one of the experiment's datasource parameters: that value;
* the one remaining parameter: the experiment function's return value.

An evaluator returns a number, recorded as the metric named after the
evaluator, or a mapping of metric names to numbers, each recorded. It may be
``async def`` (the experiment then runs on an event loop). An exception
raised by an evaluator, or a value that is not a number, is an error of that
replicate, labelled ``evaluator:<name>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.pipeline import label_origin
from pytest_crystallize.errors import ConfigurationError, MetricError

if TYPE_CHECKING:
    from types import TracebackType

    from pytest_crystallize.core.context import FrozenContext

__all__ = ["EXPECTED", "Evaluator", "check_evaluators", "evaluate_async", "evaluate_sync"]

#: The evaluator parameter (and datasource field) holding the expected answer.
EXPECTED: Final = "expected"
_CONTEXT: Final = "ctx"


@dataclass(frozen=True, slots=True)
class Evaluator:
    """One evaluator, its metric name and which parameters it takes. Build with :func:`check_evaluators`."""

    name: str
    function: Callable[..., Any]
    output: str
    output_positional: bool
    takes_ctx: bool
    takes_expected: bool
    sources: tuple[str, ...]
    is_async: bool

    def call(self, output: Any, ctx: FrozenContext, values: Mapping[str, Any]) -> Any:
        """Call the evaluator; ``values`` are the replicate's datasource values by parameter name."""
        kwargs: dict[str, Any] = {name: values[name] for name in self.sources}
        if self.takes_ctx:
            kwargs[_CONTEXT] = ctx
        if self.takes_expected:
            kwargs[EXPECTED] = _expected(self.name, values)
        if self.output_positional:
            return self.function(output, **kwargs)
        kwargs[self.output] = output
        return self.function(**kwargs)

    def record(self, result: Any, ctx: FrozenContext) -> None:
        """Record ``result`` (a number or a mapping of numbers) as metrics of ctx's replicate."""
        if isinstance(result, Mapping):
            for metric, value in result.items():
                ctx.metrics.add(metric, value)
            return
        if result is None:
            msg = f"evaluator {self.name!r} returned None; return a number or a mapping of metric names to numbers"
            raise MetricError(msg)
        ctx.metrics.add(self.name, result)


def check_evaluators(
    where: str,
    evaluators: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
    datasources: Iterable[str],
) -> tuple[Evaluator, ...]:
    """Validate ``evaluators`` of the experiment ``where``; raise ConfigurationError naming a bad one."""
    if isinstance(evaluators, Mapping):
        named = list(evaluators.items())
    elif isinstance(evaluators, (str, bytes)) or not isinstance(evaluators, Iterable) or callable(evaluators):
        msg = f"{where}: evaluators must be a list of functions or a mapping of names to functions, got {evaluators!r}"
        raise ConfigurationError(msg)
    else:
        named = [(getattr(fn, "__name__", None), fn) for fn in evaluators]
    sources = tuple(datasources)
    out: list[Evaluator] = []
    for name, function in named:
        if not callable(function):
            msg = f"{where}: evaluator {name!r} is not callable: {function!r}"
            raise ConfigurationError(msg)
        if not isinstance(name, str) or not name.isprintable() or not name or name.startswith("<"):
            msg = (
                f"{where}: evaluator {function!r} has no usable name for its metric; pass "
                f"evaluators={{'metric_name': function}}"
            )
            raise ConfigurationError(msg)
        if any(e.name == name for e in out):
            msg = f"{where}: two evaluators are named {name!r}; pass evaluators={{...}} with distinct names"
            raise ConfigurationError(msg)
        out.append(_inspect(where, name, function, sources))
    return tuple(out)


def evaluate_sync(
    evaluators: tuple[Evaluator, ...], output: Any, ctx: FrozenContext, values: Mapping[str, Any]
) -> None:
    """Run every evaluator on ``output`` and record its metrics; errors name the evaluator."""
    for evaluator in evaluators:
        with _Labelled(evaluator):
            evaluator.record(evaluator.call(output, ctx, values), ctx)


async def evaluate_async(
    evaluators: tuple[Evaluator, ...], output: Any, ctx: FrozenContext, values: Mapping[str, Any]
) -> None:
    """Async twin of :func:`evaluate_sync`: awaits what an ``async def`` evaluator returns."""
    for evaluator in evaluators:
        with _Labelled(evaluator):
            returned = evaluator.call(output, ctx, values)
            evaluator.record(await returned if inspect.isawaitable(returned) else returned, ctx)


class _Labelled:
    """``with _Labelled(evaluator):`` labels an exception escaping the block ``evaluator:<name>``.

    What both twins share; a class rather than ``contextlib.contextmanager``
    because it runs for every evaluator of every replicate.
    """

    __slots__ = ("_origin",)

    def __init__(self, evaluator: Evaluator) -> None:
        self._origin = f"evaluator:{evaluator.name}"

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if isinstance(exc, Exception):  # KeyboardInterrupt and the like stay unlabelled
            label_origin(exc, self._origin)


def _inspect(where: str, name: str, function: Callable[..., Any], sources: tuple[str, ...]) -> Evaluator:
    label = f"{where}: evaluator {name!r}"
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        msg = f"{label}: its signature cannot be read; wrap it in a def"
        raise ConfigurationError(msg) from None
    named = {_CONTEXT, EXPECTED, *sources}
    plain = [p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    rest = [p for p in plain if p.name not in named]
    required = [p for p in rest if p.default is p.empty]
    if len(required) > 1 or not rest:
        msg = (
            f"{label} must take the experiment's return value as one parameter, plus optionally "
            f"'ctx', 'expected' or datasource parameters ({', '.join(sources) or 'none'}); "
            f"it takes ({', '.join(p.name for p in plain)})"
        )
        raise ConfigurationError(msg)
    output = (required or rest)[0]
    names = {p.name for p in plain}
    return Evaluator(
        name=name, function=function, output=output.name,
        output_positional=output.kind is output.POSITIONAL_ONLY,
        takes_ctx=_CONTEXT in names, takes_expected=EXPECTED in names and EXPECTED not in sources,
        sources=tuple(s for s in sources if s in names),
        is_async=inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(type(function).__call__),
    )


def _expected(name: str, values: Mapping[str, Any]) -> Any:
    """The expected answer among the replicate's datasource values (see the module docstring)."""
    found = []
    for parameter, value in values.items():
        if isinstance(value, Mapping):
            if EXPECTED in value:
                found.append((parameter, value[EXPECTED]))
        elif hasattr(value, EXPECTED):
            found.append((parameter, getattr(value, EXPECTED)))
    if len(found) == 1:
        return found[0][1]
    if not found:
        msg = (
            f"evaluator {name!r} takes 'expected', but no datasource value of this replicate has an "
            f"'expected' key or attribute (datasource parameters: {', '.join(values) or 'none'})"
        )
    else:
        msg = (
            f"evaluator {name!r} takes 'expected', but datasources {', '.join(p for p, _ in found)} "
            f"all carry one; take the datasource parameter by name instead"
        )
    raise ConfigurationError(msg)
