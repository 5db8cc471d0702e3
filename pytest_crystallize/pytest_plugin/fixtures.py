"""Fixtures for unit-testing pipeline steps in ordinary tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_crystallize.core.context import FrozenContext

__all__ = ["ctx"]


@pytest.fixture
def ctx() -> FrozenContext:
    """A fresh standalone context (seeded, empty) for calling a step in a test.

    In an experiment, a parameter named ``ctx`` is the replicate's context instead.
    """
    from pytest_crystallize.core.context import standalone_context  # the engine loads only when a test asks

    return standalone_context()
