"""Calling an experiment function with positional arguments, when its signature allows.

The runner fills an experiment function's parameters from the replicate's
context, its datasources and fixed arguments (pytest fixtures). Built as a
dict and passed as ``**kwargs``, that costs a tenth of a trivial replicate;
a :class:`PositionalPlan`, made once per condition, lays the same arguments
out as a list in signature order instead. A function with a keyword-only
parameter, ``*args``/``**kwargs`` or a parameter left to its default gets no
plan (the runner passes keywords).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasourceCall", "PositionalPlan", "positional_plans"]

#: ``(parameter, function, takes_ctx, name)`` of one datasource of a condition, in call order.
DatasourceCall = tuple[str, Callable[..., Any], bool, str]


@dataclass(frozen=True, slots=True)
class PositionalPlan:
    """How to call an experiment function positionally: its arguments in signature order.

    ``template`` holds the fixed arguments in their places (None elsewhere);
    each datasource's output goes at its index in ``sources``, and the
    context at ``ctx_index`` (-1: the function takes none).
    """

    template: tuple[Any, ...]
    #: ``(index, function, takes_ctx, name)`` of each datasource, in call order.
    sources: tuple[tuple[int, Callable[..., Any], bool, str], ...]
    ctx_index: int
    #: ``(parameter, index)`` of each datasource's output.
    names: tuple[tuple[str, int], ...]

    def by_name(self, args: list[Any]) -> dict[str, Any]:
        """The datasources' outputs in ``args``, by parameter name."""
        return {name: args[index] for name, index in self.names}


def positional_plans(
    function: Callable[..., Any], fixed: dict[str, Any], conditions: Sequence[tuple[DatasourceCall, ...]],
    takes_ctx: bool,
) -> tuple[PositionalPlan | None, ...]:
    """The plan to call ``function`` for each condition's datasource ``calls`` (or None), reading its signature once.

    None unless every parameter is positional-or-keyword and filled (by the
    context, a datasource or a fixed argument), so that the keyword call the
    runner would make passes the same values.
    """
    try:
        parameters = tuple(inspect.signature(function, follow_wrapped=False).parameters.values())
    except (TypeError, ValueError):
        return (None,) * len(conditions)
    return tuple(_plan(parameters, fixed, calls, takes_ctx) for calls in conditions)


def _plan(
    parameters: tuple[inspect.Parameter, ...], fixed: dict[str, Any], calls: tuple[DatasourceCall, ...],
    takes_ctx: bool,
) -> PositionalPlan | None:
    position = {parameter.name: index for index, parameter in enumerate(parameters)}
    template: list[Any] = []
    ctx_index = -1
    sourced = {parameter for parameter, *_ in calls}
    for index, parameter in enumerate(parameters):
        if parameter.kind is not parameter.POSITIONAL_OR_KEYWORD:
            return None
        if parameter.name == "ctx" and takes_ctx:
            ctx_index = index
        elif parameter.name not in sourced and parameter.name not in fixed:
            return None
        template.append(fixed.get(parameter.name))
    sources = tuple((position[parameter], source, takes, name) for parameter, source, takes, name in calls)
    names = tuple((parameter, position[parameter]) for parameter, *_ in calls)
    return PositionalPlan(tuple(template), sources, ctx_index, names)
