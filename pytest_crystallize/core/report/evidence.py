"""The values behind a summary, for figures: per-replicate values, paired differences, settings.

A report payload (:func:`~pytest_crystallize.core.report.text.summarize`)
holds each condition's mean and interval; a figure also draws the values
those come from. :func:`evidence_of` digests a result into plain JSON (it
crosses pytest-xdist as a string, like the payload): per metric and
condition the per-replicate values the summary row describes (one per
replicate, the mean when a replicate recorded several, non-finite values
left out, exactly as the row counts them); per hypothesis metric and
treatment compared paired, the paired differences the test saw; the
treatments' settings; and the result's provenance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.alignment import aligned_values, replicate_means

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["evidence_of"]


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values.tolist()]


def evidence_of(result: ExperimentResult) -> dict[str, Any]:
    """Plain JSON for figures: ``values``, ``paired``, ``settings`` and ``provenance`` (see the module docstring).

    ``values[metric][condition]`` is ``{"replicates": [...], "values": [...]}``,
    sorted by replicate; ``paired[metric][treatment]`` lists treatment minus
    baseline, replicate by replicate, for the pairs a verdict compared paired;
    ``settings[treatment]`` maps each changed setting to its value as text.
    """
    values: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for metric in result.metrics:
        per_condition: dict[str, dict[str, list[Any]]] = {}
        for condition in result.conditions:
            replicates, kept, _ = replicate_means(*result.select(metric, condition), omit_non_finite=True)
            if len(kept):
                per_condition[condition] = {"replicates": [int(r) for r in replicates.tolist()],
                                            "values": _floats(kept)}
        values[metric] = per_condition
    paired: dict[str, dict[str, list[float]]] = {}
    for verdict in result.verdicts:
        # A best verdict names a winner, not a pair with the baseline: its differences would mislead.
        compared = verdict.direction != "best" and verdict.details.get("paired")
        if not compared or verdict.treatment in paired.get(verdict.metric, {}):
            continue
        aligned = aligned_values(result, verdict.metric, verdict.treatment, omit_non_finite=True)
        if aligned.paired:
            paired.setdefault(verdict.metric, {})[verdict.treatment] = _floats(aligned.treatment - aligned.baseline)
    provenance = result.provenance.to_dict()
    return {
        "values": values,
        "paired": paired,
        "settings": provenance.pop("treatments"),
        "provenance": provenance,
    }
