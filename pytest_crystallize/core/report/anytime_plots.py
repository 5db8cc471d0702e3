"""The figure of an anytime design: each verdict's always-valid p-value after every replicate, against its alpha.

As the sequential figure draws each look's p-value against its boundary, this
one draws the path of the always-valid p-value that the evidence holds
(:mod:`~pytest_crystallize.core.report.evidence`), replicate count by
replicate count up to where the verdict stopped, with the alpha it crossed
(or did not): the run may stop at any point of the path and the verdict
there is valid. Nothing here computes a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pytest_crystallize.core.report.plots import COLORS, figure, p_value_axes, short_label, styled

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["anytime_figure"]

#: Where a p-value of 0 is drawn on the log scale.
_FLOOR: Final = 1e-12


@styled
def anytime_figure(evidence: Mapping[str, Any]) -> Figure | None:
    """Each anytime verdict's always-valid p-value after n replicates, with its alpha; None without one."""
    paths = [path for path in evidence.get("anytime") or () if path.get("replicates")]
    if not paths:
        return None
    fig, (ax,) = figure(6, "Anytime-valid monitoring: always-valid p-value after each replicate, against alpha")
    for alpha in sorted({float(path["alpha"]) for path in paths}):
        ax.axhline(alpha, color=COLORS["warn"], linestyle="--", linewidth=1.3,
                   label=f"alpha {alpha:g} (a claim once p is below)")
    for path in paths:
        color = COLORS["pass"] if path["holds"] else COLORS["fail"]
        shown = [max(float(p), _FLOOR) for p in path["p_values"]]
        ax.plot(path["replicates"], shown, color=color, linewidth=1.6,
                label=short_label(f"{path['treatment']}: {path['hypothesis']}", 40))
        ax.plot(path["replicates"][-1:], shown[-1:], marker="o", markersize=5, color=color)  # where it stopped
    p_value_axes(ax, "replicates per condition", "always-valid p-value (log scale)")
    return fig
