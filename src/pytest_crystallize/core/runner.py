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
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import pluggy

from pytest_crystallize import hookspecs
from pytest_crystallize.core.analysis import evaluate
from pytest_crystallize.core.context import CURRENT_CONTEXT, FrozenContext, MetricSink
from pytest_crystallize.core.experiment import Condition, Experiment
from pytest_crystallize.core.pipeline import STEP_ATTRIBUTE
from pytest_crystallize.core.results import ExperimentResult, Provenance, ReplicateError
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.core.versions import package_versions
from pytest_crystallize.errors import CrystallizeError

__all__ = [
    "BatchRunner",
    "ExperimentRunner",
    "ReplicateBatch",
    "ReplicateTask",
    "WORKER_HOOKS",
    "make_plugin_manager",
    "run_coroutine_sync",
    "run_experiment",
    "worker_plugins",
]

#: ``(condition_code, replicate)``: one replicate of one condition.
ReplicateTask = tuple[int, int]
T = TypeVar("T")

_PACKAGE_DIR: Final = str(Path(__file__).resolve().parent.parent)

#: Hooks that run where a replicate runs (maybe a worker process): the plugins
#: implementing them travel with the :class:`BatchRunner`.
WORKER_HOOKS: Final = (
    "crystallize_replicate_before",
    "crystallize_replicate_after",
    "crystallize_step_before",
    "crystallize_step_after",
)

#: Seconds between two progress hook calls at most.
PROGRESS_INTERVAL: Final = 0.1


@dataclass(slots=True)
class ReplicateBatch:
    """What running some replicate tasks produced: columnar values and errors.

    Plain data, so a batch run in a worker process pickles back cheaply.
    ``task_count`` is how many tasks it covers (errors included).
    """

    sink: MetricSink = field(default_factory=MetricSink)
    errors: list[ReplicateError] = field(default_factory=list)
    task_count: int = 0


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


def worker_plugins(manager: pluggy.PluginManager | None) -> tuple[object, ...]:
    """The plugins of ``manager`` implementing a per-replicate or per-step hook, in registration order."""
    if manager is None:
        return ()
    wanted = {
        id(impl.plugin) for name in WORKER_HOOKS for impl in getattr(manager.hook, name).get_hookimpls()
    }
    return tuple(p for _, p in manager.list_name_plugin() if p is not None and id(p) in wanted)


class _Progress:
    """Counts finished tasks and calls the progress hook, throttled, from the owning thread only.

    Lives for one run. Backend threads may count; only the thread that made
    it (the runner's) calls the hook, so plugins never see concurrent calls.
    """

    __slots__ = ("_caller", "_experiment", "_last", "_lock", "_owner", "_start", "done", "total")

    def __init__(self, experiment: Experiment, caller: Any, total: int) -> None:
        self._experiment = experiment
        self._caller = caller
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._start = self._last = time.perf_counter()
        self.done = 0
        self.total = total

    def __call__(self, count: int) -> None:
        with self._lock:
            self.done += count
        if threading.get_ident() != self._owner:
            return
        now = time.perf_counter()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._emit(now)

    def finish(self) -> None:
        self.done = self.total
        self._emit(time.perf_counter())

    def _emit(self, now: float) -> None:
        self._caller(
            experiment=self._experiment, done=min(self.done, self.total), total=self.total,
            elapsed=now - self._start,
        )


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

    Picklable when the experiment's function, datasources and the plugins
    implementing per-replicate or per-step hooks are, so execution backends
    can ship it to worker processes; there the plugins are registered again
    in their original order (the other plugins stay in the main process).
    Stateless between calls except for the seed cache. ``progress``, when
    set, is told how many tasks finished (``advance``); it is never pickled.
    """

    def __init__(
        self, experiment: Experiment, hook: Any | None, *, plugins: Sequence[object] | None = None
    ) -> None:
        self.experiment = experiment
        self.conditions = experiment.conditions()
        self.seeds = ReplicateSeeds(experiment.seed)
        self.hook = hook
        #: Plugins to register in a worker process; by default the experiment's own.
        self.plugins = tuple(experiment.plugins if plugins is None else plugins)
        self.progress: Callable[[int], None] | None = None
        self._init_hooks()

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "plugins": self.plugins}

    def __setstate__(self, state: dict[str, Any]) -> None:
        plugins = state["plugins"]
        hook = make_plugin_manager(plugins).hook if plugins else None
        self.__init__(state["experiment"], hook, plugins=plugins)  # type: ignore[misc]  # rebuild derived state

    def advance(self, count: int) -> None:
        """Report ``count`` finished tasks to the progress display, if there is one."""
        if self.progress is not None:
            self.progress(count)

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
        batch = ReplicateBatch(task_count=len(tasks))
        progress = self.progress
        if self.experiment.is_async:
            run_coroutine_sync(self._run_async(tasks, batch))
        elif progress is None:
            for code, replicate in tasks:
                self.run_one(self.conditions[code], replicate, batch)
        else:
            for code, replicate in tasks:
                self.run_one(self.conditions[code], replicate, batch)
                progress(1)
        return batch

    async def _run_async(self, tasks: Sequence[ReplicateTask], batch: ReplicateBatch) -> None:
        progress = self.progress
        for code, replicate in tasks:
            await self.run_one_async(self.conditions[code], replicate, batch)
            if progress is not None:
                progress(1)

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
        # Plain strings only: the error crosses process boundaries even when
        # the exception class cannot be pickled.
        return ReplicateError(
            condition=condition.name, replicate=replicate, error_type=type(exc).__name__,
            message=_safe_str(exc), traceback=_user_frames_only(exc),
            step=_safe_step(exc),
        )


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the replicate's error
        return f"<{type(exc).__name__} whose str() failed>"


def _safe_step(exc: BaseException) -> str | None:
    step = getattr(exc, STEP_ATTRIBUTE, None)
    return step if isinstance(step, str) else None


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
        started_at = datetime.now(UTC).isoformat()
        clock = time.perf_counter()
        if hook is not None:
            hook.crystallize_experiment_init(experiment=experiment)
            hook.crystallize_run_before(experiment=experiment)
        run_batch = BatchRunner(experiment, hook, plugins=worker_plugins(self.plugin_manager))
        tasks = self.tasks()
        batches = None
        progress = None
        if hook is not None:
            if _implemented(hook.crystallize_replicates_progress):
                progress = run_batch.progress = _Progress(experiment, hook.crystallize_replicates_progress, len(tasks))
            batches = hook.crystallize_replicates_run(experiment=experiment, tasks=tasks, run_batch=run_batch)
        if batches is None:
            batches = [run_batch(tasks)]
        else:
            _check_batches(experiment, batches, len(tasks))
        if progress is not None:
            progress.finish()
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
            condition_codes=np.asarray(merged.condition, dtype=np.int32),
            replicates=np.asarray(merged.replicate, dtype=np.int64),
            metric_codes=np.asarray(merged.metric, dtype=np.int32),
            values=np.asarray(merged.value, dtype=np.float64), tags=tuple(merged.tags),
            errors=tuple(errors), verdicts=(),
            provenance=provenance,
        )
        verdicts = evaluate(experiment, partial)
        return ExperimentResult(
            experiment=partial.experiment, conditions=partial.conditions, metrics=partial.metrics,
            condition_codes=partial.condition_codes, replicates=partial.replicates,
            metric_codes=partial.metric_codes, values=partial.values, tags=partial.tags,
            errors=partial.errors, verdicts=verdicts, provenance=provenance,
        )


def _check_batches(experiment: Experiment, batches: object, expected: int) -> None:
    """Raise CrystallizeError unless an execution backend returned batches of every task."""
    if not isinstance(batches, (list, tuple)) or not all(isinstance(b, ReplicateBatch) for b in batches):
        msg = (
            f"experiment {experiment.name!r}: the execution backend's crystallize_replicates_run "
            f"returned {type(batches).__name__}; it must return a list of ReplicateBatch "
            f"(what run_batch(tasks) returns) or None"
        )
        raise CrystallizeError(msg)
    covered = sum(b.task_count for b in batches)
    if covered != expected:
        msg = (
            f"experiment {experiment.name!r}: the execution backend returned batches covering "
            f"{covered} replicate tasks, but the run has {expected}: every task must be run once"
        )
        raise CrystallizeError(msg)


def _merge(batches: Sequence[ReplicateBatch]) -> MetricSink:
    """Merge batch sinks into the serial record order, re-coding metric names to one table.

    Serial order is task order, ``(replicate, condition)``, and record order
    within a task; a stable sort restores it whatever the batches' order, so
    every backend gives the same result, metric codes included.
    """
    if len(batches) == 1:
        return batches[0].sink
    conditions: list[int] = []
    replicates: list[int] = []
    names: list[str] = []
    values: list[float] = []
    tags: list[str | None] = []
    for batch in batches:
        sink = batch.sink
        table = sink.metric_names
        conditions += sink.condition
        replicates += sink.replicate
        names += [table[code] for code in sink.metric]
        values += sink.value
        tags += sink.tags
    order = sorted(range(len(values)), key=lambda i: (replicates[i], conditions[i]))
    merged = MetricSink()
    for i in order:
        merged.append(conditions[i], replicates[i], names[i], values[i], tags[i])
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
