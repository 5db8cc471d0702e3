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
from pytest_crystallize.core.defaults import MAX_REPLICATES
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
from pytest_crystallize.errors import ConfigurationError, TreatmentError

__all__ = ["validated_fields"]



def validated_fields(
    function: Callable[..., Any],
    *,
    name: str | None,
    replicates: int | str,
    seed: int,
    treatments: Iterable[Treatment],
    hypotheses: Iterable[Hypothesis],
    plugins: Iterable[object],
    alpha: float,
    correction: Correction,
    params: Mapping[str, Any] | None,
    datasources: Mapping[str, DataSource | Callable[..., Any]] | None,
    arguments: Mapping[str, Any] | None,
    lookup: Callable[[str], DataSource | None] | None,
    max_replicates: int | None,
    looks: int,
    spending: Spending,
    futility: bool | str,
    futility_spending: Spending,
    power: float,
    adaptive: bool,
    evaluators: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
    localns: Mapping[str, Any] | None,
    timeout: float | None,
    design: Design | None,
) -> dict[str, Any]:
    """Check ``Experiment.define``'s options (see there); return the fields of the experiment they define.

    Raises ConfigurationError (or its subclasses DataSourceError and
    TreatmentError) naming the experiment, the option and how to fix it.
    """
    label: str = name or getattr(function, "__name__", None) or repr(function)
    where = f"experiment {label!r}"
    if not callable(function):
        msg = f"{where}: expected a function, got {function!r}"
        raise ConfigurationError(msg)
    treatments = collection(where, "treatments", treatments, "[Treatment('hot', {'temperature': 1.5})]")
    hypotheses = collection(where, "hypotheses", hypotheses, "[hypothesis(metric='score', direction='maximize')]")
    plugins = collection(where, "plugins", plugins, "[SeedPlugin()]")
    for option, value in (("params", params), ("datasources", datasources), ("arguments", arguments)):
        if value is not None and not isinstance(value, Mapping):
            msg = f"{where}: {option} must be a mapping of names to values, e.g. {{'k': 1}}; got {value!r:.60}"
            raise ConfigurationError(msg)
    all_hypotheses = attached_hypotheses(function) + tuple(hypotheses)
    if design is not None:
        problem = design_problem(design, {
            "replicates": replicates, "hypotheses": all_hypotheses, "futility": futility, "adaptive": adaptive,
        })
        if problem:
            msg = f"{where}: {problem}"
            raise ConfigurationError(msg)
        replicates = getattr(design, "replicates", replicates)
    sequential: SequentialDesign | None = None
    anytime: AnytimeDesign | None = None
    if replicates in (AUTO, ANYTIME):
        if max_replicates is None:
            msg = f"{where}: replicates={replicates!r} needs max_replicates=, the most replicates to run"
            raise ConfigurationError(msg)
        check_int(where, "max_replicates", max_replicates, minimum=2, maximum=MAX_REPLICATES)
        check_int(where, "looks", looks, minimum=1)
        sequential, anytime = choose_design(
            where, str(replicates), max_replicates, looks, spending, futility, futility_spending, power, adaptive
        )
        replicates = max_replicates
    elif isinstance(replicates, str):
        msg = f"{where}: replicates must be an integer >= 1, 'auto' or 'anytime', got {replicates!r}"
        raise ConfigurationError(msg)
    check_int(where, "replicates", replicates, minimum=1, maximum=MAX_REPLICATES)
    check_int(where, "seed", seed, minimum=0)
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf
    ):
        msg = f"{where}: timeout must be a number of seconds > 0 (or None for no limit), got {timeout!r}"
        raise ConfigurationError(msg)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        msg = f"{where}: alpha must be a number strictly between 0 and 1, got {alpha!r}"
        raise ConfigurationError(msg)
    if correction not in CORRECTIONS:
        msg = f"{where}: unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}"
        raise ConfigurationError(msg)
    try:
        checked_treatments = check_treatments(treatments)
    except TreatmentError as exc:
        msg = f"{where}: {exc}"
        raise TreatmentError(msg) from None
    check_params(where, "params", params or {})
    for treatment in checked_treatments:
        check_params(where, f"treatment {treatment.name!r}", treatment.params)
    try:
        baseline = merge_params({}, params or {}, "params")
    except TreatmentError as exc:
        msg = f"{where}: {exc}"
        raise ConfigurationError(msg) from None
    for h in all_hypotheses:
        if not isinstance(h, Hypothesis):
            msg = f"{where}: hypotheses must be made with hypothesis(...), got {h!r}"
            raise ConfigurationError(msg)
        h.check(where)
    mode = AUTO if sequential is not None else ANYTIME if anytime is not None else None
    check_procedures(where, all_hypotheses, design, mode)
    if mode is not None and not all_hypotheses:
        msg = f"{where}: replicates={mode!r} stops when every hypothesis is decided, but there are none"
        raise ConfigurationError(msg)
    if anytime is not None:
        check_anytime_hypotheses(where, all_hypotheses)
    if all_hypotheses and not checked_treatments:
        msg = (
            f"{where}: has hypotheses but no treatments to compare with the baseline; "
            f"add treatments=[Treatment(...)] or remove the hypotheses"
        )
        raise ConfigurationError(msg)
    if localns is not None and not isinstance(localns, Mapping):
        msg = f"{where}: localns must be a mapping of names, e.g. {{'Config': Config}}; got {localns!r:.60}"
        raise ConfigurationError(msg)
    takes_ctx, sources, fixed, bound = resolve_parameters(
        where, function, dict(datasources or {}), dict(arguments or {}), lookup, localns
    )
    return dict(
        name=label, function=function, replicates=int(replicates), seed=int(seed),
        treatments=checked_treatments, hypotheses=all_hypotheses, plugins=tuple(plugins),
        alpha=float(alpha), correction=correction,
        params=MappingProxyType(baseline),
        datasources=MappingProxyType(sources), arguments=MappingProxyType(fixed),
        takes_ctx=takes_ctx, sequential=sequential, anytime=anytime,
        evaluators=check_evaluators(where, evaluators, sources), bindings=bound,
        timeout=None if timeout is None else float(timeout), design=design,
    )


def check_procedures(
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


def check_params(where: str, owner: str, params: Mapping[str, Any]) -> None:
    clash = sorted({str(key).split(".")[0] for key in params} & BUILTIN_KEYS)
    if clash:
        msg = (
            f"{where}: {owner} sets {clash[0]!r}, a read-only context key the runner "
            f"fills (ctx.{clash[0]}); rename the parameter"
        )
        raise ConfigurationError(msg)


def check_int(where: str, what: str, value: object, *, minimum: int, maximum: int | None = None) -> None:
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


def collection(where: str, option: str, value: object, example: str) -> tuple[Any, ...]:
    """``value`` as a tuple: None is empty; a string, mapping or non-iterable is a ConfigurationError."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        msg = f"{where}: {option} must be a list, e.g. {option}={example}; got {value!r:.60}"
        raise ConfigurationError(msg)
    return tuple(value)
