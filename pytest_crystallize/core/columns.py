"""Recorded values handed over as columns, and the columns of several batches merged.

:class:`Columns` is what a :class:`~pytest_crystallize.core.sink.MetricSink`
hands the runner: read-only numpy arrays, one entry per value, plus the
tables their codes index. :func:`merge_columns` puts the columns of several
batches (worker processes, threads, a journal) into the serial record
order. A leaf module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np

__all__ = ["NO_TAGS", "Columns", "frozen", "merge_columns"]

#: The tag code of a value recorded without tags.
NO_TAGS: Final = -1


def frozen(array: np.ndarray) -> np.ndarray:
    """``array``, made read-only (a result shares read-only arrays instead of copying them)."""
    array.setflags(write=False)
    return array


@dataclass(frozen=True, slots=True)
class Columns:
    """Recorded values as read-only numpy arrays, one entry per value.

    ``metric`` indexes ``metric_names``; ``tag`` indexes ``tag_texts`` (JSON
    object text), :data:`NO_TAGS` for a value without tags.
    """

    condition: np.ndarray
    replicate: np.ndarray
    metric: np.ndarray
    value: np.ndarray
    tag: np.ndarray
    metric_names: tuple[str, ...]
    tag_texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.value)

    def tags(self) -> tuple[str | None, ...]:
        """Each value's tags as JSON object text, or None."""
        import numpy as np

        if not self.tag_texts:
            return (None,) * len(self.tag)
        table = np.array([*self.tag_texts, None], dtype=object)  # NO_TAGS (-1) picks the None
        return tuple(table.take(self.tag).tolist())  # take: a sixth quicker than indexing


def _empty() -> Columns:
    import numpy as np

    def column(dtype: Any) -> np.ndarray:
        return frozen(np.empty(0, dtype=dtype))

    return Columns(column(np.int32), column(np.int64), column(np.int32), column(np.float64), column(np.int32), (), ())


def _recoded(codes: np.ndarray, table: Sequence[str], index: Mapping[str, int]) -> np.ndarray:
    """``codes`` into ``table`` as codes into the merged table ``index``; NO_TAGS (-1) stays -1."""
    import numpy as np

    recode = np.array([*(index[name] for name in table), NO_TAGS], dtype=np.int32)
    return np.asarray(recode[codes])


def merge_columns(parts: Sequence[Columns]) -> Columns:
    """Merge batches' columns into the serial record order, re-coding metrics and tags to one table each.

    Serial order is task order, ``(replicate, condition)``, and record order
    within a task; a stable sort restores it whatever the batches' order, so
    every backend gives the same result, metric codes included (numbered in
    order of first record, as a serial run numbers them).
    """
    import numpy as np

    if not parts:
        return _empty()
    if len(parts) == 1:
        return parts[0]
    names = sorted({name for part in parts for name in part.metric_names})
    texts = sorted({text for part in parts for text in part.tag_texts})
    name_index = {name: i for i, name in enumerate(names)}
    text_index = {text: i for i, text in enumerate(texts)}
    condition = np.concatenate([p.condition for p in parts])
    replicate = np.concatenate([p.replicate for p in parts])
    key = replicate * (int(condition.max(initial=0)) + 1) + condition
    order = None if bool(np.all(key[1:] >= key[:-1])) else np.argsort(key, kind="stable")
    del key
    metric = np.concatenate([_recoded(p.metric, p.metric_names, name_index) for p in parts])
    value = np.concatenate([p.value for p in parts])
    tag = np.concatenate([_recoded(p.tag, p.tag_texts, text_index) for p in parts])
    if order is not None:
        condition, replicate, metric, value, tag = (c[order] for c in (condition, replicate, metric, value, tag))
    # Number metrics by first record, as a serial run does.
    present, first = np.unique(metric, return_index=True)
    by_first = present[np.argsort(first, kind="stable")]
    renumber = np.full(len(names), -1, dtype=np.int32)
    renumber[by_first] = np.arange(len(by_first), dtype=np.int32)
    return Columns(frozen(condition), frozen(replicate), frozen(renumber[metric]), frozen(value), frozen(tag),
                   tuple(names[i] for i in by_first), tuple(texts))
