"""Figures of a sweep: a metric against each setting the treatments vary (a heatmap for two).

A *sweep* is what ``grid(...)`` makes: at least two treatments that all set
the same keys, some to different values. :func:`swept_settings` finds the
keys that vary from the treatments' settings (as the result's provenance
records them); :func:`sweep_figure` draws each treatment's mean and 95%
interval, taken from the report payload's rows, against them, with the
baseline as a reference band.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.report.plots import COLORS, figure, short_label, styled
from pytest_crystallize.core.treatments import BASELINE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["sweep_figure", "swept_settings"]

#: A settings key that is no setting: a treatment's swapped datasource.
_DATASOURCE: Final = "@datasource"
_MOST_PANELS: Final = 4
#: Line colours of the groups of a sweep, told apart in print and by most colour-blind readers.
_PALETTE: Final = (COLORS["treatment"], "#d9730d", "#7b3fa0", "#2e8b57", "#b8860b", "#c2185b", "#455a64")


def _value(text: str) -> Any:
    """A setting's recorded text (its ``repr``) as the number or string it shows, else the text itself."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else text


def _grid_name(name: str, keys: Sequence[str]) -> bool:
    """True for a name ``grid`` gives: ``key=label`` for each key, in order, joined by commas."""
    if not name.startswith(f"{keys[0]}="):
        return False
    at = 0
    for key in keys[1:]:
        at = name.find(f",{key}=", at)
        if at < 0:
            return False
    return True


def swept_settings(settings: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, Any]]:
    """The varying settings of a grid sweep: ``{key: {treatment: value}}``; empty when the treatments are none.

    A grid sweep: two treatments or more, all setting the same keys, each
    named as ``grid(...)`` names its points (``key=label,...``).
    """
    if len(settings) < 2:
        return {}
    keys = [tuple(s) for s in settings.values()]
    if len(set(keys)) != 1 or not keys[0] or _DATASOURCE in keys[0]:
        return {}
    if not all(_grid_name(name, keys[0]) for name in settings):
        return {}
    return {
        key: {treatment: _value(values[key]) for treatment, values in settings.items()}
        for key in keys[0]
        if len({values[key] for values in settings.values()}) > 1
    }


def _positions(values: Sequence[Any]) -> tuple[list[float], list[str] | None]:
    """Where each value goes on an axis: numbers where they are, anything else in order of first appearance."""
    if all(isinstance(v, (int, float)) for v in values):
        return [float(v) for v in values], None
    order = list(dict.fromkeys(str(v) for v in values))
    return [float(order.index(str(v))) for v in values], order


def _sorted_values(values: Sequence[Any]) -> list[Any]:
    distinct = list(dict.fromkeys(values))
    return sorted(distinct) if all(isinstance(v, (int, float)) for v in distinct) else distinct


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _baseline_band(ax: Axes, rows: Mapping[str, Mapping[str, Any]]) -> None:
    base = rows.get(BASELINE)
    if base is None or base["mean"] is None:
        return
    if base["ci_low"] is not None and base["ci_high"] is not None:
        ax.axhspan(base["ci_low"], base["ci_high"], color=COLORS["baseline"], alpha=0.12, linewidth=0)
    ax.axhline(base["mean"], color=COLORS["baseline"], linestyle="--", linewidth=1.2, label="baseline")


def _against(ax: Axes, key: str, by: Mapping[str, Any], rows: Mapping[str, Mapping[str, Any]],
             groups: Mapping[str, Sequence[str]], *, connect: bool = True) -> None:
    """Means and intervals against ``key``; each group (the same other settings) is one line (``connect``)."""
    every, names = _positions(list(by.values()))
    where = dict(zip(by, every, strict=True))
    span = (max(every) - min(every)) or 1.0
    for i, (label, treatments) in enumerate(groups.items()):
        shown = [t for t in treatments if t in rows and rows[t]["mean"] is not None]
        dodge = (i - (len(groups) - 1) / 2) * 0.012 * span  # lines side by side, not on top of each other
        xs = [where[t] + dodge for t in shown]
        order = sorted(range(len(shown)), key=lambda j: xs[j])
        chosen = [rows[shown[j]] for j in order]
        means = [row["mean"] for row in chosen]
        low = [row["mean"] - _or(row["ci_low"], row["mean"]) for row in chosen]
        high = [_or(row["ci_high"], row["mean"]) - row["mean"] for row in chosen]
        color = _PALETTE[i % len(_PALETTE)]
        ax.errorbar([xs[j] for j in order], means, yerr=[low, high], marker="o", markersize=5, capsize=3,
                    color=color, linewidth=1.5 if connect else 0, label=short_label(label, 30) if label else None)
    if names is not None:
        ax.set_xticks(range(len(names)), labels=[short_label(n, 14) for n in names])
    _baseline_band(ax, rows)
    ax.set_xlabel(key)
    ax.grid(True, axis="y", color=COLORS["grid"], linewidth=0.8)


def _heatmap(ax: Axes, fig: Figure, keys: Sequence[str], swept: Mapping[str, Mapping[str, Any]],
             rows: Mapping[str, Mapping[str, Any]], metric: str) -> None:
    import numpy as np

    first, second = (_sorted_values(list(swept[k].values())) for k in keys)
    grid = np.full((len(first), len(second)), np.nan)
    for treatment, a in swept[keys[0]].items():
        row = rows.get(treatment)
        if row is not None and row["mean"] is not None:
            grid[first.index(a), second.index(swept[keys[1]][treatment])] = row["mean"]
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(second)), labels=[short_label(str(v), 12) for v in second])
    ax.set_yticks(range(len(first)), labels=[short_label(str(v), 12) for v in first])
    ax.set_xlabel(keys[1])
    ax.set_ylabel(keys[0])
    ax.grid(False)
    ax.spines[:].set_visible(False)
    if len(first) * len(second) <= 64:
        low, high = np.nanmin(grid), np.nanmax(grid)
        for (i, j), mean in np.ndenumerate(grid):
            if np.isfinite(mean):
                light = high == low or (mean - low) / (high - low) > 0.55
                ax.text(j, i, f"{mean:.3g}", ha="center", va="center", fontsize=8.5,
                        color=COLORS["text"] if light else "white")
    fig.colorbar(image, ax=ax, label=f"mean {metric}", shrink=0.9)


@styled
def sweep_figure(metric: str, summary: Mapping[str, Any], settings: Mapping[str, Mapping[str, str]]) -> Figure | None:
    """``metric`` against each swept setting (mean and 95% CI per treatment; a heatmap too for two settings)."""
    swept = swept_settings(settings)
    rows = {r["condition"]: r for r in summary["rows"] if r["metric"] == metric}
    if not swept or not any(t in rows for t in settings):
        return None
    keys = list(swept)
    heading = f"{metric} across the sweep: mean and 95% CI per treatment"
    if len(keys) == 2:
        fig, (left, right) = figure(7, heading, columns=2, width=9.6)
        groups: dict[str, list[str]] = {}
        for treatment, value in swept[keys[1]].items():
            groups.setdefault(f"{keys[1]}={value}", []).append(treatment)
        _against(left, keys[0], swept[keys[0]], rows, groups)
        left.set_ylabel(metric)
        left.legend(frameon=False, fontsize=8)
        _heatmap(right, fig, keys, swept, rows, metric)
        right.set_title("mean per grid point", fontsize=9.5, fontweight="normal")
    else:
        shown = keys[:_MOST_PANELS]
        fig, axes = figure(7, heading, columns=len(shown), width=min(9.6, 3.4 * len(shown) + 1))
        for ax, key in zip(axes, shown, strict=True):
            _against(ax, key, swept[key], rows, {"": list(swept[key])}, connect=len(keys) == 1)
        axes[0].set_ylabel(metric)
        axes[0].legend(frameon=False, fontsize=8)
    return fig
