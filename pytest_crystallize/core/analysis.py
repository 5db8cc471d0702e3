"""From recorded values to verdicts: one per hypothesis and treatment.

The replicate is the unit of analysis: a replicate that recorded a metric
several times contributes the mean of its values. Values are aligned by
replicate: when the same replicates have values in both conditions (the
usual case with common seeds), the comparison may be paired. Replicates that failed in either condition are
dropped from both sides so the alignment survives. P-values of all the
hypothesis x treatment pairs of one experiment are corrected together.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_crystallize.core.hypotheses import Hypothesis, Verdict
from pytest_crystallize.core.treatments import BASELINE
from pytest_crystallize.errors import LowPowerWarning, StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import Comparison

__all__ = ["Aligned", "aligned_values", "evaluate", "low_power_messages", "replicate_means", "warn_low_power"]


@dataclass(frozen=True, slots=True)
class _Pending:
    hypothesis: Hypothesis
    treatment: str
    comparison: Comparison | None
    problem: str
    predicate_ok: bool | None
    predicate_note: str
    per_replicate: int = 1


@dataclass(frozen=True, slots=True)
class Aligned:
    """The values of one metric in the baseline and one treatment, and their replicates.

    One value per replicate (the mean when a replicate recorded several);
    both sides are sorted by replicate, and when ``paired`` element ``i`` of
    each came from the same replicate (the same seed).
    """

    baseline: np.ndarray
    treatment: np.ndarray
    baseline_replicates: np.ndarray
    treatment_replicates: np.ndarray
    paired: bool
    #: The most values one replicate recorded; above 1 the values are per-replicate means.
    per_replicate: int = 1


def replicate_means(
    replicates: np.ndarray, values: np.ndarray, *, omit_non_finite: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Average the values of each replicate: ``(replicates, means, most values in one replicate)``.

    The replicate is the experimental unit: values recorded in one replicate
    share its seed and its random effects, so testing them as independent
    observations would inflate the false-positive rate far beyond alpha.
    Replicates come back sorted. With ``omit_non_finite`` NaN and infinite
    values are dropped before averaging; otherwise they make their
    replicate's mean non-finite, so the test reports that replicate.
    """
    if omit_non_finite:
        keep = np.isfinite(values)
        replicates, values = replicates[keep], values[keep]
    order = np.argsort(replicates, kind="stable")
    replicates, values = replicates[order], values[order]
    unique, starts, counts = np.unique(replicates, return_index=True, return_counts=True)
    if len(unique) == len(replicates):
        return replicates, values, int(len(values) > 0)
    return unique, np.add.reduceat(values, starts) / counts, int(counts.max())


def aligned_values(
    result: ExperimentResult, metric: str, treatment: str, *, omit_non_finite: bool = False
) -> Aligned:
    """Return the per-replicate values of ``metric``; failed replicates are left out of both sides."""
    base_rep, base_val = result.select(metric, BASELINE)
    treat_rep, treat_val = result.select(metric, treatment)
    failed = {e.replicate for e in result.errors if e.condition in (BASELINE, treatment)}
    if failed:
        keep_b = ~np.isin(base_rep, list(failed))
        keep_t = ~np.isin(treat_rep, list(failed))
        base_rep, base_val = base_rep[keep_b], base_val[keep_b]
        treat_rep, treat_val = treat_rep[keep_t], treat_val[keep_t]
    pairable = np.array_equal(np.unique(base_rep), np.unique(treat_rep))
    base_rep, base_val, k_base = replicate_means(base_rep, base_val, omit_non_finite=omit_non_finite)
    treat_rep, treat_val, k_treat = replicate_means(treat_rep, treat_val, omit_non_finite=omit_non_finite)
    if pairable and omit_non_finite and not np.array_equal(base_rep, treat_rep):
        # Omitting non-finite values drops a replicate from one side: drop it from both (pairwise).
        common = np.intersect1d(base_rep, treat_rep)
        keep_b, keep_t = np.isin(base_rep, common), np.isin(treat_rep, common)
        base_rep, base_val = base_rep[keep_b], base_val[keep_b]
        treat_rep, treat_val = treat_rep[keep_t], treat_val[keep_t]
    paired = len(base_rep) > 0 and np.array_equal(base_rep, treat_rep)
    return Aligned(base_val, treat_val, base_rep, treat_rep, paired=paired, per_replicate=max(k_base, k_treat))


def _missing(result: ExperimentResult, metric: str, conditions: list[str], pair: tuple[str, str]) -> str:
    where = " and ".join(repr(c) for c in conditions)
    if any(len(result.select(metric, c)[0]) for c in conditions):  # recorded, then left out as failed
        failed = sorted({e.replicate for e in result.errors if e.condition in pair})
        shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        return (
            f"metric missing: every replicate of {where} that recorded {metric!r} failed, in {pair[0]!r} or "
            f"{pair[1]!r}, and a failed replicate is left out of both (failed replicates: {shown}; see the errors)"
        )
    recorded = ", ".join(repr(m) for m in result.metrics) or "none"
    return f"metric missing: no replicate of {where} recorded {metric!r} (recorded metrics: {recorded})"


def _bad_value_message(exc: StatisticsError, metric: str, treatment: str, aligned: Aligned) -> str:
    condition = BASELINE if exc.side == "baseline" else treatment
    if exc.positions:
        replicates = aligned.baseline_replicates if exc.side == "baseline" else aligned.treatment_replicates
        where = [int(replicates[p]) for p in exc.positions if p < len(replicates)]
        return f"metric {metric!r} in condition {condition!r}, replicate(s) {where}: {exc}"
    return f"metric {metric!r}: {exc}"


def _compare(experiment: Experiment, result: ExperimentResult, h: Hypothesis, treatment: str) -> _Pending:
    from pytest_crystallize.core.stats import compare

    aligned = aligned_values(result, h.metric, treatment, omit_non_finite=h.nan_policy == "omit")
    baseline, treated, paired = aligned.baseline, aligned.treatment, aligned.paired
    empty = [c for c, v in ((BASELINE, baseline), (treatment, treated)) if len(v) == 0]
    if empty:
        return _Pending(h, treatment, None, _missing(result, h.metric, empty, (BASELINE, treatment)), None, "")
    try:
        comparison = compare(
            baseline, treated, test=h.test, direction=h.direction,
            alpha=h.alpha or experiment.alpha, paired=paired,
            margin=None if h.margin is None else float(h.margin),  # check() refused anything else
            relative_margin=h.relative_margin, better=h.better, seed=experiment.seed, mde=h.mde,
            nan_policy=h.nan_policy,
        )
    except StatisticsError as exc:
        return _Pending(h, treatment, None, _bad_value_message(exc, h.metric, treatment, aligned), None, "")
    except Exception as exc:  # a user's own test raised: a failed verdict that says where, not a crash
        if isinstance(h.test, str):
            raise
        problem = f"test {h.test_name!r} raised {type(exc).__name__}: {exc}"
        return _Pending(h, treatment, None, problem, None, "")
    predicate_ok, note = None, ""
    if h.predicate is not None:
        try:
            predicate_ok = bool(h.predicate(baseline, treated))
        except Exception as exc:  # the user's predicate: report, do not crash the run
            predicate_ok, note = False, f"predicate raised {type(exc).__name__}: {exc}"
    return _Pending(h, treatment, comparison, "", predicate_ok, note, aligned.per_replicate)


def evaluate(experiment: Experiment, result: ExperimentResult) -> tuple[Verdict, ...]:
    """Check every hypothesis of ``experiment`` for every treatment in ``result``."""
    if not experiment.hypotheses or not experiment.treatments:
        return ()
    from pytest_crystallize.core.stats import adjust_pvalues

    pending = [
        _compare(experiment, result, h, t.name)
        for h in experiment.hypotheses for t in experiment.treatments
    ]
    tested = [p for p in pending if p.comparison is not None]
    adjusted = adjust_pvalues([p.comparison.p_value for p in tested], experiment.correction)  # type: ignore[union-attr]
    p_adjusted = {id(p): float(a) for p, a in zip(tested, adjusted, strict=True)}
    return tuple(_verdict(experiment, p, p_adjusted.get(id(p), math.nan)) for p in pending)


#: Power below which an experiment with ``mde=`` counts as underpowered.
TARGET_POWER = 0.8


def low_power_messages(result: ExperimentResult) -> list[str]:
    """One message per verdict whose power at its ``mde`` is below :data:`TARGET_POWER`."""
    out = []
    for v in result.verdicts:
        d = v.details
        power = d.get("power")
        if power is None or power >= TARGET_POWER:
            continue
        needed = d.get("replicates_needed")
        advice = (
            f"about {needed} replicates per condition would give {TARGET_POWER:.0%}"
            if needed is not None else f"no replicate count reaches {TARGET_POWER:.0%}"
        )
        out.append(
            f"experiment {result.experiment!r}: hypothesis {v.hypothesis!r} for treatment "
            f"{v.treatment!r} has {power:.0%} power to detect an effect of {d.get('mde'):g} with "
            f"{min(v.n_baseline, v.n_treatment)} replicates; {advice}"
        )
    return out


def warn_low_power(function: Any, result: ExperimentResult) -> None:
    """Issue a LowPowerWarning per underpowered verdict, attributed to the experiment's own code.

    Called after the run, so that warnings turned into errors (``-W error``)
    cannot lose the result.
    """
    code = getattr(function, "__code__", None)
    for message in low_power_messages(result):
        if code is None:
            warnings.warn(LowPowerWarning(message), stacklevel=2)
            continue
        warnings.warn_explicit(
            LowPowerWarning(message), LowPowerWarning, code.co_filename, code.co_firstlineno,
            module=getattr(function, "__module__", None),
            registry=getattr(function, "__globals__", {}).setdefault("__warningregistry__", {}),
        )


def _verdict(
    experiment: Experiment,
    p: _Pending,
    p_adj: float,
    *,
    significant: bool | None = None,
    shown: str | None = None,
    threshold: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Verdict:
    """Build the verdict of ``p``; by default significance is ``p_adj < alpha``.

    A sequential design passes its own ``significant`` decision, the p-value
    text ``shown`` and the ``threshold`` it was compared with.
    """
    h, c = p.hypothesis, p.comparison
    alpha = h.alpha or experiment.alpha
    common: dict[str, Any] = {
        "hypothesis": h.label, "metric": h.metric, "treatment": p.treatment,
        "direction": h.direction, "alpha": alpha,
    }
    if c is None:
        return Verdict(
            **common, test=h.test_name, n_baseline=0, n_treatment=0, mean_baseline=math.nan,
            mean_treatment=math.nan, difference=math.nan, p_value=math.nan, p_adjusted=math.nan,
            holds=False, reason=p.problem,
        )
    if shown is None:
        shown = (f"p={c.p_value:.3g}" if experiment.correction == "none"
                 else f"p={c.p_value:.3g}, {experiment.correction}-adjusted {p_adj:.3g}")
    holds, reason = _judge(
        h, c, p,
        significant=p_adj < alpha if significant is None else significant,
        shown=shown, threshold=threshold or f"alpha {alpha:g}",
    )
    extra = dict(extra or {})
    if p.per_replicate > 1:
        reason += f" (on per-replicate means of up to {p.per_replicate} values)"
        extra["values_per_replicate"] = p.per_replicate
    return Verdict(
        **common, test=c.test, n_baseline=c.n_baseline, n_treatment=c.n_treatment,
        mean_baseline=c.mean_baseline, mean_treatment=c.mean_treatment, difference=c.difference,
        p_value=c.p_value, p_adjusted=p_adj, holds=holds, reason=reason,
        details={**c.to_dict(), **(extra or {})},
    )


def _judge(
    h: Hypothesis, c: Comparison, p: _Pending, *, significant: bool, shown: str, threshold: str
) -> tuple[bool, str]:
    if p.predicate_ok is False:
        return False, p.predicate_note or f"predicate {h.label!r} returned false ({shown})"
    if c.difference == 0 and h.direction in ("maximize", "minimize", "two-sided"):
        return False, f"no difference: both conditions have mean {c.mean_baseline:.4g} ({shown})"
    if not c.direction_ok and h.direction == "no_worse" and math.isfinite(c.margin):
        worse = -c.difference if h.better == "higher" else c.difference
        return False, f"worse by {worse:.4g}, more than the margin {c.margin:.4g} ({shown})"
    if not c.direction_ok and h.direction == "equivalent" and math.isfinite(c.margin):
        return False, f"difference {c.difference:+.4g} lies outside ±{c.margin:.4g} ({shown})"
    if not c.direction_ok:
        return False, (
            f"wrong direction: treatment mean {c.mean_treatment:.4g} vs baseline "
            f"{c.mean_baseline:.4g}, but the hypothesis is {h.direction!r} ({shown})"
        )
    if not significant:
        note = f"; {c.degenerate}" if c.degenerate else ""
        if not math.isnan(c.power) and c.power < TARGET_POWER:
            note += f"; underpowered: {c.power:.0%} power at mde {c.mde:g}"
            if c.replicates_needed is not None:
                note += f", about {c.replicates_needed} replicates needed"
        return False, f"not significant: {shown} >= {threshold}{note}"
    return True, f"significant: {shown} < {threshold}"
