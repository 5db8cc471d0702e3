"""Typed parameters and the choice of conditions, at the pytest layer.

* :func:`bound_parameters`: which experiment parameters are typed bindings,
  so pytest does not look for fixtures of those names.
* :func:`choose_treatments`: narrows an experiment's treatments before it runs:
  ``--crystallize-treatment``, then the pytest hook
  ``pytest_crystallize_conditions`` (conftest files), then lifecycle plugins'
  ``crystallize_conditions_choose``.
* :class:`TreatmentSelection`: registered once experiments are collected with
  ``--crystallize-treatment``; after collection it refuses, as a usage
  error, a name that matches no treatment of any collected experiment, and
  lists the known ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_crystallize.core.binding import parameter_bindings
from pytest_crystallize.core.experiment import (
    choose_conditions,
    matching_treatments,
    pattern_matches,
)
from pytest_crystallize.core.parameters import CONTEXT_PARAMETER
from pytest_crystallize.errors import ConfigurationError, TreatmentError

if TYPE_CHECKING:
    import pluggy

    from pytest_crystallize.core.experiment import Experiment

__all__ = [
    "SELECTION_PLUGIN",
    "TreatmentSelection",
    "bound_parameters",
    "choose_treatments",
    "register_selection",
    "selection_skip",
]

SELECTION_PLUGIN: Final = "crystallize-treatment-selection"
OPTION: Final = "--crystallize-treatment"
_SHOWN_NAMES: Final = 30


def bound_parameters(
    function: Any, fixtures: Iterable[str], datasources: Iterable[str], localns: Mapping[str, Any] | None = None
) -> frozenset[str]:
    """Parameters of ``function`` bound from the context rather than pytest fixtures.

    ``Bind(...)`` annotations always; a plain dataclass or Pydantic model
    annotation when no fixture or datasource has the parameter's name. A
    parameter without a default whose annotation cannot be resolved (a class
    local to a function that has returned) and that no fixture or datasource
    provides counts too: it is never looked up as a fixture, so
    ``Experiment.define`` reports the unresolved name instead of pytest's
    "fixture not found".
    """
    import inspect

    try:
        bindings, unresolved = parameter_bindings(function, localns, skip=(CONTEXT_PARAMETER,))
    except ConfigurationError:  # Experiment.define reports it, naming the experiment
        return frozenset()
    taken = {*fixtures, *datasources}
    out = {name for name, b in bindings.items() if b.explicit or name not in taken}
    if unresolved:
        parameters = inspect.signature(function).parameters
        out.update(
            name for name in unresolved
            if name not in taken and name in parameters and parameters[name].default is inspect.Parameter.empty
        )
    return frozenset(out)


def selection_skip(experiment: Experiment | None, patterns: Sequence[str]) -> str | None:
    """The skip reason for an experiment none of whose treatments ``patterns`` select, else None."""
    if not patterns or experiment is None or matching_treatments(experiment.treatments, patterns):
        return None
    return f"experiment: no treatment matches {OPTION} {' '.join(map(repr, patterns))}"


def choose_treatments(
    item: pytest.Item, experiment: Experiment, patterns: Sequence[str], manager: pluggy.PluginManager | None
) -> Experiment:
    """``experiment`` with the treatments chosen by the option, the pytest hook and lifecycle plugins.

    Registers the experiment's own plugins in ``manager`` first, so their
    ``crystallize_conditions_choose`` counts. Raises TreatmentError naming
    whoever chose wrongly.
    """
    if patterns:
        experiment = experiment.with_treatments(matching_treatments(experiment.treatments, patterns), chooser=OPTION)
    hook = item.ihook.pytest_crystallize_conditions
    chosen = hook(item=item, experiment=experiment, treatments=experiment.treatments)
    if chosen is not None:
        if isinstance(chosen, (str, bytes, Mapping)) or not isinstance(chosen, Iterable):
            msg = (
                f"experiment {experiment.name!r}: a pytest_crystallize_conditions hook returned {chosen!r}; "
                f"return a list of treatments or treatment names (or None)"
            )
            raise TreatmentError(msg)
        experiment = experiment.with_treatments(chosen, chooser="a pytest_crystallize_conditions hook")
    if manager is None:
        return experiment
    for plugin in experiment.plugins:
        if not manager.is_registered(plugin):
            manager.register(plugin)
    return choose_conditions(experiment, manager.hook)


class TreatmentSelection:
    """Checks ``--crystallize-treatment`` against the collected experiments.

    A plugin registered by the first experiment item collected while the
    option is set; it lives until the end of the session.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Refuse a name or glob that matches no collected experiment's treatment: a usage error.

        An xdist worker cannot raise one (the controller would report an
        internal error), so it runs nothing and stops the session with the message.
        """
        known: dict[str, None] = {}
        for item in items:
            definition = getattr(item, "crystallize_definition", None)
            if definition is not None:
                known.update((t.name, None) for t in definition.treatments)
        unknown = [p for p in self.patterns if not pattern_matches(known, p)]
        if not unknown:
            return
        names = sorted(known)
        shown = ", ".join(repr(n) for n in names[:_SHOWN_NAMES]) or "none"
        if len(names) > _SHOWN_NAMES:
            shown += f", ... ({len(names)} in all)"
        msg = (
            f"{OPTION} {unknown[0]!r} matches no treatment of the collected experiments; "
            f"known treatments: {shown}"
        )
        if hasattr(config, "workerinput"):
            config.hook.pytest_deselected(items=list(items))
            items.clear()
            session.shouldfail = msg
            return
        raise pytest.UsageError(msg)


def register_selection(config: pytest.Config, patterns: Sequence[str]) -> None:
    """Register :class:`TreatmentSelection` once per session when ``patterns`` are given."""
    if patterns and not config.pluginmanager.has_plugin(SELECTION_PLUGIN):
        config.pluginmanager.register(TreatmentSelection(patterns), SELECTION_PLUGIN)
