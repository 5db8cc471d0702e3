"""Checking an experiment's options before anything runs.

:func:`validated_fields` turns ``Experiment.define``'s function and options
into the fields of a valid :class:`~pytest_crystallize.core.experiment.Experiment`,
raising :class:`~pytest_crystallize.errors.ConfigurationError` subclasses
that name the experiment, the option and how to fix it: the design
(fixed, sequential, anytime, resampling), replicates, seed, alpha,
correction and timeout, the treatments and parameters, and the hypotheses
with the procedures they ask for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pytest_crystallize.core.context import BUILTIN_KEYS
from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.core.designs import Design, design_problem
from pytest_crystallize.core.evaluators import check_evaluators
from pytest_crystallize.core.hypotheses import Hypothesis, attached_hypotheses
from pytest_crystallize.core.parameters import resolve_parameters
from pytest_crystallize.core.stopping import (
    ANYTIME,
    AUTO,
    AnytimeDesign,
    SequentialDesign,
    check_anytime_hypotheses,
    choose_design,
)
from pytest_crystallize.core.treatments import Treatment, check_treatments, merge_params
from pytest_crystallize.core.vocabulary import CORRECTIONS, Correction, Spending
from pytest_crystallize.core.defaults import MAX_REPLICATES
from pytest_crystallize.errors import ConfigurationError, TreatmentError

__all__ = ["validated_fields"]


def _check_procedures(
    where: str, hypotheses: Iterable[Hypothesis], design: Design | None, mode: str | None
) -> None:
    """Refuse procedures the experiment cannot run: a corrected test without a design, the best in looks.

    ``mode`` is ``"auto"`` or ``"anytime"`` for a sequential or anytime design, None for a fixed one.
    """
    from pytest_crystallize.core.stats import ANYTIME_METHODS  # local: as Hypothesis.check, numpy when defined

    for h in hypotheses:
        if design is None and h.test in ("corrected_repeated_kfold_t", "corrected_resampled_t"):
            msg = (
                f"{where}: hypothesis {h.label!r}: test {h.test!r} corrects for replicates that share training "
                f"data; declare the design: design=cv(k=..., repeats=...) or design=holdout(test_size=...)"
            )
            raise ConfigurationError(msg)
        if mode != ANYTIME and h.test in ANYTIME_METHODS:
            msg = (
                f"{where}: hypothesis {h.label!r}: test {h.test!r} is an anytime e-process, tested after every "
                f"replicate: use it with replicates='anytime', max_replicates=... (an integer "
                f"--crystallize-replicates turns that design off: drop test= to run a fixed design too)"
            )
            raise ConfigurationError(msg)
        if mode is not None and h.direction == "best":
            msg = (
                f"{where}: hypothesis {h.label!r}: direction 'best' needs a fixed number of replicates; "
                f"drop replicates={mode!r}"
            )
            raise ConfigurationError(msg)


def _check_params(where: str, owner: str, params: Mapping[str, Any]) -> None:
    clash = sorted({str(key).split(".")[0] for key in params} & BUILTIN_KEYS)
    if clash:
        msg = (
            f"{where}: {owner} sets {clash[0]!r}, a read-only context key the runner "
            f"fills (ctx.{clash[0]}); rename the parameter"
        )
        raise ConfigurationError(msg)


def _check_int(where: str, what: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{where}: {what} must be an integer >= {minimum}, got {value!r}"
        raise ConfigurationError(msg)
    if maximum is not None and value > maximum:
        msg = (
            f"{where}: {what}={value:,} is more than any machine could finish or hold "
            f"(at most {maximum:,}); to stop as soon as the answer is known, use "
            f"replicates='auto' with a max_replicates you can afford"
        )
        raise ConfigurationError(msg)


def _collection(where: str, option: str, value: object, example: str) -> tuple[Any, ...]:
    """``value`` as a tuple: None is empty; a string, mapping or non-iterable is a ConfigurationError."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        msg = f"{where}: {option} must be a list, e.g. {option}={example}; got {value!r:.60}"
        raise ConfigurationError(msg)
    return tuple(value)


