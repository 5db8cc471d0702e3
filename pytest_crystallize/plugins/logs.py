"""``LoggingPlugin``: an experiment's run on the ``crystallize`` logger.

Records go through :mod:`logging`, so pytest's log capture shows them with a
failure and ``--log-cli-level=INFO`` shows them live. Quiet by default: one
line when the run starts, one when it ends, one per failed replicate; each
step's completion only with ``verbose=True``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.hookspecs import hookimpl

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.pipeline import PipelineStep
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["LOGGER_NAME", "LoggingPlugin"]

LOGGER_NAME: Final = "crystallize"
#: Failed replicates logged one by one; the rest are counted.
MAX_ERROR_LINES: Final = 20

logger = logging.getLogger(LOGGER_NAME)


def _level(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):
            return level
    msg = (
        f"LoggingPlugin: log_level must be a logging level name (DEBUG, INFO, WARNING, ERROR) "
        f"or number, got {value!r}"
    )
    raise ConfigurationError(msg)


class LoggingPlugin:
    """Log the run's start and end, failed replicates and, with ``verbose=True``, every step.

    ``log_level`` is the level of the ``crystallize`` logger while an
    experiment runs (its previous level is restored afterwards): run lines
    are INFO, step lines (``verbose=True``) INFO, failed replicates WARNING.
    With process execution, step lines are logged in the worker processes,
    where pytest does not capture them.
    """

    def __init__(self, verbose: bool = False, log_level: str | int = "INFO") -> None:
        self.verbose = bool(verbose)
        self.log_level = _level(log_level)
        self._previous: list[int] = []
        self._started: dict[str, float] = {}
        if not self.verbose:
            # pluggy registers every hook method it finds; hiding this one keeps
            # the per-step hook uncalled (and free) unless steps are logged.
            self.crystallize_step_after = None  # type: ignore[assignment,method-assign]  # see above

    def __repr__(self) -> str:
        level = logging.getLevelName(self.log_level)
        return f"LoggingPlugin(verbose={self.verbose!r}, log_level={level!r})"

    @hookimpl
    def crystallize_run_before(self, experiment: Experiment) -> None:
        """Set the logger's level and log the start."""
        self._previous.append(logger.level)
        logger.setLevel(self.log_level)
        self._started[experiment.name] = time.perf_counter()
        logger.info(
            "experiment %r: running %d replicates of %d conditions (%s), master seed %d",
            experiment.name, experiment.replicates, len(experiment.condition_names),
            ", ".join(experiment.condition_names), experiment.seed,
        )

    @hookimpl
    def crystallize_step_after(
        self, experiment: Experiment, step: PipelineStep, data: Any, ctx: FrozenContext
    ) -> None:
        """Log one line per finished step (only with ``verbose=True``)."""
        logger.info(
            "experiment %r: condition %r, replicate %d: step %r done",
            experiment.name, ctx.condition, ctx.replicate, step.name,
        )

    @hookimpl
    def crystallize_run_after(self, experiment: Experiment, result: ExperimentResult) -> None:
        """Log failed replicates and the end of the run; restore the logger's level."""
        try:
            for error in result.errors[:MAX_ERROR_LINES]:
                logger.warning("experiment %r: %s", experiment.name, error.headline)
            hidden = len(result.errors) - MAX_ERROR_LINES
            if hidden > 0:
                logger.warning("experiment %r: ... and %d more failed replicates", experiment.name, hidden)
            started = self._started.pop(experiment.name, None)
            took = time.perf_counter() - started if started is not None else result.provenance.duration_s
            held = sum(v.holds for v in result.verdicts)
            logger.info(
                "experiment %r: finished in %.2f s, %d values, %d failed replicates, "
                "%d of %d hypotheses hold",
                experiment.name, took, len(result), len(result.errors), held, len(result.verdicts),
            )
        finally:
            if self._previous:
                logger.setLevel(self._previous.pop())
