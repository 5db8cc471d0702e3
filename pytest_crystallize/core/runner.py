"""The one orchestrator: runs an experiment's conditions x replicates.

:class:`ExperimentRunner` turns an :class:`~pytest_crystallize.core.experiment.Experiment`
into an :class:`~pytest_crystallize.core.results.ExperimentResult`: it calls the
lifecycle hooks, lets an execution backend (a ``crystallize_replicates_run``
hook; the built-in default runs them serially) run the replicate tasks, then checks the
hypotheses. A sequential experiment runs in looks and stops once every
hypothesis is decided. Errors raised by the user's code become results, never
crashes. Running the tasks themselves is :mod:`pytest_crystallize.core.replicates`;
``run_experiment``, which builds the experiment from a script's arguments and
runs it here, is :mod:`pytest_crystallize.core.scripting`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from pytest_crystallize.core.analysis import SequentialMonitor, evaluate
from pytest_crystallize.core.anytime import MIN_PAIRS, AnytimeMonitor
from pytest_crystallize.core.budget import BUDGET, BUDGET_BATCHES, Deadline, cut_short, replicate_steps
from pytest_crystallize.core.columns import merge_columns
from pytest_crystallize.core.eventloops import share_event_loop
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.lifecycle import implemented, register_plugins, run_plugin_manager, worker_plugins
from pytest_crystallize.core.progress_counter import ProgressCounter
from pytest_crystallize.core.replicates import BatchRunner
from pytest_crystallize.core.results import ExperimentResult, Provenance
from pytest_crystallize.core.shared_data import shared_data_notes
from pytest_crystallize.core.tasks import FINISHED_BATCHES, ReplicateBatch, ReplicateTask
from pytest_crystallize.core.treatments import Treatment
from pytest_crystallize.core.upstreams import bind_upstreams
from pytest_crystallize.core.verdicts import design_label
from pytest_crystallize.core.versions import package_versions
from pytest_crystallize.errors import CrystallizeError

if TYPE_CHECKING:
    from pytest_crystallize.core.store.journal import Journal, JournalContents

__all__ = ["PARTIAL_RESULT", "ExperimentRunner"]

#: Attribute of an exception that interrupted a run (Ctrl-C, pytest-timeout): the
#: ExperimentResult of the replicates that finished before it, without verdicts.
PARTIAL_RESULT: Final = "__crystallize_partial_result__"


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
            plugin_manager = run_plugin_manager(experiment.plugins)
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
            progress = run_batch.progress = ProgressCounter(experiment, hook.crystallize_replicates_progress, total)
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


