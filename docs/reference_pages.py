"""The reference pages written from the code: every option and ini key, and the ``crystallize`` command.

``generated()`` returns each page's path and text; ``docs/regenerate.py``
writes them and ``tests/test_docs_snippets.py`` checks they are current, so a
new option or subcommand appears in the docs the moment it exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
_DO_NOT_EDIT = "<!-- Written by docs/regenerate.py from {source}: edit that, not this page. -->"


@dataclass
class _Recorder:
    """Stands in for pytest's parser and option group: records what ``add_options`` registers."""

    options: list[tuple[tuple[str, ...], dict[str, Any]]] = field(default_factory=list)
    inis: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.options.append((names, kwargs))

    def addini(self, name: str, help: str, **kwargs: Any) -> None:  # noqa: A002  (pytest's parameter name)
        self.inis.append((name, help, kwargs))


def _cell(text: str) -> str:
    return " ".join(text.replace("%%", "%").replace("|", "\\|").split())


def _option_usage(names: tuple[str, ...], kwargs: dict[str, Any]) -> str:
    name = names[0]
    if kwargs.get("action") in ("store_true", "store_false"):
        return f"`{name}`"
    if "choices" in kwargs:
        return f"`{name} {'|'.join(kwargs['choices'])}`"
    metavar = kwargs.get("metavar", "VALUE")
    return f"`{name}[={metavar}]`" if kwargs.get("nargs") == "?" else f"`{name} {metavar}`"


def options_page() -> str:
    """Every ``--crystallize*`` option and every ``crystallize_*`` ini key, from ``options.py``."""
    from pytest_crystallize.pytest_plugin.options import add_options

    recorder = _Recorder()
    add_options(recorder)  # type: ignore[arg-type]  # duck-typed: it only calls getgroup, addoption, addini
    lines = [
        _DO_NOT_EDIT.format(source="pytest_crystallize/pytest_plugin/options.py"),
        "",
        "# Options and ini keys",
        "",
        "Every command-line option has an ini twin of the same name with underscores",
        "(`--crystallize-seed` and `crystallize_seed`), set in `pytest.ini`,",
        "`pyproject.toml` (`[tool.pytest.ini_options]`), `tox.ini` or `setup.cfg`.",
        "For an experiment's settings (replicates, seed, alpha, correction,",
        "timeout) the command line wins over the `@pytest.mark.experiment` marker,",
        "which wins over the ini file, which wins over the built-in default.",
        "Relative paths are anchored at pytest's rootdir, not the working directory.",
        "",
        "## Command line",
        "",
        "| option | what it does |",
        "|---|---|",
    ]
    lines += [f"| {_option_usage(names, kw)} | {_cell(kw.get('help', ''))} |" for names, kw in recorder.options]
    lines += ["", "## Ini keys", "", "| key | type | default | what it does |", "|---|---|---|---|"]
    for name, help_text, kw in recorder.inis:
        kind = kw.get("type") or "string"
        default = kw.get("default", "")
        text = str(default).lower() if isinstance(default, bool) else str(default)
        shown = "(none)" if default in ("", []) else f"`{text}`"
        lines.append(f"| `{name}` | {kind} | {shown} | {_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def _help(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_crystallize", *args, "--help"],
        capture_output=True, text=True, check=True, env={**os.environ, "COLUMNS": "80"},
    )
    return proc.stdout.replace("usage: __main__.py", "usage: crystallize")


def cli_page() -> str:
    """The ``crystallize`` command's help and each subcommand's, as the command prints them."""
    top = _help()
    listed = top.split("COMMAND\n", 2)[-1].split("\n\n")[0]  # the subcommands, as argparse lists them
    commands = re.findall(r"^    (\w+)", listed, re.MULTILINE)
    lines = [
        _DO_NOT_EDIT.format(source="pytest_crystallize/cli.py"),
        "",
        "# The `crystallize` command",
        "",
        "Lists, shows, compares, reports (HTML) and exports the runs `pytest --crystallize-save`",
        "saved, and manages the step cache, from any shell or CI system (also",
        "`python -m pytest_crystallize`). It finds the store as pytest does. Exit status:",
        "0 ok, 1 a regression (`compare`), 2 an error, including a file that cannot be read.",
        "",
        "```text",
        "$ crystallize --help",
        top.rstrip(),
        "```",
    ]
    for command in commands:
        text = _help(command)
        lines += ["", f"## `crystallize {command}`", "", "```text", f"$ crystallize {command} --help", text.rstrip(),
                  "```"]
        if "\n  ACTION\n" in text:  # a command with actions of its own (crystallize cache info|clear|prune)
            for action in re.findall(r"^    (\w+)", text.split("\n  ACTION\n", 1)[1], re.MULTILINE):
                lines += ["", f"### `crystallize {command} {action}`", "", "```text",
                          f"$ crystallize {command} {action} --help", _help(command, action).rstrip(), "```"]
    return "\n".join(lines) + "\n"


#: Sections of the API page, in order; a public name not listed here lands in the last one.
_API_SECTIONS: dict[str, tuple[str, ...]] = {
    "Defining experiments": ("data_source", "get_datasource", "DataSource", "pipeline_step", "PipelineStep",
                             "current_context", "hypothesis", "Hypothesis", "Treatment", "grid", "load_config",
                             "load_treatments", "LoadedConfig", "Bind", "Experiment"),
    "Designs and chains": ("cv", "holdout", "CrossValidation", "Holdout", "upstream"),
    "The context": ("FrozenContext", "standalone_context"),
    "Running outside pytest": ("run_experiment", "arun_experiment", "ExperimentRunner"),
    "Results": ("ExperimentResult", "Verdict", "Provenance", "ReplicateError"),
    "Plugins": ("hookimpl", "SeedPlugin", "LoggingPlugin", "ArtifactPlugin", "CachePlugin", "SerialExecution",
                "ParallelExecution", "AsyncExecution", "DaskExecution"),
    "Errors and warnings": ("CrystallizeError", "ConfigurationError", "ContextMutationError", "DataSourceError",
                            "HypothesisError", "MetricError", "ResultsError", "StatisticsError", "TreatmentError",
                            "CacheError", "UndigestableError", "ChainError", "CrystallizeWarning", "LowPowerWarning",
                            "SharedDataWarning"),
    "Other": ("DEFAULT_SEED",),
}


def _home(name: str) -> str:
    """The module that defines the public name ``name`` (where mkdocstrings finds its docstring)."""
    import importlib
    import inspect

    import pytest_crystallize

    obj = getattr(pytest_crystallize, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return str(obj.__module__)
    holders = [m for m in sorted(sys.modules) if m.startswith("pytest_crystallize.")
               and getattr(importlib.import_module(m), name, None) is obj]
    for module_name in holders:  # the module that exports it, else the first that has it
        if name in getattr(sys.modules[module_name], "__all__", ()):
            return module_name
    if holders:
        return holders[0]
    msg = f"cannot find the module that defines {name!r}"
    raise LookupError(msg)


def api_page() -> str:
    """Every public name of ``pytest_crystallize``, from its docstring, grouped by what it is for."""
    import pytest_crystallize

    public = list(pytest_crystallize.__all__)
    listed = {name for names in _API_SECTIONS.values() for name in names}
    sections = {title: [n for n in names if n in public] for title, names in _API_SECTIONS.items()}
    sections["Other"] += [name for name in public if name not in listed]
    lines = [
        _DO_NOT_EDIT.format(source="pytest_crystallize/__init__.py's __all__ and the docstrings"),
        "",
        "# Public API",
        "",
        "Everything importable from `pytest_crystallize`; nothing else is public.",
        "Each entry is the name's own docstring. The `@pytest.mark.experiment` marker",
        "takes the same options as `run_experiment`; the options and ini keys are in",
        "[Options and ini keys](options.md), the hooks in [Hooks](hooks.md).",
    ]
    for title, names in sections.items():
        if not names:
            continue
        lines += ["", f"## {title}"]
        for name in names:
            lines += ["", f"::: {_home(name)}.{name}", "    options:", "      heading_level: 3"]
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    """Each generated page's path and the text it must hold."""
    return {
        REFERENCE / "options.md": options_page(), REFERENCE / "cli.md": cli_page(), REFERENCE / "api.md": api_page()
    }
