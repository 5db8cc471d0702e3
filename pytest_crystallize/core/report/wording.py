"""Words chosen from data, for findings that more than one reader reports.

A hypothesis compares a treatment with the baseline; the regression gate
compares the current run with a saved run. Both meet the same findings (data
with no spread, for one), so their sentences are chosen here, from the
finding's data and from who is comparing what: nobody rewords another
module's sentence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_crystallize.core.stats import NoVariation

__all__ = ["no_variation_note"]


def no_variation_note(found: NoVariation, *, versus_saved: bool = False) -> str:
    """Why the usual test could not run: treatment versus baseline, or (``versus_saved``) current versus saved run.

    The exact p-value's best case is named, since with few values it may
    never reach alpha however large the difference.
    """
    baseline, treatment = ("saved", "current") if versus_saved else ("baseline", "treatment")
    if found.identical:
        both = "the saved and the current run" if versus_saved else "both conditions"
        return f"no variation: {both} gave the same constant value"
    if found.paired and found.shift == 0.0:
        if versus_saved:
            return "identical to the saved run, replicate for replicate"
        return "no variation in the paired differences: every treatment value equals its baseline"
    if found.paired:
        own = "its saved value" if versus_saved else "its baseline"
        return (
            f"no variation in the paired differences: every {treatment} value is {own} "
            f"{'+' if found.shift > 0 else '-'} {abs(found.shift):g}; the p-value is the exact sign-flip "
            f"one (at best 2^-{found.n_baseline} one-sided)"
        )
    return (
        f"no variation: {baseline} is always {found.baseline:g} and {treatment} always {found.treatment:g}; "
        "the p-value is the exact label-shuffle one "
        f"(at best 1/C({found.n_baseline + found.n_treatment}, {found.n_baseline}) one-sided)"
    )
