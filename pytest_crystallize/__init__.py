"""pytest-crystallize: experiments as pytest tests, with real statistics.

The public API. Everything lives in private modules; this namespace is the
contract. It never imports pytest, and importing it loads neither scipy,
pandas nor pyarrow.
"""

from __future__ import annotations

from pytest_crystallize.core.asyncrun import arun_experiment
from pytest_crystallize.core.binding import Bind
from pytest_crystallize.core.config_files import LoadedConfig, load_config, load_treatments
from pytest_crystallize.core.context import FrozenContext, standalone_context
from pytest_crystallize.core.datasources import DataSource, data_source, get_datasource
from pytest_crystallize.core.defaults import DEFAULT_SEED
from pytest_crystallize.core.experiment import Experiment
from pytest_crystallize.core.hypotheses import Hypothesis, Verdict, hypothesis
from pytest_crystallize.core.pipeline import PipelineStep, current_context, pipeline_step
from pytest_crystallize.core.results import ExperimentResult, Provenance, ReplicateError
from pytest_crystallize.core.runner import ExperimentRunner, run_experiment
from pytest_crystallize.core.sweeps import grid
from pytest_crystallize.core.treatments import Treatment
from pytest_crystallize.errors import (
    ConfigurationError,
    ContextMutationError,
    CrystallizeError,
    CrystallizeWarning,
    DataSourceError,
    HypothesisError,
    LowPowerWarning,
    MetricError,
    ResultsError,
    StatisticsError,
    TreatmentError,
)
from pytest_crystallize.hookspecs import hookimpl
from pytest_crystallize.plugins import (
    ArtifactPlugin,
    AsyncExecution,
    LoggingPlugin,
    ParallelExecution,
    SeedPlugin,
    SerialExecution,
)

__all__ = [
    "ArtifactPlugin",
    "AsyncExecution",
    "Bind",
    "ConfigurationError",
    "ContextMutationError",
    "CrystallizeError",
    "CrystallizeWarning",
    "DEFAULT_SEED",
    "DataSource",
    "DataSourceError",
    "Experiment",
    "ExperimentResult",
    "ExperimentRunner",
    "FrozenContext",
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
    "StatisticsError",
    "Treatment",
    "TreatmentError",
    "Verdict",
    "arun_experiment",
    "current_context",
    "data_source",
    "get_datasource",
    "grid",
    "hookimpl",
    "hypothesis",
    "load_config",
    "load_treatments",
    "pipeline_step",
    "run_experiment",
    "standalone_context",
]
