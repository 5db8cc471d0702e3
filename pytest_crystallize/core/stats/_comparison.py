"""The result of comparing a treatment with its baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["Comparison"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Everything one statistical comparison found, treatment versus baseline.

    A comparison does not decide whether a hypothesis holds: the engine
    combines ``p_value`` with alpha, ``direction_ok`` and any predicate.

    Attributes:
        test: name of the test that ran (a callable's ``__name__`` for a
            user's own test).
        test_reason: one line saying why this test was used.
        direction: the hypothesis direction (see ``DIRECTIONS``).
        alternative: the alternative actually tested, scipy convention for
            treatment versus baseline: ``"greater"``, ``"less"``,
            ``"two-sided"``, or ``"equivalence"`` (two one-sided tests).
        paired: whether the test used the pairing of replicates.
        n_baseline, n_treatment: values used (after ``nan_policy="omit"``).
        mean_baseline, mean_treatment: sample means (proportions for 0/1 data).
        difference: ``mean_treatment - mean_baseline``.
        relative_difference: ``difference / |mean_baseline|``; nan unless the
            baseline mean is clearly away from 0 (not 0, not rounding
            residue, and 0 outside its t-interval; any success for 0/1 data).
        ci_low, ci_high: two-sided ``confidence`` interval of the difference,
            from the test's own family (see the package docstring).
        confidence: level of that interval.
        effect_size, effect_size_name: ``"hedges_g"``, ``"cohens_dz"`` (paired)
            or ``"risk_difference"`` (0/1 tests); nan when undefined (no spread).
        odds_ratio: sample odds ratio of success for 0/1 data (conditional
            ``n01 / n10`` when paired), nan for other data.
        statistic: the test statistic (nan when a degenerate case bypassed it).
        p_value: raw p-value of the one- or two-sided alternative; for
            ``"equivalent"`` the larger of the two one-sided p-values.
        alpha: significance level the engine will compare ``p_value`` with.
        margin: absolute margin used by ``no_worse``/``equivalent`` (nan else).
        better: ``"higher"`` or ``"lower"``: which way is good for ``no_worse``.
        direction_ok: the observed difference points the hypothesised way
            (``difference > 0`` for maximize, ``< 0`` for minimize, ``!= 0`` for
            two-sided, beyond ``-margin`` for no_worse, inside the margins
            for equivalent).
        degenerate: why the usual test could not run as is (no variation,
            no discordant pairs...), or ``""``.
        mde: minimum detectable effect the power was computed for (nan if none).
        power: power of this test at ``mde`` with the observed sample sizes
            and spread (nan without ``mde``).
        replicates_needed: replicates per condition for 80% power at ``mde``
            (``None`` without ``mde`` or when it cannot be reached).

    """

    test: str
    test_reason: str
    direction: str
    alternative: str
    paired: bool
    n_baseline: int
    n_treatment: int
    mean_baseline: float
    mean_treatment: float
    difference: float
    relative_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    effect_size: float
    effect_size_name: str
    odds_ratio: float
    statistic: float
    p_value: float
    alpha: float
    margin: float
    better: str
    direction_ok: bool
    degenerate: str
    mde: float
    power: float
    replicates_needed: int | None

    def to_dict(self) -> dict[str, str | float | int | bool | None]:
        """Every field as plain JSON-able data; nan and inf become ``None``."""
        out: dict[str, str | float | int | bool | None] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float):
                out[field.name] = value if math.isfinite(value) else None
            else:
                out[field.name] = value
        return out
