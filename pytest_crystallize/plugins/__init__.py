"""Built-in lifecycle plugins: ordinary pluggy plugins of the ``crystallize`` hooks.

Seeding (:class:`SeedPlugin`), logging (:class:`LoggingPlugin`), artifacts
(:class:`ArtifactPlugin`), the step cache (:class:`CachePlugin`) and execution backends (:class:`SerialExecution`,
:class:`ParallelExecution`, :class:`AsyncExecution`, and :class:`DaskExecution`,
which imports Dask only when it runs). Third-party plugins
installed as packages announce themselves in the entry-point group
``crystallize.plugins`` (see
:func:`~pytest_crystallize.core.lifecycle.entry_point_plugins`). The built-in
defaults every plugin manager registers ``trylast`` are in
:mod:`~pytest_crystallize.plugins.defaults`.
"""

from __future__ import annotations

from pytest_crystallize.plugins.artifacts import ArtifactPlugin
from pytest_crystallize.plugins.cache import CachePlugin
from pytest_crystallize.plugins.dask import DaskExecution
from pytest_crystallize.plugins.execution import (
    AsyncExecution,
    ExecutionBackend,
    ParallelExecution,
    SerialExecution,
)
from pytest_crystallize.plugins.logs import LoggingPlugin
from pytest_crystallize.plugins.seeding import SeedPlugin, default_seed_function

__all__ = [
    "ArtifactPlugin",
    "AsyncExecution",
    "CachePlugin",
    "DaskExecution",
    "ExecutionBackend",
    "LoggingPlugin",
    "ParallelExecution",
    "SeedPlugin",
    "SerialExecution",
    "default_seed_function",
]
