"""The pytest entry point (``pytest11`` name ``crystallize``; ``-p no:crystallize`` disables it).

Import-light on purpose: options, configuration and the session object. The
engine's heavy parts (scipy, pandas, pyarrow) load only when an experiment
runs or a result is converted.
"""

from __future__ import annotations

import pytest

from pytest_crystallize.pytest_plugin.fixtures import ctx
from pytest_crystallize.pytest_plugin.keys import MARKER, SESSION_KEY, SESSION_PLUGIN
from pytest_crystallize.pytest_plugin.options import add_options, read_settings, read_storage_settings
from pytest_crystallize.pytest_plugin.session import CrystallizeSession
from pytest_crystallize.pytest_plugin.storage import configure as configure_storage
from pytest_crystallize.pytest_plugin.storage import unconfigure as unconfigure_storage

__all__ = ["ctx", "pytest_addhooks", "pytest_addoption", "pytest_configure", "pytest_unconfigure"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add our pytest-level hooks (``pytest_crystallize_plugins``)."""
    from pytest_crystallize.pytest_plugin import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register our options and ini settings."""
    add_options(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Collect ``experiment_*``, register the marker and the session object."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(replicates=, seed=, treatments=, hypotheses=, plugins=, alpha=, correction=, "
        "params=, gate=, evaluators=, max_replicates=, looks=, spending=): configure an experiment; "
        "every experiment item carries this mark",
    )
    # getini returns the cached list pytest's collectors read, so extending it
    # in place makes them collect experiment functions and files.
    functions = config.getini("python_functions")
    if "experiment_" not in functions:
        functions.append("experiment_")
    files = config.getini("python_files")
    if "experiment_*.py" not in files:
        files.append("experiment_*.py")
    settings, storage_settings = read_settings(config), read_storage_settings(config)
    session = CrystallizeSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, SESSION_PLUGIN)
    configure_storage(config, storage_settings, enabled=settings.enabled)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the session and storage objects."""
    unconfigure_storage(config)
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        config.pluginmanager.unregister(session)
        del config.stash[SESSION_KEY]
