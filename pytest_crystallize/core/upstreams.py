"""Chained experiments: one experiment's outputs as another's datasource.

``model = upstream("experiment_train", "model.npz")`` at module level (or in a
conftest.py) is a datasource like any other: an experiment parameter named
``model`` receives the artifact ``model.npz`` that the upstream experiment's
replicate left in ``ctx.artifacts``, for the same condition and replicate.
``upstream("experiment_train", metric="accuracy")`` gives the value it
recorded (``ctx.metrics.add`` or ``ctx.record``) instead.

Conditions flow along the chain by name: the downstream's treatment ``hot``
reads the upstream's treatment ``hot``; a downstream condition the upstream
did not run reads the upstream's baseline, and the result's notes say so.
Replicate ``r`` reads the upstream's replicate ``r``, so a downstream runs at
most as many replicates as its upstream did.

:func:`bind_upstreams` hands the upstream results to a definition before it
runs (the runner does this, so the bound values travel to worker processes
with the experiment). Running the upstream first is the caller's part: the
pytest layer orders its items; in run mode :func:`run_upstreams` runs each
upstream that was not given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.artifacts import check_artifact_name
from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.core.treatments import BASELINE
from pytest_crystallize.errors import ChainError, ConfigurationError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["Upstream", "UpstreamValues", "bind_upstreams", "run_upstreams", "upstream", "upstreams_in"]

#: The experiments run mode is running upstreams for, outermost first (to name a cycle).
_RUNNING: Final[ContextVar[tuple[str, ...]]] = ContextVar("pytest_crystallize_upstream_chain", default=())

#: ``(condition name, replicate)`` of the downstream run.
Slot = tuple[str, int]


@dataclass(frozen=True, slots=True)
class UpstreamValues:
    """What one upstream gives each ``(condition, replicate)`` of one downstream run, or why it gives nothing."""

    values: dict[Slot, Any]
    problems: dict[Slot, str]


@dataclass(frozen=True, slots=True)
class Upstream:
    """The function of an :func:`upstream` datasource: reads one output of the upstream experiment.

    ``experiment`` is the upstream as referenced (a function name or a pytest
    node id); ``target`` the function when one was given. ``bound`` holds the
    values once :func:`bind_upstreams` has run; before that, calling it
    raises ChainError.
    """

    experiment: str
    artifact: str | None = None
    metric: str | None = None
    loader: Callable[[Any], Any] | None = None
    target: Callable[..., Any] | None = field(default=None, compare=False)
    bound: UpstreamValues | None = field(default=None, compare=False)

    @property
    def wanted(self) -> str:
        """``"artifact 'model.npz'"`` or ``"metric 'accuracy'"``, for messages."""
        return f"artifact {self.artifact!r}" if self.artifact is not None else f"metric {self.metric!r}"

    def __repr__(self) -> str:
        what = repr(self.artifact) if self.artifact is not None else f"metric={self.metric!r}"
        return f"upstream({self.experiment!r}, {what})"

    def __call__(self, ctx: Any) -> Any:
        """The upstream's output for this replicate's condition and index (a replicate error if it has none)."""
        if self.bound is None:
            msg = (
                f"{self!r} was called before the upstream's result was bound: run the experiment with "
                f"pytest --crystallize or run_experiment(...), which run the upstream first, or pass "
                f"run_experiment(..., upstreams={{{self.experiment!r}: result}})"
            )
            raise ChainError(msg)
        slot = (ctx.condition, ctx.replicate)
        problem = self.bound.problems.get(slot)
        if problem is not None:
            raise ChainError(problem)
        value = self.bound.values[slot]
        return value if self.loader is None else self.loader(value)


def upstream(
    experiment: str | Callable[..., Any], artifact: str | None = None, *,
    metric: str | None = None, loader: Callable[[Any], Any] | None = None,
) -> DataSource:
    """A datasource giving each replicate an output of the upstream ``experiment``'s matching replicate.

    ``experiment`` names the upstream experiment function (``"experiment_train"``,
    or a pytest node id such as ``"tests/test_train.py::experiment_train"`` when
    the name is not unique), or is the function itself. Give one of
    ``artifact`` (the name the upstream gave ``ctx.artifacts.add``; the value
    is its bytes or text, passed through ``loader`` if given) and ``metric``
    (the one value the upstream recorded under that name in the replicate).
    Raises ConfigurationError for anything else.
    """
    target = None
    if callable(experiment) and not isinstance(experiment, str):
        target, name = experiment, getattr(experiment, "__name__", None)
    else:
        name = experiment
    if not isinstance(name, str) or not name:
        msg = f"upstream() needs the upstream experiment's name or function, got {experiment!r}"
        raise ConfigurationError(msg)
    if (artifact is None) == (metric is None):
        msg = (
            f"upstream({name!r}) takes one output: an artifact name, upstream({name!r}, 'model.npz'), "
            f"or a recorded value, upstream({name!r}, metric='accuracy')"
        )
        raise ConfigurationError(msg)
    if artifact is not None:
        check_artifact_name(artifact)
    elif not isinstance(metric, str) or not metric:
        msg = f"upstream({name!r}, metric=...) needs a metric name, got {metric!r}"
        raise ConfigurationError(msg)
    if loader is not None and (artifact is None or not callable(loader)):
        msg = f"upstream({name!r}): loader= must be a function and goes with an artifact, got {loader!r}"
        raise ConfigurationError(msg)
    reader = Upstream(name, artifact, metric, loader, target)
    return DataSource(name=repr(reader), function=reader, takes_ctx=True, is_async=False)


def upstreams_in(datasources: Mapping[str, DataSource]) -> dict[str, Upstream]:
    """The parameters among ``datasources`` that take an upstream's output, with its reader."""
    return {name: s.function for name, s in datasources.items() if isinstance(s.function, Upstream)}


def bind_upstreams(
    experiment: Experiment, results: Mapping[str, ExperimentResult]
) -> tuple[Experiment, tuple[str, ...]]:
    """``experiment`` with its upstream datasources bound to ``results`` (keyed as referenced), and notes.

    The notes say which downstream treatments read the upstream's baseline
    because the upstream ran no condition of that name. Raises ChainError
    naming the experiment and the parameter when a result is missing, ran
    fewer replicates, or keeps no artifacts though one is asked for.
    """
    for treatment in experiment.treatments:
        swapped = treatment.datasource
        swaps = swapped.values() if isinstance(swapped, Mapping) else () if swapped is None else (swapped,)
        if any(isinstance(getattr(s, "function", None), Upstream) for s in swaps):
            msg = (
                f"experiment {experiment.name!r}: treatment {treatment.name!r} swaps in an upstream(...) "
                f"datasource, which a treatment cannot do: take it as the experiment's own parameter (each "
                f"condition then reads the upstream's condition of its name)"
            )
            raise ChainError(msg)
    links = upstreams_in(experiment.datasources)
    if not links:
        return experiment, ()
    sources = dict(experiment.datasources)
    fallbacks: dict[tuple[str, str], list[str]] = {}
    for parameter, link in links.items():
        where = f"experiment {experiment.name!r}: parameter {parameter!r} takes {link!r}"
        result = results.get(link.experiment)
        if result is None:
            given = ", ".join(map(repr, results)) or "none"
            msg = (
                f"{where}, but no result of {link.experiment!r} was given (given: {given}); run the "
                f"upstream first, or pass its result as upstreams={{{link.experiment!r}: result}}"
            )
            raise ChainError(msg)
        values, missing = _values_for(experiment, where, link, result)
        sources[parameter] = dataclasses.replace(sources[parameter], function=dataclasses.replace(link, bound=values))
        for condition in missing:
            fallbacks.setdefault((condition, link.experiment), []).append(repr(parameter))
    notes = tuple(
        f"treatment {condition!r} reads the baseline of upstream {name!r} ({', '.join(parameters)}): "
        f"{name!r} ran no treatment {condition!r}"
        for (condition, name), parameters in fallbacks.items()
    )
    return dataclasses.replace(experiment, datasources=MappingProxyType(sources)), notes


def _values_for(
    experiment: Experiment, where: str, link: Upstream, result: ExperimentResult
) -> tuple[UpstreamValues, list[str]]:
    """Each downstream slot's value from ``result``, or the problem; and the conditions that fall back."""
    ran = result.provenance.replicates
    if ran < experiment.replicates:
        msg = (
            f"{where}, which ran {ran} replicates, but {experiment.name!r} runs {experiment.replicates}: "
            f"replicate r reads the upstream's replicate r, so give the upstream at least as many replicates"
        )
        raise ChainError(msg)
    if link.artifact is not None and result.artifacts is None:
        msg = (
            f"{where}, but that result keeps no artifacts: run the upstream with "
            f"run_experiment(..., keep_artifacts=True) (pytest keeps them for every upstream it runs)"
        )
        raise ChainError(msg)
    errors = {(e.condition, e.replicate): e for e in result.errors}
    values: dict[Slot, Any] = {}
    problems: dict[Slot, str] = {}
    fallbacks: list[str] = []
    for condition in experiment.condition_names:
        source = condition if condition in result.conditions else BASELINE
        if source != condition:
            fallbacks.append(condition)
        label = BASELINE if source == BASELINE else f"treatment {source!r}"
        recorded = None if link.metric is None else result.select(link.metric, source)
        for replicate in range(experiment.replicates):
            slot, at = (condition, replicate), f"upstream {link.experiment!r}, {label} replicate {replicate}"
            error = errors.get((source, replicate))
            if error is not None:
                problems[slot] = f"{at} failed ({error.error_type}: {error.message}), so it has no {link.wanted}"
            elif recorded is None:
                kept = (result.artifacts or {}).get((source, replicate), {})
                if link.artifact is not None and link.artifact in kept:
                    values[slot] = kept[link.artifact]
                else:
                    have = ", ".join(map(repr, kept)) or "none"
                    problems[slot] = f"{at} left no artifact {link.artifact!r} in ctx.artifacts (it left: {have})"
            else:
                found = recorded[1][recorded[0] == replicate]
                if len(found) == 1:
                    values[slot] = float(found[0])
                else:
                    problems[slot] = (
                        f"{at} recorded {len(found)} values of {link.metric!r}; upstream(metric=...) takes "
                        f"exactly one per replicate (record the one to pass on under a name of its own)"
                    )
    return UpstreamValues(values, problems), fallbacks


def run_upstreams(
    experiment: Experiment, given: Mapping[str, ExperimentResult],
    run: Callable[[Callable[..., Any]], ExperimentResult],
) -> dict[str, ExperimentResult]:
    """``given`` plus a result for each other upstream of ``experiment``, made by ``run(function)``.

    Run mode's rule: an upstream not given is the function passed to
    :func:`upstream`, or the function of that name in the experiment
    function's module, and is run first (its own upstreams too). Raises
    ChainError for an upstream that cannot be found, and for a cycle, naming
    the experiments in it.
    """
    results = dict(given)
    chain = (*_RUNNING.get(), _identity(experiment.function))
    for parameter, link in upstreams_in(experiment.datasources).items():
        if link.experiment in results:
            continue
        target = link.target or getattr(experiment.function, "__globals__", {}).get(link.experiment)
        if not callable(target):
            msg = (
                f"experiment {experiment.name!r}: parameter {parameter!r} takes {link!r}, but no result of "
                f"{link.experiment!r} was given and its module has no function of that name: pass "
                f"upstreams={{{link.experiment!r}: result}}, or upstream(<the function>, ...)"
            )
            raise ChainError(msg)
        if _identity(target) in chain:
            cycle = " -> ".join(name.rpartition(".")[2] for name in (*chain, _identity(target)))
            msg = f"experiment {experiment.name!r}: its upstreams form a cycle ({cycle}); none of them can run first"
            raise ChainError(msg)
        token = _RUNNING.set(chain)
        try:
            results[link.experiment] = run(target)
        finally:
            _RUNNING.reset(token)
    return results


def _identity(function: Any) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"
