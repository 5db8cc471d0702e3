"""The one orchestrator: runs an experiment's conditions x replicates.

:class:`ExperimentRunner` turns an :class:`~pytest_crystallize.core.experiment.Experiment`
into an :class:`~pytest_crystallize.core.results.ExperimentResult`: it calls the
lifecycle hooks, lets an execution backend (a ``crystallize_replicates_run``
hook) run the replicate tasks or runs them serially itself, then checks the
hypotheses. Errors raised by the user's code become results, never crashes.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
import traceback
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final, TypeVar

import pluggy

from pytest_crystallize import hookspecs
from pytest_crystallize.core.analysis import evaluate
from pytest_crystallize.core.context import CURRENT_CONTEXT, FrozenContext, MetricSink
from pytest_crystallize.core.experiment import Condition, Experiment
from pytest_crystallize.core.pipeline import STEP_ATTRIBUTE
from pytest_crystallize.core.results import ExperimentResult, Provenance, ReplicateError
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.core.versions import package_versions

__all__ = [
    "BatchRunner",
    "ExperimentRunner",
    "ReplicateBatch",
    "ReplicateTask",
    "make_plugin_manager",
    "run_coroutine_sync",
    "run_experiment",
]

#: ``(condition_code, replicate)``: one replicate of one condition.
ReplicateTask = tuple[int, int]
T = TypeVar("T")

_PACKAGE_DIR: Final = str(Path(__file__).resolve().parent.parent)


@dataclass(slots=True)
class ReplicateBatch:
    """What running some replicate tasks produced: columnar values and errors.

    Plain data, so a batch run in a worker process pickles back cheaply.
    """

    sink: MetricSink = field(default_factory=MetricSink)
    errors: list[ReplicateError] = field(default_factory=list)


def make_plugin_manager(plugins: Sequence[object]) -> pluggy.PluginManager:
    """Return a PluginManager with our hookspecs and ``plugins`` registered."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for plugin in plugins:
        if manager.is_registered(plugin):
            continue
        manager.register(plugin)
    return manager


class _StepHooks:
    """Calls the step hooks; attached to contexts only when a plugin implements one."""

    __slots__ = ("_after", "_before", "_experiment")

    def __init__(self, experiment: Experiment, hook: Any) -> None:
        self._experiment = experiment
        self._before = hook.crystallize_step_before
        self._after = hook.crystallize_step_after

    def before(self, step: Any, data: Any, ctx: FrozenContext) -> None:
        self._before(experiment=self._experiment, step=step, data=data, ctx=ctx)

    def after(self, step: Any, data: Any, ctx: FrozenContext) -> None:
        self._after(experiment=self._experiment, step=step, data=data, ctx=ctx)


def _implemented(caller: Any) -> bool:
    return bool(caller.get_hookimpls())


def _user_frames_only(exc: BaseException) -> str:
    """Format ``exc`` with our own frames removed, so the user's code shows."""
    formatted = traceback.TracebackException.from_exception(exc)
    pending = [formatted]
    while pending:
        current = pending.pop()
        kept = [f for f in current.stack if not (f.filename or "").startswith(_PACKAGE_DIR)]
        current.stack = traceback.StackSummary.from_list(kept)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return "".join(formatted.format())


def run_coroutine_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion from sync code, even inside a running loop."""
    async def main() -> T:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # A loop already runs in this thread (a notebook, an async test): use another.
    ctx = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(ctx.run, asyncio.run, main()).result()


class BatchRunner:
    """Runs replicate tasks of one experiment in the calling process or thread.

    Picklable when the experiment's function, datasources and plugins are, so
    execution backends can ship it to worker processes. Stateless between calls
    except for the seed cache.
    """

    def __init__(self, experiment: Experiment, hook: Any | None) -> None:
        self.experiment = experiment
        self.conditions = experiment.conditions()
        self.seeds = ReplicateSeeds(experiment.seed)
        self.hook = hook
        self._init_hooks()

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "hook": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        experiment = state["experiment"]
        hook = make_plugin_manager(experiment.plugins).hook if experiment.plugins else None
        self.__init__(experiment, hook)  # type: ignore[misc]  # rebuild derived state

    def _init_hooks(self) -> None:
        hook = self.hook
        self.step_hooks = None
        self.before_hook = self.after_hook = None
        if hook is None:
            return
        if _implemented(hook.crystallize_step_before) or _implemented(hook.crystallize_step_after):
            self.step_hooks = _StepHooks(self.experiment, hook)
        if _implemented(hook.crystallize_replicate_before):
            self.before_hook = hook.crystallize_replicate_before
        if _implemented(hook.crystallize_replicate_after):
            self.after_hook = hook.crystallize_replicate_after

    def __call__(self, tasks: Sequence[ReplicateTask]) -> ReplicateBatch:
        """Run ``tasks`` in order and return their batch."""
        batch = ReplicateBatch()
        if self.experiment.is_async:
            run_coroutine_sync(self._run_async(tasks, batch))
        else:
            for code, replicate in tasks:
                self.run_one(self.conditions[code], replicate, batch)
        return batch

    async def _run_async(self, tasks: Sequence[ReplicateTask], batch: ReplicateBatch) -> None:
        for code, replicate in tasks:
            await self.run_one_async(self.conditions[code], replicate, batch)

    def _context(self, condition: Condition, replicate: int, sink: MetricSink) -> FrozenContext:
        return FrozenContext(
            condition.values, replicate=replicate, condition=condition.name,
            condition_code=condition.code, seeds=self.seeds, sink=sink,
            step_hooks=self.step_hooks,
        )

    def _arguments(self, condition: Condition, ctx: FrozenContext) -> dict[str, Any]:
        kwargs = dict(self.experiment.arguments)
        for parameter, source in condition.datasources:
            kwargs[parameter] = source(ctx)
        if self.experiment.takes_ctx:
            kwargs["ctx"] = ctx
        return kwargs

    def run_one(self, condition: Condition, replicate: int, batch: ReplicateBatch) -> None:
        """Run one replicate of ``condition``; an exception becomes a ReplicateError."""
        ctx = self._context(condition, replicate, batch.sink)
        token = CURRENT_CONTEXT.set(ctx)
        error: BaseException | None = None
        try:
            if self.before_hook is not None:
                self.before_hook(experiment=self.experiment, ctx=ctx)
            self.experiment.function(**self._arguments(condition, ctx))
        except Exception as exc:
            error = exc
            batch.errors.append(self._error(condition, replicate, exc))
        finally:
            CURRENT_CONTEXT.reset(token)
        if self.after_hook is not None:
            self.after_hook(experiment=self.experiment, ctx=ctx, error=error)

    async def run_one_async(self, condition: Condition, replicate: int, batch: ReplicateBatch) -> None:
        """Async twin of :meth:`run_one`: awaits async datasources and functions."""
        ctx = self._context(condition, replicate, batch.sink)
        token = CURRENT_CONTEXT.set(ctx)
        error: BaseException | None = None
        try:
            if self.before_hook is not None:
                self.before_hook(experiment=self.experiment, ctx=ctx)
            kwargs = self._arguments(condition, ctx)
            for key, value in kwargs.items():
                if inspect.isawaitable(value):
                    kwargs[key] = await value
            outcome = self.experiment.function(**kwargs)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            error = exc
            batch.errors.append(self._error(condition, replicate, exc))
        finally:
            CURRENT_CONTEXT.reset(token)
        if self.after_hook is not None:
            self.after_hook(experiment=self.experiment, ctx=ctx, error=error)

    @staticmethod
    def _error(condition: Condition, replicate: int, exc: BaseException) -> ReplicateError:
        return ReplicateError(
            condition=condition.name, replicate=replicate, error_type=type(exc).__name__,
            message=str(exc), traceback=_user_frames_only(exc),
            step=getattr(exc, STEP_ATTRIBUTE, None),
        )


class ExperimentRunner:
    """Runs one experiment once and returns its result.

    Lifecycle: construct with an experiment, call :meth:`run` once, discard.
    Holds the plugin manager for the length of that run.
    """

    def __init__(
        self, experiment: Experiment, *, plugin_manager: pluggy.PluginManager | None = None
    ) -> None:
        self.experiment = experiment
        if plugin_manager is None and experiment.plugins:
            plugin_manager = make_plugin_manager(experiment.plugins)
        elif plugin_manager is not None:
            for plugin in experiment.plugins:
                if not plugin_manager.is_registered(plugin):
                    plugin_manager.register(plugin)
        self.plugin_manager = plugin_manager

    def tasks(self) -> list[ReplicateTask]:
        """Every ``(condition_code, replicate)``, replicate-major so conditions interleave."""
        codes = range(len(self.experiment.treatments) + 1)
        return [(code, r) for r in range(self.experiment.replicates) for code in codes]

    def run(self) -> ExperimentResult:
        """Run every replicate of every condition, check hypotheses, return the result."""
        experiment = self.experiment
        hook = self.plugin_manager.hook if self.plugin_manager is not None else None
        started_at = datetime.now(timezone.utc).isoformat()
        clock = time.perf_counter()
        if hook is not None:
            hook.crystallize_experiment_init(experiment=experiment)
            hook.crystallize_run_before(experiment=experiment)
        run_batch = BatchRunner(experiment, hook)
        tasks = self.tasks()
        batches = None
        if hook is not None:
            batches = hook.crystallize_replicates_run(experiment=experiment, tasks=tasks, run_batch=run_batch)
        if batches is None:
            batches = [run_batch(tasks)]
        result = self._result(batches, started_at, time.perf_counter() - clock)
        if hook is not None:
            hook.crystallize_run_after(experiment=experiment, result=result)
        return result

    def _result(self, batches: Sequence[ReplicateBatch], started_at: str, duration: float) -> ExperimentResult:
        experiment = self.experiment
        merged = _merge(batches)
        errors = sorted((e for b in batches for e in b.errors), key=lambda e: (e.replicate, e.condition))
        metric_names = merged.metric_names
        provenance = Provenance(
            experiment=experiment.name, master_seed=experiment.seed,
            replicates=experiment.replicates, conditions=experiment.condition_names,
            treatments={t.name: {k: repr(v) for k, v in t.params.items()} for t in experiment.treatments},
            alpha=experiment.alpha, correction=experiment.correction,
            started_at=started_at, duration_s=duration, versions=package_versions(),
        )
        partial = ExperimentResult(
            experiment=experiment.name, conditions=experiment.condition_names, metrics=metric_names,
            condition_codes=merged.condition, replicates=merged.replicate, metric_codes=merged.metric,
            values=merged.value, tags=merged.tags, errors=tuple(errors), verdicts=(),
            provenance=provenance,
        )
        verdicts = evaluate(experiment, partial)
        return ExperimentResult(
            experiment=partial.experiment, conditions=partial.conditions, metrics=partial.metrics,
            condition_codes=partial.condition_codes, replicates=partial.replicates,
            metric_codes=partial.metric_codes, values=partial.values, tags=partial.tags,
            errors=partial.errors, verdicts=verdicts, provenance=provenance,
        )


def _merge(batches: Sequence[ReplicateBatch]) -> MetricSink:
    """Concatenate batch sinks, re-coding metric names to one shared table."""
    if len(batches) == 1:
        return batches[0].sink
    merged = MetricSink()
    for batch in batches:
        sink = batch.sink
        names = sink.metric_names
        for i in range(len(sink)):
            merged.append(sink.condition[i], sink.replicate[i], names[sink.metric[i]],
                          sink.value[i], sink.tags[i])
    return merged



def run_experiment(
    function: Any,
    *,
    name: str | None = None,
    replicates: int | None = None,
    seed: int | None = None,
    treatments: Sequence[Any] = (),
    hypotheses: Sequence[Any] = (),
    plugins: Sequence[object] = (),
    alpha: float | None = None,
    correction: str = "holm",
    params: Any = None,
    datasources: Any = None,
    arguments: Any = None,
) -> ExperimentResult:
    """Run ``function`` as an experiment from a script or notebook and return its result.

    The options are those of ``@pytest.mark.experiment``; ``params`` are the
    baseline's context values, ``datasources`` maps parameter names to
    datasources, ``arguments`` gives fixed values for other parameters.
    Hypotheses stacked on ``function`` with ``@hypothesis`` count too.
    """
    from pytest_crystallize.core.experiment import DEFAULT_ALPHA, DEFAULT_REPLICATES
    from pytest_crystallize.core.seeds import DEFAULT_SEED

    experiment = Experiment.define(
        function, name=name,
        replicates=DEFAULT_REPLICATES if replicates is None else replicates,
        seed=DEFAULT_SEED if seed is None else seed,
        treatments=treatments, hypotheses=hypotheses, plugins=plugins,
        alpha=DEFAULT_ALPHA if alpha is None else alpha, correction=correction,
        params=params, datasources=datasources, arguments=arguments,
    )
    return ExperimentRunner(experiment).run()
