"""@pipeline_step: calling convention, parameters from the context, nesting, async."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from pytest_crystallize import (
    ConfigurationError,
    FrozenContext,
    PipelineStep,
    Treatment,
    hookimpl,
    pipeline_step,
    run_experiment,
    standalone_context,
)


@pipeline_step()
def _scale(data: float, ctx: FrozenContext, factor: float = 1.0) -> float:
    return data * factor


@pipeline_step()
def _inner_no_ctx(data: float, factor: float = 1.0) -> float:
    return data * factor


@pipeline_step()
def _record_no_ctx_arg(data: float, ctx: FrozenContext) -> float:
    ctx.metrics.add("seen_by_inner", data)
    return data


@pipeline_step()
def _outer(data: float, ctx: FrozenContext) -> float:
    # Nested calls without ctx: they must use this replicate's context.
    return _record_no_ctx_arg(_inner_no_ctx(data)) + ctx.replicate


def test_step_is_called_with_data_and_context() -> None:
    @pipeline_step()
    def label(data: str, ctx: FrozenContext) -> str:
        return f"{data}:{ctx.condition}:{ctx.replicate}"

    assert isinstance(label, PipelineStep)
    assert label("x", standalone_context(condition="fast", replicate=2)) == "x:fast:2"


def test_bare_decorator_works_and_keeps_the_function_name_and_doc() -> None:
    @pipeline_step
    def tidy(data: int, ctx: FrozenContext) -> int:
        """Tidy the data."""
        return data + 1

    assert tidy(1, standalone_context()) == 2
    assert tidy.name == "tidy"
    assert tidy.__name__ == "tidy"
    assert tidy.__doc__ == "Tidy the data."


def test_name_option_renames_the_step() -> None:
    @pipeline_step(name="clean-up")
    def tidy(data: int, ctx: FrozenContext) -> int:
        return data

    assert tidy.name == "clean-up"


def test_keyword_parameters_are_filled_from_the_context() -> None:
    assert _scale(2.0, standalone_context({"factor": 3.0})) == 6.0


def test_explicit_keyword_arguments_win_over_the_context() -> None:
    assert _scale(2.0, standalone_context({"factor": 3.0}), factor=5.0) == 10.0


def test_the_default_applies_when_the_context_lacks_the_key() -> None:
    assert _scale(2.0, standalone_context({"other": 3.0})) == 2.0


def test_keyword_only_parameters_are_filled_from_the_context() -> None:
    @pipeline_step()
    def shift(data: float, ctx: FrozenContext, *, offset: float = 0.0) -> float:
        return data + offset

    assert shift(1.0, standalone_context({"offset": 0.5})) == 1.5


def test_builtin_keys_fill_parameters_of_the_same_name() -> None:
    @pipeline_step()
    def which(data: None, ctx: FrozenContext, replicate: int = -1, condition: str = "?") -> str:
        return f"{condition}/{replicate}"

    assert which(None, standalone_context(replicate=3, condition="t")) == "t/3"


def test_values_added_or_overridden_in_the_context_reach_the_next_call() -> None:
    @pipeline_step()
    def biased(data: float, ctx: FrozenContext, factor: float = 1.0, bias: float = 0.0) -> float:
        return data * factor + bias

    ctx = standalone_context({"factor": 2.0})
    ctx.add("bias", 1.0)
    assert biased(1.0, ctx) == 3.0
    ctx.override(factor=10.0)
    assert (biased(1.0, ctx), _scale(1.0, ctx)) == (11.0, 10.0)


def test_an_error_in_a_data_and_ctx_step_names_the_step() -> None:
    @pipeline_step()
    def broken(data: int, ctx: FrozenContext) -> None:
        raise ValueError(f"bad {data}")

    result = run_experiment(lambda ctx: broken(ctx.replicate, ctx), replicates=2)
    assert [(e.step, e.message) for e in result.errors] == [("broken", "bad 0"), ("broken", "bad 1")]


def test_a_missing_required_parameter_names_the_step_and_the_parameter() -> None:
    @pipeline_step()
    def threshold_it(data: float, ctx: FrozenContext, threshold: float) -> bool:
        return data > threshold

    with pytest.raises(ConfigurationError) as info:
        threshold_it(0.5, standalone_context())
    message = str(info.value)
    assert "'threshold_it'" in message
    assert "'threshold'" in message
    # Supplying it either way works.
    assert threshold_it(0.5, standalone_context(), threshold=0.1) is True
    assert threshold_it(0.5, standalone_context({"threshold": 0.9})) is False


def test_a_step_without_a_ctx_parameter_still_takes_values_from_the_context() -> None:
    @pipeline_step()
    def add(data: int, amount: int) -> int:
        return data + amount

    assert add(1, standalone_context({"amount": 41})) == 42


def test_a_step_without_ctx_needs_no_context_when_its_required_values_are_passed() -> None:
    @pipeline_step()
    def add(data: int, amount: int) -> int:
        return data + amount

    # Nothing is missing, so nothing needs to come from a context.
    assert add(1, amount=2) == 3


def test_a_step_without_ctx_runs_outside_an_experiment_without_a_context() -> None:
    @pipeline_step()
    def double(data: int, factor: int = 2) -> int:
        return data * factor

    assert double(3) == 6


def test_a_step_needing_ctx_called_outside_an_experiment_without_one_says_so() -> None:
    @pipeline_step()
    def needs(data: int, ctx: FrozenContext) -> int:
        return data

    with pytest.raises(ConfigurationError, match="'needs'"):
        needs(1)


def test_a_step_without_data_can_be_called_with_the_context_alone() -> None:
    @pipeline_step()
    def make(ctx: FrozenContext) -> list[int]:
        return [ctx.replicate] * 2

    assert make(standalone_context(replicate=3)) == [3, 3]


def test_nested_steps_without_ctx_use_the_running_replicates_context() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("out", _outer(10.0))

    result = run_experiment(
        fn, replicates=3, params={"factor": 2.0}, treatments=[Treatment("triple", {"factor": 3.0})]
    )
    assert not result.errors
    for condition, factor in (("baseline", 2.0), ("triple", 3.0)):
        reps, out = result.select("out", condition)
        assert out.tolist() == [10.0 * factor + r for r in reps.tolist()]
        # The nested step recorded into the right condition and replicate.
        inner_reps, seen = result.select("seen_by_inner", condition)
        assert sorted(inner_reps.tolist()) == [0, 1, 2]
        assert seen.tolist() == [10.0 * factor] * 3


def test_a_step_called_from_the_experiment_without_ctx_gets_treatment_params() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("scaled", _scale(1.0))

    result = run_experiment(fn, replicates=2, treatments=[Treatment("x4", {"factor": 4.0})])
    assert result.select("scaled", "baseline")[1].tolist() == [1.0, 1.0]
    assert result.select("scaled", "x4")[1].tolist() == [4.0, 4.0]


def test_the_context_is_not_left_behind_after_an_experiment() -> None:
    @pipeline_step()
    def needs(data: int, ctx: FrozenContext) -> int:
        return data

    run_experiment(lambda ctx: ctx.metrics.add("x", needs(1)), replicates=1)
    with pytest.raises(ConfigurationError):
        needs(1)


def test_async_step_with_context_values() -> None:
    @pipeline_step()
    async def fetch(data: int, ctx: FrozenContext, bonus: int = 0) -> int:
        await asyncio.sleep(0)
        return data + bonus + ctx.replicate

    assert fetch.is_async
    assert asyncio.run(fetch(1, standalone_context({"bonus": 10}, replicate=2))) == 13


def test_async_step_missing_parameter_raises_when_called() -> None:
    @pipeline_step()
    async def fetch(data: int, ctx: FrozenContext, url: str) -> int:
        return data

    with pytest.raises(ConfigurationError, match="'url'"):
        fetch(1, standalone_context())


def test_async_steps_inside_an_async_experiment_use_the_replicate_context() -> None:
    @pipeline_step()
    async def fetch(data: int, bonus: int = 0) -> int:
        await asyncio.sleep(0)
        return data + bonus

    async def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("v", await fetch(ctx.replicate))

    result = run_experiment(fn, replicates=3, treatments=[Treatment("bonus", {"bonus": 100})])
    assert not result.errors
    reps, values = result.select("v", "bonus")
    assert values.tolist() == [r + 100.0 for r in reps.tolist()]
    reps, values = result.select("v", "baseline")
    assert values.tolist() == [float(r) for r in reps.tolist()]


# -- what pipeline_step returns: a function users call, carrying its PipelineStep ---------


def _fills_none(data: float, ctx: FrozenContext) -> float:
    return data + ctx.replicate


def _fills_one(data: float, ctx: FrozenContext, factor: float = 2.0) -> float:
    return data * factor + ctx.replicate


def _fills_two(data: float, ctx: FrozenContext, factor: float = 2.0, bias: float = 0.5) -> float:
    return data * factor + bias + ctx.replicate


def _no_ctx(data: float, factor: float = 2.0) -> float:
    return data * factor


class _WatchSteps:
    """A plugin watching steps: every step call takes the hooks' path, not the inline one."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @hookimpl
    def crystallize_step_before(self, step: object) -> None:
        self.seen.append(step)


@pytest.mark.parametrize("function", [_fills_none, _fills_one, _fills_two, _no_ctx])
def test_the_inline_call_and_the_hooks_path_give_the_same_outputs(function: Any) -> None:
    step = pipeline_step()(function)
    params = {"factor": 3.0, "bias": 1.0}

    def experiment(ctx: FrozenContext) -> None:
        ctx.metrics.add("out", step(float(ctx.replicate), ctx))
        ctx.metrics.add("explicit", step(1.0, ctx, factor=5.0) if function is not _fills_none else 0.0)

    treatments = [Treatment("t", params)]
    plain = run_experiment(experiment, replicates=4, treatments=treatments)
    watcher = _WatchSteps()
    watched = run_experiment(experiment, replicates=4, treatments=treatments, plugins=[watcher])
    assert not plain.errors
    assert not watched.errors
    for condition in ("baseline", "t"):
        for metric in ("out", "explicit"):
            assert plain.select(metric, condition)[1].tolist() == watched.select(metric, condition)[1].tolist()
    # The values are what the function gives with the condition's parameters, computed here by hand.
    expected = {
        _fills_none: [r + r for r in range(4)],
        _fills_one: [r * 3.0 + r for r in range(4)],
        _fills_two: [r * 3.0 + 1.0 + r for r in range(4)],
        _no_ctx: [r * 3.0 for r in range(4)],
    }[function]
    assert plain.select("out", "t")[1].tolist() == expected
    assert len(watcher.seen) == 2 * 4 * (2 if function is not _fills_none else 1)  # conditions x replicates x calls


def test_a_step_is_a_pipeline_step_and_the_hooks_receive_the_object_users_call() -> None:
    watcher = _WatchSteps()
    run_experiment(lambda ctx: _scale(1.0, ctx), replicates=2, plugins=[watcher])
    assert isinstance(_scale, PipelineStep)
    assert watcher.seen
    assert all(seen is _scale for seen in watcher.seen)
    assert (_scale.name, _scale.takes_ctx, _scale.takes_data, _scale.cache, _scale.is_async) == (
        "_scale", True, True, False, False,
    )


def test_other_functions_and_objects_are_not_pipeline_steps() -> None:
    def plain(data: float) -> float:
        return data

    plain.__crystallize_definition__ = "not a step"  # type: ignore[attr-defined]
    assert not isinstance(_fills_one, PipelineStep)
    assert not isinstance(plain, PipelineStep)
    assert not isinstance(len, PipelineStep)
    assert not isinstance(object(), PipelineStep)


def test_a_module_level_step_pickles_as_a_reference_to_itself() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(_scale)) is _scale


def test_an_error_in_a_step_with_a_context_parameter_names_the_step_on_either_path() -> None:
    @pipeline_step()
    def broken(data: int, ctx: FrozenContext, factor: int = 1) -> None:
        raise ValueError(f"bad {data * factor}")

    for plugins in ([], [_WatchSteps()]):
        result = run_experiment(lambda ctx: broken(ctx.replicate, ctx), replicates=2, plugins=plugins)
        assert [(e.step, e.message) for e in result.errors] == [("broken", "bad 0"), ("broken", "bad 1")]


def test_a_step_in_a_class_body_declared_static_is_called_through_an_instance() -> None:
    class Pipeline:
        @staticmethod
        @pipeline_step()
        def scale(data: float, ctx: FrozenContext, k: float = 2.0) -> float:
            return data * k

    ctx = standalone_context({"k": 3.0})
    assert Pipeline().scale(2.0, ctx) == 6.0
    assert Pipeline.scale(2.0, ctx) == 6.0
    assert isinstance(Pipeline.scale, PipelineStep)


def test_data_and_ctx_may_be_passed_by_the_names_the_signature_shows() -> None:
    @pipeline_step()
    def shifted(value: float, ctx: FrozenContext, shift: float = 1.0) -> float:
        return value + shift + ctx.replicate

    ctx = standalone_context({"shift": 2.0}, replicate=3)
    assert list(inspect.signature(shifted).parameters) == ["value", "ctx", "shift"]
    assert shifted(1.0, ctx=ctx) == 6.0
    assert shifted(value=1.0, ctx=ctx) == 6.0
    assert shifted(value=1.0, ctx=ctx, shift=0.0) == 4.0
    assert _inner_no_ctx(data=2.0, ctx=standalone_context({"factor": 3.0})) == 6.0
    with pytest.raises(TypeError, match="'ctx' twice"):
        shifted(1.0, ctx, ctx=ctx)
    with pytest.raises(TypeError, match="'value' twice"):
        shifted(1.0, value=2.0, ctx=ctx)
