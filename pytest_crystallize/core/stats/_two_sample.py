"""``compare()``: one treatment against its baseline, any test, any direction."""

from __future__ import annotations

import math

import numpy as np

from pytest_crystallize.core.report.wording import no_variation_note
from pytest_crystallize.errors import StatisticsError

from . import _binary
from ._comparison import Comparison, NoVariation
from ._effects import effect_size
from ._inputs import Samples, prepare
from ._nulls import Null, absolute_margin, check_options, nulls_for, points_right, true_difference
from ._power import power_and_replicates
from ._registry import SCREENED, TestSpec, UserTest, builtin, resolve, unpaired
from ._relative import relative_difference
from ._skewness import screened_t

__all__ = ["compare"]

def compare(
    baseline: object,
    treatment: object,
    *,
    test: str | UserTest = "auto",
    direction: str = "two-sided",
    alpha: float = 0.05,
    paired: bool = False,
    margin: float | None = None,
    relative_margin: bool = False,
    better: str = "higher",
    seed: int = 0,
    nan_policy: str = "raise",
    mde: float | None = None,
    confidence: float = 0.95,
) -> Comparison:
    """Compare treatment with baseline; see the package docstring for the rules.

    Args:
        baseline: one value per replicate (float64 array).
        treatment: one value per replicate; aligned with ``baseline`` if paired.
        test: a name from ``TESTS``, ``"auto"``, or a callable
            ``fn(baseline, treatment, alternative)`` returning a p-value, a
            mapping with ``"pvalue"``, or an object with ``.pvalue``.
        direction: one of ``DIRECTIONS``.
        alpha: significance level (recorded; also used for power).
        paired: element i of both arrays comes from the same replicate.
        margin: non-inferiority / equivalence margin (required for
            ``no_worse`` and ``equivalent``); with ``maximize``/``minimize``
            a superiority margin.
        relative_margin: ``margin`` is a fraction of ``|mean baseline|``.
        better: ``"higher"`` or ``"lower"``: the good direction for ``no_worse``.
        seed: seed of resampling tests (permutation, bootstrap).
        nan_policy: ``"raise"`` or ``"omit"`` (pairwise when paired).
        mde: minimum detectable effect for ``power``/``replicates_needed``.
        confidence: level of the interval of the difference.

    Raises:
        StatisticsError: bad options, unusable data, too few values.

    """
    check_options(direction, alpha, better, confidence)
    samples = prepare(baseline, treatment, paired=paired, nan_policy=nan_policy)
    spec, reason = resolve(test, samples, direction, margin=bool(margin))
    uses_pairing = samples.paired and spec.pairing != "never"
    used = samples if uses_pairing else unpaired(samples)
    _check_sizes(spec, used)
    abs_margin = absolute_margin(direction, margin, relative_margin, used)
    nulls = nulls_for(direction, better, abs_margin)
    if nulls[0].delta != 0.0 and not spec.margins:
        msg = (
            f"test {spec.name!r} can only test 'no difference', not a margin of "
            f"{abs_margin!r}: use test='auto' (or a continuous test such as "
            "'welch_t') for no_worse/equivalent hypotheses"
        )
        raise StatisticsError(msg)
    screen = test == "auto" and spec.name in SCREENED
    statistic, p_value, found, notes, corrected = _run(spec, used, nulls, seed, screen=screen, alpha=alpha)
    if corrected:
        spec, reason = builtin("skew_corrected_t"), f"{reason}; skewness found: Hall's skewness-corrected t"
    degenerate = "; ".join(filter(None, ["" if found is None else no_variation_note(found), *notes]))
    difference = used.mean_treatment - used.mean_baseline
    ci_low, ci_high = spec.interval(used, confidence, seed)
    effect, effect_name = effect_size(used, binary=spec.binary)
    odds = float("nan")
    if _binary.is_binary(used.baseline) and _binary.is_binary(used.treatment):
        odds = _binary.odds_ratio(_binary.counts(used), paired=used.paired)
    power, needed = power_and_replicates(
        spec.family, used, nulls, alpha, true_difference(direction, mde), spec.name
    )
    return Comparison(
        test=spec.name,
        test_reason=reason,
        direction=direction,
        alternative="equivalence" if len(nulls) == 2 else nulls[0].alternative,
        paired=used.paired,
        n_baseline=used.n_baseline,
        n_treatment=used.n_treatment,
        mean_baseline=used.mean_baseline,
        mean_treatment=used.mean_treatment,
        difference=difference,
        relative_difference=relative_difference(used, difference, confidence),
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        confidence=confidence,
        effect_size=float(effect),
        effect_size_name=effect_name,
        odds_ratio=odds,
        statistic=float(statistic),
        p_value=float(p_value),
        alpha=alpha,
        margin=abs_margin if abs_margin is not None else float("nan"),
        better=better,
        direction_ok=all(points_right(difference, null) for null in nulls),
        degenerate=degenerate,
        no_variation=found,
        mde=float("nan") if mde is None else float(mde),
        power=power,
        replicates_needed=needed,
    )


def _check_sizes(spec: TestSpec, samples: Samples) -> None:
    unit = "pairs" if samples.paired else "values per condition"
    smallest = min(samples.n_baseline, samples.n_treatment)
    if smallest < spec.min_n:
        msg = (
            f"{spec.name} needs at least {spec.min_n} {unit}, got "
            f"{samples.n_baseline} baseline and {samples.n_treatment} treatment values: "
            "run more replicates"
        )
        raise StatisticsError(msg)


def _run(
    spec: TestSpec, samples: Samples, nulls: tuple[Null, ...], seed: int, *, screen: bool = False,
    alpha: float = 0.05,
) -> tuple[float, float, NoVariation | None, list[str], bool]:
    """(statistic, p-value, what had no spread, screen notes, skew-corrected?); for two nulls the larger p wins.

    ``screen``: ``auto`` chose a t-test; screen it for skewness first
    (:func:`~._skewness.screened_t`); its notes say why a claim was refused.
    """
    results = []
    notes: list[str] = []
    corrected = False
    for null in nulls:
        # A user's own test is always asked, even when the data have no spread.
        exact = None if spec.binary or spec.user else _no_variation_p(samples.shifted(null.delta), null.alternative)
        if exact is not None:
            statistic, p = float("nan"), exact
        elif screen:
            check = screened_t(samples.shifted(null.delta), null.alternative, alpha)
            statistic, p = check.statistic, check.p_value
            corrected = corrected or check.action == "corrected"
            if check.action == "refused" and check.note not in notes:
                notes.append(check.note)
        else:
            statistic, p = spec.run(samples, null.delta, null.alternative, seed)
        results.append((p, statistic))
    p, statistic = max(results, key=lambda r: r[0])
    return statistic, p, _no_variation(samples), notes, corrected


def _constant(values: np.ndarray, var: float, mean: float) -> bool:
    # A constant array's computed variance is rounding noise; only then scan.
    if not var <= (64.0 * np.finfo(np.float64).eps * max(abs(mean), 1e-300)) ** 2 and values.size > 1:
        return False
    return bool(values.size) and bool(values.min() == values.max())


def _no_variation_p(samples: Samples, alternative: str) -> float | None:
    """Exact permutation p-value when the data have no spread at all, else None.

    A constant paired difference e is the most extreme of the 2^n sign flips
    (one-sided p = 2^-n when e points the tested way); two constant samples are
    the most extreme of the C(n_b + n_t, n_b) label shuffles. No shift at all
    gives p = 1. Two-sided p-values double the one-sided one.
    """
    if samples.differences is not None:
        if not _constant(samples.differences, samples.var_diff, samples.mean_diff):
            return None
        shift = float(samples.differences[0])
        log_p = -samples.n_baseline * math.log(2.0)
    else:
        if not (
            _constant(samples.baseline, samples.var_baseline, samples.mean_baseline)
            and _constant(samples.treatment, samples.var_treatment, samples.mean_treatment)
        ):
            return None
        shift = float(samples.treatment[0] - samples.baseline[0])
        nb, nt = samples.n_baseline, samples.n_treatment
        log_p = math.lgamma(nb + 1) + math.lgamma(nt + 1) - math.lgamma(nb + nt + 1)
    if shift == 0.0:
        return 1.0
    if alternative == "two-sided":
        return min(1.0, 2.0 * math.exp(log_p))
    right_way = shift > 0.0 if alternative == "greater" else shift < 0.0
    return math.exp(log_p) if right_way else 1.0


def _no_variation(samples: Samples) -> NoVariation | None:
    """What had no spread: constant paired differences, else two constant samples; None if anything varied."""
    base, treat = samples.baseline, samples.treatment
    base_constant = _constant(base, samples.var_baseline, samples.mean_baseline)
    treat_constant = _constant(treat, samples.var_treatment, samples.mean_treatment)
    if samples.differences is not None and _constant(samples.differences, samples.var_diff, samples.mean_diff):
        return NoVariation(
            paired=True, shift=float(samples.differences[0]),
            baseline=float(base[0]) if base_constant else math.nan,
            treatment=float(treat[0]) if treat_constant else math.nan,
            n_baseline=base.size, n_treatment=treat.size,
        )
    if base_constant and treat_constant:
        return NoVariation(paired=False, shift=float(treat[0] - base[0]), baseline=float(base[0]),
                           treatment=float(treat[0]), n_baseline=base.size, n_treatment=treat.size)
    return None
