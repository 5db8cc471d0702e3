"""Running an experiment from a script or notebook: ``run_experiment(...)``.

:func:`run_experiment` resolves its arguments the way the pytest plugin
resolves a marker's (the function's own ``@pytest.mark.experiment`` options,
then the keyword arguments given), builds the
:class:`~pytest_crystallize.core.experiment.Experiment` and its plugin manager,
runs any upstream experiments first, and hands the run to
:class:`~pytest_crystallize.core.runner.ExperimentRunner` (through the
confirmation ledger for a confirmatory run). The orchestration itself is
:mod:`pytest_crystallize.core.runner`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_crystallize.core.analysis import warn_low_power
from pytest_crystallize.core.budget import Deadline
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.lifecycle import run_plugin_manager
from pytest_crystallize.core.markers import ITEM_OPTIONS, function_marker_options
from pytest_crystallize.core.results import ExperimentResult
from pytest_crystallize.core.runner import ExperimentRunner
from pytest_crystallize.core.shared_data import warn_shared_data
from pytest_crystallize.core.upstreams import run_upstreams
from pytest_crystallize.core.vocabulary import Correction, Spending
from pytest_crystallize.errors import ConfigurationError

__all__ = ["run_experiment"]


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
    manager = run_plugin_manager([*cached, *experiment.plugins])
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
