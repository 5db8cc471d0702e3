"""Hook specifications of the experiment lifecycle (pluggy, project name ``crystallize``).

A plugin is any object (or module) with methods named like these hooks and
marked with :data:`hookimpl`. In order, for one run::

    crystallize_conditions_choose      once: may choose and order the treatments to run
    crystallize_experiment_init        once, before anything runs
    crystallize_run_before             once
    crystallize_replicates_run         once: an execution backend may take over the loop
        crystallize_replicate_before   per replicate and condition
            crystallize_step_before    per pipeline step call
            crystallize_step_call      around it: may supply the output instead
            crystallize_step_after
        crystallize_replicate_after
        crystallize_replicates_progress  now and then, as replicates finish
    crystallize_run_after              once, with the result

Where plugins come from, later ones called first (so they win ``firstresult``
hooks such as the execution backend):

1. installed packages, through the entry-point group ``crystallize.plugins``
   (pytest runs only; the entry point names a module, an object or a class
   called with no arguments);
2. ``conftest.py`` files, through the pytest hook ``pytest_crystallize_plugins``
   (see :mod:`pytest_crystallize.pytest_plugin.hooks`), scoped to the
   conftest's directory, inner conftests after outer ones;
3. ``plugins=[...]`` on ``@pytest.mark.experiment`` or ``run_experiment``.

The per-replicate and per-step hooks run where the replicate runs: in a
worker process under ``ParallelExecution(kind="process")``, with the plugin
objects pickled (or forked) from the main process. The other hooks always run
in the main process. Hooks that run per replicate or step are only called
when some plugin implements them, so unused hooks cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import PipelineStep, StepCall
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, RunBatch
    from pytest_crystallize.core.treatments import Treatment

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT: Final = "crystallize"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def crystallize_conditions_choose(
    experiment: Experiment, treatments: Sequence[Treatment]
) -> Sequence[Treatment | str] | None:
    """Choose which treatments run, and in which order: the branch strategy.

    Called once in the main process before the run is set up, with the
    experiment's treatments (already narrowed by ``--crystallize-treatment``
    and the pytest hook ``pytest_crystallize_conditions``, under pytest).
    Return some of them (the objects or their names) in the order to run,
    or ``None`` to keep them all. The baseline always runs; replicate seeds
    do not depend on which treatments run, so a chosen treatment gives the
    same numbers as in a full run. The first non-None result wins. Returning
    a name that is not a treatment, or none at all when the experiment has
    hypotheses, fails the experiment. Example::

        @hookimpl
        def crystallize_conditions_choose(experiment, treatments):
            if os.environ.get("QUICK"):
                return [t for t in treatments if t.name.startswith("model=small")]
            return None
    """


@hookspec
def crystallize_experiment_init(experiment: Experiment) -> None:
    """Called once when a run of ``experiment`` is set up, before any replicate.

    The return value is ignored. Example::

        @hookimpl
        def crystallize_experiment_init(experiment):
            print("about to run", experiment.name, experiment.replicates)
    """


@hookspec
def crystallize_run_before(experiment: Experiment) -> None:
    """Called once just before the replicate loop starts. Return value ignored.

    Example::

        @hookimpl
        def crystallize_run_before(experiment):
            STARTED[experiment.name] = time.perf_counter()
    """


@hookspec
def crystallize_replicate_before(experiment: Experiment, ctx: FrozenContext) -> None:
    """Called before each replicate of each condition runs, with its fresh context.

    ``ctx.replicate``, ``ctx.condition`` and ``ctx.seed`` identify it. Return
    value ignored. Runs in the process that runs the replicate. Example::

        @hookimpl
        def crystallize_replicate_before(experiment, ctx):
            random.seed(ctx.seed)
    """


@hookspec
def crystallize_step_before(
    experiment: Experiment, step: PipelineStep, data: Any, ctx: FrozenContext
) -> None:
    """Called before each ``@pipeline_step`` call with the data it receives.

    Return value ignored. Example::

        @hookimpl
        def crystallize_step_before(experiment, step, data, ctx):
            log.debug("step %s starts", step.name)
    """


@hookspec(firstresult=True)
def crystallize_step_call(experiment: Experiment, call: StepCall) -> Any:
    """Make one ``@pipeline_step`` call and return its output: wrap it, or skip it.

    Called between ``crystallize_step_before`` and ``crystallize_step_after``
    in the process that runs the replicate. ``call.step``, ``call.data``,
    ``call.ctx`` and ``call.kwargs`` (the keyword arguments the step receives,
    explicit and filled from the context) describe the call. The built-in
    default (``trylast``) returns ``call.proceed()``: the output a plugin
    passed to ``call.supply(output)``, or the step run now. For an
    ``async def`` step the output is an awaitable: a wrapper that looks at it
    must return an awaitable too. Implement it as a wrapper
    (``@hookimpl(wrapper=True)``) to see the output, or return a non-None
    value to replace the call. A supplied output skips the step entirely: the
    metrics, records and artifacts it would have added are not added (a cache
    that must keep them replays them itself, as the built-in ``CachePlugin``
    does). An exception raised here is the step's error. Example, a cache of
    a pure step in memory::

        CACHE = {}

        @hookimpl(wrapper=True)
        def crystallize_step_call(experiment, call):
            key = (call.step.name, call.data, tuple(sorted(call.kwargs.items())))
            if key in CACHE:
                call.supply(CACHE[key])  # the step does not run
            output = yield
            CACHE[key] = output
            return output
    """


@hookspec
def crystallize_step_after(
    experiment: Experiment, step: PipelineStep, data: Any, ctx: FrozenContext
) -> None:
    """Called after each ``@pipeline_step`` call returned; ``data`` is what it returned.

    Not called when the step raised (see ``crystallize_replicate_after``).
    Return value ignored. Example::

        @hookimpl
        def crystallize_step_after(experiment, step, data, ctx):
            for name, blob in ctx.artifacts.items():
                save(step.name, name, blob)
    """


@hookspec
def crystallize_replicate_after(
    experiment: Experiment, ctx: FrozenContext, error: BaseException | None
) -> None:
    """Called after each replicate of each condition, with the exception it raised or None.

    Return value ignored. Example::

        @hookimpl
        def crystallize_replicate_after(experiment, ctx, error):
            if error is not None:
                log.warning("replicate %d failed", ctx.replicate)
    """


@hookspec(firstresult=True)
def crystallize_replicates_run(
    experiment: Experiment, tasks: Sequence[ReplicateTask], run_batch: RunBatch
) -> list[ReplicateBatch] | None:
    """Run every replicate task and return their batches: the execution backend.

    ``tasks`` lists ``(condition_code, replicate)`` pairs; ``run_batch(tasks)``
    runs some of them in the calling thread and returns a :class:`ReplicateBatch`
    (``run_batch`` is picklable: it can be called in a worker process;
    ``await run_batch.run_async(tasks)`` runs them on the running event loop;
    ``run_batch.advance(n)`` reports tasks finished elsewhere;
    ``run_batch.note(text)`` says how they ran, shown with ``-v``: see
    :class:`~pytest_crystallize.core.tasks.RunBatch`). Return a list of
    batches covering every task exactly once, in any order: the runner merges
    them into the serial order, so the result does not depend on the backend.
    Return ``None`` to leave the loop to the next plugin and finally to the
    built-in default, which runs them serially (``trylast``). The first
    non-None result wins; the built-in backends are ``SerialExecution``,
    ``ParallelExecution``, ``AsyncExecution`` and ``DaskExecution``. Example::

        @hookimpl
        def crystallize_replicates_run(experiment, tasks, run_batch):
            half = len(tasks) // 2
            with ThreadPoolExecutor(2) as pool:
                return list(pool.map(run_batch, [tasks[:half], tasks[half:]]))
    """


@hookspec
def crystallize_run_after(experiment: Experiment, result: ExperimentResult) -> None:
    """Called once after the run, with the finished result (verdicts included).

    Return value ignored. Example::

        @hookimpl
        def crystallize_run_after(experiment, result):
            result.to_json(f"{experiment.name}.json")
    """


@hookspec
def crystallize_replicates_progress(
    experiment: Experiment, done: int, total: int, elapsed: float
) -> None:
    """Called in the main process as replicate tasks finish: ``done`` of ``total`` after ``elapsed`` s.

    Called a first time with ``done == 0`` when the loop starts, then
    throttled by the runner (at most about ten calls a second), and a last
    time with ``done == total`` when the loop ends. Execution backends
    report finished tasks with ``run_batch.advance(n)``; tasks run through
    ``run_batch(tasks)`` in this process report themselves. Return value
    ignored. Example::

        @hookimpl
        def crystallize_replicates_progress(experiment, done, total, elapsed):
            print(f"{experiment.name}: {done}/{total} after {elapsed:.0f} s")
    """
