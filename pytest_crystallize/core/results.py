"""The result of one experiment run: columnar values, errors, verdicts, provenance.

Values are held column-wise (numpy arrays plus code tables), never as one
Python dict per value, and convert to a pandas DataFrame, JSON and Parquet.
Loading JSON or Parquet back gives an equal result, value for value.
pandas and pyarrow are imported only by the methods that need them.
The records beside the values are :mod:`~pytest_crystallize.core.provenance`
(``Provenance`` and ``ReplicateError`` are importable from here too); the
saved form's header and its checks are :mod:`~pytest_crystallize.core.result_format`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.hypotheses import Verdict
from pytest_crystallize.core.nesting import load_strict_json
from pytest_crystallize.core.provenance import Provenance, ReplicateError
from pytest_crystallize.core.result_format import (
    FORMAT,
    FORMAT_VERSION,
    PARQUET_KEY,
    build_result,
    check_header,
    decode_value,
    encode_value,
)
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from pytest_crystallize.core.vocabulary import PlotKind

__all__ = ["FORMAT", "ExperimentResult", "Provenance", "ReplicateError"]


def _frozen(array: Any, dtype: Any) -> np.ndarray:
    if isinstance(array, np.ndarray) and array.dtype == dtype and not array.flags.writeable:
        return array  # already read-only: share it (a result's copies, the runner's columns)
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


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
            "value": [encode_value(v) for v in self.values.tolist()],
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

        write_parquet(self, Path(path), {PARQUET_KEY: json.dumps(self._header(), allow_nan=False).encode()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "result") -> ExperimentResult:
        """Rebuild a result from :meth:`to_dict` output; ``source`` names it in errors."""
        header = check_header(data, source)
        records = data.get("records")
        if not isinstance(records, Mapping):
            msg = f"{source}: no 'records' table; is this a pytest-crystallize result?"
            raise ResultsError(msg)
        try:
            columns = {
                "condition": records["condition"], "replicate": records["replicate"], "metric": records["metric"],
                "value": np.array([decode_value(v) for v in records["value"]], dtype=np.float64),
                "tags": records["tags"],
            }
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{source}: malformed records ({type(exc).__name__}: {exc})"
            raise ResultsError(msg) from None
        return build_result(cls, columns, header, source)

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
        raw = (table.schema.metadata or {}).get(PARQUET_KEY)
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
        return build_result(cls, columns, check_header(header, str(path)), str(path))
