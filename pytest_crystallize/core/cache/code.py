"""Code fingerprints: a digest of what a function runs, so an edited step misses its old entries.

A function's fingerprint covers its source (its bytecode and constants when
the source cannot be read, as in a notebook cell run twice) and, followed
through the global names its code uses, the source of the user's functions,
pipeline steps and classes it calls and the simple constants it reads
(numbers, strings and containers of them): editing a helper defined beside a
step changes the step's fingerprint too. Code installed as a library
(standard library, site-packages) and pytest-crystallize itself are named,
not followed: upgrading a library does not clear the cache (``crystallize
cache clear`` does).

Fingerprints are kept per function object for the life of the process.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

__all__ = ["code_fingerprint"]

#: The most functions and classes followed from one function (a guard against huge call graphs).
MAX_FOLLOWED: Final = 400
_SIMPLE: Final = (type(None), bool, int, float, complex, str, bytes)
_OURS: Final = str(Path(__file__).resolve().parent.parent.parent) + os.sep
_KNOWN: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def code_fingerprint(function: Callable[..., Any]) -> str:
    """The hex SHA-256 fingerprint of ``function``'s code and the user code it reaches."""
    try:
        return _KNOWN[function]
    except (KeyError, TypeError):
        pass
    hasher = hashlib.sha256(b"crystallize-code-1")
    seen: set[int] = set()
    pending: list[Any] = [function]
    while pending and len(seen) < MAX_FOLLOWED:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        name = f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', '?')}"
        hasher.update(name.encode() + b"\0" + _source(item) + b"\0")
        for global_name, value in _globals_used(item):
            target = _followed(value)
            if target is not None:
                pending.append(target)
            else:
                text = _constant_text(value)
                if text is not None:
                    hasher.update(f"{global_name}={text}\0".encode())
    fingerprint = hasher.hexdigest()
    with contextlib.suppress(TypeError):  # not weakly referenceable: computed again next time
        _KNOWN[function] = fingerprint
    return fingerprint


def _source(item: Any) -> bytes:
    """The source of a function or class, else its code object's bytecode and constants."""
    try:
        return inspect.getsource(item).encode()
    except (OSError, TypeError):
        pass
    code = getattr(item, "__code__", None)
    if code is None:
        return b""
    return b"".join(_code_parts(code))


def _code_parts(code: types.CodeType) -> Iterator[bytes]:
    yield code.co_code
    yield repr(code.co_names).encode()
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_parts(constant)
        else:
            yield repr(constant).encode()
    yield sys.version_info[:2].__repr__().encode()  # bytecode differs between Python versions


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _names(constant)


def _globals_used(item: Any) -> list[tuple[str, Any]]:
    """The module globals a function's code names, or a class's methods name, in a stable order."""
    if isinstance(item, type):
        functions = [v for v in vars(item).values() if isinstance(v, types.FunctionType)]
    else:
        functions = [item] if isinstance(item, types.FunctionType) else []
    found: dict[str, Any] = {}
    for function in functions:
        namespace = function.__globals__
        for name in _names(function.__code__):
            if name in namespace and name not in found:
                found[name] = namespace[name]
    return sorted(found.items(), key=lambda pair: pair[0])


def _followed(value: Any) -> Any | None:
    """The function or class to follow for ``value`` (a pipeline step: its function), or None."""
    wrapped = getattr(value, "function", None)
    if callable(wrapped) and isinstance(getattr(value, "name", None), str):
        value = wrapped  # a pipeline step or a datasource
    if not isinstance(value, (types.FunctionType, type)):
        return None
    return value if _user_code(value) else None


def _user_code(value: Any) -> bool:
    """True for code of the user's: not pytest-crystallize's, not an installed library's."""
    name = getattr(value, "__module__", "") or ""
    if name in sys.builtin_module_names:
        return False
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if path is None:  # code run with exec, a notebook's __main__: no library's
        return True
    resolved = str(Path(path).resolve())
    return not (resolved.startswith(_OURS) or any(resolved.startswith(p) for p in _library_paths()))


@functools.cache
def _library_paths() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    found = {str(Path(paths[key]).resolve()) + os.sep for key in keys if key in paths}
    return tuple(sorted(found))


def _constant_text(value: Any, depth: int = 0) -> str | None:
    """Exact, process-independent text of a constant: numbers, strings, small containers of them; else None."""
    if isinstance(value, _SIMPLE):
        return repr(value)
    if depth >= 3 or not isinstance(value, (tuple, list, set, frozenset, dict)) or len(value) > 1000:
        return None
    items = [_constant_text(v, depth + 1) for v in (value.items() if isinstance(value, dict) else value)]
    if any(text is None for text in items):
        return None
    if isinstance(value, (set, frozenset)):
        items.sort(key=str)  # a set's own order changes with the process's hash seed
    return f"{type(value).__name__}({', '.join(map(str, items))})"
