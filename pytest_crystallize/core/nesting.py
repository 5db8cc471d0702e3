"""Nested data read from files, with a bound on how deep it may nest.

Python's parsers (``json``, ``tomllib``, PyYAML) recurse once per level of
nesting, and so does much of the code that walks the parsed data later
(comparing, copying, printing). A file nested thousands of levels deep, by
accident or on purpose, would end in a RecursionError far from the file
that caused it. Readers of saved runs and configuration files therefore
parse inside ``except RecursionError`` and refuse data nested deeper than
:data:`MAX_DEPTH` (:func:`deeper_than`), so that every later walk is safe and
the error names the file. No file pytest-crystallize writes, and no sensible
configuration, comes near the bound.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MAX_DEPTH", "deeper_than", "load_strict_json"]

#: The deepest nesting of mappings and lists accepted from a file.
MAX_DEPTH: Final = 100


def deeper_than(value: object, limit: int = MAX_DEPTH) -> bool:
    """True if mappings, lists and tuples in ``value`` nest more than ``limit`` levels deep.

    Never recurses. A container met again at no greater depth is not walked
    again, so data that shares parts (YAML aliases) is walked in linear time,
    and data that contains itself (a YAML alias cycle) counts as too deep.
    """
    walked: dict[int, int] = {}  # id of a container -> the greatest depth it was walked at
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        if walked.get(id(item), 0) >= depth:
            continue
        walked[id(item)] = depth
        pending.extend((child, depth + 1) for child in children)
    return False


def load_strict_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity) nested at most :data:`MAX_DEPTH` levels.

    Raises:
        ValueError: the text is not JSON, holds NaN or Infinity, or nests too
            deeply; the message says which (callers add the file's name).

    """
    too_deep = f"nested more than {MAX_DEPTH} levels deep"
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(too_deep) from None
    if deeper_than(data):
        raise ValueError(too_deep)
    return data


def _refuse_constant(name: str) -> Any:
    """``json.loads`` hook: strict JSON has no NaN or Infinity (pytest-crystallize never writes them)."""
    msg = f"{name} is not valid in strict JSON"
    raise ValueError(msg)
