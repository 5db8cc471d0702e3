"""The result of comparing a treatment with its baseline, and what had no spread when nothing varied."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["Comparison", "NoVariation"]

#: A JSON scalar, as :meth:`Comparison.to_dict` gives fields.
Plain = str | float | int | bool | None


@dataclass(frozen=True, slots=True)
class NoVariation:
    """What had no spread, so the usual test could not run as is (see :attr:`Comparison.no_variation`).

    Attributes:
        paired: the paired differences were constant; else both samples were.
        shift: the constant difference, treatment minus baseline.
        baseline, treatment: each side's constant value; nan for a side whose
            values vary (possible only when the paired differences are constant).
        n_baseline, n_treatment: how many values each side had; they bound
            the exact p-value.

    """

    paired: bool
    shift: float
    baseline: float
    treatment: float
    n_baseline: int
    n_treatment: int

    @property
    def identical(self) -> bool:
        """Both sides gave one and the same constant value."""
        return self.shift == 0.0 and self.baseline == self.treatment

    def to_dict(self) -> dict[str, Plain]:
        """Every field as plain JSON-able data; nan becomes ``None``."""
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


def _plain(value: Plain) -> Plain:
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
        no_variation: what had no spread, as data (None when something
            varied); ``degenerate`` says it in words.
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
    no_variation: NoVariation | None
    mde: float
    power: float
    replicates_needed: int | None

    def to_dict(self) -> dict[str, Plain | dict[str, Plain]]:
        """Every field as plain JSON-able data; nan and inf become ``None``."""
        out: dict[str, Plain | dict[str, Plain]] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_dict() if isinstance(value, NoVariation) else _plain(value)
        return out
