"""The bound on nesting that keeps deeply nested files from crashing their readers."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from pytest_crystallize.core.nesting import MAX_DEPTH, deeper_than, load_strict_json


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_depth_counts_mappings_and_lists_and_stops_at_the_bound() -> None:
    assert not deeper_than(1)
    assert not deeper_than({})
    assert deeper_than([[]], limit=1)
    assert not deeper_than([[]], limit=2)
    assert not deeper_than(_nested(MAX_DEPTH))
    assert deeper_than(_nested(MAX_DEPTH + 1))
    assert deeper_than(_nested(20 * sys.getrecursionlimit()))  # never recurses itself


def test_shared_parts_are_walked_once_and_a_cycle_is_too_deep() -> None:
    shared: list[Any] = [1, 2]
    for _ in range(60):  # 2**60 paths through shared parts, as YAML aliases can make
        shared = [shared, shared]
    assert not deeper_than(shared)
    cycle: list[Any] = []
    cycle.append(cycle)
    assert deeper_than(cycle)
    assert deeper_than({"a": {"b": cycle}})


def test_strict_json_refuses_nan_and_deep_nesting_with_a_value_error() -> None:
    assert load_strict_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert load_strict_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match="NaN is not valid in strict JSON"):
        load_strict_json('{"a": NaN}')
    for depth in (MAX_DEPTH + 1, 100_000):  # parsed, then refused; too deep even to parse
        with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} levels deep"):
            load_strict_json("[" * depth + "]" * depth)
