"""The replaceable hooks: ``crystallize_step_call``, the trylast defaults, misspelt hook names."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from pytest_crystallize import (
    AsyncExecution,
    ConfigurationError,
    FrozenContext,
    ParallelExecution,
    SerialExecution,
    Treatment,
    hookimpl,
    pipeline_step,
    run_experiment,
)
from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch

CALLS: list[int] = []


@pipeline_step()
def square(data: int, ctx: FrozenContext, offset: int = 0) -> int:
    CALLS.append(data)
    ctx.metrics.add("square", data * data + offset)
    return data * data + offset


@pipeline_step()
async def slow_square(data: int, ctx: FrozenContext) -> int:
    await asyncio.sleep(0)
    CALLS.append(data)
    return data * data


def _squares(ctx: FrozenContext) -> None:
    ctx.metrics.add("out", square(ctx.replicate % 3, ctx))


class Memo:
    """An in-memory cache of pure steps, as the hookspec's example writes it."""

    def __init__(self) -> None:
        self.cache: dict[Any, Any] = {}
        self.seen: list[tuple[str, Any, dict[str, Any]]] = []

    @hookimpl(wrapper=True)
    def crystallize_step_call(self, experiment: Any, call: Any) -> Generator[None, Any, Any]:
        key = (call.step.name, call.data, tuple(sorted(call.kwargs.items())))
        self.seen.append((call.step.name, call.data, dict(call.kwargs)))
        if key in self.cache:
            call.supply(self.cache[key])
        output = yield
        self.cache[key] = output
        return output


def test_a_wrapper_that_supplies_the_output_skips_the_step() -> None:
    CALLS.clear()
    memo = Memo()
    result = run_experiment(_squares, replicates=9, plugins=[memo],
                            treatments=[Treatment("shifted", {"offset": 10})])
    # Three distinct inputs per condition: the step ran 3 x 2 times, not 18.
    assert len(CALLS) == 6
    frame = result.to_dataframe()
    out = frame[frame.metric == "out"].set_index(["condition", "replicate"]).value
    expected_base = [float((r % 3) ** 2) for r in range(9)]
    assert list(out.loc["baseline"]) == expected_base
    assert list(out.loc["shifted"]) == [v + 10 for v in expected_base]
    # The wrapper saw the context-filled keyword argument, so conditions never share an entry.
    assert ("square", 1, {"offset": 10}) in memo.seen


def test_a_pass_through_wrapper_changes_nothing() -> None:
    class PassThrough:
        @hookimpl(wrapper=True)
        def crystallize_step_call(self, experiment: Any, call: Any) -> Generator[None, Any, Any]:
            return (yield)

    treatments = [Treatment("shifted", {"offset": 10})]
    plain = run_experiment(_squares, replicates=6, treatments=treatments)
    wrapped = run_experiment(_squares, replicates=6, treatments=treatments, plugins=[PassThrough()])
    assert plain.to_dataframe().equals(wrapped.to_dataframe())


def test_a_plain_implementation_returning_a_value_replaces_the_call() -> None:
    class Constant:
        @hookimpl
        def crystallize_step_call(self, experiment: Any, call: Any) -> int:
            return 41

    CALLS.clear()
    result = run_experiment(_squares, replicates=3, plugins=[Constant()])
    assert CALLS == []
    assert set(result.to_dataframe().value) == {41.0}


async def _async_squares(ctx: FrozenContext) -> None:
    ctx.metrics.add("out", await slow_square(ctx.replicate % 2, ctx))


class AsyncMemo:
    """For an async step the wrapper sees an awaitable, and caches what it gives."""

    def __init__(self) -> None:
        self.cache: dict[Any, Any] = {}

    @hookimpl(wrapper=True)
    def crystallize_step_call(self, experiment: Any, call: Any) -> Generator[None, Any, Any]:
        key = (call.step.name, call.data)
        if key in self.cache:
            call.supply(self.cache[key])  # the awaited value: proceed() makes it awaitable
        output = yield
        assert inspect.isawaitable(output)

        async def store() -> Any:
            self.cache[key] = value = await output
            return value

        return store()


def test_an_async_step_can_be_supplied_too() -> None:
    CALLS.clear()
    result = run_experiment(_async_squares, replicates=6, plugins=[AsyncMemo()])
    assert len(CALLS) == 2  # inputs 0 and 1
    assert list(result.to_dataframe().value) == [0.0, 1.0] * 3


def test_the_step_call_wrapper_runs_in_worker_processes() -> None:
    class Plus:
        @hookimpl(wrapper=True)
        def crystallize_step_call(self, experiment: Any, call: Any) -> Generator[None, Any, Any]:
            return (yield) + 100

    result = run_experiment(_squares, replicates=8, plugins=[Plus(), ParallelExecution(2, chunk_size=2)])
    frame = result.to_dataframe()
    assert list(frame[frame.metric == "out"].value) == [float((r % 3) ** 2 + 100) for r in range(8)]


def test_an_error_in_the_wrapper_is_the_steps_error() -> None:
    class Broken:
        @hookimpl(wrapper=True)
        def crystallize_step_call(self, experiment: Any, call: Any) -> Generator[None, Any, Any]:
            msg = "no cache today"
            raise RuntimeError(msg)
            yield

    result = run_experiment(_squares, replicates=2, plugins=[Broken()])
    assert [(e.step, e.message) for e in result.errors] == [("square", "no cache today")] * 2


def test_a_backend_returning_none_defers_to_the_serial_default() -> None:
    seen: list[int] = []

    class Observer:
        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> None:
            seen.append(len(tasks))

    result = run_experiment(_squares, replicates=4, plugins=[Observer()])
    assert seen == [4]
    assert len(result.to_dataframe()) == 8  # two metrics per replicate, every replicate ran


def test_an_explicit_serial_backend_wins_over_an_earlier_parallel_one() -> None:
    seen: list[str] = []

    class Spy(SerialExecution):
        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> Any:
            seen.append("serial")
            return super().crystallize_replicates_run(experiment, tasks, run_batch)

    run_experiment(_squares, replicates=2, plugins=[ParallelExecution(2), Spy()])
    assert seen == ["serial"]


def _continued(tasks: Sequence[ReplicateTask], into: ReplicateBatch | None) -> ReplicateBatch:
    if into is None:
        return ReplicateBatch(task_count=len(tasks))
    into.task_count += len(tasks)
    return into


class FakeRunBatch:
    """An in-memory RunBatch: what AsyncExecution may call, and nothing else."""

    def __init__(self, experiment: Any) -> None:
        self._experiment = experiment
        self.calls: list[tuple[str, int]] = []

    @property
    def experiment(self) -> Any:
        return self._experiment

    def __call__(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        self.calls.append(("call", len(tasks)))
        return _continued(tasks, into)

    async def run_async(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        self.calls.append(("run_async", len(tasks)))
        await asyncio.sleep(0)
        return _continued(tasks, into)

    def advance(self, count: int) -> None:
        self.calls.append(("advance", count))

    def note(self, text: str) -> None:
        self.calls.append(("note", len(text)))


@pytest.mark.parametrize("is_async", [True, False])
def test_async_execution_needs_only_the_run_batch_protocol(is_async: bool) -> None:
    class Experiment:
        pass

    experiment = Experiment()
    experiment.is_async = is_async  # type: ignore[attr-defined]
    experiment.timeout = None  # type: ignore[attr-defined]
    fake = FakeRunBatch(experiment)
    checked: RunBatch = fake  # the fake satisfies the protocol (mypy checks this line)
    batches = AsyncExecution(2).crystallize_replicates_run(experiment, [(0, r) for r in range(5)], checked)  # type: ignore[arg-type]
    assert sum(b.task_count for b in batches) == 5
    kinds = {kind for kind, _ in fake.calls}
    assert kinds <= {"call", "run_async", "advance", "note"}


def test_a_misspelt_hookimpl_is_an_error_that_names_it() -> None:
    class Typo:
        @hookimpl
        def crystallize_replicate_befor(self, experiment: Any, ctx: Any) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"'crystallize_replicate_befor'.*did you mean 'crystallize_replicate_before'"):
        run_experiment(_squares, replicates=2, plugins=[Typo()])


def test_an_optional_unknown_hookimpl_is_allowed() -> None:
    class Later:
        @hookimpl(optionalhook=True)
        def crystallize_something_new(self) -> None:
            pass

    assert len(run_experiment(_squares, replicates=2, plugins=[Later()]).to_dataframe()) == 4


def test_a_hookimpl_with_a_wrong_argument_is_an_error_that_names_the_plugin() -> None:
    class Wrong:
        def __repr__(self) -> str:
            return "Wrong()"

        @hookimpl
        def crystallize_run_before(self, experiment: Any, surprise: Any) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"plugin Wrong\(\).*surprise"):
        run_experiment(_squares, replicates=2, plugins=[Wrong()])


def test_a_hookimpl_asking_for_a_keyword_only_argument_the_hook_never_passes_is_an_error() -> None:
    class Keyword:
        def __repr__(self) -> str:
            return "Keyword()"

        @hookimpl
        def crystallize_run_before(self, experiment: Any, *, surprise: Any, fine: Any = None) -> None:
            pass

    with pytest.raises(ConfigurationError, match=r"plugin Keyword\(\).*crystallize_run_before asks for 'surprise'"):
        run_experiment(_squares, replicates=2, plugins=[Keyword()])


def test_hookimpls_taking_defaults_and_static_or_class_methods_register() -> None:
    calls: list[str] = []

    class Shapes:
        @hookimpl
        def crystallize_run_before(self, experiment: Any, extra: Any = None, *, more: Any = None) -> None:
            calls.append("method")

        @staticmethod
        @hookimpl
        def crystallize_run_after(experiment: Any) -> None:
            calls.append("static")

        @classmethod
        @hookimpl
        def crystallize_experiment_init(cls, experiment: Any) -> None:
            calls.append("class")

    run_experiment(_squares, replicates=2, plugins=[Shapes()])
    assert sorted(calls) == ["class", "method", "static"]


def test_a_misspelt_hook_in_a_conftest_plugin_fails_that_experiment_only(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_crystallize import hookimpl

        class Typo:
            @hookimpl
            def crystallize_run_befor(self, experiment):
                pass

        def pytest_crystallize_plugins(item, experiment):
            return [Typo()] if "typo" in experiment.name else None
        """
    )
    pytester.makepyfile(
        """
        def experiment_typo(ctx):
            ctx.metrics.add("x", 1.0)

        def experiment_fine(ctx):
            ctx.metrics.add("x", 1.0)

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--crystallize", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*'crystallize_run_befor'*did you mean 'crystallize_run_before'*"])


def test_a_plugin_manager_is_freed_without_the_garbage_collector_and_its_hooks_keep_working() -> None:
    # A manager is made for every run with plugins: it must not wait for a collection to be freed.
    import gc
    import weakref

    from pytest_crystallize.core.lifecycle import make_plugin_manager

    enabled = gc.isenabled()
    gc.disable()
    try:
        manager = make_plugin_manager([SerialExecution()])
        gone = weakref.ref(manager)
        hook = manager.hook
        del manager
        assert gone() is None
    finally:
        if enabled:
            gc.enable()
    assert hook.crystallize_replicates_run(experiment=None, tasks=[(0, 0)], run_batch=lambda tasks: "ran") == ["ran"]


def test_pluggy_tracing_still_sees_a_managers_hook_calls() -> None:
    from pytest_crystallize.core.lifecycle import make_plugin_manager

    manager = make_plugin_manager([SerialExecution()])
    traced: list[str] = []
    manager.trace.root.setwriter(traced.append)
    undo = manager.enable_tracing()
    manager.hook.crystallize_replicates_run(experiment=None, tasks=[(0, 0)], run_batch=lambda tasks: "ran")
    undo()
    assert any("crystallize_replicates_run" in line for line in traced)
    traced.clear()
    manager.hook.crystallize_replicates_run(experiment=None, tasks=[(0, 0)], run_batch=lambda tasks: "ran")
    assert traced == []
