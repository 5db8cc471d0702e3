"""Results as HTML: a self-contained report file, and one experiment's fragment for notebooks and pytest-html.

Everything is drawn from plain data: an experiment's report payload (the
digest the terminal table shows), its evidence (the per-replicate values,
:mod:`~pytest_crystallize.core.report.evidence`) and its comparison with a
saved run (a ``GateReport.to_dict()``); a run's provenance. Words come from
the text renderers (:mod:`~pytest_crystallize.core.report.text`,
:mod:`~pytest_crystallize.core.report.gate_text`), figures from the plot
modules, rendered as inline SVG.

The document works offline, opened from disk: its style is inline, its
fonts are the reader's own, it has no script, and its Content-Security-Policy
forbids fetching anything.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.report.table import Table
from pytest_crystallize.core.report.text import experiment_status, summary_notes, summary_table, totals_line
from pytest_crystallize.core.report.verdict_text import verdict_lines

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["ExperimentView", "RunView", "experiment_fragment", "report_document"]

_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_PAGE_STYLE: Final = (
    "body { margin: 0; background: #f6f7f9; } "
    "main.crystallize { max-width: 1240px; margin: 0 auto; padding: 28px 24px 48px; }"
)
#: Figures wider than this (inches) take the whole width of the page.
_WIDE_INCHES: Final = 7.0
#: Cell words of the verdict and status columns, and the class that colours them.
_CELL_CLASSES: Final = {
    "PASS": "pass", "FAIL": "fail", "IMPROVED": "pass", "NO WORSE": "pass", "REGRESSED": "fail",
    "NOT FINITE": "fail", "MISSING": "fail", "NEVER RECORDED": "fail", "INCONCLUSIVE": "warn",
}


@dataclass(frozen=True, slots=True)
class ExperimentView:
    """One experiment as the report shows it.

    ``summary`` is its report payload as a dict (the digest of the result,
    with ``gate`` when a gate was enforced); ``evidence`` what its figures
    draw (``None``: no figures); ``comparison`` its comparison with a saved
    run as a dict; ``outcome`` pytest's outcome of its item, when it ran
    under pytest.
    """

    title: str
    summary: Mapping[str, Any]
    evidence: Mapping[str, Any] | None = None
    comparison: Mapping[str, Any] | None = None
    outcome: str | None = None

    @property
    def clean(self) -> bool:
        """True when the experiment passed, did not fail the regression gate, and nothing else failed it."""
        gate = self.summary.get("gate") or {}
        clean = bool(self.summary["passed"]) and not gate.get("failed") and not self.summary.get("failures")
        return clean and self.outcome in (None, "passed")


@dataclass(frozen=True, slots=True)
class RunView:
    """A run's provenance for the report's heading and footer (all plain data)."""

    heading: str
    created_at: str
    git: Mapping[str, Any] | None = None
    machine: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Lines under the heading: where the run was saved, what it was compared with.
    about: tuple[str, ...] = ()


def _style() -> str:
    return importlib.resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")


def _table(table: Table | None, css: str) -> str:
    if table is None:  # no rows
        return ""
    head = "".join(f"<th>{escape(c.header)}</th>" for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for column, cell in zip(table.columns, row, strict=True):
            words = cell.split()
            kind = _CELL_CLASSES.get(cell.strip()) or (_CELL_CLASSES.get(words[0]) if words else None)
            css_class = f' class="{kind}"' if kind and column.header in ("verdict", "status") else ""
            cells.append(f"<td{css_class}>{escape(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _lines(lines: Iterable[tuple[str, str]]) -> str:
    """A list of text lines, each ``(line, class)``."""
    items = [f'<li class="{css}">{escape(line.strip())}</li>' for line, css in lines]
    return f'<ul class="lines">{"".join(items)}</ul>' if items else ""


def _notes(lines: Iterable[str]) -> str:
    return _lines((line, "note") for line in lines)


def _definitions(pairs: Iterable[tuple[str, Any]]) -> str:
    shown = [(k, v) for k, v in pairs if v not in (None, "", (), [], {})]
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in shown) + "</dl>"


def _figures(view: ExperimentView) -> list[tuple[str, list[tuple[str, Callable[[], Figure | None]]]]]:
    """What to draw for ``view``, in groups under a heading: (heading, [(name, how), ...]), in reading order."""
    from pytest_crystallize.core.report import plots, sweep_plots
    from pytest_crystallize.core.report.anytime_plots import anytime_figure
    from pytest_crystallize.core.report.gate_plots import gate_figure

    summary, evidence = view.summary, view.evidence or {}
    verdicts = list(summary["verdicts"])
    settings = evidence.get("settings", {})
    groups: list[tuple[str, list[tuple[str, Callable[[], Figure | None]]]]] = [
        (metric, [
            (f"values:{metric}", functools.partial(plots.values_figure, metric, summary, evidence)),
            (f"forest:{metric}", functools.partial(plots.forest_figure, metric, verdicts)),
            (f"best:{metric}", functools.partial(plots.best_figure, metric, verdicts)),
            (f"paired:{metric}", functools.partial(plots.paired_figure, metric, evidence)),
            (f"sweep:{metric}", functools.partial(sweep_plots.sweep_figure, metric, summary, settings)),
        ])
        for metric in dict.fromkeys(r["metric"] for r in summary["rows"])
    ]
    groups.append(("sequential design", [("sequential", functools.partial(plots.sequential_figure, verdicts))]))
    groups.append(("anytime design", [("anytime", functools.partial(anytime_figure, evidence))]))
    if view.comparison is not None:
        groups.append(("regression gate", [("gate", functools.partial(gate_figure, view.comparison))]))
    return groups


def _figure(name: str, draw: Callable[[], Figure | None], ident: str) -> str:
    """One figure as inline SVG, or why it could not be drawn (a report must not be lost to one figure)."""
    from pytest_crystallize.core.report.plots import svg_markup

    try:
        fig = draw()
        if fig is None:
            return ""
        wide = fig.get_figwidth() > _WIDE_INCHES
        svg = svg_markup(fig, ident)
    except Exception as exc:
        return (f'<p class="missing">figure {escape(name)} could not be drawn: '
                f"{escape(type(exc).__name__)}: {escape(str(exc))}</p>")
    return f'<figure class="plot{" wide" if wide else ""}" data-plot="{escape(name)}">{svg}</figure>'


def _plots(view: ExperimentView, ident: str) -> str:
    """The experiment's figures as inline SVG, grouped by metric, then the sequential design and the gate."""
    parts = []
    for group, (heading, figures) in enumerate(_figures(view)):
        drawn = "".join(_figure(name, draw, f"{ident}-{group}-{n}") for n, (name, draw) in enumerate(figures))
        if drawn:
            parts.append(f'<h3>{escape(heading)}</h3><div class="plots">{drawn}</div>')
    return "".join(parts)


def _provenance(evidence: Mapping[str, Any]) -> str:
    prov = evidence.get("provenance") or {}
    settings = evidence.get("settings") or {}
    treatments = "; ".join(
        f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()) for name, values in settings.items()
    )
    pairs = [
        ("master seed", prov.get("master_seed")), ("replicates", prov.get("replicates")),
        ("conditions", ", ".join(prov.get("conditions", ()))), ("treatments", treatments),
        ("alpha", prov.get("alpha")), ("correction", prov.get("correction")),
        ("sequential", None if prov.get("max_replicates") is None else
         f"up to {prov['max_replicates']} replicates in {prov.get('looks')} looks, {prov.get('looks_taken')} taken"),
        ("resumed", prov.get("resumed")), ("started", prov.get("started_at")),
        ("duration", None if prov.get("duration_s") is None else f"{prov['duration_s']:.2f} s"),
        ("seed scheme", prov.get("seed_scheme")),
        ("versions", ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())),
    ]
    return f"<details><summary>Provenance</summary>{_definitions(pairs)}</details>"


def _comparison(comparison: Mapping[str, Any]) -> str:
    from pytest_crystallize.core.report.gate_text import gate_heading, gate_notes, gate_table
    from pytest_crystallize.core.store.gate import GateReport

    report = GateReport.from_dict(comparison)
    table = _table(gate_table(report), "gate")
    return (f"<h3>Compared with saved run {escape(report.saved_run)}</h3><p>{escape(gate_heading(report))}</p>"
            f"{table}{_notes(gate_notes(report))}")


def experiment_fragment(
    view: ExperimentView, *, ident: str = "x", plots: bool = True, style: bool = False, footnote: str | None = None,
) -> str:
    """One experiment as an HTML ``<section>``: status, table, verdicts, notes, comparison, figures, provenance.

    ``ident`` makes its ids unique in a page; ``plots=False`` leaves the
    figures out (no matplotlib needed); ``style=True`` adds the report's
    style (scoped to the fragment), for a host page that lacks it;
    ``footnote`` is a line shown above the provenance.
    """
    s = view.summary
    status = experiment_status(s) if view.outcome in (None, "passed", "failed") else view.outcome
    badge = "pass" if view.clean else "fail"
    verdicts = [(line, "pass" if v["holds"] else "fail") for v in s["verdicts"] for line in verdict_lines(v)]
    parts = [
        f'<section class="experiment" id="{escape(ident)}"><div class="head"><h2>{escape(view.title)}</h2>'
        f'<span class="badge {badge}">{escape(status)}</span></div>',
        f'<p class="meta">{escape(str(s["replicates"]))} replicates, seed {escape(str(s["seed"]))}</p>',
        _table(summary_table(s), "summary") or '<p class="missing">no metrics recorded</p>',
        _lines(verdicts),
        _notes(summary_notes(s)),
    ]
    if view.comparison is not None:
        parts.append(_comparison(view.comparison))
    if plots and view.evidence is not None:
        parts.append(_plots(view, ident))
    if footnote:
        parts.append(f'<p class="missing">{escape(footnote)}</p>')
    if view.evidence is not None:
        parts.append(_provenance(view.evidence))
    parts.append("</section>")
    body = "".join(parts)
    return f'<div class="crystallize"><style>{_style()}</style>{body}</div>' if style else body


def _footer(run: RunView) -> str:
    git = run.git
    commit = None if git is None else (
        f"{git.get('commit')} on {git.get('branch') or 'a detached HEAD'}" + (" (dirty)" if git.get("dirty") else ""))
    machine = ", ".join(f"{k} {v}" for k, v in run.machine.items())
    versions = ", ".join(f"{k} {v}" for k, v in run.versions.items())
    args = run.options.get("args")
    settings = run.options.get("settings")
    pairs = [
        ("git", commit), ("machine", machine), ("versions", versions),
        ("command", None if args is None else "pytest " + " ".join(str(a) for a in args)),
        ("settings", None if not settings else ", ".join(f"{k}={v}" for k, v in settings.items())),
        ("gate", run.options.get("gate")),
    ]
    return f'<section class="experiment"><h2>Provenance of the run</h2>{_definitions(pairs)}</section>'


def report_document(run: RunView, experiments: Sequence[ExperimentView], *, plots: bool = True) -> str:
    """The whole report: a heading with the totals, a contents list, every experiment, the run's provenance."""
    clean = all(e.clean for e in experiments)
    totals = totals_line(e.summary for e in experiments) if experiments else "no experiment ran"
    contents = "".join(
        f'<li><a href="#exp-{i}">{escape(e.title)}</a> '
        f'<span class="badge {"pass" if e.clean else "fail"}">{"passed" if e.clean else "failed"}</span></li>'
        for i, e in enumerate(experiments, start=1)
    )
    about = "".join(f'<p class="sub">{escape(line)}</p>' for line in run.about)
    sections = "".join(experiment_fragment(e, ident=f"exp-{i}", plots=plots) for i, e in enumerate(experiments, 1))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(run.heading)}</title><style>{_PAGE_STYLE}\n{_style()}</style></head>"
        f'<body><main class="crystallize"><h1>{escape(run.heading)}</h1>'
        f'<p class="sub">{escape(run.created_at)}</p>{about}'
        f'<div class="totals {"pass" if clean else "fail"}">{escape(totals)}</div>'
        f"<nav><ul>{contents}</ul></nav>{sections}{_footer(run)}</main></body></html>\n"
    )
