"""Typed binding: parameters annotated with a dataclass or a Pydantic model receive it, built from the context.

An experiment or step parameter ``cfg: LLMConfig`` (a dataclass or a
``pydantic.BaseModel``) receives ``LLMConfig`` built from the context:

* ``Annotated[LLMConfig, Bind("llm")]`` builds it from ``ctx["llm"]`` (a
  dotted path reaches deeper: ``Bind("llm.sampling")``); ``Bind()`` builds it
  from the top level of the context;
* without ``Bind``, from ``ctx[<parameter name>]`` when the context has that
  key, else from the top level of the context.

At the top level only the model's own fields are read (the context holds
other values too); below it, an unknown key is an error, so no input is
silently dropped (a Pydantic model whose ``model_config`` sets ``extra``
decides for itself). How values are checked is
:mod:`~pytest_crystallize.core.typed_config`. Optional fields,
``from __future__ import annotations`` and models defined inside functions
work: annotations are resolved with the function's globals, its closure
(the names its body uses from the enclosing function) and ``localns``: the
locals of the scope that defined it when known (``run_experiment``'s caller,
a step's defining function) or given (``localns=`` on ``run_experiment`` and
``@pytest.mark.experiment``). A class that the enclosing function defined
but the body never uses is none of these once that function has returned
(``from __future__ import annotations`` resolves annotations late): such a
parameter is reported by :func:`unresolved_message`, naming the missing
class, never treated as a fixture or a datasource.

The model is built afresh for every replicate, from copies of the context's
nested mappings and lists, so one replicate never sees another's changes.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Protocol, Union, get_args, get_origin

from pytest_crystallize.core.typed_config import build, field_names, is_model, resolve_fields
from pytest_crystallize.errors import ConfigurationError

__all__ = [
    "Bind", "Binding", "Unresolved", "Values", "parameter_bindings", "resolve_annotations", "unresolved_message",
]

_MISSING: Final = object()


class Values(Protocol):
    """What a binding reads: a mapping or a :class:`~pytest_crystallize.core.context.FrozenContext`."""

    def __contains__(self, key: object, /) -> bool:
        """True when ``key`` has a value."""

    def get(self, key: str, default: Any = None, /) -> Any:
        """The value of ``key``, or ``default``."""


@dataclass(frozen=True, slots=True)
class Bind:
    """Where in the context a typed parameter comes from: ``Annotated[LLMConfig, Bind("llm")]``.

    ``path`` is a key or a dotted path into nested mappings; ``""`` (the
    default) means the top level of the context.
    """

    path: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or (self.path and not all(self.path.split("."))):
            msg = f"Bind(path) needs a key or a dotted path such as 'llm.sampling', got {self.path!r}"
            raise ConfigurationError(msg)

    @property
    def parts(self) -> tuple[str, ...]:
        """The path split at dots; empty for the top level."""
        return tuple(self.path.split(".")) if self.path else ()


@dataclass(frozen=True, slots=True)
class Binding:
    """How one parameter gets its model. ``path`` None: by parameter name, else the top level."""

    parameter: str
    model: type
    path: tuple[str, ...] | None
    optional: bool
    has_default: bool

    @property
    def explicit(self) -> bool:
        """True when ``Bind(...)`` says where the value comes from."""
        return self.path is not None

    def describe(self) -> str:
        """``"parameter 'cfg' (LLMConfig from 'llm')"``, for messages."""
        source = "the context" if not self.path else repr(".".join(self.path))
        return f"parameter {self.parameter!r} ({self.model.__name__} from {source})"

    def resolve(self, values: Values) -> tuple[bool, Any]:
        """Return ``(supplied, value)``: the model built from ``values``.

        ``(False, None)`` means the parameter keeps its default. Raises
        ConfigurationError naming the field.
        """
        prefix: tuple[str, ...] = ()
        if self.path is None and self.parameter in values:
            data, prefix = values.get(self.parameter), (self.parameter,)
        elif self.path:
            data, prefix = _lookup(values, self.path), self.path
        else:
            data = {name: values.get(name) for name in field_names(self.model) if name in values}
            if not data and (self.optional or self.has_default):
                data = _MISSING
        if data is _MISSING or (data is None and self.optional):
            if self.has_default:
                return False, None
            if self.optional:
                return True, None
            msg = f"{self.describe()}: the context has no {'.'.join(prefix)!r}"
            raise ConfigurationError(msg)
        if isinstance(data, self.model):
            return True, data
        if not isinstance(data, Mapping):
            msg = (
                f"{self.describe()}: expected a mapping of {self.model.__name__}'s fields at "
                f"{'.'.join(prefix)!r}, got {type(data).__name__} {data!r:.40}"
            )
            raise ConfigurationError(msg)
        try:
            return True, build(self.model, data, prefix, top=not prefix)
        except ConfigurationError as exc:
            msg = f"{self.describe()}: {exc}"
            raise ConfigurationError(msg) from None


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An annotation that could not be resolved: its text, the missing name (when known) and the error."""

    annotation: str
    name: str | None
    error: str

    def __str__(self) -> str:
        return self.error


def unresolved_message(where: str, parameter: str, problem: Unresolved) -> str:
    """Why ``parameter`` of ``where`` cannot be bound, and how to fix it."""
    name = problem.name
    text = (
        f"{where}: parameter {parameter!r}: its annotation {problem.annotation!r} cannot be resolved "
        f"({problem.error}), so it cannot be bound from the context, and no datasource, argument or "
        f"fixture has its name. "
    )
    if name is None:
        return text + (
            "Fix the annotation, or pass localns={...} with the names it uses to run_experiment(...) "
            "or @pytest.mark.experiment(...)"
        )
    return text + (
        f"A class defined inside a function is not visible once that function has returned "
        f"(annotations are resolved late under 'from __future__ import annotations'): define {name} "
        f"at module level (not only under TYPE_CHECKING), or pass localns={{{name!r}: {name}}} to "
        f"run_experiment(...) or @pytest.mark.experiment(...)"
    )


def resolve_annotations(
    function: Callable[..., Any], localns: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Unresolved]]:
    """Return ``(hints, problems)``: the function's resolved annotations, and why others failed.

    Resolved with the function's globals, its closure and ``localns``; an
    annotation that cannot be resolved (a name only imported under
    ``TYPE_CHECKING``, a class local to a function that has returned) is left
    out and its problem kept, never raised.
    """
    annotations = getattr(function, "__annotations__", None)
    if not annotations:
        return {}, {}
    globalns = getattr(function, "__globals__", {})
    local = {**_closure(function), **(localns or {})}
    try:
        return typing.get_type_hints(function, globalns, local, include_extras=True), {}
    except Exception:  # any failure: resolve them one by one to learn which
        hints: dict[str, Any] = {}
        problems: dict[str, Unresolved] = {}
        for name, annotation in annotations.items():
            holder = types.SimpleNamespace(__annotations__={name: annotation})
            try:
                hints.update(typing.get_type_hints(holder, globalns, local, include_extras=True))
            except Exception as exc:  # reported, not raised
                missing = getattr(exc, "name", None) if isinstance(exc, NameError) else None
                text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
                problems[name] = Unresolved(
                    annotation=text, name=missing if isinstance(missing, str) else None,
                    error=f"{type(exc).__name__}: {exc}",
                )
        return hints, problems


def parameter_bindings(
    function: Callable[..., Any], localns: Mapping[str, Any] | None = None, *, skip: tuple[str, ...] = ()
) -> tuple[dict[str, Binding], dict[str, Unresolved]]:
    """The bindings of ``function``'s parameters (not those in ``skip``), and unresolved annotations.

    Raises ConfigurationError when ``Bind(...)`` annotates a type that is
    neither a dataclass nor a Pydantic model.
    """
    import inspect

    hints, problems = resolve_annotations(function, localns)
    out: dict[str, Binding] = {}
    if not hints:
        return out, problems
    namespace = {**_closure(function), **(localns or {})}
    for param in inspect.signature(function).parameters.values():
        if param.name in skip or param.name not in hints:
            continue
        model, bind, optional = _unwrap(param.name, hints[param.name])
        if model is None:
            continue
        # Field types resolve now, while the defining scope's names are at hand; the
        # binding itself keeps no namespace, so it pickles to worker processes.
        resolve_fields(model, namespace)
        out[param.name] = Binding(
            parameter=param.name, model=model, path=bind.parts if bind is not None else None,
            optional=optional, has_default=param.default is not param.empty,
        )
    return out, problems


# -- internals -------------------------------------------------------------------------------


def _closure(function: Callable[..., Any]) -> dict[str, Any]:
    """The function's closure variables by name (a model defined in the enclosing function)."""
    code = getattr(function, "__code__", None)
    cells = getattr(function, "__closure__", None) or ()
    out: dict[str, Any] = {}
    for name, cell in zip(getattr(code, "co_freevars", ()), cells, strict=False):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell: the variable is not assigned yet
            continue
    return out


def _unwrap(name: str, annotation: Any) -> tuple[type | None, Bind | None, bool]:
    """``(model, bind, optional)`` of an annotation such as ``Annotated[M | None, Bind("x")]``."""
    bind: Bind | None = None
    optional = False
    for _ in range(3):  # Annotated[Optional[...]] and Optional[Annotated[...]] both unwrap
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *extras = get_args(annotation)
            bind = next((e for e in extras if isinstance(e, Bind)), bind)
        elif origin is Union or origin is types.UnionType:
            arms = [a for a in get_args(annotation) if a is not type(None)]
            if len(arms) != 1:
                break
            annotation, optional = arms[0], True
        else:
            break
    if is_model(annotation):
        return annotation, bind, optional
    if bind is not None:
        msg = (
            f"parameter {name!r} has Bind({bind.path!r}) but its type {annotation!r} is neither a "
            f"dataclass nor a Pydantic model; Bind works with those only"
        )
        raise ConfigurationError(msg)
    return None, None, False


def _lookup(values: Values, path: tuple[str, ...]) -> Any:
    head = values.get(path[0], _MISSING) if path[0] in values else _MISSING
    for part in path[1:]:
        if not isinstance(head, Mapping) or part not in head:
            return _MISSING
        head = head[part]
    return head
