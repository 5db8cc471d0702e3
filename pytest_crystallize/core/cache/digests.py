"""Content digests: the same value gives the same digest in every process and on every machine.

A cached step's key is built from digests of what it was given and what it
read, so a digest must depend on the value's content only, never on memory
addresses, ``hash()`` randomisation or the process. Each value is fed to
SHA-256 with a tag naming its kind and a length prefix, so ``[1, 2]``,
``(1, 2)``, ``"12"`` and ``[12]`` never collide.

Built in:

- ``None``, ``bool``, ``int``, ``float`` (its IEEE bytes: ``-0.0`` and
  ``0.0`` differ), ``complex``, ``str``, ``bytes``; ``list``, ``tuple``,
  ``dict`` (in insertion order), ``set`` and ``frozenset`` (order-free) and
  their subclasses (named tuples included, by type name);
- dataclass instances (by their fields), enums, Pydantic models (by
  ``model_dump()``), dates and times, ``Decimal``, ``Fraction``, ``UUID``,
  paths (the path, not the file), ranges;
- numpy arrays (dtype, shape and bytes; object arrays element by element),
  numpy scalars and random Generators (their state);
- pandas DataFrames, Series and Index objects (values, dtypes, labels and
  index, element by element for object and extension dtypes) and scalars;
- pyarrow Tables, RecordBatches, Arrays and ChunkedArrays (their Arrow IPC
  bytes, schema metadata included);
- functions (qualified name, code fingerprint, closure and defaults),
  ``functools.partial``, bound methods, classes and modules (by name);
- any object with a ``__crystallize_digest__()`` method, by what it returns.

Anything else raises :class:`~pytest_crystallize.errors.UndigestableError`
naming where the value was: digesting ``repr()`` or ``id()`` would make two
different objects look equal, or equal ones different, silently.
numpy, pandas and pyarrow are looked up in ``sys.modules``: a value of a
library nobody imported cannot exist, so nothing is imported here.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import hashlib
import pathlib
import struct
import sys
import types
import uuid
from typing import Any, Final

from pytest_crystallize.core.cache.code import code_fingerprint
from pytest_crystallize.errors import UndigestableError

__all__ = ["digest_of"]

#: Values digested by their ``repr``, which is exact and address-free for these types.
_BY_REPR: Final = (
    datetime.date, datetime.time, datetime.timedelta, datetime.timezone, decimal.Decimal,
    fractions.Fraction, uuid.UUID, range, slice, pathlib.PurePath,
)
_FUNCTIONS: Final = (types.FunctionType, types.LambdaType)
_BUILTINS: Final = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)


def digest_of(value: Any, where: str) -> str:
    """The hex SHA-256 content digest of ``value``; ``where`` names it in an error.

    Raises UndigestableError naming the part of ``value`` that has no digest,
    e.g. ``argument 'model'.layers[2]``.
    """
    hasher = hashlib.sha256(b"crystallize-digest-1")
    _Feeder(hasher).feed(value, where)
    return hasher.hexdigest()


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


class _Feeder:
    """Feeds one value, recursively, into one hasher; lives for one :func:`digest_of` call."""

    __slots__ = ("_hasher", "_open")

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        #: ids of the containers being fed (a container that holds itself has no digest).
        self._open: set[int] = set()

    def put(self, tag: bytes, payload: bytes = b"") -> None:
        self._hasher.update(tag + b":" + len(payload).to_bytes(8, "little") + payload)

    def text(self, tag: bytes, text: str) -> None:
        self.put(tag, text.encode("utf-8", "surrogatepass"))

    def feed(self, value: Any, where: str) -> None:
        kind = type(value)
        if value is None or kind is bool:
            self.put(b"const", repr(value).encode())
        elif kind is int:
            self.put(b"int", str(value).encode())
        elif kind is float:
            self.put(b"float", struct.pack("<d", value))
        elif kind is str:
            self.text(b"str", value)
        elif kind is bytes:
            self.put(b"bytes", value)
        elif isinstance(value, enum.Enum):
            self.text(b"enum", _type_name(value))
            self.feed(value.value, f"{where}.value")
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            self._container(value, where)
        elif kind is complex:
            self.put(b"complex", struct.pack("<dd", value.real, value.imag))
        elif isinstance(value, (bytearray, memoryview)):
            self.put(b"bytearray", bytes(value))
        elif isinstance(value, (int, float, str, bytes)):  # subclasses: their type counts too
            self.text(b"subclass", _type_name(value))
            self.feed(_base(value)(value), where)
        elif isinstance(value, _BY_REPR):
            self.text(b"repr", _type_name(value) + ":" + repr(value))
        elif hasattr(kind, "__crystallize_digest__"):
            self.text(b"custom", _type_name(value))
            self.feed(value.__crystallize_digest__(), f"{where}.__crystallize_digest__()")
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            self._dataclass(value, where)
        elif not self._library(value, where):
            self._code_or_fail(value, where)

    def _container(self, value: Any, where: str) -> None:
        if id(value) in self._open:
            raise UndigestableError(where, "container that contains itself")
        self._open.add(id(value))
        try:
            if isinstance(value, dict):
                self.put(b"dict", _type_name(value).encode() + len(value).to_bytes(8, "little"))
                for key, item in value.items():
                    self.feed(key, f"{where} key {key!r:.40}")
                    self.feed(item, f"{where}[{key!r:.40}]")
            elif isinstance(value, (set, frozenset)):
                members = sorted(digest_of(item, f"{where} member") for item in value)
                self.put(b"set", _type_name(value).encode() + "".join(members).encode())
            else:
                self.put(b"sequence", _type_name(value).encode() + len(value).to_bytes(8, "little"))
                for index, item in enumerate(value):
                    self.feed(item, f"{where}[{index}]")
        finally:
            self._open.discard(id(value))

    def _dataclass(self, value: Any, where: str) -> None:
        if id(value) in self._open:
            raise UndigestableError(where, "dataclass that contains itself")
        self._open.add(id(value))
        try:
            self.text(b"dataclass", _type_name(value))
            for field in dataclasses.fields(value):
                self.text(b"field", field.name)
                self.feed(getattr(value, field.name), f"{where}.{field.name}")
        finally:
            self._open.discard(id(value))

    def _library(self, value: Any, where: str) -> bool:
        """Feed a numpy, pandas, pyarrow or Pydantic value; False when ``value`` is none of those."""
        module = type(value).__module__.split(".", 1)[0]
        if module == "numpy":
            return self._numpy(value, where)
        if module == "pandas":
            return self._pandas(value, where)
        if module == "pyarrow":
            return self._arrow(value)
        if hasattr(type(value), "model_fields") and callable(getattr(value, "model_dump", None)):
            self.text(b"model", _type_name(value))
            self.feed(value.model_dump(), f"{where}.model_dump()")
            return True
        return False

    def _numpy(self, value: Any, where: str) -> bool:
        np = sys.modules["numpy"]
        if isinstance(value, np.ndarray):
            self.array(value, where)
        elif isinstance(value, np.generic):
            self.put(b"npscalar", value.dtype.str.encode() + b":" + value.tobytes())
        elif isinstance(value, np.random.Generator):
            self.text(b"generator", _type_name(value.bit_generator))
            self.feed(value.bit_generator.state, f"{where}.bit_generator.state")
        elif isinstance(value, np.dtype):
            self.text(b"dtype", value.str + repr(value))
        else:
            return False
        return True

    def _pandas(self, value: Any, where: str) -> bool:
        pd = sys.modules["pandas"]
        if isinstance(value, pd.DataFrame):
            self.text(b"frame", _type_name(value))
            self._index(value.columns, f"{where}.columns")
            self._index(value.index, f"{where}.index")
            for position in range(value.shape[1]):
                self._values(value.iloc[:, position], f"{where}.iloc[:, {position}]")
        elif isinstance(value, pd.Series):
            self.text(b"series", _type_name(value))
            self.feed(value.name, f"{where}.name")
            self._index(value.index, f"{where}.index")
            self._values(value, where)
        elif isinstance(value, pd.Index):
            self._index(value, where)
        elif isinstance(value, (pd.Timestamp, pd.Timedelta)):
            self.text(b"pdtime", f"{_type_name(value)}:{value.value}:{getattr(value, 'tz', None)}:{value.unit}")
        elif value is pd.NaT or value is pd.NA or isinstance(value, (pd.Period, pd.Interval)):
            self.text(b"pdscalar", f"{_type_name(value)}:{value!r}")
        elif isinstance(value, pd.api.extensions.ExtensionArray):
            self._values(pd.Series(value, copy=False), where)
        else:
            return False
        return True

    def _index(self, index: Any, where: str) -> None:
        pd = sys.modules["pandas"]
        self.text(b"index", _type_name(index))
        self.feed(list(index.names), f"{where}.names")
        if isinstance(index, pd.RangeIndex):
            self.text(b"range", f"{index.start}:{index.stop}:{index.step}")
        elif isinstance(index, pd.MultiIndex):
            for level, (values, codes) in enumerate(zip(index.levels, index.codes, strict=True)):
                self._index(values, f"{where}.levels[{level}]")
                self.array(codes, f"{where}.codes[{level}]")
        else:
            self._values(index, where)

    def _values(self, values: Any, where: str) -> None:
        """Feed the values of a Series or Index: its numpy array, or its elements with their mask."""
        np = sys.modules["numpy"]
        pd = sys.modules["pandas"]
        dtype = values.dtype
        self.text(b"dtype", f"{dtype!r}|{dtype}")
        if isinstance(dtype, np.dtype) and not dtype.hasobject:
            self.array(values.to_numpy(), where)
        elif isinstance(dtype, pd.CategoricalDtype):
            self._index(values.array.categories, f"{where}.categories")
            self.array(values.array.codes, f"{where}.codes")
        else:
            self.array(np.asarray(values.isna()), f"{where} missing")
            self.array(values.to_numpy(dtype=object), where)

    def _arrow(self, value: Any) -> bool:
        pa = sys.modules["pyarrow"]
        if isinstance(value, pa.ChunkedArray):
            value = pa.table({"values": value})
        elif isinstance(value, pa.Array):
            value = pa.RecordBatch.from_arrays([value], ["values"])
        if isinstance(value, pa.Table):
            value = value.combine_chunks()
        elif not isinstance(value, pa.RecordBatch):
            return False
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, value.schema) as writer:
            writer.write(value)
        self.text(b"arrow", _type_name(value))
        self.put(b"ipc", sink.getvalue().to_pybytes())
        return True

    def array(self, value: Any, where: str) -> None:
        """Feed a numpy array: its type, dtype and shape, then its bytes (or its elements, for objects)."""
        np = sys.modules["numpy"]
        self.put(b"array", f"{_type_name(value)}|{value.dtype.str}|{value.dtype!r}|{value.shape}".encode())
        if isinstance(value, np.ma.MaskedArray):
            self.array(np.ma.getmaskarray(value), f"{where}.mask")
            value = np.ma.getdata(value)
        if value.dtype.hasobject:
            for index, item in enumerate(value.ravel(order="C")):
                self.feed(item, f"{where}.flat[{index}]")
        else:
            self.put(b"data", np.ascontiguousarray(value).tobytes())

    def _code_or_fail(self, value: Any, where: str) -> None:
        """Feed a function, partial, method, class or module, or raise UndigestableError."""
        if isinstance(value, _FUNCTIONS):
            self.text(b"function", f"{value.__module__}.{value.__qualname__}:{code_fingerprint(value)}")
            for index, cell in enumerate(value.__closure__ or ()):
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell: a name not bound yet
                    contents = None
                self.feed(contents, f"{where} closure variable {value.__code__.co_freevars[index]!r}")
            self.feed(value.__defaults__, f"{where} defaults")
            self.feed(value.__kwdefaults__, f"{where} keyword defaults")
        elif isinstance(value, functools.partial):
            self.text(b"partial", "")
            self.feed(value.func, f"{where}.func")
            self.feed(value.args, f"{where}.args")
            self.feed(value.keywords, f"{where}.keywords")
        elif isinstance(value, types.MethodType):
            self.text(b"method", "")
            self.feed(value.__func__, f"{where}.__func__")
            self.feed(value.__self__, f"{where}.__self__")
        elif isinstance(value, (type, *_BUILTINS)):
            self.text(b"named", f"{value.__module__}.{value.__qualname__}")
        elif isinstance(value, types.ModuleType):
            self.text(b"module", value.__name__)
        elif callable(getattr(value, "function", None)) and isinstance(getattr(value, "name", None), str):
            self.text(b"wrapped", f"{_type_name(value)}:{value.name}")  # a pipeline step or a datasource
            self.feed(value.function, f"{where}.function")
        else:
            raise UndigestableError(where, _type_name(value))


def _base(value: Any) -> type:
    """The builtin scalar type a subclass instance derives from."""
    for base in (bool, int, float, str, bytes):
        if isinstance(value, base):
            return base
    return type(value)  # not reached: the caller checked isinstance
