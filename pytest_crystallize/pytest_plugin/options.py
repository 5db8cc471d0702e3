"""Every command-line option and ini setting of pytest-crystallize: registered and parsed here.

:func:`add_options` registers the ``--crystallize*`` options, in one group,
each with its ``crystallize_*`` ini twin. Two frozen values hold what they
say: :class:`Settings` (running experiments: their settings, the treatments
to run, the progress display, the artifacts root) and
:class:`StorageSettings` (saved runs, the regression gate, the JSON
report); :class:`MarkdownTarget` says where the Markdown summary goes.
The parsers are small pure functions raising pytest.UsageError that names
the bad option.

Precedence for an experiment's settings: command line, then the
``@pytest.mark.experiment`` marker, then the ini file, then built-in defaults.
Relative store paths are anchored at the rootdir, never the working directory.
A ``--crystallize-save`` name that looks like a test path (``--crystallize-save
test_x.py`` swallows the path as the name) is a usage error.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import pytest

from pytest_crystallize.core.defaults import (
    CACHE_DIR,
    DEFAULT_ALPHA,
    DEFAULT_ARTIFACTS_DIR,
    DEFAULT_BASELINE,
    DEFAULT_CACHE_SIZE,
    DEFAULT_CORRECTION,
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    DEFAULT_STORAGE,
    LATEST,
)
from pytest_crystallize.core.vocabulary import CORRECTIONS, PROGRESS_MODES, ProgressMode
from pytest_crystallize.errors import ConfigurationError, ResultsError

__all__ = [
    "GITHUB_SUMMARY",
    "MarkdownTarget",
    "Settings",
    "StorageSettings",
    "add_options",
    "read_html_path",
    "read_markdown_target",
    "read_settings",
    "read_storage_settings",
]

GROUP: Final = "crystallize"
#: The environment variable GitHub Actions sets to the file shown on a step's job page.
GITHUB_SUMMARY: Final = "GITHUB_STEP_SUMMARY"


def add_options(parser: pytest.Parser) -> None:
    """Register every ``--crystallize*`` option and its ``crystallize_*`` ini twin, in one group."""
    group = parser.getgroup(GROUP, "crystallize: experiments as tests")
    _add_experiment_options(group, parser)
    _add_storage_options(group, parser)
    _add_display_options(group, parser)


def _add_experiment_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
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
    group.addoption(
        "--crystallize-timeout", metavar="SECONDS", default=None,
        help="stop a replicate that runs longer than SECONDS: it becomes a ReplicateTimeout error of that "
             "replicate and the others run ('none': no limit), overriding markers and ini. ini: crystallize_timeout",
    )
    parser.addini("crystallize_timeout", default="none",
                  help="default per-replicate timeout in seconds, or none (default none)")
    group.addoption(
        "--crystallize-dask", metavar="ADDRESS", default=None,
        help="run every experiment's replicates on the Dask cluster whose scheduler is at ADDRESS "
             "(tcp://host:8786), or on a local cluster sized to this machine with 'local'; an experiment "
             "that names its own execution backend keeps it. Needs pytest-crystallize[dask]. ini: crystallize_dask",
    )
    parser.addini("crystallize_dask", default="",
                  help="Dask scheduler address to run replicates on, or local (default: none)")
    group.addoption(
        "--crystallize-budget", metavar="SECONDS", default=None,
        help="stop every experiment when SECONDS have passed since the session started: anytime designs "
             "(replicates='anytime') stay valid, sequential ones keep the verdicts of their last look, fixed ones "
             "fail as not valid; experiments not started by then are skipped ('none': no budget). "
             "ini: crystallize_budget",
    )
    parser.addini("crystallize_budget", default="none",
                  help="time budget of the session's experiments in seconds, or none (default none)")
    group.addoption(
        "--crystallize-confirm", action="store_true", default=None,
        help="run every experiment as a confirmatory run: write a pre-registration to the store, run on a fresh "
             "seed stream no earlier run used, and say in each verdict whether it is a clean confirmation "
             "(also confirm=True on the marker). ini: crystallize_confirm",
    )
    group.addoption(
        "--crystallize-require-confirmed", action="store_true", default=None,
        help="fail every experiment whose verdicts are not a clean confirmation (pre-registered, fresh data, "
             "nothing changed or repeated since exploring). ini: crystallize_require_confirmed",
    )
    parser.addini("crystallize_confirm", type="bool", default=False,
                  help="run every experiment as a confirmatory run (default false)")
    parser.addini("crystallize_require_confirmed", type="bool", default=False,
                  help="fail experiments whose verdicts are not a clean confirmation (default false)")


def _add_storage_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
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
             "--crystallize-compare; default: the newest run named by --crystallize-baseline) by more "
             "than MARGIN: a number, or a percentage of the saved mean such as 2%% (default 0). "
             "ini: crystallize_gate",
    )
    group.addoption(
        "--crystallize-baseline", metavar="NAME", default=None,
        help=f"the run name the gate compares with when --crystallize-compare is not given: its newest "
             f"saved run (default {DEFAULT_BASELINE}; save it on the main branch with "
             f"--crystallize-save={DEFAULT_BASELINE}). ini: crystallize_baseline",
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
    parser.addini("crystallize_baseline", default=DEFAULT_BASELINE,
                  help=f"run name the gate compares with by default (default {DEFAULT_BASELINE})")
    parser.addini("crystallize_gate", default="",
                  help="enable the regression gate with this margin, e.g. 0 or 2% (default: off)")
    parser.addini("crystallize_gate_strict", type="bool", default=False,
                  help="the gate also fails metrics not shown to be no worse within the margin")
    parser.addini("crystallize_json", default="", help="write a JSON report of the experiments to this path")
    group.addoption(
        "--crystallize-resume", action="store_true", default=None,
        help="take the replicates an interrupted run (Ctrl-C, a crash, a killed job, a timeout) kept in "
             "the journal under the store, and run only the missing ones; the result is the uninterrupted "
             "one. A changed experiment discards its journal and says so. ini: crystallize_resume",
    )
    group.addoption(
        "--crystallize-no-journal", action="store_true", default=None,
        help="do not keep finished replicates in the journal while experiments run (then nothing can be "
             "resumed). ini: crystallize_journal = false",
    )
    parser.addini("crystallize_resume", type="bool", default=False,
                  help="resume interrupted experiments from the journal (default false)")
    parser.addini("crystallize_journal", type="bool", default=True,
                  help="keep finished replicates in the journal under the store while running (default true)")
    group.addoption(
        "--crystallize-cache", action="store_true", default=None,
        help=f"keep the calls of @pipeline_step(cache=True) steps in {CACHE_DIR}/ under the store and replay "
             "them when the same call comes again (the default; beats ini crystallize_cache = false). "
             "ini: crystallize_cache",
    )
    group.addoption(
        "--crystallize-no-cache", action="store_true", default=None,
        help="run every step, cached or not, and keep nothing. ini: crystallize_cache = false",
    )
    parser.addini("crystallize_cache", type="bool", default=True,
                  help="use the step cache for @pipeline_step(cache=True) steps (default true)")
    parser.addini("crystallize_cache_size", default=DEFAULT_CACHE_SIZE,
                  help=f"the step cache's size limit, e.g. 500MB or 2GiB; least recently used entries are "
                       f"removed past it (default {DEFAULT_CACHE_SIZE})")


def _add_display_options(group: pytest.OptionGroup, parser: pytest.Parser) -> None:
    group.addoption(
        "--crystallize-progress", choices=PROGRESS_MODES, default=None,
        help="show replicates done, elapsed time and ETA while an experiment runs: auto (on a "
             "terminal, without -s or live logs), on (also when not a terminal), off; never "
             "with -q. ini: crystallize_progress",
    )
    group.addoption(
        "--crystallize-artifacts-dir", metavar="DIR", default=None,
        help="default root of ArtifactPlugin, relative to the rootdir. ini: crystallize_artifacts_dir",
    )
    group.addoption(
        "--crystallize-markdown", metavar="PATH", nargs="?", const="", default=None,
        help="write the summary, verdict and gate tables to PATH as GitHub-flavoured Markdown; without PATH "
             f"append them to ${GITHUB_SUMMARY} (the job page of a GitHub Actions step). ini: crystallize_markdown",
    )
    parser.addini("crystallize_markdown", default="",
                  help="write the Markdown summary to this path (default: none)")
    group.addoption(
        "--crystallize-html", metavar="PATH", default=None,
        help="write a self-contained HTML report of every experiment (tables, verdicts, figures; works "
             "offline) to PATH after the run; needs the report extra. ini: crystallize_html",
    )
    parser.addini("crystallize_html", default="", help="write an HTML report of the experiments to this path")
    parser.addini("crystallize_progress", default="auto",
                  help="progress display while experiments run: auto, on or off (default auto)")
    parser.addini("crystallize_artifacts_dir", default=DEFAULT_ARTIFACTS_DIR,
                  help=f"default root of ArtifactPlugin, relative to the rootdir (default {DEFAULT_ARTIFACTS_DIR})")


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
    journal = not config.getoption("crystallize_no_journal", None) and _flag(config, "crystallize_journal")
    cache_root, cache_size = _cache(config)
    budget_text, budget_source, _ = _value(config, "crystallize_budget")
    budget = _timeout(budget_text or "none", budget_source)
    return Settings(
        enabled=enabled, defaults=MappingProxyType(defaults), overrides=MappingProxyType(overrides),
        treatments=_treatments(config), progress=_progress(config), artifacts_root=_artifacts_root(config),
        journal_root=_store_root(config) if journal else None, resume=_flag(config, "crystallize_resume"),
        cache_root=cache_root, cache_size=cache_size, dask=_dask(config),
        budget=budget, deadline=None if budget is None else time.time() + budget,
        confirm=_flag(config, "crystallize_confirm"), require_confirmed=_flag(config, "crystallize_require_confirmed"),
        store_root=_store_root(config),
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
    enabled = bool(on) or (not off and _flag(config, "crystallize_cache"))
    return (_store_root(config) / CACHE_DIR if enabled else None), size


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
    value, source, _ = _value(config, "crystallize_dask")
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


# -- saved runs, the gate, the JSON report ------------------------------------------

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
    #: Where ``compare`` came from: an option, or the baseline name when only the gate was asked for.
    compare_source: str = "--crystallize-compare"
    gate: bool = False
    margin: float = 0.0
    relative: bool = False
    strict: bool = False
    json_path: Path | None = None

    @property
    def used(self) -> bool:
        """True when the run is saved, compared with a saved run (or gated), or reported as JSON."""
        return self.save or self.compare is not None or self.json_path is not None


def _value(config: pytest.Config, name: str) -> tuple[str | None, str, Path]:
    """The option's value (or its ini twin's; ``None`` when neither is set), its source, its base dir."""
    cli = config.getoption(name, None)
    if cli is not None:
        return str(cli).strip(), f"--{name.replace('_', '-')}", config.invocation_params.dir
    ini = str(config.getini(name)).strip()
    return (ini or None), f"ini option {name}", config.rootpath


def _store_root(config: pytest.Config) -> Path:
    """The store directory (``--crystallize-storage``, its ini twin, or the default), anchored at the rootdir."""
    storage, _, _ = _value(config, "crystallize_storage")
    root = Path(storage or DEFAULT_STORAGE)
    return root if root.is_absolute() else config.rootpath / root


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
    from pytest_crystallize.core.store.records import check_run_name  # the store loads only when it is used

    try:
        check_run_name(name)
    except ResultsError as exc:
        msg = f"{source}: {exc}"
        raise pytest.UsageError(msg) from None


def _check_store(root: Path, source: str) -> None:
    """A store under a file would fail the save only after the whole run: a usage error before it."""
    blocker = next((p for p in (root, *root.parents) if os.path.lexists(p)), None)  # Path.exists raises
    if blocker is not None and not os.path.isdir(blocker):
        msg = (f"{source}: cannot save to the store {str(root)!r}: {str(blocker)!r} is a file, not a directory; "
               f"give the store a directory with --crystallize-storage=DIR (ini crystallize_storage) or move the file")
        raise pytest.UsageError(msg)


def read_storage_settings(config: pytest.Config) -> StorageSettings:
    """Parse the options of saved runs, the gate and the JSON report; raise pytest.UsageError naming a bad one."""
    root = _store_root(config)
    name, name_source, name_base = _value(config, "crystallize_save")
    save = name is not None or _flag(config, "crystallize_autosave")
    if name:
        _check_save_name(name, name_source, name_base)
    if save:
        autosave = "--crystallize-autosave" if config.getoption("crystallize_autosave", None) else (
            "ini option crystallize_autosave")
        _check_store(root, name_source if name is not None else autosave)
    margin_text, margin_source, _ = _value(config, "crystallize_gate")
    margin, relative = 0.0, False
    if margin_text is not None:
        from pytest_crystallize.core.store.gate_specs import parse_margin  # the store loads only when it is used

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
    reference, compare_source, base = _value(config, "crystallize_compare")
    if reference == "":  # --crystallize-compare= with nothing after it: the default, as a bare option
        reference = LATEST
    if reference is None and margin_text is not None:
        reference, compare_source, _ = _value(config, "crystallize_baseline")
        reference = reference or DEFAULT_BASELINE
    if reference is not None and ("/" in reference or "\\" in reference):
        reference = str(base / reference)
    json_text, json_source, json_base = _value(config, "crystallize_json")
    return StorageSettings(
        root=root, save=save, save_name=name or None, compare=reference, compare_source=compare_source,
        gate=margin_text is not None,
        margin=margin, relative=relative, strict=strict,
        json_path=None if json_text is None else _file(json_source, json_base / json_text, "report.json"),
    )


# -- the Markdown summary -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MarkdownTarget:
    """Where the Markdown summary goes: ``path``, replaced, or appended to (GitHub's step summary)."""

    path: Path
    append: bool = False


def read_markdown_target(config: pytest.Config) -> MarkdownTarget | None:
    """Parse ``--crystallize-markdown[=PATH]`` (or its ini twin); a bare option needs ``$GITHUB_STEP_SUMMARY``."""
    text, source, base = _value(config, "crystallize_markdown")
    if text is None:
        return None
    if text:
        path = base / text
        apart = source.startswith("--") and not any(
            str(arg).startswith("--crystallize-markdown=") for arg in config.invocation_params.args
        )
        if apart and (text.endswith(".py") or "::" in text or path.is_dir()):
            msg = (f"{source}: {text!r} looks like a test path, not a file for the summary (written without '=', "
                   f"the option takes the next argument as its PATH, and would write over it): write "
                   f"--crystallize-markdown=PATH, or a bare --crystallize-markdown after the test paths")
            raise pytest.UsageError(msg)
        return MarkdownTarget(_file(source, path, "summary.md"))
    summary = os.environ.get(GITHUB_SUMMARY, "").strip()
    if not summary:
        msg = (f"{source} without a PATH appends to ${GITHUB_SUMMARY}, which is not set here (GitHub Actions "
               f"sets it in a job's steps): give a file, --crystallize-markdown=PATH")
        raise pytest.UsageError(msg)
    return MarkdownTarget(config.invocation_params.dir / summary, append=True)


# -- the HTML report ------------------------------------------------------------------

def read_html_path(config: pytest.Config) -> Path | None:
    """Where ``--crystallize-html`` (or ``crystallize_html``) writes the report, or None.

    A command-line path is relative to the working directory, an ini path to
    the rootdir. The report draws figures: without matplotlib this is a
    pytest.UsageError saying how to install the ``report`` extra.
    """
    text, source, base = _value(config, "crystallize_html")
    if text is None:
        return None
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        msg = f"{source} needs matplotlib for its figures: pip install 'pytest-crystallize[report]'"
        raise pytest.UsageError(msg)
    return _file(source, base / text, "report.html")


def _file(source: str, path: Path, example: str) -> Path:
    """``path``, checked before anything runs: a directory would fail only after the run, losing the report."""
    if path.is_dir():
        setting = f"{source}={path / example}"
        if not source.startswith("--"):  # an ini line
            setting = f"{source.removeprefix('ini option ')} = {path / example}"
        msg = f"{source}: {str(path)!r} is a directory; give a file in it, e.g. {setting}"
        raise pytest.UsageError(msg)
    return path
