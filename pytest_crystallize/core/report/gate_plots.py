"""The regression gate as a figure: current minus saved, per metric, with the margin and each row's status.

Drawn from a :class:`~pytest_crystallize.core.store.gate.GateReport` as plain
data (its ``to_dict()``, as the pytest layer ships it): one panel per gated
metric (metrics have their own units), one row per condition, the
difference with its 95% interval, the margin the gate tolerates and the
status of the row. Nothing is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.report.plots import COLORS, right_labels, short_label, styled, title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["gate_figure"]

#: Colour of each row status (others: muted).
_STATUS_COLORS: Final = {
    "regressed": COLORS["fail"], "not finite": COLORS["fail"], "missing": COLORS["fail"],
    "improved": COLORS["pass"], "no worse": COLORS["pass"], "inconclusive": COLORS["warn"],
}


def _tolerated(ax: Axes, row: Mapping[str, Any], y: float) -> None:
    """Shade the worsening the margin tolerates, from 0 to -margin (higher is better) or to +margin.

    Only on rows that were tested: an untested row's relative margin is a fraction, not in the metric's units.
    """
    margin = row.get("margin") or 0.0
    if margin <= 0 or row.get("difference") is None:
        return
    edge = -margin if row["better"] == "higher" else margin
    ax.fill_between(sorted((0.0, edge)), y - 0.4, y + 0.4, color=COLORS["band"], alpha=0.35, linewidth=0, zorder=0)
    ax.plot([edge, edge], [y - 0.4, y + 0.4], color=COLORS["warn"], linestyle="--", linewidth=1)


def _words(row: Mapping[str, Any]) -> str:
    def number(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    return f"{number(row.get('mean_saved'))} \u2192 {number(row.get('mean_current'))}  {row['status']}"


def _panel(ax: Axes, metric: str, rows: list[Mapping[str, Any]]) -> None:
    ax.axvline(0.0, color=COLORS["muted"], linewidth=1)
    for y, row in enumerate(rows):
        color = _STATUS_COLORS.get(row["status"], COLORS["muted"])
        _tolerated(ax, row, y)
        if row.get("ci_low") is not None and row.get("ci_high") is not None:
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, linewidth=2.4, solid_capstyle="butt")
        if row.get("difference") is not None:
            ax.plot([row["difference"]], [y], marker="o", markersize=6.5, color=color)
    ax.set_yticks(range(len(rows)), labels=[short_label(r["condition"], 30) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    right_labels(ax, [_words(r) for r in rows], [_STATUS_COLORS.get(r["status"], COLORS["muted"]) for r in rows])
    better = rows[0]["better"]
    ax.set_title(f"{metric} ({better} is better): current \u2212 saved, 95% CI", fontsize=9.5, fontweight="normal")
    ax.grid(True, axis="x", color=COLORS["grid"], linewidth=0.8)


@styled
def gate_figure(report: Mapping[str, Any]) -> Figure | None:
    """One panel per gated metric: each condition's current minus saved mean, the margin, the status."""
    from matplotlib.figure import Figure

    by_metric: dict[str, list[Mapping[str, Any]]] = {}
    for row in report.get("rows", ()):
        by_metric.setdefault(row["metric"], []).append(row)
    if not by_metric:
        return None
    heights = [0.7 + 0.42 * len(rows) for rows in by_metric.values()]
    fig = Figure(figsize=(6.4, 0.5 + sum(heights)), layout="constrained")
    axes = fig.subplots(len(by_metric), 1, squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, (metric, rows) in zip(axes[:, 0], by_metric.items(), strict=True):
        _panel(ax, metric, rows)
    title(fig, "Current run against the saved run: saved \u2192 current mean, status")
    return fig
