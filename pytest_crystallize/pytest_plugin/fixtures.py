"""Fixtures for unit-testing pipeline steps in ordinary tests."""

from __future__ import annotations

import pytest

from pytest_crystallize.core.context import FrozenContext, standalone_context

__all__ = ["ctx"]


@pytest.fixture
def ctx() -> FrozenContext:
    """A fresh standalone context (seeded, empty) for calling a step in a test.

    In an experiment, a parameter named ``ctx`` is the replicate's context instead.
    """
    return standalone_context()
