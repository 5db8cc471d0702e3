"""Options of saved runs and the regression gate, parsed into :class:`StorageSettings`.

Every option has an ini twin; the command line wins. Relative store paths
are anchored at the rootdir, never the working directory. A
``--crystallize-save`` name that looks like a test path (``--crystallize-save
test_x.py`` swallows the path as the name) is a usage error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from pytest_crystallize.core.defaults import DEFAULT_STORAGE, LATEST
from pytest_crystallize.core.store.gate_specs import parse_margin
from pytest_crystallize.core.store.records import check_run_name
from pytest_crystallize.errors import ConfigurationError, ResultsError

__all__ = ["DEFAULT_STORAGE", "StorageSettings", "add_storage_options", "read_storage_settings"]

GROUP: Final = "crystallize"


def add_storage_options(parser: pytest.Parser) -> None:
    """Register the ``--crystallize-{storage,save,autosave,compare,gate,gate-strict,json}`` options."""
    group = parser.getgroup(GROUP)
    group.addoption(
        "--crystallize-storage", metavar="DIR", default=None,
        help=f"directory of saved runs, relative to the rootdir (default {DEFAULT_STORAGE}). ini: crystallize_storage",
    )
    group.addoption(
        "--crystallize-save", metavar="NAME", nargs="?", const="", default=None,
        help="save this run's results (optionally under NAME; write --crystallize-save=NAME). ini: crystallize_save",
    )
    group.addoption(
        "--crystallize-autosave", action="store_true", default=None,
        help="save every run's results. ini: crystallize_autosave",
    )
    group.addoption(
        "--crystallize-compare", metavar="REF", nargs="?", const=LATEST, default=None,
        help="compare each experiment with a saved run and report the differences: REF is 'latest' "
             "(default), a run id or id prefix, a NAME, or a PATH with a '/' to a run directory. "
             "ini: crystallize_compare",
    )
    group.addoption(
        "--crystallize-gate", metavar="MARGIN", nargs="?", const="0", default=None,
        help="fail an experiment whose metric is significantly worse than in the saved run (of "
             "--crystallize-compare, default latest) by more than MARGIN: a number, or a percentage of "
             "the saved mean such as 2%% (default 0). ini: crystallize_gate",
    )
    group.addoption(
        "--crystallize-gate-strict", action="store_true", default=None,
        help="with --crystallize-gate=MARGIN > 0: also fail unless each metric is shown to be no worse "
             "than saved within MARGIN, and fail experiments that could not be compared. "
             "ini: crystallize_gate_strict",
    )
    group.addoption(
        "--crystallize-json", metavar="PATH", default=None,
        help="write every experiment's statistics and comparison to PATH as JSON (for dashboards). "
             "ini: crystallize_json",
    )
    parser.addini("crystallize_storage", default=DEFAULT_STORAGE,
                  help=f"directory of saved runs, relative to the rootdir (default {DEFAULT_STORAGE})")
    parser.addini("crystallize_save", default="", help="save every run under this name (default: do not save)")
    parser.addini("crystallize_autosave", type="bool", default=False, help="save every run's results")
    parser.addini("crystallize_compare", default="",
                  help="saved run to compare with: latest, a run id, a name or a path (default: none)")
    parser.addini("crystallize_gate", default="",
                  help="enable the regression gate with this margin, e.g. 0 or 2% (default: off)")
    parser.addini("crystallize_gate_strict", type="bool", default=False,
                  help="the gate also fails metrics not shown to be no worse within the margin")
    parser.addini("crystallize_json", default="", help="write a JSON report of the experiments to this path")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where runs are stored, whether this run is saved, compared and gated, and where JSON goes.

    ``compare`` is the reference of the saved run (``None``: no comparison);
    ``gate`` makes a significant regression fail the experiment.
    """

    root: Path
    save: bool = False
    save_name: str | None = None
    compare: str | None = None
    gate: bool = False
    margin: float = 0.0
    relative: bool = False
    strict: bool = False
    json_path: Path | None = None


def _value(config: pytest.Config, name: str) -> tuple[str | None, str, Path]:
    """The option's value (or its ini twin's; ``None`` when neither is set), its source, its base dir."""
    cli = config.getoption(name, None)
    if cli is not None:
        return str(cli).strip(), f"--{name.replace('_', '-')}", config.invocation_params.dir
    ini = str(config.getini(name)).strip()
    return (ini or None), f"ini option {name}", config.rootpath


def _flag(config: pytest.Config, name: str) -> bool:
    if config.getoption(name, None):
        return True
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest's "invalid truth value 'maybe'" names no option
        msg = f"ini option {name}: {exc}; use true or false"
        raise pytest.UsageError(msg) from None


def _looks_like_a_path(name: str, base: Path) -> bool:
    """True for a run name that is rather a test path swallowed by ``--crystallize-save NAME``; never raises."""
    return "/" in name or os.sep in name or name.endswith(".py") or os.path.exists(base / name)  # Path.exists raises


def _check_save_name(name: str, source: str, base: Path) -> None:
    if source.startswith("--") and _looks_like_a_path(name, base):
        msg = (f"{source}: {name!r} looks like a test path, not a run name (written without '=', the option "
               "takes the next argument as its name): write --crystallize-save=NAME, or --crystallize-save= for "
               "no name, and give test paths separately; a name must not be a path, end in .py or name an "
               "existing file or directory")
        raise pytest.UsageError(msg)
    try:
        check_run_name(name)
    except ResultsError as exc:
        msg = f"{source}: {exc}"
        raise pytest.UsageError(msg) from None


def read_storage_settings(config: pytest.Config) -> StorageSettings:
    """Parse the storage options; raise pytest.UsageError naming a bad one."""
    storage, _, _ = _value(config, "crystallize_storage")
    root = Path(storage or DEFAULT_STORAGE)
    root = root if root.is_absolute() else config.rootpath / root
    name, name_source, name_base = _value(config, "crystallize_save")
    save = name is not None or _flag(config, "crystallize_autosave")
    if name:
        _check_save_name(name, name_source, name_base)
    margin_text, margin_source, _ = _value(config, "crystallize_gate")
    margin, relative = 0.0, False
    if margin_text is not None:
        try:
            margin, relative = parse_margin(margin_text, margin_source)
        except ConfigurationError as exc:
            msg = f"{exc} (write --crystallize-gate=MARGIN, with '=')"
            raise pytest.UsageError(msg) from None
    strict = _flag(config, "crystallize_gate_strict")
    if strict and margin == 0:
        msg = ("--crystallize-gate-strict needs a margin > 0 (e.g. --crystallize-gate=2%): with margin 0, "
               "'no worse' would mean 'significantly better'")
        raise pytest.UsageError(msg)
    reference, _, base = _value(config, "crystallize_compare")
    if reference is None and margin_text is not None:
        reference = LATEST
    if reference is not None and ("/" in reference or "\\" in reference):
        reference = str(base / reference)
    json_text, _, json_base = _value(config, "crystallize_json")
    return StorageSettings(
        root=root, save=save, save_name=name or None, compare=reference, gate=margin_text is not None,
        margin=margin, relative=relative, strict=strict,
        json_path=None if json_text is None else json_base / json_text,
    )
