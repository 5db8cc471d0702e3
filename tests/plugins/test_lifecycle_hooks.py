"""The engine's pluggy hooks: order, arguments, the backend hook, progress, the free fast path."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_crystallize import (
    CrystallizeError,
    FrozenContext,
    Treatment,
    hookimpl,
    pipeline_step,
    run_experiment,
)
from pytest_crystallize.core.lifecycle import make_plugin_manager, worker_plugins
from pytest_crystallize.core.replicates import BatchRunner
from pytest_crystallize.core.tasks import ReplicateBatch


@pipeline_step()
def double(data: int, ctx: FrozenContext) -> int:
    ctx.metrics.add("doubled", data * 2)
    return data * 2


def _two_steps(ctx: FrozenContext) -> None:
    double(double(ctx.replicate, ctx), ctx)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def crystallize_experiment_init(self, experiment: Any) -> None:
        self.calls.append(("init", experiment.name))

    @hookimpl
    def crystallize_run_before(self, experiment: Any) -> None:
        self.calls.append(("run_before",))

    @hookimpl
    def crystallize_replicate_before(self, experiment: Any, ctx: FrozenContext) -> None:
        self.calls.append(("replicate_before", ctx.condition, ctx.replicate))

    @hookimpl
    def crystallize_step_before(self, experiment: Any, step: Any, data: Any, ctx: FrozenContext) -> None:
        self.calls.append(("step_before", step.name, data))

    @hookimpl
    def crystallize_step_after(self, experiment: Any, step: Any, data: Any, ctx: FrozenContext) -> None:
        self.calls.append(("step_after", step.name, data))

    @hookimpl
    def crystallize_replicate_after(self, experiment: Any, ctx: FrozenContext, error: Any) -> None:
        self.calls.append(("replicate_after", ctx.condition, ctx.replicate, type(error).__name__))

    @hookimpl
    def crystallize_run_after(self, experiment: Any, result: Any) -> None:
        self.calls.append(("run_after", len(result)))


def test_hooks_run_in_lifecycle_order_with_their_arguments() -> None:
    recorder = Recorder()
    run_experiment(_two_steps, name="ordered", replicates=2, plugins=[recorder])
    per_replicate = [
        ("step_before", "double", 0), ("step_after", "double", 0),
        ("step_before", "double", 0), ("step_after", "double", 0),
    ]
    assert recorder.calls == [
        ("init", "ordered"),
        ("run_before",),
        ("replicate_before", "baseline", 0), *per_replicate, ("replicate_after", "baseline", 0, "NoneType"),
        ("replicate_before", "baseline", 1),
        ("step_before", "double", 1), ("step_after", "double", 2),
        ("step_before", "double", 2), ("step_after", "double", 4),
        ("replicate_after", "baseline", 1, "NoneType"),
        ("run_after", 4),
    ]


def test_replicate_after_sees_the_error_and_step_after_is_skipped_for_a_failing_step() -> None:
    recorder = Recorder()

    @pipeline_step()
    def broken(data: int) -> int:
        raise ValueError("no")

    def fn(ctx: FrozenContext) -> None:
        broken(1, ctx)

    result = run_experiment(fn, replicates=1, plugins=[recorder])
    assert [c[0] for c in recorder.calls] == [
        "init", "run_before", "replicate_before", "step_before", "replicate_after", "run_after",
    ]
    assert recorder.calls[-2] == ("replicate_after", "baseline", 0, "ValueError")
    assert result.errors[0].step == "broken"


def test_a_plugin_failing_before_a_replicate_fails_that_replicate_only() -> None:
    class Picky:
        @hookimpl
        def crystallize_replicate_before(self, experiment: Any, ctx: FrozenContext) -> None:
            if ctx.replicate == 1:
                raise RuntimeError("not this one")

    result = run_experiment(_two_steps, replicates=3, plugins=[Picky()])
    assert [(e.replicate, e.error_type) for e in result.errors] == [(1, "RuntimeError")]
    reps, _ = result.select("doubled", "baseline")
    assert sorted(set(reps.tolist())) == [0, 2]


def test_the_first_backend_that_returns_batches_wins_and_none_defers() -> None:
    seen: list[str] = []

    class Declines:
        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> None:
            seen.append("declines")

    class Reversed:
        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> list[ReplicateBatch]:
            seen.append("reversed")
            return [run_batch([task]) for task in reversed(tasks)]

    baseline = run_experiment(_two_steps, replicates=4, treatments=[Treatment("t", {"k": 1})])
    result = run_experiment(
        _two_steps, replicates=4, treatments=[Treatment("t", {"k": 1})], plugins=[Reversed(), Declines()],
    )
    assert seen == ["declines", "reversed"]
    # Batches in any order merge into the serial record order.
    assert result.replicates.tolist() == baseline.replicates.tolist()
    assert result.condition_codes.tolist() == baseline.condition_codes.tolist()
    assert result.values.tolist() == baseline.values.tolist()


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("not batches", "must return a list of ReplicateBatch"),
        ([], "covering 0 replicate tasks, but the run has 2"),
    ],
)
def test_a_backend_returning_the_wrong_thing_is_named(returned: Any, message: str) -> None:
    class Wrong:
        @hookimpl
        def crystallize_replicates_run(self, experiment: Any, tasks: Any, run_batch: Any) -> Any:
            return returned

    with pytest.raises(CrystallizeError, match=message):
        run_experiment(_two_steps, name="wrong", replicates=2, plugins=[Wrong()])


def test_progress_hook_gets_a_first_call_with_nothing_done_and_a_final_one_with_everything() -> None:
    calls: list[tuple[int, int]] = []

    class Watcher:
        @hookimpl
        def crystallize_replicates_progress(self, experiment: Any, done: int, total: int, elapsed: float) -> None:
            assert elapsed >= 0
            calls.append((done, total))

    run_experiment(_two_steps, replicates=5, treatments=[Treatment("t", {"k": 1})], plugins=[Watcher()])
    assert calls[0] == (0, 10)  # before any replicate finished: a display can show the run from its start
    assert calls[-1] == (10, 10)
    assert all(done <= total for done, total in calls)


def test_only_plugins_with_per_replicate_or_step_hooks_travel_to_workers() -> None:
    class RunOnly:
        @hookimpl
        def crystallize_run_before(self, experiment: Any) -> None:
            pass

    class StepOnly:
        @hookimpl
        def crystallize_step_after(self, experiment: Any, step: Any, data: Any, ctx: Any) -> None:
            pass

    first, second, run_only = Recorder(), StepOnly(), RunOnly()
    manager = make_plugin_manager([first, run_only, second])
    assert worker_plugins(manager) == (first, second)
    assert worker_plugins(None) == ()


def test_unused_hooks_are_never_called_per_replicate() -> None:
    class RunOnly:
        @hookimpl
        def crystallize_run_after(self, experiment: Any, result: Any) -> None:
            pass

    from pytest_crystallize.core.experiment import Experiment

    experiment = Experiment.define(_two_steps, replicates=1, plugins=[RunOnly()])
    runner = BatchRunner(experiment, make_plugin_manager(experiment.plugins).hook)
    assert runner.step_hooks is None
    assert runner.before_hook is None
    assert runner.after_hook is None


def test_runs_without_plugins_share_a_manager_that_no_plugin_of_another_run_reaches() -> None:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.lifecycle import run_plugin_manager
    from pytest_crystallize.core.runner import ExperimentRunner

    recorder = Recorder()
    run_experiment(_two_steps, name="with", replicates=2, plugins=[recorder])
    seen = len(recorder.calls)
    assert seen > 0
    run_experiment(_two_steps, name="without", replicates=2)
    assert len(recorder.calls) == seen  # the plugin of the first run is not in the shared manager
    plain = Experiment.define(_two_steps, name="plain", replicates=2)
    assert ExperimentRunner(plain).plugin_manager is run_plugin_manager(())
    assert run_plugin_manager([recorder]) is not run_plugin_manager([recorder])  # with plugins: a manager each
    assert not run_plugin_manager(()).is_registered(recorder)


def test_every_manager_has_every_hookspec_as_pluggy_reads_it_read_once() -> None:
    import pluggy

    from pytest_crystallize import hookspecs

    plain = pluggy.PluginManager(hookspecs.PROJECT)
    plain.add_hookspecs(hookspecs)
    expected = {name: caller.spec for name, caller in vars(plain.hook).items()}
    one, two = make_plugin_manager(()), make_plugin_manager([Recorder()])
    for manager in (one, two):
        specs = {name: caller.spec for name, caller in vars(manager.hook).items() if caller.spec is not None}
        assert sorted(specs) == sorted(expected)
        for name, spec in specs.items():
            assert (spec.argnames, spec.kwargnames, spec.opts) == (
                expected[name].argnames, expected[name].kwargnames, expected[name].opts
            )
    assert one.hook.crystallize_replicates_run.spec is two.hook.crystallize_replicates_run.spec  # read once
    assert one.hook.crystallize_replicates_run is not two.hook.crystallize_replicates_run  # callers are not shared


def test_a_manager_with_plugins_holds_the_defaults_as_one_that_registers_them_itself() -> None:
    import pluggy

    from pytest_crystallize import hookspecs
    from pytest_crystallize.plugins.defaults import DEFAULTS, DEFAULTS_NAME

    plain = pluggy.PluginManager(hookspecs.PROJECT)
    plain.add_hookspecs(hookspecs)
    plain.register(DEFAULTS, DEFAULTS_NAME)
    recorder = Recorder()
    plain.register(recorder)
    manager = make_plugin_manager([recorder])

    def impls(of: pluggy.PluginManager) -> dict[str, list[tuple[object, str, bool, bool]]]:
        return {name: [(i.plugin, i.function.__name__, i.tryfirst, i.trylast) for i in caller.get_hookimpls()]
                for name, caller in vars(of.hook).items()}

    assert impls(manager) == impls(plain)  # the same implementations, in the order pluggy calls them
    assert manager.get_name(DEFAULTS) == DEFAULTS_NAME
    manager.unregister(DEFAULTS)  # its own lists: the defaults stay in every other manager
    assert not manager.is_registered(DEFAULTS)
    assert make_plugin_manager([Recorder()]).is_registered(DEFAULTS)
    assert make_plugin_manager(()).hook.crystallize_replicates_run.get_hookimpls()
