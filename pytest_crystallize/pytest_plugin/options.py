"""Command-line options and ini settings, parsed into one frozen Settings.

Precedence for an experiment's settings: command line, then the
``@pytest.mark.experiment`` marker, then the ini file, then built-in defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pytest

from pytest_crystallize.core.defaults import DEFAULT_ALPHA, DEFAULT_CORRECTION, DEFAULT_REPLICATES, DEFAULT_SEED
from pytest_crystallize.core.vocabulary import CORRECTIONS

__all__ = ["Settings", "add_options", "read_settings"]

GROUP: Final = "crystallize"


def add_options(parser: pytest.Parser) -> None:
    """Register the ``--crystallize*`` options and their ``crystallize_*`` ini twins."""
    group = parser.getgroup(GROUP, "crystallize: experiments as tests")
    group.addoption(
        "--crystallize", action="store_true", default=None,
        help="run experiment_* items (without it they are collected and skipped). ini: crystallize",
    )
    group.addoption(
        "--crystallize-replicates", metavar="N", default=None,
        help="replicates per condition for every experiment, overriding markers and ini. "
             "ini: crystallize_replicates",
    )
    group.addoption(
        "--crystallize-seed", metavar="SEED", default=None,
        help="master seed for every experiment, overriding markers and ini. ini: crystallize_seed",
    )
    group.addoption(
        "--crystallize-alpha", metavar="ALPHA", default=None,
        help="significance level for every experiment, overriding markers and ini. ini: crystallize_alpha",
    )
    group.addoption(
        "--crystallize-correction", metavar="METHOD", default=None,
        help=f"multiple-comparison correction ({', '.join(CORRECTIONS)}). ini: crystallize_correction",
    )
    group.addoption(
        "--crystallize-treatment", metavar="NAME", action="append", default=None,
        help="run only this treatment (and the baseline); repeat for several. Tried as the exact "
             "name, then (ending in *) as a literal prefix, so 'shape=[3]*' works, then as a glob. "
             "Experiments with none of them are skipped. ini: crystallize_treatment (one per line)",
    )
    parser.addini("crystallize_treatment", type="linelist", default=[],
                  help="treatments to run, one name or glob per line (default: all)")
    parser.addini("crystallize", type="bool", default=False,
                  help="run experiments without passing --crystallize")
    parser.addini("crystallize_replicates", default=str(DEFAULT_REPLICATES),
                  help=f"default replicates per condition (default {DEFAULT_REPLICATES})")
    parser.addini("crystallize_seed", default=str(DEFAULT_SEED),
                  help=f"default master seed (default {DEFAULT_SEED})")
    parser.addini("crystallize_alpha", default=str(DEFAULT_ALPHA),
                  help=f"default significance level (default {DEFAULT_ALPHA})")
    parser.addini("crystallize_correction", default=DEFAULT_CORRECTION,
                  help=f"default multiple-comparison correction (default {DEFAULT_CORRECTION})")


@dataclass(frozen=True, slots=True)
class Settings:
    """Session-wide settings. ``overrides`` hold command-line values that beat markers."""

    enabled: bool
    defaults: dict[str, Any]
    overrides: dict[str, Any]
    #: ``--crystallize-treatment`` names or globs; empty: every treatment runs.
    treatments: tuple[str, ...] = ()


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


_PARSERS: Final = {
    "replicates": lambda v, s: _integer(v, s, 1),
    "seed": lambda v, s: _integer(v, s, 0),
    "alpha": _alpha,
    "correction": _correction,
}


def read_settings(config: pytest.Config) -> Settings:
    """Parse options and ini values; raise pytest.UsageError naming a bad one."""
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
    return Settings(enabled=enabled, defaults=defaults, overrides=overrides, treatments=_treatments(config))


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
