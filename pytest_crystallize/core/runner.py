"""The one orchestrator: runs an experiment's conditions x replicates.

:class:`ExperimentRunner` turns an :class:`~pytest_crystallize.core.experiment.Experiment`
into an :class:`~pytest_crystallize.core.results.ExperimentResult`: it calls the
lifecycle hooks, lets an execution backend (a ``crystallize_replicates_run``
hook; the built-in default runs them serially) run the replicate tasks, then checks the
hypotheses. A sequential experiment runs in looks and stops once every
hypothesis is decided. Errors raised by the user's code become results, never
crashes. Running the tasks themselves is :mod:`pytest_crystallize.core.replicates`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import pluggy

from pytest_crystallize.core.analysis import SequentialMonitor, evaluate, warn_low_power
from pytest_crystallize.core.columns import merge_columns
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.lifecycle import implemented, make_plugin_manager, register_plugins, worker_plugins
from pytest_crystallize.core.markers import ITEM_OPTIONS, function_marker_options
from pytest_crystallize.core.replicates import BatchRunner
from pytest_crystallize.core.results import ExperimentResult, Provenance
from pytest_crystallize.core.tasks import FINISHED_BATCHES, ReplicateBatch, ReplicateTask
from pytest_crystallize.core.treatments import Treatment
from pytest_crystallize.core.versions import package_versions
from pytest_crystallize.core.vocabulary import Correction, Spending
from pytest_crystallize.errors import ConfigurationError, CrystallizeError

if TYPE_CHECKING:
    from pytest_crystallize.core.store.journal import Journal, JournalContents

__all__ = ["PARTIAL_RESULT", "ExperimentRunner", "run_experiment"]

#: Attribute of an exception that interrupted a run (Ctrl-C, pytest-timeout): the
#: ExperimentResult of the replicates that finished before it, without verdicts.
PARTIAL_RESULT: Final = "__crystallize_partial_result__"

#: Seconds between two progress hook calls at most.
PROGRESS_INTERVAL: Final = 0.1


class _Progress:
    """Counts finished tasks and calls the progress hook, throttled, from the owning thread only.

    Lives for one run. Backend threads may count; only the thread that made
    it (the runner's) calls the hook, so plugins never see concurrent calls,
    and never a forked worker process's copy, so it cannot draw on the
    parent's terminal.
    """

    __slots__ = ("_caller", "_experiment", "_last", "_lock", "_owner", "_pid", "_start", "done", "total")

    def __init__(self, experiment: Experiment, caller: Any, total: int) -> None:
        self._experiment = experiment
        self._caller = caller
        self._lock = threading.Lock()
        self._owner = threading.get_ident()
        self._pid = os.getpid()
        self._start = self._last = time.perf_counter()
        self.done = 0
        self.total = total

    def __call__(self, count: int) -> None:
        with self._lock:
            self.done += count
        if threading.get_ident() != self._owner or os.getpid() != self._pid:
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


class ExperimentRunner:
    """Runs one experiment once and returns its result.

    Lifecycle: construct with an experiment, call :meth:`run` once, discard.
    Holds the plugin manager for the length of that run.
    """

    def __init__(
        self, experiment: Experiment, *, plugin_manager: pluggy.PluginManager | None = None,
        journal: Journal | None = None, resume: bool = False,
    ) -> None:
        self.experiment = experiment
        #: Where finished tasks are kept as they complete; ``resume`` runs only the tasks it lacks.
        self.journal = journal
        self.resume = resume
        self._journaled: JournalContents | None = None
        self._journal_notes: list[str] = []
        self._resumed = 0
        if plugin_manager is None:
            plugin_manager = make_plugin_manager(experiment.plugins)
        else:
            register_plugins(plugin_manager, experiment.plugins)
        self.plugin_manager = plugin_manager
        #: Batches of tasks finished so far, for a partial result if the run is interrupted.
        self._finished: list[ReplicateBatch] = []

    def tasks(self, start: int = 0, stop: int | None = None) -> list[ReplicateTask]:
        """``(condition_code, replicate)`` of replicates ``start..stop``, replicate-major.

        Conditions interleave, so drift over time (a warming cache, a busy
        machine) touches every condition alike.
        """
        codes = range(len(self.experiment.treatments) + 1)
        stop = self.experiment.replicates if stop is None else stop
        return [(code, r) for r in range(start, stop) for code in codes]

    def run(self) -> ExperimentResult:
        """Run every replicate of every condition (or every look), check hypotheses, return the result."""
        experiment = self.experiment
        hook = self.plugin_manager.hook
        started_at = datetime.now(UTC).isoformat()
        clock = time.perf_counter()
        hook.crystallize_experiment_init(experiment=experiment)
        hook.crystallize_run_before(experiment=experiment)
        run_batch = BatchRunner(experiment, hook, plugins=worker_plugins(self.plugin_manager))
        if self.journal is not None:
            self._open_journal()
            run_batch.journal = self.journal
        progress = None
        if implemented(hook.crystallize_replicates_progress):
            total = len(self.tasks())
            progress = run_batch.progress = _Progress(experiment, hook.crystallize_replicates_progress, total)
        try:
            if experiment.sequential is None:
                batches = self._execute(hook, run_batch, self.tasks())
                result = self._collect(batches, started_at, clock)
                result = _with(result, verdicts=evaluate(experiment, result))
            else:
                monitor = SequentialMonitor(experiment, experiment.sequential)
                result = self._run_looks(monitor, hook, run_batch, started_at, clock)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, pytest-timeout: report what finished
                self._keep_partial_result(exc, started_at, clock)
            raise
        if progress is not None:
            progress.finish()
        if self.journal is not None:  # the run is whole: nothing is left to resume
            with contextlib.suppress(OSError, CrystallizeError):
                self.journal.clear()
        if self._journal_notes or self._journaled is not None:
            result = _with(result, provenance=replace(
                result.provenance, resumed=None if self._journaled is None else self._resumed,
                journal_notes=tuple(self._journal_notes),
            ))
        hook.crystallize_run_after(experiment=experiment, result=result)
        return result

    def _open_journal(self) -> None:
        """Read the journal to resume from it, or start it afresh; one that cannot be used is turned off.

        A journal is a safety net: a store that cannot hold it (a file or a
        link in its place, a path too long, no space) never stops the run,
        and the result's notes say why nothing was journaled.
        """
        journal = self.journal
        assert journal is not None
        try:
            if self.resume:
                self._journaled = journal.load()
                self._journal_notes += self._journaled.discarded
            else:
                journal.clear()
            journal.prepare()
        except (OSError, CrystallizeError) as exc:
            self.journal = None
            self._journal_notes.append(f"not kept for this run ({exc}); it cannot be resumed if interrupted")

    def _execute(self, hook: Any, run_batch: BatchRunner, tasks: list[ReplicateTask]) -> list[ReplicateBatch]:
        """Run ``tasks`` through the execution backend hook (the built-in default runs them serially).

        When resuming, the tasks the journal holds are taken from it and only
        the others reach the backend.
        """
        batches: list[ReplicateBatch] = []
        if self._journaled is not None:
            kept, tasks = self._journaled.batch_for(tasks)
            if kept.task_count:
                batches.append(kept)
                self._resumed += kept.task_count
                run_batch.advance(kept.task_count)
        if tasks:
            ran = hook.crystallize_replicates_run(experiment=self.experiment, tasks=tasks, run_batch=run_batch)
            _check_batches(self.experiment, ran, len(tasks))
            batches += ran
        self._finished += batches
        return batches

    def _keep_partial_result(self, exc: BaseException, started_at: str, clock: float) -> None:
        """Attach the result of the replicates that finished (no verdicts) to ``exc``: :data:`PARTIAL_RESULT`."""
        finished = [*self._finished, *getattr(exc, FINISHED_BATCHES, ())]
        names = self.experiment.condition_names
        # Reporting the partial run must never mask the interruption itself.
        with contextlib.suppress(Exception):
            done = _complete_replicates(finished, names)
            setattr(exc, PARTIAL_RESULT, self._collect(finished, started_at, clock, replicates=done))

    def _run_looks(
        self, monitor: SequentialMonitor, hook: Any, run_batch: BatchRunner, started_at: str, clock: float
    ) -> ExperimentResult:
        """A sequential run: a look at a time, until every hypothesis is decided."""
        experiment = self.experiment
        done = 0
        for look, upto in enumerate(monitor.schedule, start=1):
            self._execute(hook, run_batch, self.tasks(done, upto))  # adds to self._finished
            done = upto
            result = self._collect(self._finished, started_at, clock, replicates=done)
            if monitor.observe(result, look):
                break
        provenance = replace(
            result.provenance, max_replicates=experiment.replicates, looks=len(monitor.schedule),
            looks_taken=monitor.looks_taken,
        )
        return _with(result, verdicts=monitor.verdicts(), provenance=provenance)

    def _collect(
        self, batches: Sequence[ReplicateBatch], started_at: str, clock: float, *, replicates: int | None = None
    ) -> ExperimentResult:
        """The result of ``batches`` so far, without verdicts."""
        experiment = self.experiment
        merged = merge_columns([batch.sink.columns() for batch in batches])
        errors = sorted((e for b in batches for e in b.errors), key=lambda e: (e.replicate, e.condition))
        provenance = Provenance(
            experiment=experiment.name, master_seed=experiment.seed,
            replicates=experiment.replicates if replicates is None else replicates,
            conditions=experiment.condition_names,
            treatments={t.name: _described(t) for t in experiment.treatments},
            alpha=experiment.alpha, correction=experiment.correction,
            started_at=started_at, duration_s=time.perf_counter() - clock, versions=package_versions(),
        )
        return ExperimentResult(
            experiment=experiment.name, conditions=experiment.condition_names, metrics=merged.metric_names,
            condition_codes=merged.condition, replicates=merged.replicate, metric_codes=merged.metric,
            values=merged.value, tags=merged.tags(), errors=tuple(errors), verdicts=(), provenance=provenance,
        )


def _complete_replicates(batches: Sequence[ReplicateBatch], conditions: Sequence[str]) -> int:
    """How many replicates every condition finished, counting recorded values and errors."""
    finished: dict[int, set[int]] = {code: set() for code in range(len(conditions))}
    for batch in batches:
        for condition, replicate in batch.sink.tasks():
            finished[condition].add(replicate)
        for error in batch.errors:
            finished[conditions.index(error.condition)].add(error.replicate)
    return min(len(done) for done in finished.values())


def _described(treatment: Treatment) -> dict[str, str]:
    """A treatment for provenance: its params as text, and a swapped datasource under ``@datasource``."""
    out = {key: repr(value) for key, value in treatment.params.items()}
    source = treatment.datasource
    if isinstance(source, Mapping):
        out["@datasource"] = ", ".join(f"{param}={s.name}" for param, s in source.items())
    elif source is not None:
        out["@datasource"] = source.name
    return out


def _with(result: ExperimentResult, **changes: Any) -> ExperimentResult:
    """A copy of ``result`` with some fields replaced (its arrays are read-only, so shared)."""
    return replace(result, **changes)


def _check_batches(experiment: Experiment, batches: object, expected: int) -> None:
    """Raise CrystallizeError unless an execution backend returned batches of every task."""
    if not isinstance(batches, (list, tuple)) or not all(isinstance(b, ReplicateBatch) for b in batches):
        msg = (
            f"experiment {experiment.name!r}: the execution backend's crystallize_replicates_run "
            f"returned {type(batches).__name__}; it must return a list of ReplicateBatch "
            f"(what run_batch(tasks) returns), or None to leave the run to the next backend"
        )
        raise CrystallizeError(msg)
    covered = sum(b.task_count for b in batches)
    if covered != expected:
        msg = (
            f"experiment {experiment.name!r}: the execution backend returned batches covering "
            f"{covered} replicate tasks, but the run has {expected}: every task must be run once"
        )
        raise CrystallizeError(msg)


def run_experiment(
    function: Any,
    *,
    name: str | None = None,
    replicates: int | str | None = None,
    seed: int | None = None,
    treatments: Sequence[Any] | None = None,
    hypotheses: Sequence[Any] | None = None,
    plugins: Sequence[object] | None = None,
    alpha: float | None = None,
    correction: Correction | None = None,
    params: Any = None,
    datasources: Any = None,
    arguments: Any = None,
    max_replicates: int | None = None,
    looks: int | None = None,
    spending: Spending | None = None,
    evaluators: Any = None,
    localns: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    journal: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> ExperimentResult:
    """Run ``function`` as an experiment from a script or notebook and return its result.

    The options are those of ``@pytest.mark.experiment``, and a function
    decorated with that marker runs with its settings (keyword arguments
    given here win); ``params`` are the
    baseline's context values, ``datasources`` maps parameter names to
    datasources, ``arguments`` gives fixed values for other parameters.
    Hypotheses stacked on ``function`` with ``@hypothesis`` count too.
    ``replicates="auto"`` with ``max_replicates``, ``looks`` and ``spending``
    runs a sequential design that stops once every hypothesis is decided.
    ``treatments`` may come from ``grid(...)`` or ``load_config(...)``;
    ``evaluators`` score the function's return value per replicate;
    parameters annotated with a dataclass or Pydantic model are bound from
    the context, their annotations resolved with ``localns`` (by default the
    caller's local names, so models defined in the calling function work).
    Plugins implementing ``crystallize_conditions_choose`` may choose and
    order the treatments first.

    ``journal`` names a store directory (such as ``".crystallize"``) whose
    journal keeps the finished replicates while the run goes; after an
    interruption, ``resume=True`` runs only the ones it lacks.

    Works from sync code and from inside a running event loop (an async
    experiment then runs on a loop in a worker thread); in ``async`` code,
    ``await arun_experiment(...)`` runs it without blocking the loop.
    """
    from pytest_crystallize.core.experiment import choose_conditions

    caller_locals = sys._getframe(1).f_locals if hasattr(sys, "_getframe") else None
    given = {
        "replicates": replicates, "seed": seed, "treatments": treatments, "hypotheses": hypotheses,
        "plugins": plugins, "alpha": alpha, "correction": correction, "params": params,
        "max_replicates": max_replicates, "looks": looks, "spending": spending, "evaluators": evaluators,
        "timeout": timeout,
    }
    where = f"experiment {name or getattr(function, '__name__', repr(function))!r}"
    # What neither sets keeps Experiment.define's defaults.
    options = function_marker_options(function, where)
    for key in ITEM_OPTIONS:
        options.pop(key, None)
    options.update({key: value for key, value in given.items() if value is not None})
    options["localns"] = localns if localns is not None else options.get("localns", caller_locals)
    experiment = Experiment.define(
        function, name=name, datasources=datasources, arguments=arguments, **options,
    )
    manager = make_plugin_manager(experiment.plugins)
    experiment = choose_conditions(experiment, manager.hook)
    kept = None
    if journal is not None:
        from pathlib import Path

        from pytest_crystallize.core.store.journal import Journal

        identity = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', experiment.name)}"
        kept = Journal.for_experiment(Path(journal), f"{identity}::{experiment.name}", experiment)
    elif resume:
        msg = f"{where}: resume=True needs journal= (the store directory whose journal to resume from)"
        raise ConfigurationError(msg)
    result = ExperimentRunner(experiment, plugin_manager=manager, journal=kept, resume=resume).run()
    warn_low_power(experiment.function, result)
    return result
