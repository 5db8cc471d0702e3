"""pytest-crystallize: experiments as pytest tests, with real statistics.

The public API. Everything lives in private modules; this namespace is the
contract. It never imports pytest, and importing it loads nothing else: each
name is imported from its module on first use (PEP 562), so the pytest plugin,
which loads with every pytest run, pays for the engine only when an
experiment needs it. Type checkers and IDEs see the names through the
``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

import importlib
import typing as _typing
from typing import Any as _Any

if _typing.TYPE_CHECKING:
    from pytest_crystallize.core.asyncrun import arun_experiment
    from pytest_crystallize.core.binding import Bind
    from pytest_crystallize.core.config_files import LoadedConfig, load_config, load_treatments
    from pytest_crystallize.core.context import FrozenContext, standalone_context
    from pytest_crystallize.core.datasources import DataSource, data_source, get_datasource
    from pytest_crystallize.core.defaults import DEFAULT_SEED
    from pytest_crystallize.core.designs import CrossValidation, Holdout, cv, holdout
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.hypotheses import Hypothesis, Verdict, hypothesis
    from pytest_crystallize.core.pipeline import PipelineStep, pipeline_step
    from pytest_crystallize.core.provenance import Provenance, ReplicateError
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.runner import ExperimentRunner
    from pytest_crystallize.core.running import current_context
    from pytest_crystallize.core.scripting import run_experiment
    from pytest_crystallize.core.sweeps import grid
    from pytest_crystallize.core.treatments import Treatment
    from pytest_crystallize.core.upstreams import upstream
    from pytest_crystallize.errors import (
        CacheError,
        ChainError,
        ConfigurationError,
        ContextMutationError,
        CrystallizeError,
        CrystallizeWarning,
        DataSourceError,
        HypothesisError,
        LowPowerWarning,
        MetricError,
        ResultsError,
        SharedDataWarning,
        StatisticsError,
        TreatmentError,
        UndigestableError,
    )
    from pytest_crystallize.hookspecs import hookimpl
    from pytest_crystallize.plugins import (
        ArtifactPlugin,
        AsyncExecution,
        CachePlugin,
        DaskExecution,
        LoggingPlugin,
        ParallelExecution,
        SeedPlugin,
        SerialExecution,
    )

__all__ = [
    "ArtifactPlugin",
    "AsyncExecution",
    "Bind",
    "CacheError",
    "CachePlugin",
    "ChainError",
    "ConfigurationError",
    "ContextMutationError",
    "CrossValidation",
    "CrystallizeError",
    "CrystallizeWarning",
    "DEFAULT_SEED",
    "DaskExecution",
    "DataSource",
    "DataSourceError",
    "Experiment",
    "ExperimentResult",
    "ExperimentRunner",
    "FrozenContext",
    "Holdout",
    "Hypothesis",
    "HypothesisError",
    "LoadedConfig",
    "LoggingPlugin",
    "LowPowerWarning",
    "MetricError",
    "ParallelExecution",
    "PipelineStep",
    "Provenance",
    "ReplicateError",
    "ResultsError",
    "SeedPlugin",
    "SerialExecution",
    "SharedDataWarning",
    "StatisticsError",
    "Treatment",
    "TreatmentError",
    "UndigestableError",
    "Verdict",
    "arun_experiment",
    "current_context",
    "cv",
    "data_source",
    "get_datasource",
    "grid",
    "holdout",
    "hookimpl",
    "hypothesis",
    "load_config",
    "load_treatments",
    "pipeline_step",
    "run_experiment",
    "standalone_context",
    "upstream",
]

#: The module each public name lives in (the same imports as under TYPE_CHECKING above).
_HOMES: dict[str, str] = {
    "arun_experiment": "pytest_crystallize.core.asyncrun",
    "Bind": "pytest_crystallize.core.binding",
    "LoadedConfig": "pytest_crystallize.core.config_files",
    "load_config": "pytest_crystallize.core.config_files",
    "load_treatments": "pytest_crystallize.core.config_files",
    "FrozenContext": "pytest_crystallize.core.context",
    "standalone_context": "pytest_crystallize.core.context",
    "DataSource": "pytest_crystallize.core.datasources",
    "data_source": "pytest_crystallize.core.datasources",
    "get_datasource": "pytest_crystallize.core.datasources",
    "DEFAULT_SEED": "pytest_crystallize.core.defaults",
    "CrossValidation": "pytest_crystallize.core.designs",
    "Holdout": "pytest_crystallize.core.designs",
    "cv": "pytest_crystallize.core.designs",
    "holdout": "pytest_crystallize.core.designs",
    "Experiment": "pytest_crystallize.core.experiment",
    "Hypothesis": "pytest_crystallize.core.hypotheses",
    "Verdict": "pytest_crystallize.core.hypotheses",
    "hypothesis": "pytest_crystallize.core.hypotheses",
    "PipelineStep": "pytest_crystallize.core.pipeline",
    "current_context": "pytest_crystallize.core.running",
    "pipeline_step": "pytest_crystallize.core.pipeline",
    "ExperimentResult": "pytest_crystallize.core.results",
    "Provenance": "pytest_crystallize.core.provenance",
    "ReplicateError": "pytest_crystallize.core.provenance",
    "ExperimentRunner": "pytest_crystallize.core.runner",
    "run_experiment": "pytest_crystallize.core.scripting",
    "grid": "pytest_crystallize.core.sweeps",
    "Treatment": "pytest_crystallize.core.treatments",
    "upstream": "pytest_crystallize.core.upstreams",
    "ChainError": "pytest_crystallize.errors",
    "CacheError": "pytest_crystallize.errors",
    "ConfigurationError": "pytest_crystallize.errors",
    "ContextMutationError": "pytest_crystallize.errors",
    "CrystallizeError": "pytest_crystallize.errors",
    "CrystallizeWarning": "pytest_crystallize.errors",
    "DataSourceError": "pytest_crystallize.errors",
    "HypothesisError": "pytest_crystallize.errors",
    "LowPowerWarning": "pytest_crystallize.errors",
    "MetricError": "pytest_crystallize.errors",
    "ResultsError": "pytest_crystallize.errors",
    "SharedDataWarning": "pytest_crystallize.errors",
    "StatisticsError": "pytest_crystallize.errors",
    "TreatmentError": "pytest_crystallize.errors",
    "UndigestableError": "pytest_crystallize.errors",
    "hookimpl": "pytest_crystallize.hookspecs",
    "ArtifactPlugin": "pytest_crystallize.plugins",
    "AsyncExecution": "pytest_crystallize.plugins",
    "CachePlugin": "pytest_crystallize.plugins",
    "DaskExecution": "pytest_crystallize.plugins",
    "LoggingPlugin": "pytest_crystallize.plugins",
    "ParallelExecution": "pytest_crystallize.plugins",
    "SeedPlugin": "pytest_crystallize.plugins",
    "SerialExecution": "pytest_crystallize.plugins",
}


def __getattr__(name: str) -> _Any:
    """Import a public name from its module on first use.

    Not cached in this namespace on purpose: the lookup goes through
    ``sys.modules`` each time, so it never hands out an object of a module
    that was since dropped from ``sys.modules`` (pytester's in-process runs
    restore it after each run) and imported again.
    """
    home = _HOMES.get(name)
    if home is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
