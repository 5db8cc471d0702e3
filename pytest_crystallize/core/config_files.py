"""Treatments and baseline values from YAML, TOML or JSON files.

Two layouts:

* one file. Its top level is either a list of treatments, or a mapping with
  any of ``params`` (the baseline's values), ``treatments`` (a list) and
  ``grid`` (parameter -> list of values, expanded like
  :func:`~pytest_crystallize.core.sweeps.grid`). TOML has no top-level list:
  write ``[[treatments]]`` tables. A treatment is a mapping with ``name``,
  optional ``params`` and optional ``datasource`` (the name of a datasource
  registered with ``@data_source("name", register=True)``, or a mapping from
  the experiment's datasource parameter to such a name);
* a directory. Each ``*.yaml``, ``*.yml``, ``*.toml`` or ``*.json`` file in it
  holds the values of one treatment named after the file (``hot.yaml`` ->
  ``"hot"``), except ``baseline.*``, which holds the baseline's values. Files
  load in name order; dotfiles are ignored.

Loading is safe (``yaml.safe_load``'s loader, ``tomllib``, ``json``): no
code runs. Nothing is dropped silently: an unknown key, a duplicate key or
treatment name, a value of the wrong shape or another file in the directory
is a ConfigurationError naming the file and the key; so is a file nested
more than :data:`~pytest_crystallize.core.nesting.MAX_DEPTH` levels deep.
Treatments from files follow the rules of
:mod:`~pytest_crystallize.core.treatments` like any other: a new key
under a mapping of the baseline is refused when the experiment is defined
(where typed bindings are known). YAML needs PyYAML (``pip install
'pytest-crystallize[config]'``), imported only to read YAML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from pytest_crystallize.core.datasources import DataSource, get_datasource
from pytest_crystallize.core.nesting import MAX_DEPTH, deeper_than
from pytest_crystallize.core.sweeps import grid
from pytest_crystallize.core.treatments import BASELINE, Treatment, merge_params
from pytest_crystallize.errors import ConfigurationError, CrystallizeError

__all__ = ["SUFFIXES", "LoadedConfig", "load_config", "load_treatments"]

#: File suffixes read, by format.
SUFFIXES: Final = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
_FILE_KEYS: Final = ("params", "treatments", "grid")
_TREATMENT_KEYS: Final = ("name", "params", "datasource")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """What a configuration file or directory holds: baseline ``params`` and ``treatments``."""

    source: str
    params: Mapping[str, Any]
    treatments: tuple[Treatment, ...]


def load_config(path: str | Path) -> LoadedConfig:
    """Read baseline values and treatments from a file or a directory (see the module docstring).

    Raises ConfigurationError naming the file and key of anything it cannot use.
    """
    path = Path(path)
    if path.is_dir():
        return _load_directory(path)
    if not path.is_file():
        msg = f"configuration {str(path)!r} does not exist (expected a file or a directory)"
        raise ConfigurationError(msg)
    data = read_file(path)
    if isinstance(data, list):
        data = {"treatments": data}
    if not isinstance(data, Mapping):
        msg = f"{path}: expected a list of treatments or a mapping with {', '.join(_FILE_KEYS)}; got {_kind(data)}"
        raise ConfigurationError(msg)
    _no_unknown_keys(path, "the top level", data, _FILE_KEYS)
    params = _mapping(path, "params", data.get("params", {}))
    listed = data.get("treatments", [])
    if not isinstance(listed, list):
        msg = f"{path}: 'treatments' must be a list of treatments, got {_kind(listed)}"
        raise ConfigurationError(msg)
    treatments = [_treatment(path, f"treatments[{i}]", entry) for i, entry in enumerate(listed)]
    if "grid" in data:
        axes = _mapping(path, "grid", data["grid"])
        try:
            treatments += grid(axes)
        except CrystallizeError as exc:
            msg = f"{path}: 'grid': {exc}"
            raise ConfigurationError(msg) from None
    return _finish(path, params, treatments)


def load_treatments(path: str | Path) -> tuple[Treatment, ...]:
    """The treatments of a file or directory; raises if it also sets baseline values (use load_config)."""
    config = load_config(path)
    if config.params:
        msg = (
            f"{config.source}: also sets baseline values ('params' or a baseline file), which "
            f"load_treatments would drop; use load_config(path) and pass .params and .treatments"
        )
        raise ConfigurationError(msg)
    return config.treatments


def read_file(path: Path) -> Any:
    """Parse one file by its suffix, safely; raise ConfigurationError naming it on any problem."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        msg = f"{path}: unknown configuration format {path.suffix!r}; use {', '.join(SUFFIXES)}"
        raise ConfigurationError(msg)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot be read: {exc}"
        raise ConfigurationError(msg) from None
    if kind == "yaml" and not _has_yaml():
        msg = f"reading {path} needs PyYAML: pip install 'pytest-crystallize[config]' (or pyyaml)"
        raise ConfigurationError(msg)
    cycle = " (or an alias refers to itself)" if kind == "yaml" else ""
    too_deep = (f"{path}: nested more than {MAX_DEPTH} levels deep{cycle}; flatten it, e.g. with dotted keys "
                "such as 'llm.temperature'")
    try:
        data = _parse(kind, text)
    except ValueError as exc:
        msg = f"{path}: not valid {kind.upper()}: {exc}"
        raise ConfigurationError(msg) from None
    except RecursionError:  # every parser recurses once per level
        raise ConfigurationError(too_deep) from None
    if deeper_than(data):  # so that nothing that walks it later recurses too deeply
        raise ConfigurationError(too_deep)
    if data is None:
        msg = f"{path}: is empty"
        raise ConfigurationError(msg)
    return data


# -- internals -------------------------------------------------------------------------------


def _parse(kind: str, text: str) -> Any:
    """Raise ValueError (or a subclass) on malformed text or a repeated key."""
    if kind == "json":
        return json.loads(text, object_pairs_hook=_unique_pairs)
    if kind == "toml":
        import tomllib

        return tomllib.loads(text)  # TOML itself forbids repeated keys
    import yaml

    try:
        return yaml.load(text, Loader=_unique_key_loader())  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def _has_yaml() -> bool:
    try:
        import yaml  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            msg = f"key {key!r} appears twice in one object"
            raise ValueError(msg)
        out[key] = value
    return out


_LOADERS: dict[str, type] = {}


def _unique_key_loader() -> type:
    """yaml.SafeLoader that refuses a repeated key (PyYAML keeps the last one silently)."""
    loader = _LOADERS.get("safe")
    if loader is not None:
        return loader
    import yaml

    class UniqueKeySafeLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    repeated = key in seen
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if repeated:
                    context, problem = "while reading a mapping", f"found the key {key!r} twice"
                    raise yaml.constructor.ConstructorError(context, node.start_mark, problem, key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _LOADERS["safe"] = UniqueKeySafeLoader
    return UniqueKeySafeLoader


def _load_directory(path: Path) -> LoadedConfig:
    params: dict[str, Any] = {}
    treatments = []
    origins: dict[str, Path] = {}
    for file in sorted(path.iterdir(), key=lambda p: p.name):
        if file.name.startswith("."):
            continue
        if not file.is_file() or file.suffix.lower() not in SUFFIXES:
            msg = (
                f"{file}: is not a configuration file ({', '.join(SUFFIXES)}) but lies in the "
                f"configuration directory {str(path)!r}; move it out so nothing is ignored silently"
            )
            raise ConfigurationError(msg)
        if file.stem in origins:
            what = "the baseline" if file.stem == BASELINE else f"treatment {file.stem!r}"
            msg = (
                f"{origins[file.stem]} and {file} both define {what} in the configuration directory "
                f"{str(path)!r}; keep one of them"
            )
            raise ConfigurationError(msg)
        origins[file.stem] = file
        values = _mapping(file, "the top level", read_file(file))
        if file.stem == BASELINE:
            params = values
            continue
        treatments.append(_make(file, file.stem, file.stem, values, None))
    if not origins:
        msg = (
            f"configuration directory {str(path)!r} holds no configuration file ({', '.join(SUFFIXES)}): "
            f"add one file per treatment (and baseline.* for the baseline's values)"
        )
        raise ConfigurationError(msg)
    return _finish(path, params, treatments, origins)


def _finish(
    path: Path, params: dict[str, Any], treatments: list[Treatment], origins: Mapping[str, Path] | None = None
) -> LoadedConfig:
    seen: dict[str, int] = {}
    for treatment in treatments:
        if treatment.name == BASELINE:
            msg = f"{path}: treatment name {BASELINE!r} is reserved; put baseline values under 'params'"
            raise ConfigurationError(msg)
        seen[treatment.name] = seen.get(treatment.name, 0) + 1
    twice = sorted(name for name, count in seen.items() if count > 1)
    if twice:
        msg = f"{path}: treatment name {twice[0]!r} is used more than once; names must be unique"
        raise ConfigurationError(msg)
    try:
        merge_params({}, params, "params")  # a bad dotted path fails here, naming the file
    except CrystallizeError as exc:
        msg = f"{(origins or {}).get(BASELINE, path)}: {exc}"
        raise ConfigurationError(msg) from None
    return LoadedConfig(source=str(path), params=MappingProxyType(params), treatments=tuple(treatments))


def _treatment(path: Path, where: str, entry: Any) -> Treatment:
    if not isinstance(entry, Mapping):
        msg = f"{path}: {where}: a treatment must be a mapping with 'name' and 'params', got {_kind(entry)}"
        raise ConfigurationError(msg)
    name = entry.get("name")
    label = f"{where} ({name!r})" if isinstance(name, str) else where
    _no_unknown_keys(path, label, entry, _TREATMENT_KEYS)
    if not isinstance(name, str) or not name.strip():
        msg = f"{path}: {where}: 'name' must be a non-empty string, got {name!r}"
        raise ConfigurationError(msg)
    params = _mapping(path, f"{label}.params", entry.get("params", {}))
    return _make(path, label, name, params, entry.get("datasource"))


def _make(path: Path, label: str, name: str, params: dict[str, Any], datasource: Any) -> Treatment:
    source: DataSource | dict[str, DataSource] | None = None
    try:
        if isinstance(datasource, str):
            source = get_datasource(datasource)
        elif isinstance(datasource, Mapping):
            source = {str(k): get_datasource(_text(path, f"{label}.datasource.{k}", v)) for k, v in datasource.items()}
        elif datasource is not None:
            msg = f"a datasource name or a mapping of parameter to datasource name, got {_kind(datasource)}"
            raise ConfigurationError(msg)
        return Treatment(name, params, source)
    except CrystallizeError as exc:
        text = str(exc)
        msg = text if text.startswith(f"{path}:") else f"{path}: {label}: {text}"
        raise ConfigurationError(msg) from None


def _text(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str):
        msg = f"{path}: {where}: expected a datasource name, got {_kind(value)}"
        raise ConfigurationError(msg)
    return value


def _mapping(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        msg = f"{path}: {where!s} must be a mapping of names to values, got {_kind(value)}"
        raise ConfigurationError(msg)
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        msg = f"{path}: {where}: key {bad[0]!r} is not a string"
        raise ConfigurationError(msg)
    return dict(value)


def _no_unknown_keys(path: Path, where: str, data: Mapping[Any, Any], known: tuple[str, ...]) -> None:
    unknown = [k for k in data if k not in known]
    if unknown:
        msg = f"{path}: {where}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}"
        raise ConfigurationError(msg)


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.40}"
