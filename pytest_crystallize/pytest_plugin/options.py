"""Every command-line option and ini setting of pytest-crystallize, registered here.

:func:`add_options` registers the ``--crystallize*`` options, in one group,
each with its ``crystallize_*`` ini twin, and their help texts. Their values
are parsed and checked in :mod:`pytest_crystallize.pytest_plugin.settings`.
"""

from __future__ import annotations

from typing import Final

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
from pytest_crystallize.core.vocabulary import CORRECTIONS, PROGRESS_MODES

__all__ = ["GITHUB_SUMMARY", "add_options"]

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
