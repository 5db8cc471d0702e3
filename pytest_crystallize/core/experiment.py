"""The definition of an experiment: what to run, checked before anything runs.

:meth:`Experiment.define` resolves the function's parameters (``ctx``,
datasources, fixed arguments), merges stacked and listed hypotheses, and
validates every option, raising :class:`~pytest_crystallize.errors.ConfigurationError`
subclasses that name the experiment: every condition's typed configuration
(:mod:`~pytest_crystallize.core.binding`) is built once here, so a bad
treatment fails before any replicate runs. The runner then only executes.
The checks are :mod:`~pytest_crystallize.core.validation`; which parameter is
``ctx``, a datasource, an argument or a typed binding is
:mod:`~pytest_crystallize.core.parameters`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pytest_crystallize.core.binding import Binding
from pytest_crystallize.core.datasources import DataSource
from pytest_crystallize.core.defaults import (
    DEFAULT_ALPHA,
    DEFAULT_CORRECTION,
    DEFAULT_LOOKS,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    DEFAULT_SPENDING,
    TARGET_POWER,
)
from pytest_crystallize.core.designs import Design
from pytest_crystallize.core.evaluators import Evaluator
from pytest_crystallize.core.hypotheses import Hypothesis
from pytest_crystallize.core.stopping import ANYTIME, AUTO, AnytimeDesign, SequentialDesign
from pytest_crystallize.core.treatments import BASELINE, Treatment, merge_params
from pytest_crystallize.core.typed_config import field_names
from pytest_crystallize.core.validation import validated_fields
from pytest_crystallize.core.vocabulary import Correction, Spending
from pytest_crystallize.errors import ConfigurationError, TreatmentError

__all__ = [
    "ANYTIME",
    "AUTO",
    "AnytimeDesign",
    "Condition",
    "Experiment",
    "SequentialDesign",
    "choose_conditions",
    "matching_treatments",
    "pattern_matches",
]


@dataclass(frozen=True, slots=True)
class Condition:
    """One arm of an experiment: the baseline or a treatment, ready to run."""

    name: str
    code: int
    values: Mapping[str, Any]
    datasources: tuple[tuple[str, DataSource], ...]

    @property
    def label(self) -> str:
        """``"baseline"`` or ``"treatment 'hot'"``, for messages."""
        return BASELINE if self.code == 0 else f"treatment {self.name!r}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Condition, (self.name, self.code, dict(self.values), self.datasources))


@dataclass(frozen=True, slots=True)
class Experiment:
    """A validated experiment definition. Build it with :meth:`define`."""

    name: str
    function: Callable[..., Any]
    replicates: int
    seed: int
    treatments: tuple[Treatment, ...]
    hypotheses: tuple[Hypothesis, ...]
    plugins: tuple[object, ...]
    alpha: float
    correction: str
    params: Mapping[str, Any]
    datasources: Mapping[str, DataSource]
    arguments: Mapping[str, Any]
    takes_ctx: bool
    sequential: SequentialDesign | None = None
    #: Anytime-valid monitoring (``replicates="anytime"``); ``replicates`` is then the most to run.
    anytime: AnytimeDesign | None = None
    evaluators: tuple[Evaluator, ...] = ()
    bindings: tuple[Binding, ...] = ()
    #: Seconds one replicate may run before it is stopped as a ReplicateTimeout error; None: no limit.
    timeout: float | None = None
    #: A resampling design (``cv(...)``, ``holdout(...)``): replicates share data, verdicts are corrected.
    design: Design | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Read-only mapping views do not pickle: ship plain dicts to worker processes.
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("params", "datasources", "arguments"):
            state[key] = dict(state[key])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            frozen = MappingProxyType(value) if key in ("params", "datasources", "arguments") else value
            object.__setattr__(self, key, frozen)

    @classmethod
    def define(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        replicates: int | str = DEFAULT_REPLICATES,
        seed: int = DEFAULT_SEED,
        treatments: Iterable[Treatment] = (),
        hypotheses: Iterable[Hypothesis] = (),
        plugins: Iterable[object] = (),
        alpha: float = DEFAULT_ALPHA,
        correction: Correction = DEFAULT_CORRECTION,
        params: Mapping[str, Any] | None = None,
        datasources: Mapping[str, DataSource | Callable[..., Any]] | None = None,
        arguments: Mapping[str, Any] | None = None,
        lookup: Callable[[str], DataSource | None] | None = None,
        max_replicates: int | None = None,
        looks: int = DEFAULT_LOOKS,
        spending: Spending = DEFAULT_SPENDING,
        futility: bool | str = False,
        futility_spending: Spending = "hsd",
        power: float = TARGET_POWER,
        adaptive: bool = False,
        evaluators: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
        localns: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        design: Design | None = None,
    ) -> Experiment:
        """Validate and build an experiment from ``function`` and options.

        Parameters of ``function`` are filled, in order of precedence, with the
        replicate context (``ctx``), ``datasources`` by name, ``arguments`` (fixed
        values such as pytest fixtures), ``lookup(name)``, a ``@data_source`` of
        that name in the function's module, then the datasource registry.

        ``replicates="anytime"`` checks every hypothesis after every replicate
        with an anytime-valid test, up to ``max_replicates`` (see
        :mod:`pytest_crystallize.core.anytime`).
        ``replicates="auto"`` runs a sequential design: up to ``max_replicates``
        in ``looks`` groups, stopping once every hypothesis is decided (see
        :mod:`pytest_crystallize.core.analysis`). With an integer
        ``replicates`` (for instance from ``--crystallize-replicates``) the
        sequential options are ignored. ``futility=True`` adds non-binding
        futility stops (``"binding"``: binding ones) spending ``1 - power``
        with ``futility_spending``; ``adaptive=True`` gives more replicates
        after each look only to treatments with an undecided hypothesis.

        A parameter annotated with a dataclass or a Pydantic model (and not a
        datasource or given argument) is bound from the context (see
        :mod:`~pytest_crystallize.core.binding`); ``localns`` helps resolve
        annotations naming classes defined inside a function. A parameter
        without a default whose annotation cannot be resolved, and that no
        datasource or argument fills, is a ConfigurationError naming the
        missing class (never a silent fallback). Each condition's
        model is built here once, naming the treatment and field that fail.
        ``evaluators`` score the function's return value per replicate (see
        :mod:`~pytest_crystallize.core.evaluators`). ``timeout`` (seconds)
        stops a replicate that runs longer: it becomes an error of that
        replicate and the others run (see :mod:`~pytest_crystallize.core.timeouts`).
        ``design=cv(k=..., repeats=...)`` makes the replicates the folds of
        repeated k-fold cross-validation (``k x repeats`` of them, whatever
        ``replicates`` says); ``design=holdout(test_size=...)`` declares
        repeated random splits. Either way the verdicts use a corrected test
        (see :mod:`~pytest_crystallize.core.designs`).
        """
        experiment = cls(**validated_fields(
            function, name=name, replicates=replicates, seed=seed, treatments=treatments, hypotheses=hypotheses,
            plugins=plugins, alpha=alpha, correction=correction, params=params, datasources=datasources,
            arguments=arguments, lookup=lookup, max_replicates=max_replicates, looks=looks, spending=spending,
            futility=futility, futility_spending=futility_spending, power=power, adaptive=adaptive,
            evaluators=evaluators, localns=localns, timeout=timeout, design=design,
        ))
        # Validates treatment datasource swaps, nested keys and typed configuration now, not mid-run.
        experiment.check_bindings(experiment.conditions())
        return experiment

    def check_bindings(self, conditions: Iterable[Condition]) -> None:
        """Build every typed parameter for each condition; raise ConfigurationError naming it and the field."""
        if not self.bindings:
            return
        for condition in conditions:
            # The replicate's built-in keys, as a replicate's context would answer them.
            values = {"replicate": 0, "condition": condition.name, "seed": 0, **condition.values}
            for binding in self.bindings:
                try:
                    binding.resolve(values)
                except ConfigurationError as exc:
                    msg = f"experiment {self.name!r}: {condition.label}: {exc}"
                    raise ConfigurationError(msg) from None

    def with_treatments(self, chosen: Iterable[Treatment | str], *, chooser: str) -> Experiment:
        """A copy with only the ``chosen`` treatments (names or the objects), in that order.

        Raises TreatmentError naming ``chooser`` for a name that is not one of
        the treatments, a changed treatment, a repeat, or choosing none while
        there are hypotheses to check.
        """
        known = {t.name: t for t in self.treatments}
        out: list[Treatment] = []
        for item in chosen:
            name = item.name if isinstance(item, Treatment) else item
            if not isinstance(name, str) or name not in known:
                msg = (
                    f"experiment {self.name!r}: {chooser} chose {item!r}, which is not one of its "
                    f"treatments ({', '.join(map(repr, known)) or 'none'})"
                )
                raise TreatmentError(msg)
            if isinstance(item, Treatment) and item != known[name]:
                msg = f"experiment {self.name!r}: {chooser} chose a changed treatment {name!r}; choose, do not edit"
                raise TreatmentError(msg)
            if any(t.name == name for t in out):
                msg = f"experiment {self.name!r}: {chooser} chose treatment {name!r} twice"
                raise TreatmentError(msg)
            out.append(known[name])
        if not out and self.hypotheses:
            msg = (
                f"experiment {self.name!r}: {chooser} chose no treatment, so its hypotheses "
                f"have nothing to compare with the baseline"
            )
            raise TreatmentError(msg)
        return dataclasses.replace(self, treatments=tuple(out))

    @property
    def condition_names(self) -> tuple[str, ...]:
        """``("baseline", *treatment names)``."""
        return (BASELINE, *(t.name for t in self.treatments))

    @property
    def is_async(self) -> bool:
        """True when the function, a datasource or an evaluator is ``async def``."""
        return inspect.iscoroutinefunction(self.function) or any(e.is_async for e in self.evaluators) or any(
            ds.is_async for ds in self.datasources.values()
        ) or any(
            ds.is_async for t in self.treatments for ds in t.datasource_for(tuple(self.datasources)).values()
        )

    def conditions(self) -> tuple[Condition, ...]:
        """The baseline and each treatment with their values and datasources.

        Raises TreatmentError when a treatment adds a key to a mapping of the
        baseline that no typed binding reads (a typo, most often; see
        :func:`~pytest_crystallize.core.treatments.merge_params`).
        """
        parameters = tuple(self.datasources)
        bound = _bound_paths(self.bindings)
        out = [Condition(BASELINE, 0, self.params, tuple(self.datasources.items()))]
        for code, treatment in enumerate(self.treatments, start=1):
            try:
                swaps = treatment.datasource_for(parameters)
            except TreatmentError as exc:
                msg = f"experiment {self.name!r}: {exc}"
                raise TreatmentError(msg) from None
            sources = {**self.datasources, **swaps}
            try:
                values = MappingProxyType(
                    merge_params(self.params, treatment.params, f"treatment {treatment.name!r}", open_paths=bound)
                )
            except TreatmentError as exc:
                msg = f"experiment {self.name!r}: {exc}"
                raise TreatmentError(msg) from None
            out.append(Condition(treatment.name, code, values, tuple(sources.items())))
        return tuple(out)


def _bound_paths(bindings: Iterable[Binding]) -> tuple[tuple[str, ...], ...]:
    """The context paths typed bindings read (their models check the keys there)."""
    out: list[tuple[str, ...]] = []
    for binding in bindings:
        if binding.path:
            out.append(binding.path)
            continue
        if binding.path is None:
            out.append((binding.parameter,))
        out += [(name,) for name in field_names(binding.model)]  # a top-level binding reads these keys
    return tuple(out)


def pattern_matches(names: Iterable[str], pattern: str) -> list[str]:
    """The ``names`` that ``pattern`` selects, trying three readings in turn.

    1. the exact name;
    2. else, for a pattern ending in ``*``, the names starting with the rest
       taken literally (``shape=[3]*`` selects ``shape=[3],model=a``: grid
       names hold ``[...]``, which a glob would read as a character class);
    3. else a glob (``fnmatch``: ``*``, ``?``, ``[seq]``).

    The first reading that selects any name wins, so a literal name is never
    widened or narrowed by glob syntax it happens to contain.
    """
    names = list(names)
    exact = [n for n in names if n == pattern]
    if exact:
        return exact
    if pattern.endswith("*") and pattern.rstrip("*"):
        prefix = pattern.rstrip("*")
        literal = [n for n in names if n.startswith(prefix)]
        if literal:
            return literal
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]



def matching_treatments(treatments: Iterable[Treatment], patterns: Sequence[str]) -> tuple[Treatment, ...]:
    """The treatments that one of ``patterns`` selects among them (see :func:`pattern_matches`), in order."""
    treatments = tuple(treatments)
    names = [t.name for t in treatments]
    chosen = {name for pattern in patterns for name in pattern_matches(names, pattern)}
    return tuple(t for t in treatments if t.name in chosen)


def choose_conditions(experiment: Experiment, hook: Any | None) -> Experiment:
    """Let a ``crystallize_conditions_choose`` plugin choose and order the treatments to run.

    ``hook`` is a plugin manager's ``hook`` (or None). Returns ``experiment``
    unchanged when no plugin implements the hook or every one returns None.
    """
    caller = getattr(hook, "crystallize_conditions_choose", None)
    if caller is None or not caller.get_hookimpls():
        return experiment
    chosen = caller(experiment=experiment, treatments=experiment.treatments)
    if chosen is None:
        return experiment
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Iterable):
        msg = (
            f"experiment {experiment.name!r}: a crystallize_conditions_choose hook returned {chosen!r}; "
            f"return a list of treatments or treatment names (or None)"
        )
        raise TreatmentError(msg)
    return experiment.with_treatments(chosen, chooser="a crystallize_conditions_choose hook")
