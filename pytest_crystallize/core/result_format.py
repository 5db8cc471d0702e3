"""A result's saved form: the header of its JSON and Parquet files, and reading them back safely.

A result saves as a header (format and version, conditions, metrics,
errors, verdicts, provenance) and column-wise records. :func:`check_header`
and :func:`build_result` check what was read, field by field and code by
code, so a damaged or foreign file is a ResultsError naming it, never a
result with wrong numbers. Strict JSON has no NaN or infinity:
:func:`encode_value` and :func:`decode_value` keep them recoverable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.hypotheses import Verdict
from pytest_crystallize.core.nesting import load_strict_json
from pytest_crystallize.core.provenance import Provenance, ReplicateError
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PARQUET_KEY",
    "build_result",
    "check_header",
    "decode_value",
    "encode_value",
]

#: Identifies our JSON documents and Parquet metadata; bump the version on change.
FORMAT: Final = "pytest-crystallize/result"
FORMAT_VERSION: Final = 1
PARQUET_KEY: Final = b"pytest_crystallize"


def encode_value(value: float) -> float | str | None:
    """``value`` for strict JSON, which has no NaN or infinity: null, "Infinity" or "-Infinity" for those."""
    if math.isfinite(value):
        return value
    return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def decode_value(value: float | str | None) -> float:
    """A value written by :func:`encode_value`, as a float; TypeError for anything else."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = f"value {value!r} is not a number"
        raise TypeError(msg)
    return float(value)


#: Checks of field annotations (strings: the dataclasses' modules use postponed annotations).
_TYPE_CHECKS: Final[dict[str, Any]] = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "int | None": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
}


def _wrong_field(obj: Any) -> str | None:
    """The first field of a loaded dataclass whose value has the wrong type, described; else None."""
    for f in fields(obj):
        check = _TYPE_CHECKS.get(str(f.type))
        value = getattr(obj, f.name)
        if check is not None and not check(value):
            return f"{type(obj).__name__}.{f.name} is {value!r}, expected {f.type}"
    return None


def _header_problem(header: Mapping[str, Any]) -> str | None:
    """What is wrong with the types in a parsed header, or None."""
    if not isinstance(header["experiment"], str):
        return f"experiment is {header['experiment']!r}, expected a string"
    for name in ("conditions", "metrics"):
        names = header[name]
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            return f"{name} must be distinct strings, got {list(names)!r}"
    prov: Provenance = header["provenance"]
    for item in (*header["errors"], *header["verdicts"], prov):
        wrong = _wrong_field(item)
        if wrong:
            return wrong
    if not all(isinstance(k, str) and all(isinstance(x, str) for x in v) for k, v in prov.treatments.items()):
        return "Provenance.treatments must map treatment names to mappings of strings"
    if prov.master_seed < 0 or prov.replicates < 0:
        return f"Provenance: master_seed {prov.master_seed} and replicates {prov.replicates} must be >= 0"
    if not all(isinstance(v, str) for v in prov.versions.values()):
        return "Provenance.versions must map names to version strings"
    return None


def check_header(data: object, source: str) -> dict[str, Any]:
    """The parsed header of a saved result, each field checked; ResultsError naming ``source`` if it is not one."""
    if not isinstance(data, Mapping):
        msg = f"{source}: not a pytest-crystallize result (its header is a {type(data).__name__}, not an object)"
        raise ResultsError(msg)
    if data.get("format") != FORMAT:
        msg = f"{source}: not a pytest-crystallize result (format {data.get('format')!r})"
        raise ResultsError(msg)
    if data.get("version") != FORMAT_VERSION:
        msg = (
            f"{source}: result format version {data.get('version')!r} is not supported "
            f"by this version of pytest-crystallize (expects {FORMAT_VERSION})"
        )
        raise ResultsError(msg)
    try:
        header = {
            "experiment": data["experiment"],
            "conditions": tuple(data["conditions"]),
            "metrics": tuple(data["metrics"]),
            "errors": tuple(ReplicateError.from_dict(e) for e in data["errors"]),
            "verdicts": tuple(Verdict.from_dict(v) for v in data["verdicts"]),
            "provenance": Provenance.from_dict(data["provenance"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"{source}: malformed result header ({type(exc).__name__}: {exc})"
        raise ResultsError(msg) from None
    problem = _header_problem(header)
    if problem is not None:
        msg = f"{source}: malformed result header ({problem})"
        raise ResultsError(msg)
    return header


def _is_json_object(text: object) -> bool:
    try:
        return isinstance(text, str) and isinstance(load_strict_json(text), dict)
    except ValueError:
        return False


_NO_UPPER: Final = 2**63  # int64's


def _integers(values: Any, name: str, upper: int | None) -> np.ndarray:
    """``values`` as integers in ``[0, upper)`` (``upper=None``: any int64), their dtype kept; ValueError says why not.

    Arrays read from Parquet are read-only and of the result's dtypes, so
    the result shares them rather than copying.
    """
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "iu":
        msg = f"column {name!r} holds {array.dtype} values, expected integers"
        raise ValueError(msg)
    if not array.size:
        return array.astype(np.int64)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= (_NO_UPPER if upper is None else upper):
        allowed = ">= 0 (64-bit)" if upper is None else f"between 0 and {upper - 1} (codes into its table of {upper})"
        msg = f"column {name!r} holds values from {low} to {high}, expected {allowed}"
        raise ValueError(msg)
    return array


def build_result(cls: type[ExperimentResult], columns: Mapping[str, Any], header: Mapping[str, Any],
           source: str) -> ExperimentResult:
    """A result from loaded columns, checking codes against the header's tables and the tags."""
    try:
        codes = _integers(columns["condition"], "condition", len(header["conditions"]))
        metric_codes = _integers(columns["metric"], "metric", len(header["metrics"]))
        replicates = _integers(columns["replicate"], "replicate", None)
        values = np.asarray(columns["value"])
        if values.size and values.dtype.kind != "f":
            msg = f"column 'value' holds {values.dtype} values, expected floats"
            raise ValueError(msg)
        tags = tuple(columns["tags"])
        texts = columns.get("tag_texts")
        for tag in ({t for t in tags if t is not None} if texts is None else texts):
            if not _is_json_object(tag):
                msg = f"tags must be JSON object text or null, got {tag!r:.60}"
                raise ValueError(msg)
    except (TypeError, ValueError) as exc:
        msg = f"{source}: malformed records ({exc})"
        raise ResultsError(msg) from None
    for column in (codes, replicates, metric_codes, values):
        column.setflags(write=False)  # made here (or read-only already): the result shares, not copies, them
    try:
        return cls(condition_codes=codes, replicates=replicates, metric_codes=metric_codes, values=values,
                   tags=tags, **header)
    except ResultsError as exc:
        msg = f"{source}: {exc}"
        raise ResultsError(msg) from None
