"""The experiment function called with positional arguments: the same values reach the same parameters."""

from __future__ import annotations

import functools
from typing import Any

from pytest_crystallize import FrozenContext, Treatment, run_experiment
from pytest_crystallize.core.positional import PositionalPlan, positional_plans


def _first(ctx: FrozenContext) -> int:
    return int(ctx.get("replicate"))


def _second() -> int:
    return 7


def _reordered(second: int, ctx: FrozenContext, scale: int, first: int) -> None:
    ctx.metrics.add("v", first * 1000 + second * 10 + scale * ctx.get("k"))


def _keyword_only(second: int, ctx: FrozenContext, *, scale: int, first: int) -> None:
    ctx.metrics.add("v", first * 1000 + second * 10 + scale * ctx.get("k"))


def positional_plan(function: Any, fixed: dict[str, Any], calls: Any, takes_ctx: bool) -> PositionalPlan | None:
    """The plan for one condition's datasource calls."""
    return positional_plans(function, fixed, [calls], takes_ctx)[0]


def _run(function: Any, **options: Any) -> Any:
    return run_experiment(
        function, name="positional", replicates=4, seed=1, params={"k": 1},
        treatments=[Treatment("t", {"k": 2})], datasources={"first": _first, "second": _second},
        arguments={"scale": 3}, **options,
    )


def test_each_argument_reaches_its_parameter_whatever_the_order() -> None:
    result = _run(_reordered)
    assert not result.errors
    for condition, k in (("baseline", 1), ("t", 2)):
        replicates, values = result.select("v", condition)
        assert values.tolist() == [r * 1000 + 7 * 10 + 3 * k for r in replicates.tolist()]


def test_a_function_called_with_keywords_gives_the_same_values() -> None:
    assert positional_plan(_keyword_only, {"scale": 3}, (), takes_ctx=True) is None  # the keyword path
    positional, keywords = _run(_reordered), _run(_keyword_only)
    assert positional.values.tolist() == keywords.values.tolist()
    assert positional.replicates.tolist() == keywords.replicates.tolist()


def test_datasources_run_in_the_order_of_the_parameters() -> None:
    calls: list[str] = []

    def b_source() -> int:
        calls.append("b")
        return 1

    def a_source() -> int:
        calls.append("a")
        return 2

    def uses_both(b: int, a: int, ctx: FrozenContext) -> None:
        ctx.metrics.add("v", a - b)

    result = run_experiment(uses_both, name="order", replicates=2, seed=1, datasources={"a": a_source, "b": b_source})
    assert result.values.tolist() == [1.0, 1.0]
    assert calls == ["b", "a", "b", "a"]


def test_a_wrapper_taking_only_keywords_is_called_with_keywords() -> None:
    def inner(first: int, ctx: FrozenContext) -> None:
        ctx.metrics.add("v", first)

    @functools.wraps(inner)
    def wrapper(**kwargs: Any) -> None:  # its signature, seen through __wrapped__, names inner's parameters
        inner(**kwargs)

    result = run_experiment(wrapper, name="wrapped", replicates=3, seed=1, datasources={"first": _first})
    assert not result.errors
    assert result.values.tolist() == [0.0, 1.0, 2.0]


def test_only_a_signature_whose_every_parameter_is_filled_gets_a_plan() -> None:
    calls = (("first", _first, True, "first"),)

    def defaulted(first: int, ctx: FrozenContext, extra: int = 1) -> None: ...

    def variadic(first: int, *rest: Any) -> None: ...

    def filled(scale: int, first: int, ctx: FrozenContext) -> None: ...

    assert positional_plan(defaulted, {}, calls, takes_ctx=True) is None
    assert positional_plan(variadic, {}, calls, takes_ctx=False) is None
    plan = positional_plan(filled, {"scale": 3}, calls, takes_ctx=True)
    assert plan is not None
    assert plan.template == (3, None, None)
    assert [(index, name) for index, _, _, name in plan.sources] == [(1, "first")]
    assert plan.ctx_index == 2
    assert plan.by_name(["x", "y", "z"]) == {"first": "y"}
