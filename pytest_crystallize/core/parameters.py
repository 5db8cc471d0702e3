"""An experiment function's parameters, sorted: ``ctx``, datasources, fixed arguments, typed bindings.

:func:`resolve_parameters` decides what fills each parameter of the function
an experiment runs, before anything runs: the replicate context, a
datasource (given, found by a lookup, in the function's module or in the
registry), a fixed argument (a pytest fixture), or a typed binding built
from the context. A parameter nothing fills is a ConfigurationError or
DataSourceError saying how to fill it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from pytest_crystallize.core.binding import Binding, parameter_bindings, unresolved_message
from pytest_crystallize.core.datasources import DataSource, registered_datasources
from pytest_crystallize.errors import ConfigurationError, DataSourceError

__all__ = ["CONTEXT_PARAMETER", "resolve_parameters"]

CONTEXT_PARAMETER: Final = "ctx"


def resolve_parameters(
    where: str,
    function: Callable[..., Any],
    datasources: dict[str, DataSource | Callable[..., Any]],
    arguments: dict[str, Any],
    lookup: Callable[[str], DataSource | None] | None,
    localns: Mapping[str, Any] | None,
) -> tuple[bool, dict[str, DataSource], dict[str, Any], tuple[Binding, ...]]:
    """Sort the function's parameters into ctx, datasources, fixed arguments and typed bindings.

    Precedence: ``ctx``; ``datasources`` by name; ``arguments``; a
    ``Bind(...)`` annotation; a datasource found by ``lookup``, in the module
    or in the registry; a dataclass or Pydantic model annotation.
    """
    from pytest_crystallize.core.datasources import data_source

    try:
        bindings, unresolved = parameter_bindings(function, localns, skip=(CONTEXT_PARAMETER,))
    except ConfigurationError as exc:
        msg = f"{where}: {exc}"
        raise ConfigurationError(msg) from None
    takes_ctx = False
    sources: dict[str, DataSource] = {}
    fixed: dict[str, Any] = {}
    bound: list[Binding] = []
    module_globals = getattr(function, "__globals__", {})
    for param in inspect.signature(function).parameters.values():
        name = param.name
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name == CONTEXT_PARAMETER:
            takes_ctx = True
            continue
        binding = bindings.get(name)
        found: Any = datasources.get(name)
        if found is None and name in arguments:
            fixed[name] = arguments[name]
            continue
        if found is None and binding is not None and binding.explicit:
            bound.append(binding)
            continue
        if found is None and lookup is not None:
            found = lookup(name)
        if found is None and isinstance(module_globals.get(name), DataSource):
            found = module_globals[name]
        if found is None:
            found = registered_datasources().get(name)
        if found is None and binding is not None:
            bound.append(binding)
            continue
        if found is None:
            if param.default is not param.empty:
                continue
            if name in unresolved:  # meant to be bound, most likely: say why it cannot be
                raise ConfigurationError(unresolved_message(where, name, unresolved[name]))
            msg = (
                f"{where}: parameter {name!r} is neither 'ctx', a datasource nor a "
                f"given argument: define '@data_source def {name}(ctx): ...' in the "
                f"module (or a conftest.py), or pass it as an argument"
            )
            raise DataSourceError(msg)
        sources[name] = found if isinstance(found, DataSource) else data_source(found)
    return takes_ctx, sources, fixed, tuple(bound)
