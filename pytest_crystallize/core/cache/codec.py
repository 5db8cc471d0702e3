"""Storing values in formats that cannot run code when loaded; pickle only where nothing else can.

:func:`encode` turns a value into a JSON *node* plus binary *parts*;
:func:`decode` turns them back. JSON holds ``None``, booleans, integers and
strings as they are, and everything else as a tagged object:

=====================================  ==========================================
value                                  stored as
=====================================  ==========================================
float, complex                         ``repr`` text (exact; nan, inf, -0.0 kept)
list, tuple, dict, set, frozenset      their elements, each encoded in turn
bytes                                  a raw part
numpy array, scalar (plain dtype)      raw bytes, with dtype and shape in the node
numpy array (structured, no objects)   a ``.npy`` part, read with ``allow_pickle=False``
pandas DataFrame, Series               an Arrow IPC part (index and dtypes kept)
pyarrow Table                          an Arrow IPC part
anything else                          a ``.pickle`` part, which the entry signs
=====================================  ==========================================

A pandas value goes through Arrow only if it comes back identical (values,
dtypes, index, names); otherwise it is pickled, so a hit never returns a
subtly different frame. Subclasses of the builtin containers (named tuples)
are pickled, which keeps their type. Pickle parts are only ever loaded after
their signature was checked (:mod:`~pytest_crystallize.core.cache.entries`).
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any, Final

from pytest_crystallize.errors import CacheError

__all__ = ["PICKLE_SUFFIX", "decode", "encode"]

#: Parts with this suffix hold pickles: an entry signs them, a reader checks before loading.
PICKLE_SUFFIX: Final = ".pickle"
_CONTAINERS: Final[dict[type, str]] = {list: "list", tuple: "tuple", set: "set", frozenset: "frozenset"}
_BUILT: Final = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def encode(value: Any, parts: dict[str, bytes]) -> Any:
    """The JSON node of ``value``; binary parts it needs are added to ``parts`` under fresh names."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float or kind is complex:
        return {"$": kind.__name__, "v": repr(value)}
    if kind in _CONTAINERS:
        return {"$": _CONTAINERS[kind], "v": [encode(item, parts) for item in value]}
    if kind is dict:
        return {"$": "dict", "v": [[encode(k, parts), encode(v, parts)] for k, v in value.items()]}
    if kind is bytes:
        return {"$": "bytes", "p": _add(parts, ".bin", value)}
    module = kind.__module__.split(".", 1)[0]
    stored = None
    if module == "numpy":
        stored = _numpy(value, parts)
    elif module == "pandas":
        stored = _pandas(value, parts)
    elif module == "pyarrow":
        stored = _arrow(value, parts)
    if stored is not None:
        return stored
    try:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        msg = f"a {kind.__module__}.{kind.__qualname__} cannot be stored: it cannot be pickled ({exc})"
        raise CacheError(msg) from exc
    return {"$": "pickle", "p": _add(parts, PICKLE_SUFFIX, blob)}


def decode(node: Any, parts: dict[str, bytes]) -> Any:
    """The value :func:`encode` made ``node`` of. Pickle parts must have been verified by the caller."""
    if not isinstance(node, dict):
        return node
    tag = node.get("$")
    if tag in ("float", "complex"):
        return float(node["v"]) if tag == "float" else complex(node["v"])
    if tag in _BUILT:
        return _BUILT[tag](decode(item, parts) for item in node["v"])
    if tag == "dict":
        return {decode(k, parts): decode(v, parts) for k, v in node["v"]}
    blob = parts[node["p"]]
    if tag == "bytes":
        return blob
    if tag in ("npy", "npscalar"):
        import numpy as np

        if "dtype" in node:  # raw bytes: a writable copy, as a computed array would be
            array = np.frombuffer(blob, dtype=np.dtype(node["dtype"])).reshape(node["shape"]).copy()
        else:
            array = np.load(io.BytesIO(blob), allow_pickle=False)
        return array[()] if tag == "npscalar" else array
    if tag in ("frame", "series", "arrow"):
        value = _from_arrow(tag, blob)
        if tag == "series":
            value.name = node.get("name")
        return value
    if tag == "pickle":
        return pickle.loads(blob)  # only after the entry checked this part's signature
    msg = f"a stored value has the unknown tag {tag!r}: the entry was written by another version"
    raise CacheError(msg)


def _add(parts: dict[str, bytes], suffix: str, blob: bytes) -> str:
    name = f"p{len(parts)}{suffix}"
    parts[name] = blob
    return name


def _numpy(value: Any, parts: dict[str, bytes]) -> Any:
    np = sys.modules["numpy"]
    if type(value) is np.ndarray and not value.dtype.hasobject:
        tag = "npy"
    elif isinstance(value, np.generic) and not value.dtype.hasobject:
        tag, value = "npscalar", np.asarray(value)
    else:
        return None
    dtype = value.dtype
    if dtype.names is None and dtype.subdtype is None and np.dtype(dtype.str) == dtype:
        # Plain dtypes travel as raw bytes: no header to parse when read back.
        blob = np.ascontiguousarray(value).tobytes()
        return {"$": tag, "dtype": dtype.str, "shape": list(value.shape), "p": _add(parts, ".bin", blob)}
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return {"$": tag, "p": _add(parts, ".npy", buffer.getvalue())}


def _pandas(value: Any, parts: dict[str, bytes]) -> Any:
    pd = sys.modules["pandas"]
    if type(value) is pd.DataFrame:
        tag, frame = "frame", value
    elif type(value) is pd.Series and isinstance(value.name, (str, int, type(None))):  # a name JSON can hold
        tag, frame = "series", value.to_frame(name="__series__")
    else:
        return None
    try:
        import pyarrow as pa

        blob = _ipc(pa.Table.from_pandas(frame, preserve_index=True))
        back = _from_arrow(tag, blob)
    except Exception:  # a column Arrow cannot hold: pickled instead
        return None
    if tag == "series":
        back.name = value.name
    if not _identical(value, back):
        return None
    node: dict[str, Any] = {"$": tag, "p": _add(parts, ".arrow", blob)}
    if tag == "series":
        node["name"] = value.name
    return node


def _identical(before: Any, after: Any) -> bool:
    """True when a pandas value came back from Arrow exactly: values, dtypes, index, labels."""
    pd = sys.modules["pandas"]
    try:
        if isinstance(before, pd.Series):
            pd.testing.assert_series_equal(before, after, check_exact=True, check_index_type=True,
                                           check_series_type=True, check_names=True, check_freq=True)
        else:
            pd.testing.assert_frame_equal(before, after, check_exact=True, check_index_type=True,
                                          check_column_type=True, check_frame_type=True, check_names=True,
                                          check_freq=True)
    except (AssertionError, TypeError, ValueError):
        return False
    return True


def _arrow(value: Any, parts: dict[str, bytes]) -> Any:
    pa = sys.modules["pyarrow"]
    if type(value) is not pa.Table:
        return None
    return {"$": "arrow", "p": _add(parts, ".arrow", _ipc(value))}


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _from_arrow(tag: str, blob: bytes) -> Any:
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.BufferReader(blob)).read_all()
    if tag == "arrow":
        return table
    frame = table.to_pandas()
    return frame if tag == "frame" else frame["__series__"]
