"""Closed vocabularies: the words an option may take, each defined once.

A leaf module: it imports nothing of the package and nothing heavy, so the
pytest options (which load with every pytest run), the definition checks
and the statistics all read the same lists. Each vocabulary is a ``Literal``
type for type checkers and a tuple of its words for checks and messages.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "BETTER",
    "CORRECTIONS",
    "DIRECTIONS",
    "FUTILITY",
    "HYPOTHESIS_DIRECTIONS",
    "MARGIN_DIRECTIONS",
    "NAN_POLICIES",
    "PLOT_KINDS",
    "PROGRESS_MODES",
    "SPENDING",
    "Better",
    "Correction",
    "Direction",
    "Futility",
    "NanPolicy",
    "PlotKind",
    "ProgressMode",
    "Spending",
]

#: Multiple-comparison corrections across an experiment's hypothesis x treatment pairs.
Correction = Literal["holm", "bh", "bonferroni", "none"]
CORRECTIONS: Final[tuple[Correction, ...]] = get_args(Correction)

#: Spending functions of sequential designs: Lan-DeMets O'Brien-Fleming and Pocock types, Hwang-Shih-DeCani.
Spending = Literal["obrien_fleming", "pocock", "hsd"]
SPENDING: Final[tuple[Spending, ...]] = get_args(Spending)

#: Futility stops of a sequential design: none, non-binding (alpha holds if ignored) or binding.
Futility = Literal["none", "non_binding", "binding"]
FUTILITY: Final[tuple[Futility, ...]] = get_args(Futility)

#: What a hypothesis claims of treatment versus baseline.
Direction = Literal["maximize", "minimize", "two-sided", "no_worse", "equivalent"]
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)
#: What a hypothesis may claim: a direction of each treatment versus the baseline, or
#: ``"best"``, which compares every condition at once (multiple comparisons with the best).
HYPOTHESIS_DIRECTIONS: Final[tuple[str, ...]] = (*DIRECTIONS, "best")
#: The directions that need a margin.
MARGIN_DIRECTIONS: Final[tuple[Direction, ...]] = ("no_worse", "equivalent")

#: Which way a metric is good.
Better = Literal["higher", "lower"]
BETTER: Final[tuple[Better, ...]] = get_args(Better)

#: What a test does with NaN and infinite values.
NanPolicy = Literal["raise", "omit"]
NAN_POLICIES: Final[tuple[NanPolicy, ...]] = get_args(NanPolicy)

#: When the progress display draws.
ProgressMode = Literal["auto", "on", "off"]
PROGRESS_MODES: Final[tuple[ProgressMode, ...]] = get_args(ProgressMode)

#: The figures ``ExperimentResult.plot(metric, kind=...)`` draws.
PlotKind = Literal["values", "difference", "paired", "sweep"]
PLOT_KINDS: Final[tuple[PlotKind, ...]] = get_args(PlotKind)
