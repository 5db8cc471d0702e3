"""Running replicate tasks: the unit an execution backend schedules.

A :class:`BatchRunner` runs ``(condition_code, replicate)`` tasks of one
experiment in the calling process, thread or event loop and returns a
:class:`ReplicateBatch` of plain data. It pickles (with the plugins that
implement per-replicate or per-step hooks), so backends can ship it to
worker processes. Errors raised by the user's code become
:class:`~pytest_crystallize.core.results.ReplicateError` strings here, inside
the worker, so they cross process boundaries even when unpicklable.

Per replicate: make the context and make it current (``CURRENT_CONTEXT``, so
nested steps and asyncio tasks the replicate starts find it), call the
datasources, build typed parameters, call the function, then the
evaluators on its return value. Typed binding and evaluators cost nothing
when an experiment has none.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import traceback
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import CoroutineType
from typing import Any, Final, TypeVar

import pluggy

from pytest_crystallize import hookspecs
from pytest_crystallize.core.context import CURRENT_CONTEXT, FrozenContext, MetricSink
from pytest_crystallize.core.evaluators import evaluate_async, evaluate_sync
from pytest_crystallize.core.experiment import Condition, Experiment
from pytest_crystallize.core.pipeline import STEP_ATTRIBUTE, label_origin
from pytest_crystallize.core.results import ReplicateError
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.errors import ConfigurationError

__all__ = [
    "WORKER_HOOKS",
    "BatchRunner",
    "ReplicateBatch",
    "ReplicateTask",
    "implemented",
    "make_plugin_manager",
    "run_coroutine_sync",
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


def implemented(caller: Any) -> bool:
    """True when some plugin implements the hook ``caller``."""
    return bool(caller.get_hookimpls())


def worker_plugins(manager: pluggy.PluginManager | None) -> tuple[object, ...]:
    """The plugins of ``manager`` implementing a per-replicate or per-step hook, in registration order."""
    if manager is None:
        return ()
    wanted = {
        id(impl.plugin) for name in WORKER_HOOKS for impl in getattr(manager.hook, name).get_hookimpls()
    }
    return tuple(p for _, p in manager.list_name_plugin() if p is not None and id(p) in wanted)


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
        self._bindings = experiment.bindings
        self._evaluators = experiment.evaluators
        self._source_names = tuple(experiment.datasources)
        self._sync_function = not inspect.iscoroutinefunction(experiment.function)
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
        if implemented(hook.crystallize_step_before) or implemented(hook.crystallize_step_after):
            self.step_hooks = _StepHooks(self.experiment, hook)
        if implemented(hook.crystallize_replicate_before):
            self.before_hook = hook.crystallize_replicate_before
        if implemented(hook.crystallize_replicate_after):
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
            try:
                kwargs[parameter] = source(ctx)
            except Exception as exc:
                label_origin(exc, f"datasource:{source.name}")
                raise
        if self.experiment.takes_ctx:
            kwargs["ctx"] = ctx
        return kwargs

    def _bind(self, ctx: FrozenContext, kwargs: dict[str, Any]) -> None:
        """Build the typed parameters from ``ctx`` (after the datasources ran)."""
        for binding in self._bindings:
            supplied, value = binding.resolve(ctx)
            if supplied:
                kwargs[binding.parameter] = value

    def _sources(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {name: kwargs[name] for name in self._source_names}

    def run_one(self, condition: Condition, replicate: int, batch: ReplicateBatch) -> None:
        """Run one replicate of ``condition``; an exception becomes a ReplicateError."""
        ctx = self._context(condition, replicate, batch.sink)
        token = CURRENT_CONTEXT.set(ctx)
        error: BaseException | None = None
        try:
            if self.before_hook is not None:
                self.before_hook(experiment=self.experiment, ctx=ctx)
            kwargs = self._arguments(condition, ctx)
            if self._bindings:
                self._bind(ctx, kwargs)
            outcome = self.experiment.function(**kwargs)
            if ctx.step_coroutines is not None or (outcome is not None and isinstance(outcome, CoroutineType)):
                _check_awaited(self.experiment, ctx, outcome, returned_ok=False)
            if self._evaluators:
                evaluate_sync(self._evaluators, outcome, ctx, self._sources(kwargs))
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
                    try:
                        kwargs[key] = await value
                    except Exception as exc:
                        label_origin(exc, f"datasource:{key}")
                        raise
            if self._bindings:
                self._bind(ctx, kwargs)
            outcome = self.experiment.function(**kwargs)
            if self._sync_function and ctx.step_coroutines is not None:
                _check_awaited(self.experiment, ctx, outcome, returned_ok=True)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            if self._evaluators:
                await evaluate_async(self._evaluators, outcome, ctx, self._sources(kwargs))
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


def _check_awaited(experiment: Experiment, ctx: FrozenContext, outcome: Any, *, returned_ok: bool) -> None:
    """Raise ConfigurationError when a sync experiment function left a coroutine nobody awaits.

    An ``async def`` step called from a plain ``def`` experiment returns a
    coroutine that never runs: without this, only Python's "coroutine was
    never awaited" warning and a missing metric would say so. ``returned_ok``:
    the caller awaits the returned ``outcome`` itself (the async run path).
    """
    pending = [
        (name, coroutine) for name, coroutine in ctx.step_coroutines or ()
        if inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
        and not (returned_ok and coroutine is outcome)
    ]
    if pending:
        for _, coroutine in pending:
            coroutine.close()  # never ran: closing it silences "never awaited"
        name = pending[0][0]
        msg = (
            f"async step {name!r} called from the sync experiment {experiment.name!r}, so nothing awaited "
            f"it and it never ran: make the experiment function 'async def' and 'await' the step"
        )
        error = ConfigurationError(msg)
        label_origin(error, name)
        raise error
    if not returned_ok and isinstance(outcome, CoroutineType):
        outcome.close()
        msg = (
            f"experiment {experiment.name!r}: its function is a plain 'def' but returned a coroutine, "
            f"which nothing awaits: make it 'async def' and await what it calls"
        )
        raise ConfigurationError(msg)


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the replicate's error
        return f"<{type(exc).__name__} whose str() failed>"


def _safe_step(exc: BaseException) -> str | None:
    step = getattr(exc, STEP_ATTRIBUTE, None)
    return step if isinstance(step, str) else None
