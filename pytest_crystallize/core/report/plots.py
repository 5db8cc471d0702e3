"""Figures of one experiment, drawn with matplotlib (the ``report`` extra).

Every figure is drawn from plain data another module computed: a report
payload's digest (means, intervals, verdicts) and the evidence of
:mod:`~pytest_crystallize.core.report.evidence` (per-replicate values,
paired differences). Nothing here computes a statistic.

matplotlib is imported inside the functions that draw, and pyplot never:
figures are plain ``matplotlib.figure.Figure`` objects, so drawing one
neither picks nor changes the caller's backend (a notebook keeps its own),
and :func:`svg_markup` renders them to static SVG.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from pytest_crystallize.core.treatments import BASELINE
from pytest_crystallize.errors import ConfigurationError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "COLORS", "best_figure", "figure", "forest_figure", "has_matplotlib", "p_value_axes", "paired_figure",
    "require_matplotlib", "right_labels", "sequential_figure", "short_label", "styled", "svg_markup", "title",
    "values_figure",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: Colours shared by every figure and the HTML page.
COLORS: Final = {
    "pass": "#2e7d32", "fail": "#c62828", "baseline": "#616161", "treatment": "#1f5fa8", "band": "#f2c94c",
    "grid": "#e6e6e6", "text": "#222222", "muted": "#6b6b6b", "warn": "#b26a00",
}
_WIDTH: Final = 6.4
_ROW: Final = 0.42
_MOST_POINTS: Final = 1500
_STYLE: Final[dict[Any, Any]] = {  # Any keys: matplotlib types them as a Literal of rc names
    "font.size": 9.5, "axes.titlesize": 10.5, "axes.labelsize": 9.5, "xtick.labelsize": 8.5,
    "ytick.labelsize": 9, "legend.fontsize": 8.5, "axes.spines.top": False, "axes.spines.right": False,
    "axes.edgecolor": "#9e9e9e", "axes.titlelocation": "left", "axes.titleweight": "bold",
    "svg.hashsalt": "pytest-crystallize",
}


def has_matplotlib() -> bool:
    """True when matplotlib (the ``report`` extra) is installed; imports nothing."""
    return importlib.util.find_spec("matplotlib") is not None


def require_matplotlib(what: str) -> None:
    """Raise ConfigurationError saying how to install the ``report`` extra, unless matplotlib is there."""
    if not has_matplotlib():
        msg = f"{what} needs matplotlib: pip install 'pytest-crystallize[report]' (or matplotlib)"
        raise ConfigurationError(msg)


def styled(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a drawing function under the report's style (fonts, spines), leaving the caller's settings alone."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib as mpl

        with mpl.rc_context(_STYLE):
            return draw(*args, **kwargs)

    return wrapper


def title(fig: Figure, text: str) -> None:
    """The figure's title, at its left edge: a long one is never cut at the axes' edge."""
    fig.suptitle(text, x=0.01, ha="left", fontsize=10.5, fontweight="bold")


def figure(rows: float, heading: str, *, columns: int = 1, width: float = _WIDTH) -> tuple[Figure, list[Axes]]:
    """A titled figure of ``columns`` axes side by side, tall enough for ``rows`` labelled rows.

    Draw under :func:`styled`.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, max(2.1, 0.95 + _ROW * rows)), layout="constrained")
    title(fig, heading)
    axes = [fig.add_subplot(1, columns, i + 1) for i in range(columns)]
    for ax in axes:
        ax.grid(True, axis="x", color=COLORS["grid"], linewidth=0.8)
        ax.set_axisbelow(True)
    return fig, axes


def svg_markup(fig: Figure, ident: str) -> str:
    """``fig`` as an inline ``<svg>`` element whose ids are prefixed with ``ident`` (unique in a page)."""
    import matplotlib as mpl

    buffer = io.StringIO()
    with mpl.rc_context(_STYLE):  # no bbox_inches="tight": constrained layout fits the figure, in one pass
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # no XML declaration or doctype inside HTML
    # Two figures in one page must not share an id: glyphs and clip paths are referenced by id.
    text = re.sub(r'id="([^"]+)"', rf'id="{ident}-\1"', text)
    text = re.sub(r'(xlink:href|href)="#([^"]+)"', rf'\1="#{ident}-\2"', text)
    return re.sub(r"url\(#([^)]+)\)", rf"url(#{ident}-\1)", text)


def _condition_color(condition: str) -> str:
    return COLORS["baseline"] if condition == BASELINE else COLORS["treatment"]


def _spread(count: int, width: float = 0.32) -> list[float]:
    """Evenly spread offsets in [-width/2, width/2]: a deterministic jitter (the same figure every run)."""
    if count <= 1:
        return [0.0] * count
    golden = (math.sqrt(5) - 1) / 2
    return [((i * golden) % 1.0 - 0.5) * width for i in range(count)]


def _label_rows(ax: Axes, labels: Sequence[str]) -> None:
    ax.set_yticks(range(len(labels)), labels=[short_label(label) for label in labels])
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)


def right_labels(ax: Axes, texts: Sequence[str], colors: Sequence[str]) -> None:
    """A label at the right end of each row of ``ax`` (a twin axis, so the layout makes room for it)."""
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(range(len(texts)), labels=texts)
    right.tick_params(axis="y", length=0, labelsize=8.5)
    right.spines[:].set_visible(False)
    for label, color in zip(right.get_yticklabels(), colors, strict=True):
        label.set_color(color)


def short_label(label: str, most: int = 34) -> str:
    """``label`` for an axis: a grid point's ``a.b=1,a.c=2`` as ``b=1, c=2``; cut in the middle past ``most``.

    The middle goes, not the end: grid points differ in their last settings.
    """
    parts = label.split(",")
    if len(parts) > 1 and all("=" in part for part in parts):
        label = ", ".join(part.split("=", 1)[0].rsplit(".", 1)[-1] + "=" + part.split("=", 1)[1] for part in parts)
    if len(label) <= most:
        return label
    keep = most - 1
    return label[: (keep + 1) // 2] + "\u2026" + label[len(label) - keep // 2:]


@styled
def values_figure(metric: str, summary: Mapping[str, Any], evidence: Mapping[str, Any]) -> Figure | None:
    """Each condition's per-replicate values of ``metric`` as dots, with the mean and its 95% interval."""
    rows = [r for r in summary["rows"] if r["metric"] == metric]
    if not rows:
        return None
    values = evidence.get("values", {}).get(metric, {})
    fig, (ax,) = figure(len(rows), f"{metric} per replicate: mean \u25c7 and 95% CI")
    shown_all = True
    for y, row in enumerate(rows):
        points = list(values.get(row["condition"], {}).get("values", ()))
        if len(points) > _MOST_POINTS:  # an evenly spaced selection keeps the page light
            step = len(points) / _MOST_POINTS
            points, shown_all = [points[int(i * step)] for i in range(_MOST_POINTS)], False
        color = _condition_color(row["condition"])
        ax.scatter(points, [y + d for d in _spread(len(points))], s=14, color=color, alpha=0.4, linewidths=0)
        if row["ci_low"] is not None and row["ci_high"] is not None:
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=COLORS["text"], linewidth=2.4,
                    solid_capstyle="butt", zorder=3)
        if row["mean"] is not None:
            ax.plot([row["mean"]], [y], marker="D", markersize=6.5, color="white", markeredgecolor=COLORS["text"],
                    markeredgewidth=1.4, zorder=4)
    _label_rows(ax, [r["condition"] for r in rows])
    ax.set_xlabel(metric + ("" if shown_all else f" (a selection of {_MOST_POINTS} values per condition shown)"))
    return fig


def _margin_band(ax: Axes, verdict: Mapping[str, Any], y: float) -> bool:
    """Shade, on row ``y``, the differences a no_worse / equivalent verdict tolerates; True when it has a margin."""
    details = verdict.get("details") or {}
    margin = details.get("margin")
    if verdict["direction"] not in ("no_worse", "equivalent") or not isinstance(margin, (int, float)):
        return False
    if verdict["direction"] == "equivalent":
        low, high = -margin, margin
    elif details.get("better", "higher") == "higher":
        low, high = -margin, 0.0
    else:
        low, high = 0.0, margin
    ax.fill_between([low, high], y - 0.4, y + 0.4, color=COLORS["band"], alpha=0.35, linewidth=0, zorder=0)
    for edge in {low, high} - {0.0}:
        ax.plot([edge, edge], [y - 0.4, y + 0.4], color=COLORS["warn"], linestyle="--", linewidth=1)
    return True


def _p_text(verdict: Mapping[str, Any]) -> str:
    p, adjusted = verdict.get("p_value"), verdict.get("p_adjusted")
    if p is None:
        return "no test" + ("  FAIL" if not verdict["holds"] else "")
    text = f"p {p:.3g}"
    if adjusted is not None and adjusted != p:
        text += f", adj. {adjusted:.3g}"
    return f"{text}  {'PASS' if verdict['holds'] else 'FAIL'}"


@styled
def forest_figure(metric: str, verdicts: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Each treatment's difference to the baseline with its 95% CI, margin bands, raw and adjusted p.

    ``direction="best"`` verdicts compare no pair with the baseline: :func:`best_figure` draws them.
    """
    chosen = [v for v in verdicts if v["metric"] == metric and v.get("direction") != "best"]
    if not chosen:
        return None
    several = len({v["hypothesis"] for v in chosen}) > 1
    fig, (ax,) = figure(len(chosen), f"{metric}: difference to the baseline, 95% CI")
    ax.axvline(0.0, color=COLORS["muted"], linewidth=1)
    banded = False
    for y, verdict in enumerate(chosen):
        details = verdict.get("details") or {}
        color = COLORS["pass"] if verdict["holds"] else COLORS["fail"]
        low, high, diff = details.get("ci_low"), details.get("ci_high"), verdict.get("difference")
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=color, linewidth=2.4, solid_capstyle="butt")
        if diff is not None:
            ax.plot([diff], [y], marker="o", markersize=6.5, color=color)
        banded = _margin_band(ax, verdict, y) or banded
    labels = [f"{v['treatment']} ({v['hypothesis']})" if several else v["treatment"] for v in chosen]
    _label_rows(ax, labels)
    right_labels(ax, [_p_text(v) for v in chosen], [COLORS["pass"] if v["holds"] else COLORS["fail"] for v in chosen])
    ax.set_xlabel(f"{metric}, treatment \u2212 baseline" + ("  (shaded: within the margin)" if banded else ""))
    return fig


def _best_rows(verdict: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str]]:
    """Each condition of a best verdict with its interval and what the verdict says of it."""
    details = verdict["details"]
    candidates = set(details.get("candidates") or ())
    rows = []
    for name, interval in details["conditions"].items():
        if verdict["holds"] and name == verdict["treatment"]:
            role = "best"
        elif name in candidates:
            role = "may be best"
        else:
            role = "not best"
        rows.append((name, interval, role))
    return rows


@styled
def best_figure(metric: str, verdicts: Sequence[Mapping[str, Any]]) -> Figure | None:
    """``direction="best"``: how much better each condition is than the best of the others (simultaneous CIs).

    One row per condition of each best verdict on ``metric``, baseline
    included: the interval of multiple comparisons with the best, the band of
    the margin within which a condition still counts as best, and what the
    verdict says of it (best, may be best, not best).
    """
    chosen = [v for v in verdicts if v["metric"] == metric and v.get("direction") == "best"
              and isinstance((v.get("details") or {}).get("conditions"), Mapping)]
    if not chosen:
        return None
    rows = [(v, *row) for v in chosen for row in _best_rows(v)]
    level = _fmt_level(chosen[0]["details"].get("confidence"))
    fig, (ax,) = figure(len(rows), f"{metric}: which condition is best, {level} simultaneous CI (mcb)")
    ax.axvline(0.0, color=COLORS["muted"], linewidth=1)
    role_colors = {"best": COLORS["pass"], "may be best": COLORS["warn"], "not best": COLORS["muted"]}
    for y, (verdict, _, interval, role) in enumerate(rows):
        margin = verdict["details"].get("margin") or 0
        if isinstance(margin, (int, float)) and margin > 0:
            ax.fill_between([-margin, 0.0], y - 0.4, y + 0.4, color=COLORS["band"], alpha=0.35, linewidth=0, zorder=0)
        low, high = interval.get("low"), interval.get("high")
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=role_colors[role], linewidth=2.4, solid_capstyle="butt")
    several = len(chosen) > 1
    _label_rows(ax, [f"{name} ({v['hypothesis']})" if several else name for v, name, _, _ in rows])
    right_labels(ax, [role for *_, role in rows], [role_colors[role] for *_, role in rows])
    better = chosen[0]["details"].get("better", "higher")
    ax.set_xlabel(f"{metric}: better than the best of the others by ({better} is better)")
    return fig


def _fmt_level(confidence: object) -> str:
    return f"{100 * confidence:g}%" if isinstance(confidence, (int, float)) else "95%"


def _bins(values: Sequence[float]) -> tuple[list[float], list[float], float]:
    """Shared bins of all paired differences: (left edges, right edges, bar width).

    Few distinct whole numbers (0/1 outcomes give -1, 0, +1) get a bin each;
    other values equal bins, about two per square root of the count (at most 40).
    """
    import numpy as np

    distinct = sorted(set(values))
    if len(distinct) <= 20 and all(float(v).is_integer() for v in distinct):
        first, last = int(distinct[0]), int(distinct[-1])
        if first >= -1 and last <= 1:  # 0/1 outcomes: lost, tied and won replicates, always all three
            first, last = -1, 1
        lefts = [v - 0.5 for v in range(first, last + 1)]
        return lefts, [v + 1.0 for v in lefts], 0.6
    low, high = distinct[0], distinct[-1]
    if high - low <= 1e-9 * max(1.0, abs(low)):  # one value (up to rounding): one bin around it
        half = max(abs(low), 1.0) * 0.05
        return [low - half], [low + half], 2 * half
    edges = np.linspace(low, high, min(40, max(10, int(2 * math.sqrt(len(values))))) + 1)
    return edges[:-1].tolist(), edges[1:].tolist(), float(edges[1] - edges[0])


@styled
def paired_figure(metric: str, evidence: Mapping[str, Any]) -> Figure | None:
    """For paired comparisons: each treatment's distribution of treatment minus baseline, replicate by replicate.

    One row per treatment, a histogram on shared bins whose tallest bar fills the row.
    """
    import numpy as np

    paired = evidence.get("paired", {}).get(metric, {})
    if not paired:
        return None
    lefts, rights, width = _bins([v for values in paired.values() for v in values])
    edges = [*lefts, rights[-1]]
    centers = [(a + b) / 2 for a, b in zip(lefts, rights, strict=True)]
    fig, (ax,) = figure(1.3 * len(paired), f"{metric}: paired differences, replicate by replicate")
    ax.axvline(0.0, color=COLORS["muted"], linewidth=1, zorder=0)
    for y, differences in enumerate(paired.values()):
        counts, _ = np.histogram(differences, bins=edges)
        heights = 0.8 * counts / max(1, counts.max())
        ax.bar(centers, heights, width=width, bottom=y + 0.4 - heights, color=COLORS["treatment"], alpha=0.8,
               edgecolor="white", linewidth=0.5)
    if width < rights[0] - lefts[0] and len(centers) <= 9:  # whole numbers: a tick on each
        ax.set_xticks(centers)
    _label_rows(ax, list(paired))
    right_labels(ax, [f"n {len(v)}" for v in paired.values()], [COLORS["muted"]] * len(paired))
    ax.set_xlabel(f"{metric}, treatment \u2212 baseline, per replicate")
    return fig


def _futility_line(seq: Mapping[str, Any], floor: float) -> tuple[list[int], list[float]]:
    """The looks with a futility boundary and its p-value threshold (a look without one is left out)."""
    pairs = [(n, p) for n, p in zip(seq["schedule"], seq.get("futility_boundaries") or (), strict=False)
             if p is not None and p <= 1]
    return [n for n, _ in pairs], [max(p, floor) for _, p in pairs]


@styled
def sequential_figure(verdicts: Sequence[Mapping[str, Any]]) -> Figure | None:
    """Sequential designs: each pair's p-value at every look against its efficacy boundary (nominal alpha).

    With futility stops, also the futility boundary: a p-value at or above it stops the pair without a claim.
    """
    looked = [v for v in verdicts if ((v.get("details") or {}).get("sequential") or {}).get("p_values")]
    if not looked:
        return None
    futile = any(v["details"]["sequential"].get("futility_boundaries") for v in looked)
    bounds = "the efficacy and futility boundaries" if futile else "the efficacy boundary"
    fig, (ax,) = figure(6, f"Sequential looks: p-value against {bounds}")
    floor = 1e-12
    first = looked[0]["details"]["sequential"]
    ax.plot(first["schedule"], [max(b, floor) for b in first["boundaries"]], color=COLORS["warn"], linestyle="--",
            marker="s", markersize=4, linewidth=1.3, label="efficacy boundary (nominal alpha)")
    if futile:
        ax.plot(*_futility_line(first, floor), color=COLORS["muted"], linestyle="--", marker="v", markersize=4,
                linewidth=1.3, label="futility boundary (stop when p is above)")
    for verdict in looked:
        seq = verdict["details"]["sequential"]
        if seq["boundaries"] != first["boundaries"]:  # each pair's own plan, drawn once when they differ
            ax.plot(seq["schedule"], [max(b, floor) for b in seq["boundaries"]], color=COLORS["warn"],
                    linestyle=":", linewidth=1)
        if seq.get("futility_boundaries") and seq["futility_boundaries"] != first.get("futility_boundaries"):
            ax.plot(*_futility_line(seq, floor), color=COLORS["muted"], linestyle=":", linewidth=1)
        taken = [(n, p) for n, p in zip(seq["schedule"], seq["p_values"], strict=False) if p is not None]
        color = COLORS["pass"] if verdict["holds"] else COLORS["fail"]
        ax.plot([n for n, _ in taken], [max(p, floor) for _, p in taken], marker="o", markersize=5, color=color,
                linewidth=1.6, label=short_label(f"{verdict['treatment']}: {verdict['hypothesis']}", 40))
    p_value_axes(ax, "replicates per condition at each look", "p-value (log scale)")
    return fig


def p_value_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    """Finish axes of p-values against replicates: a log scale, its grid, the labels and the legend."""
    ax.set_yscale("log")
    ax.grid(True, axis="y", color=COLORS["grid"], linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", frameon=False)
