"""Building models from plain values: dataclasses (checked here) and Pydantic models (checked by Pydantic).

:func:`build` turns a mapping (from the context or a configuration file) into
a dataclass or ``pydantic.BaseModel`` instance, naming the field (as a dotted
path) of anything wrong: a missing field, an unknown key, a value of the
wrong type. Dataclass fields annotated with plain types (``float``, ``str``,
``int | None``, ``Optional[...]``, ``Literal``, ``list[...]``, nested
dataclasses) are checked; other annotations are accepted as they are, and an
annotation that cannot be resolved is never a crash. Pydantic is never
imported here unless a Pydantic model is built: a class is a Pydantic model
only if ``pydantic`` was already imported (its author did).
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
import types
import typing
import weakref
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pytest_crystallize.errors import ConfigurationError

__all__ = ["build", "field_names", "is_model", "resolve_fields", "thaw"]

_HINTS: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def thaw(value: Any) -> Any:
    """A copy of ``value`` with every nested mapping a new dict and every list a new list."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        return tuple(thaw(v) for v in value)
    return value


def is_model(annotation: object) -> bool:
    """True for a dataclass type or a Pydantic model class."""
    if not isinstance(annotation, type):
        return False
    if dataclasses.is_dataclass(annotation):
        return True
    base = _pydantic_base()
    return base is not None and issubclass(annotation, base)


def build(model: type, data: Mapping[str, Any], prefix: tuple[str, ...], *, top: bool = False) -> Any:
    """Build ``model`` from ``data``; raise ConfigurationError naming the field (as a path)."""
    base = _pydantic_base()
    if base is not None and issubclass(model, base):
        return _build_pydantic(model, data, prefix, top=top)
    return _build_dataclass(model, data, prefix, top=top)


def field_names(model: type) -> tuple[str, ...]:
    """The names (and Pydantic aliases) a mapping may use for the model's fields."""
    if dataclasses.is_dataclass(model):
        return tuple(f.name for f in dataclasses.fields(model) if f.init)
    names: list[str] = []
    for name, info in getattr(model, "model_fields", {}).items():
        names.append(name)
        for alias in (getattr(info, "alias", None), getattr(info, "validation_alias", None)):
            if isinstance(alias, str) and alias not in names:
                names.append(alias)
    return tuple(names)


def resolve_fields(model: type, localns: Mapping[str, Any]) -> None:
    """Resolve the field types of a dataclass ``model`` and its nested dataclasses, once."""
    if not dataclasses.is_dataclass(model) or model in _HINTS:
        return
    for annotation in _class_hints(model, localns).values():
        for arm in _arms(annotation):
            if is_model(arm):
                resolve_fields(arm, localns)


# -- internals -------------------------------------------------------------------------------


def _pydantic_base() -> type | None:
    module = sys.modules.get("pydantic")
    base = getattr(module, "BaseModel", None)
    return base if isinstance(base, type) else None


def _build_pydantic(model: type, data: Mapping[str, Any], prefix: tuple[str, ...], *, top: bool) -> Any:
    import pydantic

    # Pydantic ignores unknown keys by default; below the top level of the context they are
    # typos or stale settings, so refuse them unless the model says what to do with extras.
    if not top and getattr(model, "model_config", {}).get("extra") is None:
        names = field_names(model)
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            shown = ".".join((*prefix, unknown[0]))
            msg = (
                f"field {shown!r} is not a field of {model.__name__} (its fields: {', '.join(sorted(names))}); "
                f"set model_config = ConfigDict(extra='ignore') on the model to allow unknown keys"
            )
            raise ConfigurationError(msg)
    try:
        return model.model_validate(thaw(data))  # type: ignore[attr-defined]  # a BaseModel subclass
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join((*prefix, *(str(p) for p in error["loc"])))
            text = f"field {where!r}: {error['msg']}"
            if error["type"] != "missing":
                text += f" (got {error.get('input')!r:.40})"
            problems.append(text)
        raise ConfigurationError("; ".join(problems)) from None


def _class_hints(model: type, localns: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The resolved field types of a dataclass (cached per class; unresolvable ones left out)."""
    hints = _HINTS.get(model)
    if hints is None:
        module = sys.modules.get(model.__module__)
        globalns = dict(vars(module)) if module is not None else {}
        try:
            hints = typing.get_type_hints(model, globalns, dict(localns or {}), include_extras=True)
        except Exception:  # one unresolvable field: resolve the others one by one
            hints = {}
            for field in dataclasses.fields(model):
                holder = types.SimpleNamespace(__annotations__={field.name: field.type})
                try:
                    hints.update(typing.get_type_hints(holder, globalns, dict(localns or {}), include_extras=True))
                except Exception:  # its values are not checked: never a crash
                    continue
        _HINTS[model] = hints
    return hints


def _build_dataclass(
    model: type, data: Mapping[str, Any], prefix: tuple[str, ...], *, top: bool
) -> Any:
    fields = [f for f in dataclasses.fields(model) if f.init]
    names = {f.name for f in fields}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown and not top:
        shown = ".".join((*prefix, unknown[0]))
        msg = f"field {shown!r} is not a field of {model.__name__} (its fields: {', '.join(sorted(names))})"
        raise ConfigurationError(msg)
    hints = _class_hints(model)
    kwargs: dict[str, Any] = {}
    for field in fields:
        where = (*prefix, field.name)
        if field.name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                msg = f"field {'.'.join(where)!r} is missing"
                raise ConfigurationError(msg)
            continue
        kwargs[field.name] = _convert(data[field.name], hints.get(field.name, Any), where)
    try:
        return model(**kwargs)
    except Exception as exc:  # __post_init__ validation of the user's dataclass
        msg = f"{model.__name__}({', '.join(kwargs)}) raised {type(exc).__name__}: {exc}"
        raise ConfigurationError(msg) from None


def _convert(value: Any, annotation: Any, where: tuple[str, ...]) -> Any:
    """Check ``value`` against ``annotation``, building nested models; return a fresh copy."""
    arms = _arms(annotation)
    for arm in arms:
        if is_model(arm) and isinstance(value, Mapping):
            return build(arm, value, where)
    if _matches(value, annotation) is False:
        shown = " | ".join(getattr(a, "__name__", repr(a)) for a in arms)
        msg = f"field {'.'.join(where)!r} expects {shown}, got {type(value).__name__} {value!r:.40}"
        raise ConfigurationError(msg)
    if isinstance(value, list) and any(get_origin(a) is tuple or a is tuple for a in arms):
        return tuple(thaw(value))  # YAML and JSON have lists, not tuples
    return thaw(value)


def _arms(annotation: Any) -> tuple[Any, ...]:
    """The arms of a union (through ``Annotated``), or the annotation alone."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _arms(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return tuple(a for arm in get_args(annotation) for a in _arms(arm))
    return (annotation,)


def _matches(value: Any, annotation: Any) -> bool | None:
    """True or False when ``value`` clearly is or is not of the type; None when unknown."""
    if annotation is Any or annotation is object:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _matches(value, get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        answers = [_matches(value, arm) for arm in get_args(annotation)]
        return True if any(answers) else (False if all(a is False for a in answers) else None)
    if origin is Literal:
        return value in get_args(annotation)
    if origin is not None:
        annotation = origin
    if annotation is type(None) or annotation is None:
        return value is None
    if not isinstance(annotation, type):
        return None
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is tuple:
        return isinstance(value, (tuple, list))
    try:
        return isinstance(value, annotation)
    except TypeError:  # a protocol or generic that isinstance cannot check
        return None
