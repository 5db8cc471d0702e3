"""Results as pandas DataFrames, for notebooks and scripts: the summary table and the verdicts.

Both frames are built from the report payload's digest
(:func:`~pytest_crystallize.core.report.text.summarize`), the one the
terminal table shows, so a notebook and the terminal never disagree and no
statistic is computed twice. pandas is imported when a frame is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SUMMARY_COLUMNS", "VERDICT_COLUMNS", "summary_frame", "verdicts_frame"]

#: The summary frame's columns, in the order of the terminal table.
SUMMARY_COLUMNS: Final = ("condition", "metric", "n", "mean", "std", "ci_low", "ci_high", "difference", "p", "verdict")
#: The verdict fields every verdicts frame starts with; the statistics' details follow.
VERDICT_COLUMNS: Final = (
    "hypothesis", "metric", "treatment", "direction", "holds", "difference", "p_value", "p_adjusted", "alpha",
    "test", "n_baseline", "n_treatment", "mean_baseline", "mean_treatment", "reason",
)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _outcomes(row: Mapping[str, Any]) -> tuple[Any, str]:
    """The row's adjusted p-value and verdict: one value, or a tuple and words when several hypotheses test it."""
    p = tuple(_number(v) for v in row["p"])
    verdict = " ".join("PASS" if ok else "FAIL" for ok in row["verdict"])
    if len(p) <= 1:
        return (p[0] if p else math.nan), verdict
    return p, verdict


def summary_frame(summary: Mapping[str, Any]) -> pd.DataFrame:
    """One row per condition and metric, like the terminal table.

    ``summary`` is a report payload's digest. Columns: :data:`SUMMARY_COLUMNS`;
    ``difference`` is the treatment's mean minus the baseline's (NaN for the
    baseline); ``p`` the adjusted p-value and ``verdict`` ``"PASS"`` or
    ``"FAIL"`` of the hypothesis on that metric for that treatment (NaN and
    ``""`` where none; a tuple of p-values and ``"PASS FAIL"`` when several
    hypotheses test one metric).
    """
    import pandas as pd

    records = []
    for row in summary["rows"]:
        p, verdict = _outcomes(row)
        records.append({
            "condition": row["condition"], "metric": row["metric"], "n": int(row["n"]),
            **{key: _number(row[key]) for key in ("mean", "std", "ci_low", "ci_high", "difference")},
            "p": p, "verdict": verdict,
        })
    return pd.DataFrame.from_records(records, columns=list(SUMMARY_COLUMNS))


def _flat(details: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings flattened into ``outer.inner`` keys; other values as they are."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def verdicts_frame(verdicts: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per hypothesis and treatment with every field of its verdict.

    ``verdicts`` are verdicts as plain dicts (``Verdict.to_dict()``).
    Columns: :data:`VERDICT_COLUMNS`, then every key of the statistics'
    details (the interval ``ci_low``/``ci_high``, ``effect_size``, ``paired``,
    ...; nested ones as ``sequential.look``), in order of first appearance.
    A detail that a comparison column already holds under the same name is
    not repeated.
    """
    import pandas as pd

    records = []
    detail_columns: dict[str, None] = {}
    for verdict in verdicts:
        details = _flat(verdict.get("details") or {})
        record = {column: verdict.get(column) for column in VERDICT_COLUMNS}
        for key, value in details.items():
            if key not in record:
                record[key] = value
                detail_columns.setdefault(key)
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[*VERDICT_COLUMNS, *detail_columns])
    for column in ("difference", "p_value", "p_adjusted", "mean_baseline", "mean_treatment"):
        frame[column] = frame[column].astype(float)  # None (a verdict without a test) reads as NaN
    return frame
