"""The values behind a summary, for figures: per-replicate values, paired differences, settings.

A report payload (:func:`~pytest_crystallize.core.report.text.summarize`)
holds each condition's mean and interval; a figure also draws the values
those come from. :func:`evidence_of` digests a result into plain JSON (it
crosses pytest-xdist as a string, like the payload): per metric and
condition the per-replicate values the summary row describes (one per
replicate, the mean when a replicate recorded several, non-finite values
left out, exactly as the row counts them); per hypothesis metric and
treatment compared paired, the paired differences the test saw; per
verdict of an anytime design, its always-valid p-value after each replicate
up to its stop (its e-process run again on the first n differences, the
same function the verdict used); the treatments' settings; and the
result's provenance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.alignment import aligned_values, replicate_means

if TYPE_CHECKING:
    from pytest_crystallize.core.hypotheses import Verdict
    from pytest_crystallize.core.results import ExperimentResult

__all__ = ["evidence_of"]

#: The most replicate counts at which an anytime path is evaluated (each a run of its e-process).
_PATH_POINTS: Final = 120


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values.tolist()]


def _anytime_path(result: ExperimentResult, verdict: Verdict) -> dict[str, Any] | None:
    """An anytime verdict's always-valid p-value after n replicates, n = 2 .. its stop; None for other verdicts."""
    from pytest_crystallize.core.stats import anytime_test

    design, d = verdict.details.get("anytime"), verdict.details
    if not isinstance(design, dict) or not isinstance(design.get("replicates"), int) or design["replicates"] < 2:
        return None
    aligned = aligned_values(result, verdict.metric, verdict.treatment, omit_non_finite=True)
    differences = (aligned.treatment - aligned.baseline)[: design["replicates"]]
    if not aligned.paired or len(differences) < 2:
        return None
    counts = sorted({int(n) for n in np.linspace(2, len(differences), min(_PATH_POINTS, len(differences) - 1))})
    p_values = [
        anytime_test(differences[:n], direction=verdict.direction, alpha=design["alpha"],
                     margin=float(d.get("margin") or 0.0), better=str(d.get("better") or "higher"),
                     method=design["method"], scale=design["scale"], interval=False).p_value
        for n in counts
    ]
    return {"hypothesis": verdict.hypothesis, "treatment": verdict.treatment, "alpha": design["alpha"],
            "holds": verdict.holds, "replicates": counts, "p_values": p_values}


def evidence_of(result: ExperimentResult) -> dict[str, Any]:
    """Plain JSON for figures: ``values``, ``paired``, ``settings`` and ``provenance`` (see the module docstring).

    ``values[metric][condition]`` is ``{"replicates": [...], "values": [...]}``,
    sorted by replicate; ``paired[metric][treatment]`` lists treatment minus
    baseline, replicate by replicate, for the pairs a verdict compared paired;
    ``anytime`` lists, per anytime verdict, ``{"hypothesis", "treatment",
    "alpha", "holds", "replicates": [n, ...], "p_values": [...]}``;
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
        "anytime": [path for v in result.verdicts if (path := _anytime_path(result, v)) is not None],
        "settings": provenance.pop("treatments"),
        "provenance": provenance,
    }
