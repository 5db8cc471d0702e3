"""The project a command runs in: the pytest config file and store that pytest would use there.

pytest finds its rootdir and config file upward from where it starts; the
``crystallize`` command finds them the same way, so that it reads the store
(``crystallize_storage``) a ``pytest --crystallize`` run in the same
directory writes. A config file that cannot be read is a ConfigurationError
naming it.
"""

from __future__ import annotations

import configparser
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pytest_crystallize.core.defaults import DEFAULT_STORAGE
from pytest_crystallize.errors import ConfigurationError

__all__ = ["find_config", "find_storage"]

#: pytest's configuration files, in the order it looks for them in each directory.
_CONFIG_FILES: Final = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini",
                        "setup.cfg")
_STORAGE_INI: Final = "crystallize_storage"


def _ini_section(path: Path, sections: Sequence[str]) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        msg = f"{path}: cannot be read as an ini file ({exc})"
        raise ConfigurationError(msg) from None
    for section in sections:
        if parser.has_section(section):
            return dict(parser.items(section))
    return None


def _toml_table(path: Path, keys: Sequence[Sequence[str]]) -> dict[str, Any] | None:
    import tomllib

    try:
        document: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"{path}: cannot be read as TOML ({exc})"
        raise ConfigurationError(msg) from None
    except RecursionError:
        msg = f"{path}: cannot be read as TOML (nested too deeply to parse)"
        raise ConfigurationError(msg) from None
    for key in keys:
        table = document
        for part in key:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict):
            return table
    return None


def _pytest_config(path: Path) -> dict[str, Any] | None:
    """The pytest settings in ``path`` (one of :data:`_CONFIG_FILES`), or None if it has none."""
    name = path.name
    if name in ("pytest.toml", ".pytest.toml"):
        return _toml_table(path, [("pytest",)]) or {}
    if name in ("pytest.ini", ".pytest.ini"):
        return _ini_section(path, ["pytest"]) or {}
    if name == "pyproject.toml":
        table = _toml_table(path, [("tool", "pytest", "ini_options"), ("tool", "pytest")])
        return None if table is None else {k: v for k, v in table.items() if k != "ini_options"}
    return _ini_section(path, ["pytest"] if name == "tox.ini" else ["tool:pytest"])


def find_config(start: Path) -> tuple[Path, Path | None, dict[str, Any]]:
    """The rootdir, config file and settings pytest would use when started in ``start`` without arguments.

    Like pytest: the first directory at or above ``start`` with a config file
    holding pytest settings (``pytest.ini`` counts even without them); else
    the nearest ``pyproject.toml``'s directory; else ``start`` itself.
    """
    pyproject: Path | None = None
    for directory in (start, *start.parents):
        for name in _CONFIG_FILES:
            path = directory / name
            if not path.is_file():
                continue
            if name == "pyproject.toml" and pyproject is None:
                pyproject = path
            config = _pytest_config(path)
            if config is not None:
                return directory, path, config
    if pyproject is not None:
        return pyproject.parent, pyproject, {}
    return start, None, {}


def find_storage(start: Path) -> tuple[Path, str]:
    """The store a pytest run started in ``start`` uses, and where that came from.

    ``crystallize_storage`` of the project's config file (relative to its
    rootdir, default ``.crystallize``); without a config file, the nearest
    ``.crystallize`` directory at or above ``start``, else ``start/.crystallize``.
    """
    rootdir, path, config = find_config(start)
    if path is not None:
        value = str(config.get(_STORAGE_INI, "")).strip()
        source = f"{_STORAGE_INI} in {path}" if value else f"the default at the rootdir of {path}"
        return rootdir / (value or DEFAULT_STORAGE), source
    for directory in (start, *start.parents):
        if (directory / DEFAULT_STORAGE).is_dir():
            return directory / DEFAULT_STORAGE, "the nearest .crystallize directory"
    return start / DEFAULT_STORAGE, "the default"
