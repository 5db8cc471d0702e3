"""The run's columnar store of recorded values.

Every ``ctx.metrics.add`` and ``ctx.record`` of a run (or of one worker's
batch) lands in a :class:`MetricSink`. A value costs three list appends
(metric code, value, tag code): the condition and replicate are kept once
per *segment*, a stretch of values one replicate recorded, since a sink is
filled one replicate at a time. Every ``CHUNK`` values the lists become
compact numpy arrays (16 bytes a value), so a million values never sit in
Python objects. Tags are interned: a tag set is JSON-encoded the first time
it is seen, and the same set recorded again is found in
:attr:`MetricSink.tag_trie`, a few dictionary lookups per key.

:meth:`MetricSink.columns` hands the values over as
:class:`~pytest_crystallize.core.columns.Columns`, numpy arrays the result
takes without copying. Contexts, batches, the runner and the journal share
it.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.columns import NO_TAGS, Columns, frozen
from pytest_crystallize.errors import MetricError

if TYPE_CHECKING:
    import numpy as np

    from pytest_crystallize.core.context import FrozenContext

__all__ = ["CHUNK", "MetricSink", "Recorder", "as_number", "check_metric_name"]

#: Values kept in Python lists before they become numpy arrays.
CHUNK: Final = 1 << 16
#: Tag value types whose equality, type for type, implies equal JSON (float zeros aside: see _cache_tags).
_SCALAR_TYPES: Final = frozenset({str, type(None), int, bool, float})


def as_number(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise :class:`MetricError` naming ``name``."""
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)  # type: ignore[arg-type]  # checked just above
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        # A 0-d numpy array: np.float32(1.5) arrives here on some versions.
        try:
            return float(value)  # type: ignore[arg-type]  # 0-d arrays convert
        except (TypeError, ValueError):
            pass
    msg = (
        f"metric {name!r} got a value of type {kind.__name__} ({value!r:.60}); "
        f"metrics must be real numbers (int, float, bool or a numpy scalar): "
        f"record a number, e.g. ctx.metrics.add({name!r}, float(x))"
    )
    raise MetricError(msg)


def check_metric_name(name: object) -> str:
    """Return ``name`` if it is a non-empty string, else raise :class:`MetricError`."""
    if type(name) is not str or not name:
        msg = f"metric names must be non-empty strings, got {name!r}"
        raise MetricError(msg)
    return name


class MetricSink:
    """Columnar store of every value recorded during one run (or one batch).

    Owned and mutated by one runner or one worker batch, filled one
    replicate at a time; :meth:`columns` reads it (as often as needed: a
    sequential run reads it at every look). Recording goes through a
    replicate's :class:`Recorder` (the hot path, tags coded by
    :meth:`tags_code`) or :meth:`append` (the journal's).
    """

    __slots__ = (
        "_chunk_total",
        "_chunks",
        "_metric",
        "_owner",
        "_seg_condition",
        "_seg_replicate",
        "_seg_start",
        "_tag",
        "_value",
        "metric_codes",
        "tag_codes",
        "tag_texts",
        "tag_trie",
    )

    def __init__(self) -> None:
        #: Metric name -> code, in order of first record.
        self.metric_codes: dict[str, int] = {}
        #: Tag JSON text -> code, and the texts in code order.
        self.tag_codes: dict[str, int] = {}
        self.tag_texts: list[str] = []
        #: Tag sets coded before, to code them again without JSON: a trie with one level per key, in
        #: the set's order, where ``node[key][type(value)][value]`` is the next node and ``node[None]``
        #: the code of the set ending there (see :meth:`_cache_tags` for which sets enter it). Public
        #: because ``FrozenContext.record`` walks it inline, for speed.
        self.tag_trie: dict[Any, Any] = {}
        # Values not yet in a chunk.
        self._metric: list[int] = []
        self._value: list[float] = []
        self._tag: list[int] = []
        #: ``(metric, value, tag)`` numpy arrays of earlier values, oldest first.
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._chunk_total = 0
        # Segments: from value index ``start`` on, values belong to ``(condition, replicate)``.
        self._seg_condition: list[int] = []
        self._seg_replicate: list[int] = []
        self._seg_start: list[int] = []
        #: The recorder whose segment is open (see :meth:`Recorder.add`).
        self._owner: object = None

    def __len__(self) -> int:
        return self._chunk_total + len(self._value)

    def __getstate__(self) -> dict[str, Any]:
        self._flush()  # ship compact arrays, not lists of floats
        return {name: getattr(self, name) for name in self.__slots__ if name not in ("_owner", "tag_trie")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self._owner = None
        self.tag_trie = {}

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Metric names in code order."""
        return tuple(self.metric_codes)

    # -- recording ----------------------------------------------------------------
    def append(self, condition: int, replicate: int, name: str, value: float, tags: str | None) -> None:
        """Record one value; ``tags`` is a JSON object text or ``None`` (the journal's path)."""
        tag = NO_TAGS if tags is None else self._text_code(tags)
        same = bool(self._seg_start) and self._seg_condition[-1] == condition and self._seg_replicate[-1] == replicate
        if not same:  # values of one replicate: one segment
            self.open((condition, replicate), condition, replicate)
        self._metric.append(self.metric_code(name))
        self._value.append(value)
        self._tag.append(tag)
        if len(self._value) >= CHUNK:
            self._flush()

    def metric_code(self, name: str) -> int:
        """The code of the metric ``name``, given one on first use (a MetricError for a bad name)."""
        code = self.metric_codes.get(name) if type(name) is str else None
        if code is None:
            code = self.metric_codes[check_metric_name(name)] = len(self.metric_codes)
        return code

    def tags_code(self, name: str, tags: Mapping[str, Any]) -> int:
        """The code of the tag set ``tags`` recorded with ``name``, when :attr:`tag_trie` does not have it.

        Encoded as JSON, given a code on first use, and entered in the trie
        when it can be (see :meth:`_cache_tags`); ``ctx.record`` looks there
        first. Raises MetricError, naming ``name``, for tags that are not a
        mapping of names to JSON-serialisable values.
        """
        try:
            plain = tags if type(tags) is dict else dict(tags)
            text = json.dumps(plain, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            msg = f"tags of metric {name!r} must be a mapping of names to JSON-serialisable values: {exc}"
            raise MetricError(msg) from None
        code = self._text_code(text)
        if type(tags) is dict:
            self._cache_tags(tags, code)
        return code

    def _cache_tags(self, tags: dict[Any, Any], code: int) -> None:
        """Enter ``tags`` in :attr:`tag_trie`, when finding it again by equality implies the same JSON text.

        Only string keys and string, number, boolean or null values qualify.
        Values are looked up under their type, so 1, 1.0 and True (equal, but
        encoded apart) are entered apart. Float zeros never qualify (0.0 and
        -0.0 are equal but encode apart).
        """
        if not all(type(k) is str and type(v) in _SCALAR_TYPES for k, v in tags.items()):
            return
        if any(type(v) is float and v == 0.0 for v in tags.values()):
            return
        node = self.tag_trie
        for key, value in tags.items():
            node = node.setdefault(key, {}).setdefault(type(value), {}).setdefault(value, {})
        node[None] = code

    def _text_code(self, text: str) -> int:
        """The code of the tags' JSON ``text``, given one on first use."""
        code = self.tag_codes.get(text)
        if code is None:
            code = self.tag_codes[text] = len(self.tag_texts)
            self.tag_texts.append(text)
        return code

    def open(self, owner: object, condition: int, replicate: int) -> int:
        """Start the segment of ``owner``, the recorder of replicate ``(condition, replicate)``; return its start.

        A recorder opens its segment when it is made, so recording its first
        value finds it open; a value recorded by another owner in between
        opens a new one (see :meth:`Recorder.add`). An empty segment is reused.
        """
        start = self._chunk_total + len(self._value)
        if self._seg_start and self._seg_start[-1] == start:  # the last segment is empty: reuse it
            self._seg_condition[-1], self._seg_replicate[-1] = condition, replicate
        else:
            self._seg_condition.append(condition)
            self._seg_replicate.append(replicate)
            self._seg_start.append(start)
        self._owner = owner
        return start

    def _flush(self) -> None:
        """Move the values held in lists into a chunk of numpy arrays."""
        if not self._value:
            return
        import numpy as np

        chunk = (_array(self._metric, np.int32), _array(self._value, np.float64), _array(self._tag, np.int32))
        self._chunks.append(chunk)
        self._chunk_total += len(self._value)
        self._metric, self._value, self._tag = [], [], []

    def extend(self, other: MetricSink) -> None:
        """Append ``other``'s values after this sink's, in their order (its metric and tag codes re-coded).

        Joins the batches of consecutive tasks into one, as if one sink had
        recorded them all.
        """
        import numpy as np

        self._flush()
        other._flush()
        metric_codes = [self.metric_code(name) for name in other.metric_names]
        tag_codes = [*map(self._text_code, other.tag_texts)]
        # Codes that stay the same (a batch of the same run's next tasks, most often) are not re-coded.
        metric_map = None if metric_codes == list(range(len(metric_codes))) else np.array(metric_codes, dtype=np.int32)
        tag_map = None if tag_codes == list(range(len(tag_codes))) else np.array([*tag_codes, NO_TAGS], dtype=np.int32)
        offset = len(self)
        for metric, value, tag in other._chunks:
            self._chunks.append((
                metric if metric_map is None else metric_map[metric], value, tag if tag_map is None else tag_map[tag]
            ))
            self._chunk_total += len(value)
        self._seg_condition += other._seg_condition
        self._seg_replicate += other._seg_replicate
        self._seg_start += [start + offset for start in other._seg_start]
        self._owner = None

    # -- reading ------------------------------------------------------------------
    def tasks(self) -> set[tuple[int, int]]:
        """``(condition, replicate)`` of every replicate that recorded a value."""
        ends = [*self._seg_start[1:], len(self)][:len(self._seg_start)]
        return {(c, r) for c, r, start, end in zip(self._seg_condition, self._seg_replicate, self._seg_start, ends,
                                                  strict=True) if end > start}

    def values_of(self, condition: int, replicate: int, start: int = 0) -> list[tuple[str, float]]:
        """``(metric name, value)`` the replicate ``(condition, replicate)`` recorded from index ``start`` on."""
        names = self.metric_names
        columns = self.columns(start)
        out = []
        for c, r, code, value in zip(columns.condition.tolist(), columns.replicate.tolist(),
                                     columns.metric.tolist(), columns.value.tolist(), strict=True):
            if c == condition and r == replicate:
                out.append((names[code], value))
        return out

    def columns(self, start: int = 0) -> Columns:
        """The values from index ``start`` on, as read-only arrays (all of them: shared, not copied)."""
        import numpy as np

        self._flush()
        if start == 0 and len(self._chunks) > 1:
            # One chunk from now on: later reads (a sequential run's looks) share it. Column by
            # column, dropping each old column as it is copied, so memory grows by one column at most.
            pieces: list[list[np.ndarray | None]] = [list(chunk) for chunk in self._chunks]
            self._chunks = []
            merged = []
            for column in range(3):
                merged.append(np.concatenate([piece[column] for piece in pieces]))
                for piece in pieces:
                    piece[column] = None
            self._chunks = [(merged[0], merged[1], merged[2])]
        metric, value, tag = self._range(start)
        condition, replicate = self._segment_columns(start)
        return Columns(frozen(condition), frozen(replicate), frozen(metric), frozen(value), frozen(tag),
                       self.metric_names, tuple(self.tag_texts))

    def _range(self, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        if len(self._chunks) == 1 and start == 0:
            return tuple(column[:] for column in self._chunks[0])  # type: ignore[return-value]  # three views
        parts: list[tuple[np.ndarray, ...]] = []
        offset = 0
        for chunk in self._chunks:
            size = len(chunk[1])
            if offset + size > start:
                parts.append(tuple(column[max(0, start - offset):] for column in chunk))
            offset += size
        if not parts:
            empty = np.empty(0, dtype=np.int32)
            return empty, np.empty(0, dtype=np.float64), empty.copy()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    def _segment_columns(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Condition and replicate of every value from ``start`` on, expanded from the segments."""
        import numpy as np

        total = len(self)
        starts = _array(self._seg_start, np.int64)
        ends = np.append(starts[1:], total)[:len(starts)]
        lengths = np.clip(ends, start, None) - np.clip(starts, start, None)
        condition = np.repeat(_array(self._seg_condition, np.int32), lengths)
        replicate = np.repeat(_array(self._seg_replicate, np.int64), lengths)
        return condition, replicate

    # -- forgetting ---------------------------------------------------------------
    def drop_unfinished(self, condition: int, replicate: int) -> None:
        """Forget the values the replicate ``(condition, replicate)`` recorded: it did not finish.

        Its values are the newest ones (a sink is filled one replicate at a time).
        """
        keep = len(self)
        while (self._seg_start and self._seg_condition[-1] == condition
               and self._seg_replicate[-1] == replicate):
            keep = self._seg_start.pop()
            self._seg_condition.pop()
            self._seg_replicate.pop()
        self._owner = None
        self._truncate(keep)

    def _truncate(self, keep: int) -> None:
        if keep >= self._chunk_total:
            del self._metric[keep - self._chunk_total:]
            del self._value[keep - self._chunk_total:]
            del self._tag[keep - self._chunk_total:]
            return
        self._metric, self._value, self._tag = [], [], []
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        offset = 0
        for chunk in self._chunks:
            size = len(chunk[1])
            if offset + size <= keep:
                kept.append(chunk)
            elif offset < keep:
                cut = keep - offset
                kept.append((chunk[0][:cut], chunk[1][:cut], chunk[2][:cut]))
            offset += size
        self._chunks = kept
        self._chunk_total = keep


def _array(values: list[int] | list[float], dtype: type[np.generic]) -> np.ndarray:
    """``values``, a list of Python numbers, as a numpy array of ``dtype``.

    ``fromiter`` with the count converts a list in half the time
    ``np.array`` takes for floats, and a fifth less for ints.
    """
    import numpy as np

    return np.fromiter(values, dtype=dtype, count=len(values))


class Recorder:
    """Records the values of one replicate into a sink: what ``ctx.metrics`` is.

    Made with the replicate's context, it owns the replicate's segment of the
    sink (:meth:`MetricSink.open`), and its :meth:`add` is the one path by
    which a replicate records, tagged or not. It holds no reference to its
    context, so a replicate's context is freed by reference counting as it
    ends, except while observers watch the context (:meth:`watch`): then
    each value recorded is told to them.
    """

    __slots__ = ("_condition", "_replicate", "_sink", "_start", "_watched")

    def __init__(self, sink: MetricSink, condition: int, replicate: int) -> None:
        self._sink = sink
        self._condition = condition
        self._replicate = replicate
        #: The context, while some observer watches it; None otherwise.
        self._watched: FrozenContext | None = None
        #: Where this replicate's values start: the sink's length when it began.
        self._start = sink.open(self, condition, replicate)

    def watch(self, ctx: FrozenContext | None) -> None:
        """Tell ``ctx``'s observers each value recorded from now on (None: stop)."""
        self._watched = ctx

    def add(self, name: str, value: float, *, _tag: int = NO_TAGS) -> None:
        """Record ``value`` for metric ``name`` in this replicate and condition.

        Raises MetricError for a bad name, then for a value that is not a real
        number, recording nothing. Record tags with ``ctx.record(name, value,
        tags={...})``: ``_tag``, the tag set's code in the sink, is how it
        reaches here, by keyword only, so a third positional argument (a step
        number, say) is a TypeError, not a tag. A value recorded after another
        recorder's opens a new segment.
        """
        sink = self._sink
        code = sink.metric_codes.get(name) if type(name) is str else None
        if code is None:
            check_metric_name(name)
        if type(value) is not float:
            value = float(value) if type(value) is int else as_number(name, value)
        if code is None:
            code = sink.metric_codes[name] = len(sink.metric_codes)
        if self is not sink._owner:
            sink.open(self, self._condition, self._replicate)
        sink._metric.append(code)
        sink._value.append(value)
        sink._tag.append(_tag)
        if len(sink._value) >= CHUNK:
            sink._flush()
        if self._watched is not None:  # the value is known good now
            self._watched.tell_recorded(name, value, _tag)

    def recorded(self) -> tuple[tuple[str, float], ...]:
        """Every ``(name, value)`` recorded so far in this replicate, in order."""
        return tuple(self._sink.values_of(self._condition, self._replicate, self._start))
