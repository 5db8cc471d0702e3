"""Running replicate tasks: the unit an execution backend schedules.

A :class:`BatchRunner` runs ``(condition_code, replicate)`` tasks of one
experiment in the calling process, thread or event loop and returns a
:class:`~pytest_crystallize.core.tasks.ReplicateBatch` of plain data: it is
the ``run_batch`` every backend receives (the
:class:`~pytest_crystallize.core.tasks.RunBatch` protocol). It pickles (with
the plugins that implement per-replicate or per-step hooks), so backends can
ship it to worker processes. Errors raised by the user's code become
:class:`~pytest_crystallize.core.results.ReplicateError` strings here, inside
the worker, so they cross process boundaries even when unpicklable.

Per replicate: make the context and make it current (``CURRENT_CONTEXT``, so
nested steps and asyncio tasks the replicate starts find it), call the
datasources, build typed parameters, call the function, then the
evaluators on its return value. That sequence is written once
(:meth:`BatchRunner._replicate`) and driven with or without an event loop
(:mod:`~pytest_crystallize.core.eventloops`). A sync experiment with no
timeout, replicate hooks, typed parameters or evaluators (the commonest)
runs the part of it that applies in a plain loop (:meth:`BatchRunner._run_tasks`):
the engine's overhead is most of a small replicate's cost.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from pytest_crystallize.core.context import FrozenContext
from pytest_crystallize.core.context_scope import ContextScope
from pytest_crystallize.core.evaluators import evaluate_async, evaluate_sync
from pytest_crystallize.core.eventloops import Body, drive_async, run_coroutine_sync, run_sync
from pytest_crystallize.core.lifecycle import implemented, make_plugin_manager
from pytest_crystallize.core.pipeline import StepHooks, label_origin
from pytest_crystallize.core.positional import positional_plans
from pytest_crystallize.core.replicate_errors import replicate_error
from pytest_crystallize.core.running import CURRENT_CONTEXT, RunningContext
from pytest_crystallize.core.seeds import ReplicateSeeds
from pytest_crystallize.core.shared_data import data_digest
from pytest_crystallize.core.tasks import ReplicateBatch, ReplicateTask, keep_finished
from pytest_crystallize.core.timeouts import replicate_deadline
from pytest_crystallize.core.unawaited import check_awaited

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Condition, Experiment
    from pytest_crystallize.core.store.journal import Journal, JournalWriter

__all__ = ["BatchRunner"]

class BatchRunner:
    """Runs replicate tasks of one experiment in the calling process, thread or event loop.

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
        #: Where finished tasks are journaled as they complete (None: not journaled).
        self.journal: Journal | None = None
        #: Keep what each replicate left in ``ctx.artifacts`` in its batch (an upstream of a chain).
        self.keep_artifacts = False
        #: How the tasks ran, said by the execution backend (never pickled: said in the main process).
        self.notes: list[str] = []
        #: What to do when the run ends (:meth:`on_close`): never pickled.
        self._closers: list[Callable[[], None]] = []
        self._bindings = experiment.bindings
        self._evaluators = experiment.evaluators
        self._fixed_arguments = dict(experiment.arguments)
        self._takes_ctx = experiment.takes_ctx
        self._source_names = tuple(experiment.datasources)
        # Looked up once per condition code rather than per replicate: the values as a plain dict (a
        # read costs half a mapping proxy's; contexts never write them) and each datasource's
        # (parameter, function, takes_ctx, name), called without DataSource.__call__ in between.
        self._values = tuple(dict(condition.values) for condition in self.conditions)
        self._datasource_calls = tuple(
            tuple((parameter, s.function, s.takes_ctx, s.name) for parameter, s in condition.datasources)
            for condition in self.conditions
        )
        #: Per condition code, how to call the function positionally, or None (called with keywords).
        self._plans = positional_plans(
            experiment.function, self._fixed_arguments, self._datasource_calls, self._takes_ctx
        )
        self._sync_function = not inspect.iscoroutinefunction(experiment.function)
        self._timeout = experiment.timeout
        # Digest the baseline's datasource outputs to notice replicates that share data (see shared_data).
        self._digest = (
            experiment.design is None and bool(experiment.hypotheses) and bool(self._source_names)
            and experiment.replicates > 1
        )
        self._init_hooks()
        #: Nothing but datasources and the function to call: :meth:`_run_tasks` runs the replicate inline.
        self._plain = (
            not experiment.is_async and self._timeout is None and not self._bindings and not self._evaluators
            and self.before_hook is None and self.after_hook is None
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment, "plugins": self.plugins, "journal": self.journal,
            "keep_artifacts": self.keep_artifacts,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        plugins = state["plugins"]
        hook = make_plugin_manager(plugins).hook if plugins else None
        self.__init__(state["experiment"], hook, plugins=plugins)  # type: ignore[misc]  # rebuild derived state
        self.journal = state["journal"]
        self.keep_artifacts = state["keep_artifacts"]

    def advance(self, count: int) -> None:
        """Report ``count`` finished tasks to the progress display, if there is one."""
        if self.progress is not None:
            self.progress(count)

    def note(self, text: str) -> None:
        """Keep a note of the execution backend on how the tasks ran (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` when the run ends, however it ends: a backend's pool kept for every look of a run."""
        self._closers.append(closer)

    def close(self) -> None:
        """End the run: call the closers, the last registered first (the runner calls this once)."""
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            closer()

    def _init_hooks(self) -> None:
        hook = self.hook
        self.step_hooks: StepHooks | None = None
        self.before_hook = self.after_hook = None
        if hook is None:
            return
        step_callers = {
            name: caller if implemented(caller) else None
            for name, caller in (
                ("before", hook.crystallize_step_before), ("call", hook.crystallize_step_call),
                ("after", hook.crystallize_step_after),
            )
        }
        if any(step_callers.values()):
            self.step_hooks = StepHooks(self.experiment, **step_callers)
        if implemented(hook.crystallize_replicate_before):
            self.before_hook = hook.crystallize_replicate_before
        if implemented(hook.crystallize_replicate_after):
            self.after_hook = hook.crystallize_replicate_after

    def __call__(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` in order in the calling thread and return their batch (``into``, when given: see RunBatch)."""
        if self.experiment.is_async:
            return run_coroutine_sync(self.run_async(tasks, into))
        batch = _batch_for(tasks, into)
        journal = None if self.journal is None else self.journal.writer(tasks, batch)
        running = RunningContext()
        outer = CURRENT_CONTEXT.set(running)  # each replicate's context goes in ``running`` in turn
        try:
            done = self._run_tasks(tasks, batch, running, journal)
        finally:
            CURRENT_CONTEXT.reset(outer)
        if journal is not None:
            journal.flush(batch, done)
        return batch

    def _run_tasks(
        self, tasks: Sequence[ReplicateTask], batch: ReplicateBatch, running: RunningContext,
        journal: JournalWriter | None,
    ) -> int:
        """Run ``tasks`` into ``batch`` without an event loop; return how many ran.

        A sync experiment with no timeout, replicate hooks, typed parameters
        or evaluators (``self._plain``) runs what :meth:`_replicate` does for
        it inline, with the runner's fields read once: driving a generator and
        a method call per replicate cost a tenth of a trivial replicate.
        """
        conditions, progress, function = self.conditions, self.progress, self.experiment.function
        scopes = self._scopes(batch)
        arguments, digest, keep_artifacts, plain = self._arguments, self._digest, self.keep_artifacts, self._plain
        plans = self._plans
        done = 0
        try:
            for code, replicate in tasks:
                condition = conditions[code]
                if not plain:
                    run_sync(self._replicate(condition, scopes[code], replicate, batch, running))
                else:
                    ctx = FrozenContext(scopes[code], replicate)
                    running.ctx = ctx
                    try:
                        plan = plans[code]
                        if plan is None:
                            kwargs = arguments(condition, ctx)
                            if digest and code == 0:
                                _record_digests(batch, replicate, self._source_names, kwargs)
                            outcome = function(**kwargs)
                        else:  # what _arguments does, as a list: a call with *args costs less than with **kwargs
                            args = list(plan.template)
                            for index, source, takes_ctx, name in plan.sources:
                                try:
                                    args[index] = source(ctx) if takes_ctx else source()
                                except Exception as exc:
                                    label_origin(exc, f"datasource:{name}")
                                    raise
                            if plan.ctx_index >= 0:
                                args[plan.ctx_index] = ctx
                            if digest and code == 0:
                                _record_digests(batch, replicate, self._source_names, plan.by_name(args))
                            outcome = function(*args)
                        if ctx.step_coroutines is not None or (
                            outcome is not None and isinstance(outcome, CoroutineType)
                        ):
                            check_awaited(self.experiment, ctx, outcome, returned_ok=False)
                    except Exception as exc:
                        batch.errors.append(replicate_error(condition.name, replicate, exc, self._timeout))
                    else:
                        if keep_artifacts and ctx.artifacts:
                            batch.artifacts[code, replicate] = dict(ctx.artifacts)
                done += 1
                if progress is not None:
                    progress(1)
                if journal is not None:
                    journal.finished(batch, done)
        except BaseException as exc:  # Ctrl-C, pytest-timeout: keep what finished for the report
            self._keep_partial(exc, batch, tasks, done, journal)
            raise
        return done

    async def run_async(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` in order on the running event loop and return their batch (``into``: see RunBatch)."""
        batch = _batch_for(tasks, into)
        conditions, progress, scopes = self.conditions, self.progress, self._scopes(batch)
        journal = None if self.journal is None else self.journal.writer(tasks, batch)
        done = 0
        outer = CURRENT_CONTEXT.set(None)  # each replicate sets its own holder; restored once, for speed
        try:
            for code, replicate in tasks:
                body = self._replicate(conditions[code], scopes[code], replicate, batch, None)
                await drive_async(body, timeout=self._timeout)
                done += 1
                if progress is not None:
                    progress(1)
                if journal is not None:
                    journal.finished(batch, done)
        except BaseException as exc:  # Ctrl-C, cancellation: keep what finished for the report
            self._keep_partial(exc, batch, tasks, done, journal)
            raise
        finally:
            CURRENT_CONTEXT.reset(outer)
        if journal is not None:
            journal.flush(batch, done)
        return batch

    @staticmethod
    def _keep_partial(
        exc: BaseException, batch: ReplicateBatch, tasks: Sequence[ReplicateTask], done: int,
        journal: JournalWriter | None,
    ) -> None:
        """Keep the ``done`` tasks that finished before ``exc``: for the report, and in the journal."""
        if done < len(tasks):
            batch.sink.drop_unfinished(*tasks[done])  # an interruption is never a replicate error
        batch.task_count -= len(tasks) - done  # a batch continued (``into``) keeps its earlier tasks
        keep_finished(exc, [batch])
        if journal is not None:
            with contextlib.suppress(Exception):  # journaling must never mask the interruption
                journal.flush(batch, done)

    def _scopes(self, batch: ReplicateBatch) -> tuple[ContextScope, ...]:
        """What the contexts of each condition (by code) share in ``batch``: made once per batch, not per replicate."""
        seeds, sink, step_hooks, design = self.seeds, batch.sink, self.step_hooks, self.experiment.design
        return tuple(
            ContextScope(values, condition.name, condition.code, seeds, sink, step_hooks, design)
            for values, condition in zip(self._values, self.conditions, strict=True)
        )

    def _arguments(self, condition: Condition, ctx: FrozenContext) -> dict[str, Any]:
        kwargs = self._fixed_arguments.copy()
        for parameter, function, takes_ctx, name in self._datasource_calls[condition.code]:
            try:
                kwargs[parameter] = function(ctx) if takes_ctx else function()  # what DataSource.__call__ does
            except Exception as exc:
                label_origin(exc, f"datasource:{name}")
                raise
        if self._takes_ctx:
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

    def _replicate(
        self, condition: Condition, scope: ContextScope, replicate: int, batch: ReplicateBatch,
        running: RunningContext | None,
    ) -> Body[None]:
        """One replicate of ``condition``, written once; an exception becomes a ReplicateError.

        ``running``: where to put the context, in a sync batch; None when
        driven on an event loop, so async datasources, functions and
        evaluators are awaited (the body yields them) and the replicate gets a
        holder of its own. Otherwise nothing is awaited and a coroutine left
        behind is a configuration error.
        """
        awaiting = running is None
        ctx = FrozenContext(scope, replicate)
        if running is None:  # an asyncio task the replicate starts keeps this holder (and context)
            CURRENT_CONTEXT.set(RunningContext(ctx))
        else:
            running.ctx = ctx
        error: BaseException | None = None
        try:
            # On an event loop the awaits carry the deadline (drive_async), not a timer. Entered by
            # hand, and only when there is one: a `with` of a null context costs a tenth of a
            # trivial replicate.
            deadline = None if awaiting or self._timeout is None else replicate_deadline(self._timeout)
            if deadline is not None:
                deadline.__enter__()
            try:
                if self.before_hook is not None:
                    self.before_hook(experiment=self.experiment, ctx=ctx)
                kwargs = self._arguments(condition, ctx)
                if awaiting:
                    for key, value in kwargs.items():
                        if inspect.isawaitable(value):
                            try:
                                kwargs[key] = yield value
                            except Exception as exc:
                                label_origin(exc, f"datasource:{key}")
                                raise
                if self._digest and condition.code == 0:
                    _record_digests(batch, replicate, self._source_names, kwargs)
                if self._bindings:
                    self._bind(ctx, kwargs)
                outcome = self.experiment.function(**kwargs)
                if awaiting:
                    if self._sync_function and ctx.step_coroutines is not None:
                        check_awaited(self.experiment, ctx, outcome, returned_ok=True)
                    if inspect.isawaitable(outcome):
                        outcome = yield outcome
                elif ctx.step_coroutines is not None or (outcome is not None and isinstance(outcome, CoroutineType)):
                    check_awaited(self.experiment, ctx, outcome, returned_ok=False)
                if self._evaluators:
                    if awaiting:
                        yield evaluate_async(self._evaluators, outcome, ctx, self._sources(kwargs))
                    else:
                        evaluate_sync(self._evaluators, outcome, ctx, self._sources(kwargs))
            finally:
                if deadline is not None:
                    deadline.__exit__(None, None, None)  # its clean-up runs whatever the body raised
        except Exception as exc:
            error = exc
            batch.errors.append(replicate_error(condition.name, replicate, exc, self._timeout))
        if self.keep_artifacts and error is None and ctx.artifacts:
            batch.artifacts[condition.code, replicate] = dict(ctx.artifacts)
        if self.after_hook is not None:
            self.after_hook(experiment=self.experiment, ctx=ctx, error=error)



def _batch_for(tasks: Sequence[ReplicateTask], into: ReplicateBatch | None) -> ReplicateBatch:
    """A new batch of ``tasks``, or ``into`` continued by them."""
    if into is None:
        return ReplicateBatch(task_count=len(tasks))
    into.task_count += len(tasks)
    return into


def _record_digests(batch: ReplicateBatch, replicate: int, names: Sequence[str], kwargs: dict[str, Any]) -> None:
    for name in names:
        digest = data_digest(kwargs[name])
        if digest is not None:
            batch.digests.append((replicate, name, digest))
