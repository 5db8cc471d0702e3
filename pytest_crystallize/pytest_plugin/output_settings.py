"""The settings of saved runs, the regression gate and the reports, parsed and checked.

:class:`StorageSettings` (saved runs, the gate, the JSON report) and
:class:`MarkdownTarget` (where the Markdown summary goes) hold what the
options say; :func:`read_html_path` says where the HTML report goes. A
``--crystallize-save`` name that looks like a test path (``--crystallize-save
test_x.py`` swallows the path as the name) is a usage error, and so is a
store, report or summary path that cannot be written, before the run rather
than after it. Options are read as :mod:`pytest_crystallize.pytest_plugin.settings`
reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_crystallize.core.defaults import DEFAULT_BASELINE, LATEST
from pytest_crystallize.errors import ConfigurationError, ResultsError
from pytest_crystallize.pytest_plugin.options import GITHUB_SUMMARY
from pytest_crystallize.pytest_plugin.settings import flag, option_value, store_root

__all__ = ["MarkdownTarget", "StorageSettings", "read_html_path", "read_markdown_target", "read_storage_settings"]


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
    root = store_root(config)
    name, name_source, name_base = option_value(config, "crystallize_save")
    save = name is not None or flag(config, "crystallize_autosave")
    if name:
        _check_save_name(name, name_source, name_base)
    if save:
        autosave = "--crystallize-autosave" if config.getoption("crystallize_autosave", None) else (
            "ini option crystallize_autosave")
        _check_store(root, name_source if name is not None else autosave)
    margin_text, margin_source, _ = option_value(config, "crystallize_gate")
    margin, relative = 0.0, False
    if margin_text is not None:
        from pytest_crystallize.core.store.gate_specs import parse_margin  # the store loads only when it is used

        try:
            margin, relative = parse_margin(margin_text, margin_source)
        except ConfigurationError as exc:
            msg = f"{exc} (write --crystallize-gate=MARGIN, with '=')"
            raise pytest.UsageError(msg) from None
    strict = flag(config, "crystallize_gate_strict")
    if strict and margin == 0:
        msg = ("--crystallize-gate-strict needs a margin > 0 (e.g. --crystallize-gate=2%): with margin 0, "
               "'no worse' would mean 'significantly better'")
        raise pytest.UsageError(msg)
    reference, compare_source, base = option_value(config, "crystallize_compare")
    if reference == "":  # --crystallize-compare= with nothing after it: the default, as a bare option
        reference = LATEST
    if reference is None and margin_text is not None:
        reference, compare_source, _ = option_value(config, "crystallize_baseline")
        reference = reference or DEFAULT_BASELINE
    if reference is not None and ("/" in reference or "\\" in reference):
        reference = str(base / reference)
    json_text, json_source, json_base = option_value(config, "crystallize_json")
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
    text, source, base = option_value(config, "crystallize_markdown")
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
    text, source, base = option_value(config, "crystallize_html")
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
