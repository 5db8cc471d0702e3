"""The result of one experiment run: columnar values, errors, verdicts, provenance.

Values are held column-wise (numpy arrays plus code tables), never as one
Python dict per value, and convert to a pandas DataFrame, JSON and Parquet.
Loading JSON or Parquet back gives an equal result, value for value.
pandas and pyarrow are imported only by the methods that need them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.hypotheses import Verdict
from pytest_crystallize.core.nesting import load_strict_json
from pytest_crystallize.core.seeds import replicate_seed
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from pytest_crystallize.core.vocabulary import PlotKind

__all__ = ["FORMAT", "ExperimentResult", "Provenance", "ReplicateError"]

#: Identifies our JSON documents and Parquet metadata; bump the version on change.
FORMAT: Final = "pytest-crystallize/result"
FORMAT_VERSION: Final = 1
_PARQUET_KEY: Final = b"pytest_crystallize"


def _plain(obj: Any) -> dict[str, Any]:
    """Fields of a slotted dataclass as a dict of plain values."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


@dataclass(frozen=True, slots=True)
class ReplicateError:
    """An exception raised while running one replicate of one condition."""

    condition: str
    replicate: int
    error_type: str
    message: str
    traceback: str
    step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicateError:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)

    @property
    def headline(self) -> str:
        """One line: where it happened and what it was."""
        where = f"condition {self.condition!r}, replicate {self.replicate}"
        if self.step:
            where += f", step {self.step!r}"
        return f"{where}: {self.error_type}: {self.message}"


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a result came from: seeds, sizes, versions, times."""

    experiment: str
    master_seed: int
    replicates: int
    conditions: tuple[str, ...]
    treatments: Mapping[str, Mapping[str, str]]
    alpha: float
    correction: str
    started_at: str
    duration_s: float
    versions: Mapping[str, str] = field(default_factory=dict)
    seed_scheme: str = "numpy.random.SeedSequence(master_seed, spawn_key=(replicate,)), first uint32"
    #: Sequential designs only: the most replicates allowed, planned looks, looks taken.
    max_replicates: int | None = None
    looks: int | None = None
    looks_taken: int | None = None
    #: Anytime designs only (``replicates="anytime"``): tested after every replicate.
    anytime: bool = False
    #: What stopped the run before its design would have (``"budget"``), or None.
    stopped_by: str | None = None
    #: Sequential designs only: replicate tasks (condition x replicate) run; fewer than ``replicates x
    #: conditions`` when an adaptive sweep dropped treatments.
    tasks_run: int | None = None
    #: Resumed runs only: replicate tasks taken from the journal of an interrupted run, not run again.
    resumed: int | None = None
    #: What the journal said when resuming (parts discarded, and why).
    journal_notes: tuple[str, ...] = ()
    #: The resampling design the replicates followed (``"cv(k=10, repeats=10)"``), if one was declared.
    design: str | None = None
    #: Datasources that handed several replicates identical data without a declared design.
    shared_data: tuple[str, ...] = ()
    #: Chained experiments only: which conditions read an upstream's baseline, and why.
    upstream_notes: tuple[str, ...] = ()
    #: How the replicates ran, as the execution backend said (a pool too small to gain, a cluster).
    execution: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", tuple(self.conditions))
        object.__setattr__(self, "journal_notes", tuple(self.journal_notes))
        object.__setattr__(self, "shared_data", tuple(self.shared_data))
        object.__setattr__(self, "upstream_notes", tuple(self.upstream_notes))
        object.__setattr__(self, "execution", tuple(self.execution))
        object.__setattr__(
            self, "treatments",
            MappingProxyType({k: MappingProxyType(dict(v)) for k, v in self.treatments.items()}),
        )
        object.__setattr__(self, "versions", MappingProxyType(dict(self.versions)))

    def replicate_seeds(self) -> tuple[int, ...]:
        """The seed every condition's replicate ``r`` ran with, for each ``r``."""
        return tuple(replicate_seed(self.master_seed, r) for r in range(self.replicates))

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        out = _plain(self)
        out["treatments"] = {k: dict(v) for k, v in self.treatments.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Rebuild from :meth:`to_dict` output."""
        return cls(**data)


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    if isinstance(array, np.ndarray) and array.dtype == dtype and not array.flags.writeable:
        return array  # already read-only: share it (a result's copies, the runner's columns)
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


def _encode_value(value: float) -> float | str | None:
    # Strict JSON has no NaN or infinity; keep them recoverable.
    if math.isfinite(value):
        return value
    return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


@dataclass(frozen=True, slots=True, eq=False)
class ExperimentResult:
    """Everything one run of one experiment produced.

    One record per recorded value: ``condition_codes`` index ``conditions``,
    ``metric_codes`` index ``metrics``, ``tags`` holds JSON object strings or
    ``None``. Arrays are read-only. ``artifacts`` maps ``(condition,
    replicate)`` to what that replicate left in ``ctx.artifacts``, kept only
    when the run was asked to (``keep_artifacts=True``, an upstream of a
    chained experiment; else None); they stay in memory and are not part of
    the JSON, the Parquet file or equality.
    """

    experiment: str
    conditions: tuple[str, ...]
    metrics: tuple[str, ...]
    condition_codes: np.ndarray
    replicates: np.ndarray
    metric_codes: np.ndarray
    values: np.ndarray
    tags: tuple[str | None, ...]
    errors: tuple[ReplicateError, ...]
    verdicts: tuple[Verdict, ...]
    provenance: Provenance
    artifacts: Mapping[tuple[str, int], Mapping[str, bytes | str]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "condition_codes", _frozen(self.condition_codes, np.int32))
        object.__setattr__(self, "replicates", _frozen(self.replicates, np.int64))
        object.__setattr__(self, "metric_codes", _frozen(self.metric_codes, np.int32))
        object.__setattr__(self, "values", _frozen(self.values, np.float64))
        for name in ("conditions", "metrics", "tags", "errors", "verdicts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        sizes = {len(self.condition_codes), len(self.replicates), len(self.metric_codes),
                 len(self.values), len(self.tags)}
        if len(sizes) != 1:
            msg = f"result columns of {self.experiment!r} have different lengths {sorted(sizes)}"
            raise ResultsError(msg)

    # -- questions ----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExperimentResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable-looking arrays: unhashable like a list

    @property
    def passed(self) -> bool:
        """True when no replicate failed and every hypothesis holds."""
        return not self.errors and all(v.holds for v in self.verdicts)

    def select(self, metric: str, condition: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(replicates, values)`` of ``metric`` in ``condition``, in record order."""
        mask = np.zeros(len(self.values), dtype=bool)
        if metric in self.metrics and condition in self.conditions:
            mask = (self.metric_codes == self.metrics.index(metric)) & (
                self.condition_codes == self.conditions.index(condition)
            )
        return self.replicates[mask], self.values[mask]

    # -- for people: notebooks and scripts (rendered by core.report.notebook) ------
    def __repr__(self) -> str:
        from pytest_crystallize.core.report.notebook import result_repr

        return result_repr(self)

    def summary(self) -> pd.DataFrame:
        """The terminal table as a DataFrame: one row per condition and metric (n, mean, std, CI, diff, p, verdict)."""
        from pytest_crystallize.core.report.notebook import result_summary

        return result_summary(self)

    def verdicts_frame(self) -> pd.DataFrame:
        """One row per hypothesis and treatment, with every field of its verdict and its statistics."""
        from pytest_crystallize.core.report.notebook import result_verdicts

        return result_verdicts(self)

    def plot(self, metric: str, kind: PlotKind = "values") -> Figure:
        """A matplotlib figure of ``metric`` (``kind``: values, difference, paired, sweep); needs the report extra."""
        from pytest_crystallize.core.report.notebook import result_figure

        return result_figure(self, metric, kind)

    def _repr_html_(self) -> str:
        from pytest_crystallize.core.report.notebook import result_html

        return result_html(self)

    # -- conversions ----------------------------------------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """One row per recorded value: experiment, condition, replicate, metric, value, tags.

        ``tags`` holds each value's tags as a dict (None without tags); rows
        recorded with the same tags share one dict, each distinct set decoded
        once: copy a row's tags before changing them.
        """
        import pandas as pd

        decoded: dict[str | None, Any] = {text: json.loads(text) for text in set(self.tags) if text is not None}
        return pd.DataFrame({
            "experiment": self.experiment,
            "condition": pd.Categorical.from_codes(self.condition_codes, categories=pd.Index(self.conditions)),
            "replicate": self.replicates,
            "metric": pd.Categorical.from_codes(self.metric_codes, categories=pd.Index(self.metrics)),
            "value": self.values,
            "tags": list(map(decoded.get, self.tags)),
        })

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "experiment": self.experiment,
            "conditions": list(self.conditions),
            "metrics": list(self.metrics),
            "errors": [e.to_dict() for e in self.errors],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "provenance": self.provenance.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict; records are stored column-wise."""
        out = self._header()
        out["records"] = {
            "condition": self.condition_codes.tolist(),
            "replicate": self.replicates.tolist(),
            "metric": self.metric_codes.tolist(),
            "value": [_encode_value(v) for v in self.values.tolist()],
            "tags": list(self.tags),
        }
        return out

    def to_json(self, path: str | Path | None = None, *, indent: int | None = None) -> str:
        """Return the result as strict JSON text, and write it to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_parquet(self, path: str | Path) -> None:
        """Write the records to Parquet; everything else goes in the file's metadata."""
        from pytest_crystallize.core.arrow_columns import write_parquet

        write_parquet(self, Path(path), {_PARQUET_KEY: json.dumps(self._header(), allow_nan=False).encode()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "result") -> ExperimentResult:
        """Rebuild a result from :meth:`to_dict` output; ``source`` names it in errors."""
        header = _check_header(data, source)
        records = data.get("records")
        if not isinstance(records, Mapping):
            msg = f"{source}: no 'records' table; is this a pytest-crystallize result?"
            raise ResultsError(msg)
        try:
            columns = {
                "condition": records["condition"], "replicate": records["replicate"], "metric": records["metric"],
                "value": np.array([_decode_value(v) for v in records["value"]], dtype=np.float64),
                "tags": records["tags"],
            }
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{source}: malformed records ({type(exc).__name__}: {exc})"
            raise ResultsError(msg) from None
        return _build(cls, columns, header, source)

    @classmethod
    def from_json(cls, path: str | Path) -> ExperimentResult:
        """Load a result written by :meth:`to_json`."""
        path = Path(path)
        try:
            data = load_strict_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            msg = f"{path}: no such result file"
            raise ResultsError(msg) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            msg = f"{path}: not a readable JSON result ({exc})"
            raise ResultsError(msg) from None
        if not isinstance(data, Mapping):
            msg = f"{path}: expected a JSON object, got {type(data).__name__}"
            raise ResultsError(msg)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_parquet(cls, path: str | Path) -> ExperimentResult:
        """Load a result written by :meth:`to_parquet`."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from pytest_crystallize.core.arrow_columns import tags_from_column

        path = Path(path)
        try:
            # One file, read whole: columns of one chunk each (shared, not copied), tags as codes into
            # their distinct texts (each text made once).
            try:
                with pq.ParquetFile(path, read_dictionary=["tags"]) as file:
                    table = file.read()
            except KeyError:  # no tags column, so not ours: read it as it is, and say below what it lacks
                table = pq.read_table(path)
        except FileNotFoundError:
            msg = f"{path}: no such result file"
            raise ResultsError(msg) from None
        except (OSError, pa.ArrowException) as exc:
            msg = f"{path}: not a readable Parquet result ({exc})"
            raise ResultsError(msg) from None
        raw = (table.schema.metadata or {}).get(_PARQUET_KEY)
        if raw is None:
            msg = f"{path}: Parquet file without pytest-crystallize metadata"
            raise ResultsError(msg)
        try:
            header = load_strict_json(raw)
            columns = {
                "condition": table.column("condition").combine_chunks().indices.to_numpy(),
                "replicate": table.column("replicate").to_numpy(),
                "metric": table.column("metric").combine_chunks().indices.to_numpy(),
                "value": table.column("value").to_numpy(),
            }
            columns["tags"], columns["tag_texts"] = tags_from_column(table.column("tags"))
        except (KeyError, ValueError, AttributeError, pa.ArrowException) as exc:
            msg = f"{path}: malformed Parquet result ({exc})"
            raise ResultsError(msg) from None
        return _build(cls, columns, _check_header(header, str(path)), str(path))


def _decode_value(value: float | str | None) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        msg = f"value {value!r} is not a number"
        raise TypeError(msg)
    return float(value)


#: Checks of field annotations (strings: this module uses postponed annotations).
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


def _check_header(data: object, source: str) -> dict[str, Any]:
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


def _build(cls: type[ExperimentResult], columns: Mapping[str, Any], header: Mapping[str, Any],
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
