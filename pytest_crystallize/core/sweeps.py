"""Sweeps: a Cartesian grid of treatments from lists of values.

``grid(temperature=[0.5, 1.0], model=["a", "b"])`` returns four treatments,
one per combination, named ``"temperature=0.5,model=a"`` and so on. Names are
built from the values themselves (never from ``id()`` or a hash that changes
between processes), so they are the same in every process and every run: a
saved run, an xdist worker and ``--crystallize-treatment`` all agree on them.

Keys that are not Python identifiers (dotted paths into nested
configuration, such as ``"llm.temperature"``) go in a mapping passed first:
``grid({"llm.temperature": [0.1, 0.9]}, seed_offset=range(3))``. Each list
may be any iterable (a generator too): it is read once, here, into a tuple,
so the treatments pickle and the grid can be iterated any number of times.
A mapping of values (``model={"small": Small(), "large": Large()}``) names
each value by its key: use it for values without a short readable form.

Grid treatments follow the rules of every treatment
(:mod:`~pytest_crystallize.core.treatments`): keys that set one path twice
(``grid({"llm.model": [...]}, llm=[{"model": ...}])``) are refused here, and
a key the baseline's mapping lacks (``"llm.modle"``) when the experiment is
defined.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pytest_crystallize.core.treatments import Treatment
from pytest_crystallize.errors import CrystallizeWarning, TreatmentError

__all__ = ["GRID_LIMIT", "GRID_WARN", "grid"]

#: Above this many treatments ``grid`` warns (each treatment runs every replicate).
GRID_WARN: Final = 64
#: Above this many treatments ``grid`` refuses, unless ``limit=`` is raised (or None).
GRID_LIMIT: Final = 1024

#: Longest label a value gets in a treatment name before it is named by position.
_LABEL_MAX: Final = 40
_SCALARS: Final = (str, numbers.Number, type(None))


def grid(
    values: Mapping[str, Iterable[Any]] | None = None,
    /,
    *,
    warn_at: int | None = GRID_WARN,
    limit: int | None = GRID_LIMIT,
    **more: Iterable[Any],
) -> tuple[Treatment, ...]:
    """Return one treatment per combination of the given values (a Cartesian product).

    ``values`` (positional) and keyword arguments map parameter names (dotted
    paths allowed) to the values to try; the first key varies slowest. Raises
    TreatmentError for a key without values, a value list that is a string
    or not iterable, duplicate values, or more than ``limit`` treatments
    (``limit=None`` lifts the cap); warns with CrystallizeWarning above
    ``warn_at`` treatments (``warn_at=None`` never warns).
    """
    axes: dict[str, tuple[tuple[str, Any], ...]] = {}
    for source in (dict(values or {}), more):
        for key, options in source.items():
            if key in axes:
                msg = f"grid: parameter {key!r} is given twice"
                raise TreatmentError(msg)
            axes[key] = _axis(key, options)
    if not axes:
        msg = "grid: give at least one parameter and its values, e.g. grid(temperature=[0.5, 1.0])"
        raise TreatmentError(msg)
    size = math.prod(len(axis) for axis in axes.values())
    shape = " x ".join(str(len(axis)) for axis in axes.values())
    if limit is not None and size > limit:
        msg = (
            f"grid: {shape} = {size} treatments exceeds the limit of {limit}; every treatment runs "
            f"every replicate. Sweep fewer values, or pass limit={size} (or limit=None) to allow it"
        )
        raise TreatmentError(msg)
    if warn_at is not None and size > warn_at:
        message = (
            f"grid: {shape} = {size} treatments, each running every replicate; "
            f"pass warn_at=None to silence this warning"
        )
        warnings.warn(message, CrystallizeWarning, stacklevel=2)
    keys = tuple(axes)
    treatments = []
    for combination in itertools.product(*axes.values()):
        name = ",".join(f"{key}={label}" for key, (label, _) in zip(keys, combination, strict=True))
        params = {key: value for key, (_, value) in zip(keys, combination, strict=True)}
        treatments.append(Treatment(name, params))
    return tuple(treatments)


def _axis(key: object, options: object) -> tuple[tuple[str, Any], ...]:
    """The ``(label, value)`` pairs of one parameter, read once."""
    if not isinstance(key, str) or not key:
        msg = f"grid: parameter names must be non-empty strings, got {key!r}"
        raise TreatmentError(msg)
    if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
        msg = (
            f"grid: the values of {key!r} must be a list (or another iterable) of values, "
            f"got {type(options).__name__} {options!r:.40}; write {key}=[{options!r:.40}]"
        )
        raise TreatmentError(msg)
    if isinstance(options, Mapping):
        pairs = [(_check_label(key, label), value) for label, value in options.items()]
    else:
        items = list(options)  # materialised once: a generator is not read twice
        pairs = [(_label(value) or f"#{i}", value) for i, value in enumerate(items)]
    if not pairs:
        msg = f"grid: parameter {key!r} has no values"
        raise TreatmentError(msg)
    labels = [label for label, _ in pairs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        msg = (
            f"grid: two values of {key!r} are both labelled {twice[0]!r}; each value must appear "
            f"once, and values that print alike need labels: pass {{label: value, ...}} instead of a list"
        )
        raise TreatmentError(msg)
    return tuple(pairs)


def _check_label(key: str, label: object) -> str:
    if not isinstance(label, str) or not label:
        msg = f"grid: the labels of {key!r} (the keys of its mapping) must be non-empty strings, got {label!r}"
        raise TreatmentError(msg)
    return label


def _label(value: object) -> str | None:
    """A short label that is the same in every process, or None (then the position names it)."""
    if isinstance(value, _SCALARS):
        text = str(value)  # str, not repr: numpy scalars print as plain numbers
    elif isinstance(value, (tuple, list)) and all(isinstance(v, _SCALARS) for v in value):
        text = "[" + ",".join(str(v) for v in value) + "]"
    else:  # repr() of an arbitrary object may hold a memory address, different in every process
        return None
    return text if len(text) <= _LABEL_MAX else None
