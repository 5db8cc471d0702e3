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
import math
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from pytest_crystallize.core.analysis import SequentialMonitor, evaluate, warn_low_power
from pytest_crystallize.core.anytime import MIN_PAIRS, AnytimeMonitor
from pytest_crystallize.core.budget import BUDGET, BUDGET_BATCHES, Deadline, cut_short, replicate_steps
from pytest_crystallize.core.columns import merge_columns
from pytest_crystallize.core.eventloops import share_event_loop
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.lifecycle import implemented, make_plugin_manager, register_plugins, worker_plugins
from pytest_crystallize.core.markers import ITEM_OPTIONS, function_marker_options
from pytest_crystallize.core.replicates import BatchRunner
from pytest_crystallize.core.results import ExperimentResult, Provenance
from pytest_crystallize.core.shared_data import shared_data_notes, warn_shared_data
from pytest_crystallize.core.tasks import FINISHED_BATCHES, ReplicateBatch, ReplicateTask
from pytest_crystallize.core.treatments import Treatment
from pytest_crystallize.core.upstreams import bind_upstreams, run_upstreams
from pytest_crystallize.core.verdicts import design_label
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

    def start(self) -> None:
        """Call the hook with nothing done yet, so a display can show the run from its start."""
        self._emit(self._start)

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
        journal: Journal | None = None, resume: bool = False, deadline: Deadline | None = None,
        upstreams: Mapping[str, ExperimentResult] | None = None, keep_artifacts: bool = False,
    ) -> None:
        # Chained experiments: the upstream results are bound into the definition, so they
        # travel with it to worker processes (raises ChainError before anything runs).
        experiment, self._upstream_notes = bind_upstreams(experiment, upstreams or {})
        self.experiment = experiment
        #: When the time budget runs out: the run stops at the next batch boundary after it (see ``budget``).
        self.deadline = deadline
        #: Where finished tasks are kept as they complete; ``resume`` runs only the tasks it lacks.
        self.journal = journal
        self.resume = resume
        #: Keep what each replicate left in ``ctx.artifacts`` on the result (for downstream experiments).
        self.keep_artifacts = keep_artifacts
        self._journaled: JournalContents | None = None
        self._journal_notes: list[str] = []
        if keep_artifacts and resume:
            # The journal keeps values, not artifacts: resumed replicates would hand on nothing.
            self.resume = False
            self._journal_notes.append(
                "not resumed: this experiment keeps artifacts for a downstream experiment, which the "
                "journal does not hold; every replicate ran again"
            )
        self._resumed = 0
        if plugin_manager is None:
            plugin_manager = make_plugin_manager(experiment.plugins)
        else:
            register_plugins(plugin_manager, experiment.plugins)
        self.plugin_manager = plugin_manager
        #: Batches of tasks finished so far, for a partial result if the run is interrupted.
        self._finished: list[ReplicateBatch] = []
        #: What the execution backend said about how the tasks ran (the replicate runner's notes).
        self._execution: list[str] = []

    def tasks(
        self, start: int = 0, stop: int | None = None, treatments: Sequence[str] | None = None
    ) -> list[ReplicateTask]:
        """``(condition_code, replicate)`` of replicates ``start..stop``, replicate-major.

        Conditions interleave, so drift over time (a warming cache, a busy
        machine) touches every condition alike. ``treatments`` limits them
        to the baseline and those treatments (an adaptive sweep).
        """
        names = self.experiment.condition_names
        codes = range(len(names)) if treatments is None else [0, *(names.index(t) for t in treatments)]
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
        run_batch.keep_artifacts = self.keep_artifacts
        self._execution = run_batch.notes
        if self.journal is not None:
            self._open_journal()
            run_batch.journal = self.journal
        progress = None
        if implemented(hook.crystallize_replicates_progress):
            total = len(self.tasks())
            progress = run_batch.progress = _Progress(experiment, hook.crystallize_replicates_progress, total)
            progress.start()
        run_batch.on_close(share_event_loop())  # async replicates of every look on one event loop
        try:
            if experiment.anytime is not None:
                result = self._run_anytime(AnytimeMonitor(experiment, experiment.anytime), hook, run_batch,
                                           started_at, clock)
            elif experiment.sequential is None:
                result = self._run_fixed(hook, run_batch, started_at, clock)
            else:
                monitor = SequentialMonitor(experiment, experiment.sequential)
                result = self._run_looks(monitor, hook, run_batch, started_at, clock)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, pytest-timeout: report what finished
                self._keep_partial_result(exc, started_at, clock)
            raise
        finally:
            run_batch.close()  # what the backend kept for later looks (a process pool)
        if progress is not None:
            progress.finish()
        if self.journal is not None and result.provenance.stopped_by == BUDGET:
            self._journal_notes.append(
                "the time budget stopped the run: its replicates stay in the journal, and a run with resume "
                "runs the rest (a fixed design completed that way is valid again)"
            )
        elif self.journal is not None:  # the run is whole: nothing is left to resume
            with contextlib.suppress(OSError, CrystallizeError):
                self.journal.clear()
        if self._journal_notes or self._journaled is not None:
            result = _with(result, provenance=replace(
                result.provenance, resumed=None if self._journaled is None else self._resumed,
                journal_notes=tuple(self._journal_notes),
            ))
        if self._upstream_notes:
            result = _with(result, provenance=replace(result.provenance, upstream_notes=self._upstream_notes))
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

    def _out_of_time(self) -> bool:
        return self.deadline is not None and self.deadline.passed

    def _run_until(
        self, hook: Any, run_batch: BatchRunner, start: int, stop: int, treatments: Sequence[str] | None = None
    ) -> int:
        """Run replicates ``start..stop`` (in budget-sized batches); return how far it got before the deadline."""
        for low, high in replicate_steps(start, stop, self.experiment.replicates, self.deadline):
            self._execute(hook, run_batch, self.tasks(low, high, treatments))  # adds to self._finished
            if high < stop and self._out_of_time():
                return high
        return stop

    def _run_fixed(self, hook: Any, run_batch: BatchRunner, started_at: str, clock: float) -> ExperimentResult:
        """A fixed design: every replicate, then one test; cut short by the budget, its verdicts are not valid."""
        planned = self.experiment.replicates
        done = self._run_until(hook, run_batch, 0, planned)
        result = self._collect(self._finished, started_at, clock, replicates=done)
        verdicts = evaluate(self.experiment, result)
        if done == planned:
            return _with(result, verdicts=verdicts)
        provenance = replace(result.provenance, max_replicates=planned, stopped_by=BUDGET)
        verdicts = cut_short(verdicts, done, planned, design_label(self.experiment))
        return _with(result, verdicts=verdicts, provenance=provenance)

    def _run_looks(
        self, monitor: SequentialMonitor, hook: Any, run_batch: BatchRunner, started_at: str, clock: float
    ) -> ExperimentResult:
        """A sequential run: a look at a time, until every hypothesis is decided (or the budget is spent)."""
        experiment = self.experiment
        done = 0
        stopped_by = ""
        adaptive = experiment.sequential is not None and experiment.sequential.adaptive
        for look, upto in enumerate(monitor.schedule, start=1):
            done = self._run_until(hook, run_batch, done, upto, monitor.open_treatments() if adaptive else None)
            result = self._collect(self._finished, started_at, clock, replicates=done)
            if done < upto:  # the budget ran out inside this look: keep the verdicts of the last one
                stopped_by = BUDGET
                break
            if monitor.observe(result, look):
                break
            if look < len(monitor.schedule) and self._out_of_time():
                stopped_by = BUDGET
                break
        provenance = replace(
            result.provenance, max_replicates=experiment.replicates, looks=len(monitor.schedule),
            looks_taken=monitor.looks_taken, stopped_by=stopped_by or None,
            tasks_run=sum(b.task_count for b in self._finished),
        )
        return _with(result, verdicts=monitor.verdicts(stopped_by=stopped_by), provenance=provenance)

    def _run_anytime(
        self, monitor: AnytimeMonitor, hook: Any, run_batch: BatchRunner, started_at: str, clock: float
    ) -> ExperimentResult:
        """An anytime run: every hypothesis tested after every replicate, until all are decided or time is up.

        Replicates run in growing batches (a quarter of those done, at most
        1/20th of the most), and the monitor walks each batch replicate by
        replicate, so the batch size changes the work, not the decisions.
        """
        total = self.experiment.replicates
        done = 0
        stopped_by = ""
        while True:
            step = max(MIN_PAIRS, min(math.ceil(total / BUDGET_BATCHES), done // 4))
            done = self._run_until(hook, run_batch, done, min(total, done + step))
            result = self._collect(self._finished, started_at, clock, replicates=done)
            if monitor.observe(result) or done == total:
                break
            if self._out_of_time():
                stopped_by = BUDGET
                break
        provenance = replace(
            result.provenance, max_replicates=total, anytime=True, stopped_by=stopped_by or None,
        )
        return _with(result, verdicts=monitor.verdicts(result, stopped_by=stopped_by), provenance=provenance)

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
            design=None if experiment.design is None else str(experiment.design),
            shared_data=shared_data_notes(experiment, (d for b in batches for d in b.digests)),
            execution=tuple(self._execution),
        )
        artifacts = None
        if self.keep_artifacts:
            names = experiment.condition_names
            artifacts = MappingProxyType({
                (names[code], replicate): MappingProxyType(kept)
                for batch in batches for (code, replicate), kept in batch.artifacts.items()
            })
        return ExperimentResult(
            experiment=experiment.name, conditions=experiment.condition_names, metrics=merged.metric_names,
            condition_codes=merged.condition, replicates=merged.replicate, metric_codes=merged.metric,
            values=merged.value, tags=merged.tags(), errors=tuple(errors), verdicts=(), provenance=provenance,
            artifacts=artifacts,
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


def _cache_plugin(cache: object, where: str) -> object:
    """The CachePlugin of ``run_experiment(cache=...)``: True for the default store, or a store directory."""
    from pathlib import Path

    from pytest_crystallize.core.defaults import CACHE_DIR
    from pytest_crystallize.plugins.cache import CachePlugin

    if cache is True:
        return CachePlugin()
    if isinstance(cache, (str, os.PathLike)):
        return CachePlugin(Path(cache) / CACHE_DIR)
    msg = f"{where}: cache= must be True, False, None or a store directory (such as '.crystallize'), got {cache!r}"
    raise ConfigurationError(msg)


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
    futility: bool | str | None = None,
    futility_spending: Spending | None = None,
    power: float | None = None,
    adaptive: bool | None = None,
    evaluators: Any = None,
    localns: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    design: Any = None,
    journal: str | os.PathLike[str] | None = None,
    resume: bool = False,
    upstreams: Mapping[str, ExperimentResult] | None = None,
    keep_artifacts: bool = False,
    cache: bool | str | os.PathLike[str] | None = None,
    budget: float | None = None,
    confirm: str | os.PathLike[str] | None = None,
) -> ExperimentResult:
    """Run ``function`` as an experiment from a script or notebook and return its result.

    The options are those of ``@pytest.mark.experiment``, and a function
    decorated with that marker runs with its settings (keyword arguments
    given here win); ``params`` are the
    baseline's context values, ``datasources`` maps parameter names to
    datasources, ``arguments`` gives fixed values for other parameters.
    Hypotheses stacked on ``function`` with ``@hypothesis`` count too.
    ``replicates="auto"`` with ``max_replicates``, ``looks`` and ``spending``
    runs a sequential design that stops once every hypothesis is decided;
    ``futility=True`` (with ``futility_spending`` and ``power``) also stops
    hypotheses that cannot reach significance; ``adaptive=True`` runs each
    look only for the treatments still undecided. ``replicates="anytime"``
    with ``max_replicates`` tests after every replicate (see
    :mod:`~pytest_crystallize.core.anytime`).
    ``treatments`` may come from ``grid(...)`` or ``load_config(...)``;
    ``evaluators`` score the function's return value per replicate;
    parameters annotated with a dataclass or Pydantic model are bound from
    the context, their annotations resolved with ``localns`` (by default the
    caller's local names, so models defined in the calling function work).
    Plugins implementing ``crystallize_conditions_choose`` may choose and
    order the treatments first.

    ``design=cv(k=10, repeats=10)`` runs repeated k-fold cross-validation
    (``ctx.folds(n)`` gives each replicate's fold; the verdicts use the
    corrected repeated k-fold t).

    ``journal`` names a store directory (such as ``".crystallize"``) whose
    journal keeps the finished replicates while the run goes; after an
    interruption, ``resume=True`` runs only the ones it lacks.

    A parameter taking an ``upstream("experiment_train", ...)`` datasource
    reads the result given in ``upstreams`` under that name; an upstream not
    given is run first (the function passed to ``upstream``, or the function
    of that name in ``function``'s module, with its marker's options).
    ``keep_artifacts=True`` keeps what each replicate left in
    ``ctx.artifacts`` on the result, so it can be given as an upstream.
    ``cache`` turns on the step cache for ``@pipeline_step(cache=True)``
    steps: ``True`` keeps it in ``.crystallize/cache``, a path names the store
    directory whose ``cache/`` to use (off by default outside pytest).
    ``budget`` (seconds) stops the run when the time is spent: an anytime
    design's verdicts stay valid, a sequential design keeps those of its
    last look, a fixed design's fail as not valid (see :mod:`~pytest_crystallize.core.budget`).

    ``confirm`` names a store directory: the run is confirmatory. It writes a
    pre-registration there first, runs on a fresh seed stream no earlier run
    used, and every verdict says whether it is a clean confirmation (see
    :mod:`~pytest_crystallize.core.store.confirmations`). A marker's
    ``confirm=True`` needs it.

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
        "timeout": timeout, "design": design, "futility": futility, "futility_spending": futility_spending,
        "power": power, "adaptive": adaptive,
    }
    where = f"experiment {name or getattr(function, '__name__', repr(function))!r}"
    # What neither sets keeps Experiment.define's defaults.
    options = function_marker_options(function, where)
    if options.get("confirm") and confirm is None:
        msg = (f"{where}: confirm=True on the marker needs a store to pre-register in outside pytest: "
               f"run_experiment(..., confirm='.crystallize')")
        raise ConfigurationError(msg)
    for key in ITEM_OPTIONS:
        options.pop(key, None)
    options.update({key: value for key, value in given.items() if value is not None})
    options["localns"] = localns if localns is not None else options.get("localns", caller_locals)
    experiment = Experiment.define(
        function, name=name, datasources=datasources, arguments=arguments, **options,
    )
    # The cache comes first: the innermost step wrapper, wrapped by the experiment's own.
    cached = [] if cache is None or cache is False else [_cache_plugin(cache, where)]
    manager = make_plugin_manager([*cached, *experiment.plugins])
    experiment = choose_conditions(experiment, manager.hook)
    if journal is None and resume:
        msg = f"{where}: resume=True needs journal= (the store directory whose journal to resume from)"
        raise ConfigurationError(msg)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0):
        msg = f"{where}: budget must be a number of seconds > 0 (or None for no limit), got {budget!r}"
        raise ConfigurationError(msg)
    deadline = None if budget is None else Deadline.after(float(budget))
    module = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', experiment.name)}"
    identity = f"{module}::{experiment.name}"
    chained = run_upstreams(
        experiment, upstreams or {}, lambda up: run_experiment(up, keep_artifacts=True, cache=cache),
    )

    def run(chosen: Experiment) -> ExperimentResult:
        kept = None
        if journal is not None:
            from pytest_crystallize.core.store.journal import Journal

            kept = Journal.for_experiment(Path(journal), identity, chosen)
        return ExperimentRunner(
            chosen, plugin_manager=manager, journal=kept, resume=resume, deadline=deadline,
            upstreams=chained, keep_artifacts=keep_artifacts,
        ).run()

    if confirm is None:
        result = run(experiment)
    else:
        from pytest_crystallize.core.environment import git_info
        from pytest_crystallize.core.store.confirmations import ConfirmationLedger
        from pytest_crystallize.core.store.stores import DirectoryStore

        root = Path(confirm)
        git = git_info(Path.cwd())
        result = ConfirmationLedger(root).run(
            identity, experiment, run, git=None if git is None else git.to_dict(),
            saved_runs=DirectoryStore(root).listing().runs, resume=resume,
        )
    warn_low_power(experiment.function, result)
    warn_shared_data(experiment.function, result)
    return result
