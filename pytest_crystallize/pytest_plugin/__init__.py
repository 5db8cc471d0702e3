"""The pytest entry point (``pytest11`` name ``crystallize``; ``-p no:crystallize`` disables it).

Import-light on purpose: options, configuration and the session object. A
pytest run that collects no experiment imports neither the engine nor numpy,
scipy, pandas or pyarrow: the session object imports them once an experiment
is collected, and the storage object (saved runs, the gate, the JSON report)
exists only when one of its options is used.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_crystallize.pytest_plugin.fixtures import ctx
from pytest_crystallize.pytest_plugin.keys import (
    EXPERIMENT_PREFIX,
    HTML_KEY,
    MARKDOWN_KEY,
    MARKDOWN_PLUGIN,
    MARKER,
    SESSION_KEY,
    SESSION_PLUGIN,
    STORAGE_KEY,
)
from pytest_crystallize.pytest_plugin.options import add_options
from pytest_crystallize.pytest_plugin.output_settings import (
    read_html_path,
    read_markdown_target,
    read_storage_settings,
)
from pytest_crystallize.pytest_plugin.session import CrystallizeSession
from pytest_crystallize.pytest_plugin.settings import read_settings

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
        "params=, gate=, evaluators=, max_replicates=, looks=, spending=, futility=, futility_spending=, power=, "
        "confirm=): configure an experiment; "
        "every experiment item carries this mark",
    )
    # getini returns the cached list pytest's collectors read, so extending it
    # in place makes them collect experiment functions and files.
    functions = config.getini("python_functions")
    if EXPERIMENT_PREFIX not in functions:
        functions.append(EXPERIMENT_PREFIX)
    files = config.getini("python_files")
    if f"{EXPERIMENT_PREFIX}*.py" not in files:
        files.append(f"{EXPERIMENT_PREFIX}*.py")
    settings, storage_settings = read_settings(config), read_storage_settings(config)
    session = CrystallizeSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, SESSION_PLUGIN)
    if storage_settings.used:
        from pytest_crystallize.pytest_plugin.storage import configure as configure_storage

        configure_storage(config, storage_settings, enabled=settings.enabled)
    markdown = read_markdown_target(config)
    if markdown is not None and not hasattr(config, "workerinput"):  # workers send their reports to the controller
        from pytest_crystallize.pytest_plugin.step_summary import MarkdownSummary

        config.stash[MARKDOWN_KEY] = summary = MarkdownSummary(config, markdown)
        config.pluginmanager.register(summary, MARKDOWN_PLUGIN)
    html_path = read_html_path(config)
    if html_path is not None or config.getoption("htmlpath", None):  # ours, or pytest-html's report
        from pytest_crystallize.pytest_plugin.html_report import configure as configure_html

        configure_html(config, html_path)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the session (its Dask cluster), then drop the session, storage, Markdown and HTML objects."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
    keys: tuple[pytest.StashKey[Any], ...] = (HTML_KEY, MARKDOWN_KEY, STORAGE_KEY, SESSION_KEY)
    for key in keys:
        plugin = config.stash.get(key, None)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)
            del config.stash[key]
