"""The values of pytest-crystallize's options and ini settings, parsed and checked.

:class:`Settings` holds what the options of running experiments say (their
settings, the treatments to run, the progress display, the artifacts root,
the journal, cache, Dask, budget and confirmation); the settings of saved
runs, the gate and the reports are in
:mod:`pytest_crystallize.pytest_plugin.output_settings`, which reads options
with this module's :func:`option_value`, :func:`flag` and :func:`store_root`.
The parsers are small pure functions raising pytest.UsageError that names
the bad option. The options themselves are registered in
:mod:`pytest_crystallize.pytest_plugin.options`.

Precedence for an experiment's settings: command line, then the
``@pytest.mark.experiment`` marker, then the ini file, then built-in defaults.
Relative store paths are anchored at the rootdir, never the working directory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import pytest

from pytest_crystallize.core.defaults import (
    CACHE_DIR,
    DEFAULT_ARTIFACTS_DIR,
    DEFAULT_STORAGE,
)
from pytest_crystallize.core.vocabulary import CORRECTIONS, PROGRESS_MODES, ProgressMode
from pytest_crystallize.errors import ConfigurationError

__all__ = ["Settings", "flag", "option_value", "read_settings", "store_root"]


# -- running experiments ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Settings:
    """Session-wide settings of running experiments.

    ``defaults`` hold the ini values (or built-in defaults) that markers
    beat; ``overrides`` the command-line values that beat markers.
    """

    enabled: bool
    defaults: Mapping[str, Any]
    overrides: Mapping[str, Any]
    #: ``--crystallize-treatment`` names or globs; empty: every treatment runs.
    treatments: tuple[str, ...] = ()
    progress: ProgressMode = "auto"
    #: Default root of ``ArtifactPlugin`` (absolute: anchored at the rootdir).
    artifacts_root: Path = Path(DEFAULT_ARTIFACTS_DIR)
    #: The store whose journal keeps finished replicates while running; None: no journal.
    journal_root: Path | None = None
    #: Take what the journal holds and run only the missing replicates.
    resume: bool = False
    #: The step cache's directory (under the store); None: the cache is off.
    cache_root: Path | None = None
    #: The step cache's size limit in bytes.
    cache_size: int = 2 * 1024**3
    #: ``--crystallize-dask``: the Dask scheduler address (or ``local``) replicates run on; None: not on Dask.
    dask: str | None = None
    #: ``--crystallize-budget`` in seconds, and the wall-clock time (``time.time()``) it ends; None: no budget.
    budget: float | None = None
    deadline: float | None = None
    #: Run every experiment as a confirmatory run; fail those that are not a clean confirmation.
    confirm: bool = False
    require_confirmed: bool = False
    #: The store (absolute): where confirmations are pre-registered and saved runs are kept.
    store_root: Path = Path(DEFAULT_STORAGE)


def _integer(value: str, source: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        msg = f"{source} must be an integer >= {minimum}, got {value!r}"
        raise pytest.UsageError(msg)
    return number


def _alpha(value: str, source: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < 1:
        msg = f"{source} must be a number strictly between 0 and 1, got {value!r}"
        raise pytest.UsageError(msg)
    return number


def _correction(value: str, source: str) -> str:
    if value not in CORRECTIONS:
        msg = f"{source} must be one of {', '.join(CORRECTIONS)}, got {value!r}"
        raise pytest.UsageError(msg)
    return value


def _timeout(value: str, source: str) -> float | None:
    if value.lower() in ("", "none"):
        return None
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < math.inf:
        msg = f"{source} must be a number of seconds > 0, or none for no limit, got {value!r}"
        raise pytest.UsageError(msg)
    return number


_PARSERS: Final = {
    "replicates": lambda v, s: _integer(v, s, 1),
    "seed": lambda v, s: _integer(v, s, 0),
    "alpha": _alpha,
    "correction": _correction,
    "timeout": _timeout,
}


def read_settings(config: pytest.Config) -> Settings:
    """Parse the options of running experiments; raise pytest.UsageError naming a bad one."""
    defaults: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    for key, parse in _PARSERS.items():
        ini_name = f"crystallize_{key}"
        defaults[key] = parse(str(config.getini(ini_name)).strip(), f"ini option {ini_name}")
        cli = config.getoption(f"crystallize_{key}")
        if cli is not None:
            overrides[key] = parse(str(cli).strip(), f"--crystallize-{key}")
    try:
        enabled = bool(config.getoption("crystallize") or config.getini("crystallize"))
    except (ValueError, pytest.UsageError) as exc:  # pytest's message names no option
        msg = f"ini option crystallize: {exc}; use true or false"
        raise pytest.UsageError(msg) from None
    journal = not config.getoption("crystallize_no_journal", None) and flag(config, "crystallize_journal")
    cache_root, cache_size = _cache(config)
    budget_text, budget_source, _ = option_value(config, "crystallize_budget")
    budget = _timeout(budget_text or "none", budget_source)
    return Settings(
        enabled=enabled, defaults=MappingProxyType(defaults), overrides=MappingProxyType(overrides),
        treatments=_treatments(config), progress=_progress(config), artifacts_root=_artifacts_root(config),
        journal_root=store_root(config) if journal else None, resume=flag(config, "crystallize_resume"),
        cache_root=cache_root, cache_size=cache_size, dask=_dask(config),
        budget=budget, deadline=None if budget is None else time.time() + budget,
        confirm=flag(config, "crystallize_confirm"), require_confirmed=flag(config, "crystallize_require_confirmed"),
        store_root=store_root(config),
    )


def _cache(config: pytest.Config) -> tuple[Path | None, int]:
    """The step cache's directory (None when off) and size limit."""
    on, off = config.getoption("crystallize_cache", None), config.getoption("crystallize_no_cache", None)
    if on and off:
        msg = "--crystallize-cache and --crystallize-no-cache contradict each other: give one of them"
        raise pytest.UsageError(msg)
    from pytest_crystallize.core.cache.sizes import parse_size

    try:
        size = parse_size(str(config.getini("crystallize_cache_size")).strip(), "ini option crystallize_cache_size")
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from None
    enabled = bool(on) or (not off and flag(config, "crystallize_cache"))
    return (store_root(config) / CACHE_DIR if enabled else None), size


def _treatments(config: pytest.Config) -> tuple[str, ...]:
    """The ``--crystallize-treatment`` names (the command line replaces the ini list)."""
    given = config.getoption("crystallize_treatment", None)
    source = "--crystallize-treatment"
    if given is None:
        given, source = config.getini("crystallize_treatment"), "ini option crystallize_treatment"
    names = tuple(str(name).strip() for name in given)
    if any(not name for name in names):
        msg = f"{source} needs a treatment name, got an empty one"
        raise pytest.UsageError(msg)
    return names


def _dask(config: pytest.Config) -> str | None:
    """The ``--crystallize-dask`` address (the command line beats the ini), checked to be usable."""
    value, source, _ = option_value(config, "crystallize_dask")
    if value is None:
        return None
    if not value or any(c.isspace() for c in value):
        msg = f"{source} must be a Dask scheduler address such as tcp://host:8786, or local; got {value!r}"
        raise pytest.UsageError(msg)
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        msg = f'{source} needs dask.distributed, which is not installed: pip install "pytest-crystallize[dask]"'
        raise pytest.UsageError(msg)
    return value


def _progress(config: pytest.Config) -> ProgressMode:
    value = config.getoption("crystallize_progress", None)
    source = "--crystallize-progress"
    if value is None:
        value, source = str(config.getini("crystallize_progress")).strip(), "ini option crystallize_progress"
    for mode in PROGRESS_MODES:
        if value == mode:
            return mode
    msg = f"{source} must be one of {', '.join(PROGRESS_MODES)}, got {value!r}"
    raise pytest.UsageError(msg)


def _artifacts_root(config: pytest.Config) -> Path:
    value = config.getoption("crystallize_artifacts_dir", None) or config.getini("crystallize_artifacts_dir")
    path = Path(str(value).strip() or DEFAULT_ARTIFACTS_DIR)
    return path if path.is_absolute() else config.rootpath / path


def option_value(config: pytest.Config, name: str) -> tuple[str | None, str, Path]:
    """The option's value (or its ini twin's; ``None`` when neither is set), its source, its base dir."""
    cli = config.getoption(name, None)
    if cli is not None:
        return str(cli).strip(), f"--{name.replace('_', '-')}", config.invocation_params.dir
    ini = str(config.getini(name)).strip()
    return (ini or None), f"ini option {name}", config.rootpath


def store_root(config: pytest.Config) -> Path:
    """The store directory (``--crystallize-storage``, its ini twin, or the default), anchored at the rootdir."""
    storage, _, _ = option_value(config, "crystallize_storage")
    root = Path(storage or DEFAULT_STORAGE)
    return root if root.is_absolute() else config.rootpath / root


def flag(config: pytest.Config, name: str) -> bool:
    """A flag option, or its ini twin (a bad truth value is a usage error naming the option)."""
    if config.getoption(name, None):
        return True
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest's "invalid truth value 'maybe'" names no option
        msg = f"ini option {name}: {exc}; use true or false"
        raise pytest.UsageError(msg) from None
