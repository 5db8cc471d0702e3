"""A result's columns as Arrow arrays and back, built straight from buffers, and its Parquet file.

``pyarrow.array(...)`` imports pandas the first time it runs (to check
whether its input is a pandas object): 70 MB and half a second for a session
that only saves a run. Arrays built here from numpy buffers and encoded text
never load pandas, and numeric columns are shared with numpy, not copied.
Tags (JSON object text or None per value) go through their distinct texts:
each is encoded once, and a value holds a code into them.

:func:`write_parquet` writes those arrays as they are: the tags column goes
to the Parquet writer as codes into the distinct texts, which is how a
dictionary-encoded Parquet column stores it anyway, so no text is made per
value, hashed again by the writer, or decoded through ``pyarrow.compute``
(an import of its own). The file is the one ``docs/reference/store.md``
describes, ``tags`` a string column in its Arrow schema.
"""

from __future__ import annotations

import base64
import itertools
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from pytest_crystallize.core.results import ExperimentResult

__all__ = [
    "load_pyarrow_on_system_allocator", "numeric_array", "string_array", "tags_array", "tags_from_column",
    "write_parquet",
]

#: The key under which Arrow keeps a file's Arrow schema in the Parquet metadata (what pyarrow reads types from).
_ARROW_SCHEMA_KEY: Final = b"ARROW:schema"
#: The environment variable Arrow reads, once, to choose its default memory pool's allocator.
_ARROW_POOL_VARIABLE: Final = "ARROW_DEFAULT_MEMORY_POOL"


def load_pyarrow_on_system_allocator() -> None:
    """Import pyarrow with the C library's allocator as its default pool, unless it is loaded or chosen already.

    For a process that saves what it has just computed: the run has freed
    memory the C library's allocator still holds, which pyarrow then reuses,
    where its own default (mimalloc) maps fresh pages (about 12 MB more peak
    memory at a million values). Arrow reads the choice once, when its default
    pool is first made (on import), so the variable is set only for the import
    and the process's environment is left as it was (subprocesses never see it).
    A pyarrow already imported, or a user's own ``ARROW_DEFAULT_MEMORY_POOL``, is
    left alone.
    """
    if "pyarrow" in sys.modules or _ARROW_POOL_VARIABLE in os.environ:
        return
    os.environ[_ARROW_POOL_VARIABLE] = "system"
    try:
        import pyarrow as pa

        pa.default_memory_pool()  # made now, while the variable is set
    finally:
        del os.environ[_ARROW_POOL_VARIABLE]


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


def tags_array(tags: Sequence[str | None]) -> pa.DictionaryArray:
    """One code a value into the distinct texts (None a null): no per-value Python object, no per-value text.

    Codes take the narrowest integer type the number of distinct texts allows
    (one byte a value for up to 127 of them, the usual case).
    """
    import pyarrow as pa

    # One pass: a text seen for the first time takes the next code; None is -1 (a null). Then the
    # codes are narrowed to what the distinct texts need (a cast, not a second pass over the texts).
    index: defaultdict[str | None, int] = defaultdict(itertools.count().__next__, {None: -1})
    codes = np.fromiter(map(index.__getitem__, tags), dtype=np.int32, count=len(tags))
    dtype = _code_type(len(index) - 1)
    codes = codes.astype(dtype, copy=False)
    dictionary = string_array([text for text in index if text is not None])
    valid = codes >= 0
    nulls = len(codes) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    del valid
    np.maximum(codes, 0, out=codes)  # a null's slot must still be a valid code
    arrow_type = pa.from_numpy_dtype(dtype)
    indices = pa.Array.from_buffers(arrow_type, len(codes), [bitmap, pa.py_buffer(codes)], null_count=nulls)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _code_type(distinct: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed integer type holding codes ``0 .. distinct - 1`` and ``-1``."""
    for dtype in (np.int8, np.int16):
        if distinct <= np.iinfo(dtype).max:
            return dtype
    return np.int32


def write_parquet(result: ExperimentResult, path: Path, metadata: dict[bytes, bytes]) -> None:
    """Write ``result``'s records to ``path`` as Parquet, with ``metadata`` in the file's schema metadata.

    Columns are shared with the result's arrays, not copied. The Arrow schema
    stored in the file is the documented one (``tags`` a string column), put
    there by hand because the table handed to the writer holds the tags as a
    dictionary; a pyarrow too old to add metadata to an open writer (before 17)
    gets the tags decoded instead, as they were before. A failed write leaves no file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def coded(codes: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(numeric_array(codes, np.int32, pa.int32()), string_array(names))

    columns = {
        "condition": coded(result.condition_codes, result.conditions),
        "replicate": numeric_array(result.replicates, np.int64, pa.int64()),
        "metric": coded(result.metric_codes, result.metrics),
        "value": numeric_array(result.values, np.float64, pa.float64()),
        "tags": tags_array(result.tags),
    }
    # Dictionary pages only where values repeat: replicates and values would only pay to try.
    options: dict[str, Any] = {"use_dictionary": ["condition", "metric", "tags"]}
    if not hasattr(pq.ParquetWriter, "add_key_value_metadata"):
        columns["tags"] = columns["tags"].dictionary_decode()
        pq.write_table(pa.table(columns).replace_schema_metadata(metadata), path, **options)
        return
    table = pa.table(columns)
    stored = table.schema.set(table.schema.get_field_index("tags"), pa.field("tags", pa.string()))
    arrow_schema = base64.b64encode(stored.with_metadata(metadata).serialize().to_pybytes())
    try:
        with pq.ParquetWriter(path, table.schema, store_schema=False, **options) as writer:
            writer.write_table(table)
            writer.add_key_value_metadata({_ARROW_SCHEMA_KEY: arrow_schema, **metadata})
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def tags_from_column(column: pa.ChunkedArray) -> tuple[tuple[str | None, ...], list[str]]:
    """A Parquet column of tags (read dictionary-encoded, or not) as a tuple and its distinct texts.

    A dictionary-encoded column becomes the tuple through numpy: each distinct
    text is made once and every value refers to it (one ``take`` of an
    object array, then ``tolist``), with nulls found from the validity bitmap
    rather than through ``pyarrow.compute``.
    """
    import pyarrow as pa

    if column.null_count == len(column):
        return (None,) * len(column), []
    if not pa.types.is_dictionary(column.type):
        values = column.to_pylist()
        return tuple(values), sorted({v for v in values if v is not None})
    combined = column.unify_dictionaries().combine_chunks()
    texts = combined.dictionary.to_pylist()
    table = np.array([*texts, None], dtype=object)  # code len(texts) picks the None
    return tuple(table.take(_codes(combined.indices, len(texts))).tolist()), texts


def _codes(indices: pa.Array, null_code: int) -> np.ndarray:
    """A dictionary array's ``indices`` as numpy codes, ``null_code`` where a value is null (shared when none is)."""
    dtype = np.dtype(indices.type.to_pandas_dtype())
    validity, data = indices.buffers()
    start, size = indices.offset, len(indices)
    codes = np.frombuffer(data, dtype=dtype, count=start + size)[start:]
    if not indices.null_count:
        return codes
    bits = np.frombuffer(validity, dtype=np.uint8)
    valid = np.unpackbits(bits, count=start + size, bitorder="little")[start:].view(bool)
    return np.where(valid, codes, null_code)
