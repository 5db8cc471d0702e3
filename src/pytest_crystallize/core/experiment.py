"""The definition of an experiment: what to run, checked before anything runs.

:meth:`Experiment.define` resolves the function's parameters (``ctx``,
datasources, fixed arguments), merges stacked and listed hypotheses, and
validates every option, raising :class:`~pytest_crystallize.errors.ConfigurationError`
subclasses that name the experiment. The runner then only executes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.context import BUILTIN_KEYS
from pytest_crystallize.core.datasources import DataSource, registered_datasources
from pytest_crystallize.core.hypotheses import Hypothesis, attached_hypotheses
from pytest_crystallize.core.seeds import DEFAULT_SEED
from pytest_crystallize.core.sequential import SPENDING, SequentialDesign
from pytest_crystallize.core.treatments import BASELINE, Treatment, check_treatments
from pytest_crystallize.errors import ConfigurationError, DataSourceError, TreatmentError

__all__ = ["CORRECTIONS", "DEFAULT_ALPHA", "DEFAULT_REPLICATES", "Condition", "Experiment"]

DEFAULT_REPLICATES: Final = 30
DEFAULT_ALPHA: Final = 0.05
CORRECTIONS: Final = ("holm", "bh", "bonferroni", "none")
CONTEXT_PARAMETER: Final = "ctx"
#: ``replicates=AUTO`` asks for a sequential design.
AUTO: Final = "auto"


@dataclass(frozen=True, slots=True)
class Condition:
    """One arm of an experiment: the baseline or a treatment, ready to run."""

    name: str
    code: int
    values: Mapping[str, Any]
    datasources: tuple[tuple[str, DataSource], ...]


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
        correction: str = "holm",
        params: Mapping[str, Any] | None = None,
        datasources: Mapping[str, DataSource | Callable[..., Any]] | None = None,
        arguments: Mapping[str, Any] | None = None,
        lookup: Callable[[str], DataSource | None] | None = None,
        max_replicates: int | None = None,
        looks: int = 5,
        spending: str = "obrien_fleming",
    ) -> Experiment:
        """Validate and build an experiment from ``function`` and options.

        Parameters of ``function`` are filled, in order of precedence, with the
        replicate context (``ctx``), ``datasources`` by name, ``arguments`` (fixed
        values such as pytest fixtures), ``lookup(name)``, a ``@data_source`` of
        that name in the function's module, then the datasource registry.

        ``replicates="auto"`` runs a sequential design: up to ``max_replicates``
        in ``looks`` groups, stopping once every hypothesis is decided (see
        :mod:`pytest_crystallize.core.sequential`). With an integer
        ``replicates`` (for instance from ``--crystallize-replicates``) the
        sequential options are ignored.
        """
        label: str = name or getattr(function, "__name__", None) or repr(function)
        where = f"experiment {label!r}"
        if not callable(function):
            msg = f"{where}: expected a function, got {function!r}"
            raise ConfigurationError(msg)
        sequential = None
        if replicates == AUTO:
            if max_replicates is None:
                msg = f"{where}: replicates='auto' needs max_replicates=, the most replicates to run"
                raise ConfigurationError(msg)
            _check_int(where, "max_replicates", max_replicates, minimum=2)
            _check_int(where, "looks", looks, minimum=1)
            if looks > max_replicates:
                msg = f"{where}: looks={looks} exceeds max_replicates={max_replicates}"
                raise ConfigurationError(msg)
            if spending not in SPENDING:
                msg = f"{where}: unknown spending {spending!r}; use one of {', '.join(SPENDING)}"
                raise ConfigurationError(msg)
            sequential = SequentialDesign(looks=looks, spending=spending)
            replicates = max_replicates
        elif isinstance(replicates, str):
            msg = f"{where}: replicates must be an integer >= 1 or 'auto', got {replicates!r}"
            raise ConfigurationError(msg)
        _check_int(where, "replicates", replicates, minimum=1)
        _check_int(where, "seed", seed, minimum=0)
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
        _check_params(where, "params", params or {})
        for treatment in checked_treatments:
            _check_params(where, f"treatment {treatment.name!r}", treatment.params)
        all_hypotheses = attached_hypotheses(function) + tuple(hypotheses)
        for h in all_hypotheses:
            if not isinstance(h, Hypothesis):
                msg = f"{where}: hypotheses must be made with hypothesis(...), got {h!r}"
                raise ConfigurationError(msg)
            h.check(where)
        if sequential is not None and not all_hypotheses:
            msg = f"{where}: replicates='auto' stops when every hypothesis is decided, but there are none"
            raise ConfigurationError(msg)
        if all_hypotheses and not checked_treatments:
            msg = (
                f"{where}: has hypotheses but no treatments to compare with the baseline; "
                f"add treatments=[Treatment(...)] or remove the hypotheses"
            )
            raise ConfigurationError(msg)
        takes_ctx, sources, fixed = _resolve_parameters(
            where, function, dict(datasources or {}), dict(arguments or {}), lookup
        )
        experiment = cls(
            name=label, function=function, replicates=int(replicates), seed=int(seed),
            treatments=checked_treatments, hypotheses=all_hypotheses, plugins=tuple(plugins),
            alpha=float(alpha), correction=correction,
            params=MappingProxyType(dict(params or {})),
            datasources=MappingProxyType(sources), arguments=MappingProxyType(fixed),
            takes_ctx=takes_ctx, sequential=sequential,
        )
        experiment.conditions()  # validates treatment datasource swaps now, not mid-run
        return experiment

    @property
    def condition_names(self) -> tuple[str, ...]:
        """``("baseline", *treatment names)``."""
        return (BASELINE, *(t.name for t in self.treatments))

    @property
    def is_async(self) -> bool:
        """True when the function or a datasource is ``async def``."""
        return inspect.iscoroutinefunction(self.function) or any(
            ds.is_async for ds in self.datasources.values()
        ) or any(
            ds.is_async for t in self.treatments for ds in t.datasource_for(tuple(self.datasources)).values()
        )

    def conditions(self) -> tuple[Condition, ...]:
        """The baseline and each treatment with their values and datasources."""
        parameters = tuple(self.datasources)
        out = [Condition(BASELINE, 0, self.params, tuple(self.datasources.items()))]
        for code, treatment in enumerate(self.treatments, start=1):
            try:
                swaps = treatment.datasource_for(parameters)
            except TreatmentError as exc:
                msg = f"experiment {self.name!r}: {exc}"
                raise TreatmentError(msg) from None
            sources = {**self.datasources, **swaps}
            values = MappingProxyType({**self.params, **treatment.params})
            out.append(Condition(treatment.name, code, values, tuple(sources.items())))
        return tuple(out)


def _check_params(where: str, owner: str, params: Mapping[str, Any]) -> None:
    clash = sorted(set(params) & BUILTIN_KEYS)
    if clash:
        msg = (
            f"{where}: {owner} sets {clash[0]!r}, a read-only context key the runner "
            f"fills (ctx.{clash[0]}); rename the parameter"
        )
        raise ConfigurationError(msg)


def _check_int(where: str, what: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{where}: {what} must be an integer >= {minimum}, got {value!r}"
        raise ConfigurationError(msg)


def _resolve_parameters(
    where: str,
    function: Callable[..., Any],
    datasources: dict[str, DataSource | Callable[..., Any]],
    arguments: dict[str, Any],
    lookup: Callable[[str], DataSource | None] | None,
) -> tuple[bool, dict[str, DataSource], dict[str, Any]]:
    """Sort the function's parameters into ctx, datasources and fixed arguments."""
    from pytest_crystallize.core.datasources import data_source

    takes_ctx = False
    sources: dict[str, DataSource] = {}
    fixed: dict[str, Any] = {}
    module_globals = getattr(function, "__globals__", {})
    for param in inspect.signature(function).parameters.values():
        name = param.name
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == CONTEXT_PARAMETER:
            takes_ctx = True
            continue
        found: Any = datasources.get(name)
        if found is None and name in arguments:
            fixed[name] = arguments[name]
            continue
        if found is None and lookup is not None:
            found = lookup(name)
        if found is None and isinstance(module_globals.get(name), DataSource):
            found = module_globals[name]
        if found is None:
            found = registered_datasources().get(name)
        if found is None:
            if param.default is not param.empty:
                continue
            msg = (
                f"{where}: parameter {name!r} is neither 'ctx', a datasource nor a "
                f"given argument: define '@data_source def {name}(ctx): ...' in the "
                f"module (or a conftest.py), or pass it as an argument"
            )
            raise DataSourceError(msg)
        sources[name] = found if isinstance(found, DataSource) else data_source(found)
    return takes_ctx, sources, fixed
