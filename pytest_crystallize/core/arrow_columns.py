"""A result's columns as Arrow arrays and back, built straight from buffers.

``pyarrow.array(...)`` imports pandas the first time it runs (to check
whether its input is a pandas object): 70 MB and half a second for a session
that only saves a run. Arrays built here from numpy buffers and encoded text
never load pandas, and numeric columns are shared with numpy, not copied.
Tags (JSON object text or None per value) go through their distinct texts:
each is encoded once, and a value holds a code into them.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["numeric_array", "string_array", "tags_array", "tags_from_column"]

#: Values per Arrow chunk of decoded tags: keeps a chunk's text far below the 2 GiB of 32-bit offsets.
_TAG_CHUNK: Final = 1 << 20


def numeric_array(values: np.ndarray, dtype: Any, arrow_type: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``arrow_type`` sharing numpy's buffer (``dtype`` must match it)."""
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(arrow_type, len(data), [None, pa.py_buffer(data)])


def string_array(texts: Sequence[str]) -> pa.Array:
    """``texts`` as an Arrow string array (no nulls)."""
    import pyarrow as pa

    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(), len(encoded), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def tags_array(tags: Sequence[str | None]) -> pa.ChunkedArray:
    """One string (or null) a value, decoded from codes into the distinct texts: no per-value Python object."""
    import pyarrow as pa

    # One pass: a text seen for the first time takes the next code; None is -1 (a null).
    index: defaultdict[str | None, int] = defaultdict(itertools.count().__next__, {None: -1})
    codes = np.fromiter(map(index.__getitem__, tags), dtype=np.int32, count=len(tags))
    dictionary = string_array([text for text in index if text is not None])
    chunks = []
    for start in range(0, max(len(codes), 1), _TAG_CHUNK):
        part = codes[start : start + _TAG_CHUNK]
        valid = part >= 0
        nulls = len(part) - int(np.count_nonzero(valid))
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
        indices = pa.Array.from_buffers(
            pa.int32(), len(part), [bitmap, pa.py_buffer(np.where(valid, part, 0).astype(np.int32))],
            null_count=nulls,
        )
        chunks.append(pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode())
    return pa.chunked_array(chunks, type=pa.string())


def tags_from_column(column: pa.ChunkedArray) -> tuple[tuple[str | None, ...], list[str]]:
    """A Parquet column of tags (read dictionary-encoded, or not) as a tuple and its distinct texts."""
    import pyarrow as pa

    if column.null_count == len(column):
        return (None,) * len(column), []
    if not pa.types.is_dictionary(column.type):
        values = column.to_pylist()
        return tuple(values), sorted({v for v in values if v is not None})
    combined = column.unify_dictionaries().combine_chunks()
    texts = combined.dictionary.to_pylist()
    table = np.array([*texts, None], dtype=object)  # a null's index -1 picks the None
    return tuple(table[combined.indices.fill_null(-1).to_numpy()].tolist()), texts
