"""What execution backends exchange with the runner: replicate tasks and batches.

A leaf module: the runner, the replicate runner, the hookspecs and every
backend import it, and it imports none of them. A task is one replicate of
one condition; a batch is what running some tasks produced, as plain data;
:class:`RunBatch` is everything a backend may do with the callable the
runner hands it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from pytest_crystallize.core.sink import MetricSink

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ReplicateError

__all__ = ["FINISHED_BATCHES", "ReplicateBatch", "ReplicateTask", "RunBatch", "keep_finished"]

#: ``(condition_code, replicate)``: one replicate of one condition.
ReplicateTask = tuple[int, int]


@dataclass(slots=True)
class ReplicateBatch:
    """What running some replicate tasks produced: columnar values and errors.

    Plain data, so a batch run in a worker process pickles back cheaply.
    ``task_count`` is how many tasks it covers (errors included).
    ``artifacts`` holds what each task left in ``ctx.artifacts``, only when
    the run keeps artifacts (an upstream of a chained experiment).
    """

    sink: MetricSink = field(default_factory=MetricSink)
    errors: list[ReplicateError] = field(default_factory=list)
    task_count: int = 0
    #: ``(replicate, parameter, digest)`` of the baseline's datasource outputs, to notice shared data.
    digests: list[tuple[int, str, str]] = field(default_factory=list)
    artifacts: dict[ReplicateTask, dict[str, bytes | str]] = field(default_factory=dict)


#: Attribute of an exception that stopped a run midway (Ctrl-C, pytest-timeout): the
#: batches of the tasks that finished before it, so the runner can report them.
FINISHED_BATCHES: Final = "__crystallize_finished_batches__"


def keep_finished(exc: BaseException, batches: Sequence[ReplicateBatch]) -> None:
    """Attach ``batches`` (finished before ``exc`` stopped the run) to ``exc`` for the runner.

    A batch already attached is not attached again: a batch continued by
    later tasks (``RunBatch(tasks, into=batch)``) is kept by the runner that
    was filling it and by the backend that holds it, and counts once.
    """
    kept = list(getattr(exc, FINISHED_BATCHES, None) or ())
    new = [batch for batch in batches if not any(batch is old for old in kept)]
    with contextlib.suppress(AttributeError, TypeError):  # an exception that refuses attributes
        setattr(exc, FINISHED_BATCHES, [*kept, *new])


class RunBatch(Protocol):
    """The ``run_batch`` an execution backend receives: runs tasks where it is called.

    Picklable, so a backend may call it in a worker process. Tasks run in the
    order given, and each task's values depend only on its condition and
    replicate index, so any split of the tasks gives the same numbers.
    """

    @property
    def experiment(self) -> Experiment:
        """The experiment whose tasks this runs."""
        ...

    def __call__(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` in the calling thread (an ``async`` experiment on its own event loop).

        ``into``: a batch this process ran, of the tasks just before
        ``tasks``, to continue rather than return a new one to join to it.
        If the run is interrupted, the continued batch is the one kept.
        """
        ...

    async def run_async(self, tasks: Sequence[ReplicateTask], into: ReplicateBatch | None = None) -> ReplicateBatch:
        """Run ``tasks`` on the running event loop, awaiting async datasources, functions and evaluators."""
        ...

    def advance(self, count: int) -> None:
        """Report ``count`` tasks finished elsewhere (a worker process) to the progress display."""
        ...

    def note(self, text: str) -> None:
        """Say how the tasks ran (serially because they were too small for a pool; on which cluster).

        The notes go into the result's provenance (``execution``) and the
        summary shows them with ``-v``. A note given twice is kept once.
        """
        ...
