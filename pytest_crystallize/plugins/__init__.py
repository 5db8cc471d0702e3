"""Built-in lifecycle plugins: ordinary pluggy plugins of the ``crystallize`` hooks.

Seeding (:class:`SeedPlugin`), logging (:class:`LoggingPlugin`), artifacts
(:class:`ArtifactPlugin`) and execution backends (:class:`SerialExecution`,
:class:`ParallelExecution`, :class:`AsyncExecution`). Third-party plugins
installed as packages announce themselves in the entry-point group
``crystallize.plugins`` (see :func:`entry_point_plugins`).
"""

from __future__ import annotations

from typing import Final

from pytest_crystallize.errors import ConfigurationError
from pytest_crystallize.plugins.artifacts import ArtifactPlugin
from pytest_crystallize.plugins.execution import (
    AsyncExecution,
    ExecutionBackend,
    ParallelExecution,
    SerialExecution,
)
from pytest_crystallize.plugins.logs import LoggingPlugin
from pytest_crystallize.plugins.seeding import SeedPlugin, default_seed_function

__all__ = [
    "ENTRY_POINT_GROUP",
    "ArtifactPlugin",
    "AsyncExecution",
    "ExecutionBackend",
    "LoggingPlugin",
    "ParallelExecution",
    "SeedPlugin",
    "SerialExecution",
    "default_seed_function",
    "entry_point_plugins",
]

#: The entry-point group installed packages use to provide plugins, e.g. in
#: pyproject.toml: ``[project.entry-points."crystallize.plugins"] mine = "my_pkg.plugin"``.
ENTRY_POINT_GROUP: Final = "crystallize.plugins"


def entry_point_plugins() -> list[object]:
    """Load the plugins of the ``crystallize.plugins`` entry points, sorted by entry-point name.

    An entry point may name a module or an object (registered as it is) or a
    class (instantiated with no arguments). Raises ConfigurationError naming
    an entry point that fails to load.
    """
    from importlib.metadata import entry_points

    plugins: list[object] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            loaded = point.load()
            plugins.append(loaded() if isinstance(loaded, type) else loaded)
        except Exception as exc:
            msg = (
                f"the {ENTRY_POINT_GROUP!r} entry point {point.name!r} ({point.value}) failed to "
                f"load: {type(exc).__name__}: {exc}; fix or uninstall the package that provides it"
            )
            raise ConfigurationError(msg) from exc
    return plugins
