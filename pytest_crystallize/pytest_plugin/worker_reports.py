"""Experiment reports kept sendable on a pytest-xdist worker.

pytest-xdist sends a worker's reports to the controller as plain data. An
object in an experiment report's ``user_properties`` would crash that and end
the run as "no tests ran" with exit code 0, so :class:`WorkerReports` turns
what cannot be sent into strings. The session object registers it on a worker
that collects an experiment (see ``session``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_crystallize.pytest_plugin.session import CrystallizeSession

__all__ = ["WorkerReports"]


class WorkerReports:
    """Keeps experiment reports sendable on a pytest-xdist worker.

    Registered by the session object when a worker collects its first
    experiment; it lives as long as the worker's session.
    """

    def __init__(self, session: CrystallizeSession) -> None:
        self._session = session

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        """Turn the user properties of an experiment's reports that xdist cannot send into strings."""
        report = yield
        if self._session.is_experiment(item):
            # An object in user_properties would crash the worker's report and end the
            # run as "no tests ran" with exit code 0; JUnit XML writes str() anyway.
            report.user_properties = [(str(k), v if _plain(v) else str(v)) for k, v in report.user_properties]
        return report


def _plain(value: Any) -> bool:
    """True for data pytest-xdist can send: JSON-like builtins all the way down."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False
