"""Datasources: functions that produce a replicate's input from its context.

``@data_source`` turns ``def load(ctx): ...`` into a :class:`DataSource`.
``@data_source("name", register=True)`` also files it in a process-wide
registry so ``get_datasource("name")`` finds it without an import.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, overload

from pytest_crystallize.errors import DataSourceError

__all__ = ["DataSource", "data_source", "get_datasource", "registered_datasources"]

_REGISTRY: dict[str, DataSource] = {}


@dataclass(frozen=True, slots=True)
class DataSource:
    """A named function ``(ctx) -> data`` (or ``() -> data``), sync or async.

    Calling it with a context returns the data (a coroutine when the function
    is ``async def``).
    """

    name: str
    function: Callable[..., Any]
    takes_ctx: bool = field(repr=False)
    is_async: bool = field(repr=False)

    def __call__(self, ctx: Any) -> Any:
        """Return the data for the replicate whose context is ``ctx``."""
        if self.takes_ctx:
            return self.function(ctx)
        return self.function()

    @property
    def qualname(self) -> str:
        """``module.qualname`` of the wrapped function, for messages."""
        fn = self.function
        return f"{fn.__module__}.{fn.__qualname__}"

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        """A module's ``@data_source`` pickles as a reference to it; any other datasource, field by field.

        Its function cannot be pickled by reference (what pickle does with
        functions): the module's name for it is this datasource. A worker
        process started with ``spawn`` unpickles the reference by importing
        the module, as it does the experiment function.
        """
        fn = self.function
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
        if isinstance(module, str) and module != "__main__" and _attribute(sys.modules.get(module), qualname) is self:
            return _module_attribute, (module, qualname)
        return object.__reduce_ex__(self, protocol)


def _attribute(owner: object, qualname: str) -> object:
    """``owner.<qualname>`` (dotted), or None."""
    if owner is None or "<locals>" in qualname:
        return None
    for part in qualname.split("."):
        owner = getattr(owner, part, None)
    return owner


def _module_attribute(module: str, qualname: str) -> object:
    """``module.<qualname>``, importing the module: how a pickled module-level datasource is found again."""
    found = _attribute(importlib.import_module(module), qualname)
    if found is None:
        msg = f"datasource {module}.{qualname} was pickled by name, and that module no longer defines it"
        raise DataSourceError(msg)
    return found


def _make(function: Callable[..., Any], name: str | None) -> DataSource:
    if not callable(function):
        msg = f"@data_source needs a function, got {function!r}"
        raise DataSourceError(msg)
    params = [
        p for p in inspect.signature(function).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(params) > 1:
        msg = (
            f"datasource {function.__qualname__!r} takes {len(params)} required "
            f"parameters; a datasource takes the context only: def {function.__name__}(ctx)"
        )
        raise DataSourceError(msg)
    return DataSource(
        name=name or function.__name__,
        function=function,
        takes_ctx=bool(params),
        is_async=inspect.iscoroutinefunction(function),
    )


def _register(source: DataSource) -> None:
    known = _REGISTRY.get(source.name)
    # Re-importing the same module (pytest reruns, reloads) re-registers the
    # same function: allowed. A different function under the name is a clash.
    if known is not None and known.qualname != source.qualname:
        msg = (
            f"datasource name {source.name!r} is already registered by "
            f"{known.qualname}; {source.qualname} must use another name"
        )
        raise DataSourceError(msg)
    _REGISTRY[source.name] = source


@overload
def data_source(function: Callable[..., Any], /) -> DataSource: ...
@overload
def data_source(
    name: str | None = None, /, *, register: bool = False
) -> Callable[[Callable[..., Any]], DataSource]: ...


def data_source(
    function_or_name: Callable[..., Any] | str | None = None,
    /,
    *,
    register: bool = False,
) -> DataSource | Callable[[Callable[..., Any]], DataSource]:
    """Declare a datasource: ``@data_source`` or ``@data_source("name", register=True)``.

    The function receives the replicate's context (or nothing) and returns the
    replicate's input. An experiment parameter with the datasource's name
    receives that value, per replicate and condition.
    """
    if callable(function_or_name):
        return _make(function_or_name, None)
    name = function_or_name

    def decorate(function: Callable[..., Any]) -> DataSource:
        source = _make(function, name)
        if register:
            _register(source)
        return source

    return decorate


def get_datasource(name: str) -> DataSource:
    """Return the datasource registered as ``name``; unknown names list the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(repr(n) for n in sorted(_REGISTRY)) or "none registered"
        msg = (
            f"no datasource named {name!r} (known: {known}); register one with "
            f'@data_source("{name}", register=True)'
        )
        raise DataSourceError(msg) from None


def registered_datasources() -> dict[str, DataSource]:
    """Return a copy of the registry, name to datasource."""
    return dict(_REGISTRY)
