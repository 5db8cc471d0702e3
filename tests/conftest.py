"""Shared test configuration: pytester for the black-box plugin tests."""

# In-process pytester runs restore sys.modules afterwards; numpy's and scipy's
# extension modules cannot be imported twice in one process, so load them
# here, before any inner run, to keep them in the snapshot.
import importlib.util

import numpy.fft  # noqa: F401
import pytest
import scipy.stats  # noqa: F401

# The plugin imports the engine only once an experiment is collected (a run
# without experiments stays light); import its experiment side here too, so
# that the in-process runs find it in the snapshot instead of importing it
# afresh every time.
import pytest_crystallize.plugins
import pytest_crystallize.pytest_plugin.items
import pytest_crystallize.pytest_plugin.progress
import pytest_crystallize.pytest_plugin.storage  # noqa: F401

pytest_plugins = ["pytester"]


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester whose inner runs configure pytest-asyncio (a dev dependency) so it does not warn.

    Inner runs have no ini file of ours; pytester clears PYTEST_ADDOPTS when it
    starts, so it is set here, after that.
    """
    if importlib.util.find_spec("pytest_asyncio") is not None:
        monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester
