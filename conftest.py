"""What every pytest run rooted in this repository shares: ``pytester``, ready for our black-box tests.

pytest loads this file for each run whose rootdir is the checkout, and that
includes a user's ``pytest --crystallize examples/game``. So it only adds
what changes nothing in such a run: the ``pytester`` plugin (fixtures and
two options nobody else uses; it prints nothing) and a ``pytester`` fixture
that prepares in-process runs. Nothing heavy is imported unless a test asks
for ``pytester``. ``tests/test_examples.py`` proves each example's output is
the same, line for line, without this file.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def _crystallize_numeric_preload() -> None:
    """Import numpy's and scipy's extension modules before any ``pytester`` exists.

    In-process pytester runs restore ``sys.modules`` afterwards, and numpy's
    and scipy's extension modules cannot be imported twice in one process:
    they must already be loaded when pytester takes its snapshot, at its
    creation. Session scope sets this up before any (function-scoped) pytester.
    """
    importlib.import_module("numpy.fft")
    importlib.import_module("scipy.stats")
    # The plugin loads its experiment side only once an experiment is collected;
    # load it here too, so in-process runs find it in the snapshot.
    for module in ("plugins", "pytest_plugin.items", "pytest_plugin.progress", "pytest_plugin.storage"):
        importlib.import_module(f"pytest_crystallize.{module}")


@pytest.fixture
def pytester(
    _crystallize_numeric_preload: None, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """The ``pytester`` fixture, set so that pytest-asyncio (a dev dependency) does not warn in inner runs.

    Inner runs have no ini file of ours; pytester clears PYTEST_ADDOPTS when it
    starts, so it is set here, after that.
    """
    if importlib.util.find_spec("pytest_asyncio") is not None:
        monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester
