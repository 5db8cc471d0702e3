"""A result in a notebook or a script: a short repr, DataFrames, a figure, rich HTML.

:class:`~pytest_crystallize.core.results.ExperimentResult` delegates its
``__repr__``, ``summary()``, ``verdicts_frame()``, ``plot()`` and
``_repr_html_()`` here. Each builds the result's report payload digest
(:func:`~pytest_crystallize.core.report.text.summarize`, what the terminal
table shows) and, for figures, its evidence, and hands them to the
renderers: nothing is computed twice, and pandas and matplotlib load only
when a frame or a figure is asked for.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Final

from pytest_crystallize.core.vocabulary import PLOT_KINDS, PlotKind
from pytest_crystallize.errors import ResultsError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["result_figure", "result_html", "result_repr", "result_summary", "result_verdicts"]

#: Tells apart the fragments of several results shown in one notebook page (their SVG ids).
_FRAGMENTS: Final = itertools.count(1)
_MOST_NAMES: Final = 4


def _names(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_MOST_NAMES])
    return shown + (f" and {len(names) - _MOST_NAMES} more" if len(names) > _MOST_NAMES else "")


def result_repr(result: ExperimentResult) -> str:
    """One readable line: the experiment, its outcome, its size, its metrics (never the arrays)."""
    held = sum(v.holds for v in result.verdicts)
    outcome = "passed" if result.passed else "FAILED"
    parts = [f"{held} of {len(result.verdicts)} hypotheses held" if result.verdicts else "no hypotheses"]
    if result.errors:
        parts.append(f"{len(result.errors)} replicate error(s)")
    parts.append(f"{len(result.conditions)} conditions x {result.provenance.replicates} replicates")
    parts.append(f"metrics {_names(result.metrics)}" if result.metrics else "no metrics")
    return f"<ExperimentResult {result.experiment!r} {outcome}: {'; '.join(parts)}>"


def result_summary(result: ExperimentResult) -> pd.DataFrame:
    """The terminal table as a DataFrame (see :func:`~pytest_crystallize.core.report.frames.summary_frame`)."""
    from pytest_crystallize.core.report.frames import summary_frame
    from pytest_crystallize.core.report.text import summarize

    return summary_frame(summarize(result))


def result_verdicts(result: ExperimentResult) -> pd.DataFrame:
    """Every verdict field as a DataFrame (see :func:`~pytest_crystallize.core.report.frames.verdicts_frame`)."""
    from pytest_crystallize.core.report.frames import verdicts_frame

    return verdicts_frame(v.to_dict() for v in result.verdicts)


def result_figure(result: ExperimentResult, metric: str, kind: PlotKind = "values") -> Figure:
    """The figure ``kind`` of ``metric``; ResultsError when the result has nothing of that kind to draw.

    ``"values"``: each condition's per-replicate values, mean and 95% CI;
    ``"difference"``: each treatment's difference to the baseline with its
    interval and margin (for a ``direction="best"`` hypothesis alone: each
    condition's difference to the best of the others); ``"paired"``: the paired differences;
    ``"sweep"``: the metric against each setting of a grid sweep.
    """
    from pytest_crystallize.core.report.plots import require_matplotlib

    if metric not in result.metrics:
        recorded = ", ".join(repr(m) for m in result.metrics) or "none"
        msg = f"experiment {result.experiment!r} recorded no metric {metric!r}; it recorded: {recorded}"
        raise ResultsError(msg)
    if kind not in PLOT_KINDS:
        msg = f"unknown plot kind {kind!r}; use one of {', '.join(PLOT_KINDS)}"
        raise ResultsError(msg)
    require_matplotlib("ExperimentResult.plot")
    from pytest_crystallize.core.report import plots, sweep_plots
    from pytest_crystallize.core.report.evidence import evidence_of
    from pytest_crystallize.core.report.text import summarize

    summary, evidence = summarize(result), evidence_of(result)
    drawn = {
        "values": lambda: plots.values_figure(metric, summary, evidence),
        "difference": lambda: (plots.forest_figure(metric, summary["verdicts"])
                               or plots.best_figure(metric, summary["verdicts"])),
        "paired": lambda: plots.paired_figure(metric, evidence),
        "sweep": lambda: sweep_plots.sweep_figure(metric, summary, evidence["settings"]),
    }[kind]()
    if drawn is None:
        why = {
            "values": "it has no finite values",
            "difference": "no hypothesis tests it",
            "paired": "no hypothesis compares it paired by replicate",
            "sweep": "the treatments are not a grid sweep",
        }[kind]
        msg = f"experiment {result.experiment!r}: no {kind!r} figure of {metric!r}: {why}"
        raise ResultsError(msg)
    return drawn


def result_html(result: ExperimentResult) -> str:
    """The summary table, verdicts and (with the ``report`` extra) figures, styled, for a notebook cell."""
    from pytest_crystallize.core.report.evidence import evidence_of
    from pytest_crystallize.core.report.html import ExperimentView, experiment_fragment
    from pytest_crystallize.core.report.plots import has_matplotlib
    from pytest_crystallize.core.report.text import summarize

    plots = has_matplotlib()
    view = ExperimentView(result.experiment, summarize(result), evidence_of(result))
    hint = None if plots else "figures need matplotlib: pip install 'pytest-crystallize[report]'"
    return experiment_fragment(view, ident=f"crystallize-result-{next(_FRAGMENTS)}", plots=plots, style=True,
                               footnote=hint)
