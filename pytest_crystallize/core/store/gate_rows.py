"""Comparing a run with a saved run, row by row: one condition and metric, current values versus saved.

For every condition and every metric with a known good direction (a
:class:`GateSpec`, from the experiment's hypotheses or the marker's
``gate=`` mapping), the current values are compared with the saved ones
(saved = "baseline", current = "treatment" of :func:`~pytest_crystallize.core.stats.compare`):

* ``p_worse``: one-sided test that the current run is worse than the saved
  one by more than the margin (``minimize`` with ``margin`` when higher is
  better). Significant -> **regressed**, which fails the experiment.
* ``p_better``: one-sided test that it is better. Significant -> **improved**.
* ``p_no_worse`` (margin > 0 only): the non-inferiority test
  (``direction="no_worse"``). Significant -> **no worse**; otherwise
  **inconclusive**, which fails only a *strict* gate.

Rows that fail the gate without a test: **not finite** (the current run
recorded NaN or infinity for a gated metric, like a hypothesis with
``nan_policy="raise"``), **missing** (the saved run recorded the metric in
that condition, the current run did not) and **never recorded** (neither run
recorded the metric at all: a misspelt ``gate=`` key or hypothesis metric).
Non-finite *saved* values are left out, with a note.

Values pair up by replicate when both runs used the same master seed (the
same replicate has the same seed in both, so the comparison is paired), on
the replicates both runs have (a note says how many of either side were
left out, e.g. when the current run has more replicates); replicates that
failed are left out. The p-values of one family (all worse-tests of one
experiment, and so on) are corrected with the experiment's correction and
compared with its alpha. The verdict of a whole experiment is
:mod:`pytest_crystallize.core.store.gate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.report.wording import no_variation_note
from pytest_crystallize.core.store.gate_specs import GateSpec
from pytest_crystallize.errors import StatisticsError

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.stats import Comparison

__all__ = [
    "FAILING",
    "IMPROVED",
    "INCONCLUSIVE",
    "MISSING",
    "NEVER_RECORDED",
    "NOT_COMPARED",
    "NOT_FINITE",
    "NO_CHANGE",
    "NO_WORSE",
    "REGRESSED",
    "TESTED",
    "GateRow",
    "compare_results",
]

REGRESSED: Final = "regressed"
IMPROVED: Final = "improved"
NO_WORSE: Final = "no worse"
INCONCLUSIVE: Final = "inconclusive"
NO_CHANGE: Final = "no change"
NOT_COMPARED: Final = "not compared"
NOT_FINITE: Final = "not finite"
MISSING: Final = "missing"
NEVER_RECORDED: Final = "never recorded"
#: Rows whose values were tested.
TESTED: Final = frozenset({REGRESSED, IMPROVED, NO_WORSE, INCONCLUSIVE, NO_CHANGE})
#: Rows that fail an enforced gate; a strict gate also fails inconclusive and not compared rows.
FAILING: Final = frozenset({REGRESSED, NOT_FINITE, MISSING, NEVER_RECORDED})
_SHOWN_REPLICATES: Final = 10
@dataclass(frozen=True, slots=True)
class GateRow:
    """One condition and metric, current run versus saved run."""

    condition: str
    metric: str
    better: str
    status: str
    n_saved: int = 0
    n_current: int = 0
    mean_saved: float = math.nan
    mean_current: float = math.nan
    difference: float = math.nan
    relative_difference: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    margin: float = 0.0
    relative_margin: bool = False
    p_worse: float = math.nan
    p_worse_adjusted: float = math.nan
    p_better: float = math.nan
    p_better_adjusted: float = math.nan
    p_no_worse: float = math.nan
    p_no_worse_adjusted: float = math.nan
    paired: bool = False
    test: str = ""
    note: str = ""
    #: About the regression (beyond the margin included, in the metric's units) this comparison
    #: catches 4 times in 5 at its replicates: what the gate can see (nan when unknown).
    detectable: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict (nan becomes None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateRow:
        """Rebuild from :meth:`to_dict` output."""
        floats = {f.name for f in fields(cls) if f.type == "float"}
        values: dict[str, Any] = {k: math.nan if v is None and k in floats else v for k, v in data.items()}
        return cls(**values)


def _kept(result: ExperimentResult, metric: str, condition: str) -> tuple[np.ndarray, np.ndarray]:
    """Replicates and values of ``metric`` in ``condition``, without replicates that failed."""
    replicates, values = result.select(metric, condition)
    failed = [e.replicate for e in result.errors if e.condition == condition]
    keep = ~np.isin(replicates, failed)
    return replicates[keep], values[keep]


def _replicate_list(replicates: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in replicates[:_SHOWN_REPLICATES])
    more = f" and {len(replicates) - _SHOWN_REPLICATES} more" if len(replicates) > _SHOWN_REPLICATES else ""
    return shown + more


def _aligned(saved: tuple[np.ndarray, np.ndarray], current: tuple[np.ndarray, np.ndarray], same_seeds: bool) -> tuple[
    np.ndarray, np.ndarray, bool, str
]:
    """Saved and current values, paired on the common replicates when both runs share their seeds.

    The note says how many replicates of either side had no partner and were left out.
    """
    (s_rep, s_val), (c_rep, c_val) = saved, current
    one_each = len(s_rep) == len(np.unique(s_rep)) and len(c_rep) == len(np.unique(c_rep))
    common = np.intersect1d(s_rep, c_rep) if same_seeds and one_each else np.array([])
    if len(common) < 2:
        return s_val, c_val, False, ""
    s_order, c_order = np.argsort(s_rep, kind="stable"), np.argsort(c_rep, kind="stable")
    s_rep, s_val, c_rep, c_val = s_rep[s_order], s_val[s_order], c_rep[c_order], c_val[c_order]
    s_keep, c_keep = np.isin(s_rep, common), np.isin(c_rep, common)
    note = ""
    if not (s_keep.all() and c_keep.all()):
        left = [f"{n} {side}-only" for n, side in ((int((~s_keep).sum()), "saved"), (int((~c_keep).sum()), "current"))
                if n]
        note = (f"paired on the {len(common)} replicates both runs have; left out {' and '.join(left)} "
                "replicate(s) without a partner")
    return s_val[s_keep], c_val[c_keep], True, note


@dataclass(frozen=True, slots=True)
class _Tested:
    spec: GateSpec
    condition: str
    worse: Comparison | None
    better: Comparison | None
    no_worse: Comparison | None
    margin: float
    relative: bool
    note: str
    #: Untested rows only: their status (not compared when empty) and what was found.
    status: str = ""
    counts: tuple[int, int] = (0, 0)
    means: tuple[float, float] = (math.nan, math.nan)


def _untested(spec: GateSpec, condition: str, margin: float, relative: bool, note: str, status: str = NOT_COMPARED,
              saved: np.ndarray | None = None, current: np.ndarray | None = None) -> _Tested:
    s, c = (np.array([]) if v is None else v for v in (saved, current))
    means = (float(np.mean(s)) if len(s) else math.nan, float(np.mean(c)) if len(c) else math.nan)
    return _Tested(spec, condition, None, None, None, margin, relative, note, status, (len(s), len(c)), means)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _test(saved: ExperimentResult, current: ExperimentResult, spec: GateSpec, condition: str,
          margin: float, relative: bool) -> _Tested:
    from pytest_crystallize.core.stats import compare

    metric = spec.metric
    if metric not in saved.metrics and metric not in current.metrics:
        recorded = ", ".join(repr(m) for m in dict.fromkeys((*current.metrics, *saved.metrics))) or "none"
        note = (f"neither run recorded {metric!r}: check the gate= key or the hypothesis' metric "
                f"(recorded metrics: {recorded})")
        return _untested(spec, condition, margin, relative, note, NEVER_RECORDED)
    s_rep, s_all = _kept(saved, metric, condition)
    c_rep, c_all = _kept(current, metric, condition)
    s_ok, c_ok = np.isfinite(s_all), np.isfinite(c_all)
    s_note = ""
    if not s_ok.all():
        s_note = (f"the saved run has {int((~s_ok).sum())} non-finite value(s) of {metric!r} in {condition!r} "
                  f"(replicate(s) {_replicate_list(s_rep[~s_ok])}): left out")
    s_rep, s_val, c_rep_f, c_val = s_rep[s_ok], s_all[s_ok], c_rep[c_ok], c_all[c_ok]
    if not c_ok.all():
        bad = c_rep[~c_ok]
        kinds = sorted({"nan" if math.isnan(v) else "inf" for v in c_all[~c_ok]})
        note = (f"the current run recorded {len(bad)} non-finite value(s) ({' and '.join(kinds)}) of {metric!r} "
                f"in {condition!r}, of {len(c_all)}: replicate(s) {_replicate_list(bad)}; a gated metric must be "
                "finite: fix the metric, or leave it out of the gate")
        return _untested(spec, condition, margin, relative, _join(note, s_note), NOT_FINITE, s_val, c_val)
    if not len(c_all):
        if len(s_val):
            raw = len(current.select(metric, condition)[1])
            why = " (the replicates that recorded it failed)" if raw else ""
            note = (f"{metric!r} was recorded in {condition!r} in the saved run ({len(s_val)} values) but not in "
                    f"the current run{why}")
            return _untested(spec, condition, margin, relative, _join(note, s_note), MISSING, s_val, c_val)
        where = "either run" if not len(s_all) else "the current run (the saved run's are not finite)"
        return _untested(spec, condition, margin, relative, _join(f"no values of {metric!r} in {where}", s_note))
    if not len(s_val):
        note = f"no values of {metric!r} in the saved run" if not len(s_all) else ""
        return _untested(spec, condition, margin, relative, _join(note, s_note), saved=s_val, current=c_val)
    p, q = saved.provenance, current.provenance
    same_seeds = p.master_seed == q.master_seed and p.seed_scheme == q.seed_scheme
    s_val, c_val, paired, pair_note = _aligned((s_rep, s_val), (c_rep_f, c_val), same_seeds)
    if relative:
        if float(np.mean(s_val)) == 0.0:
            note = "a relative margin needs a non-zero saved mean"
            return _untested(spec, condition, margin, relative, _join(note, s_note), saved=s_val, current=c_val)
        margin = margin * abs(float(np.mean(s_val)))
    higher = spec.better == "higher"
    common: dict[str, Any] = {"test": spec.test, "paired": paired, "alpha": current.provenance.alpha,
              "seed": current.provenance.master_seed}
    try:
        worse = compare(s_val, c_val, direction="minimize" if higher else "maximize",
                        margin=margin or None, **common)
        better = compare(s_val, c_val, direction="maximize" if higher else "minimize", **common)
        no_worse = (compare(s_val, c_val, direction="no_worse", margin=margin, better=spec.better, **common)
                    if margin > 0 else None)
    except StatisticsError as exc:
        return _untested(spec, condition, margin, relative, _join(str(exc), s_note), saved=s_val, current=c_val)
    return _Tested(spec, condition, worse, better, no_worse, margin, relative, _join(pair_note, s_note))


def compare_results(
    current: ExperimentResult, saved: ExperimentResult, specs: Iterable[GateSpec], *,
    margin: float = 0.0, relative: bool = False, conditions_changed: Mapping[str, str] | None = None,
    metrics_changed: Mapping[str, str] | None = None,
) -> tuple[GateRow, ...]:
    """Compare every gated metric in every condition both runs have; see the module docstring.

    ``margin``/``relative`` apply to specs without a margin of their own.
    ``conditions_changed`` and ``metrics_changed`` map conditions and metrics
    not to compare (their definition changed) to the reason, shown as the
    row's note; a metric neither run recorded is reported all the same.
    """
    from pytest_crystallize.core.stats import adjust_pvalues

    skip_conditions, skip_metrics = conditions_changed or {}, metrics_changed or {}
    conditions = [c for c in current.conditions if c in saved.conditions]

    def one(spec: GateSpec, condition: str) -> _Tested:
        own_margin, own_relative = (margin, relative) if spec.margin is None else (spec.margin, spec.relative)
        recorded = spec.metric in saved.metrics or spec.metric in current.metrics
        if recorded and condition in skip_conditions:
            note = f"{condition!r} runs with other inputs than in the saved run: {skip_conditions[condition]}"
            return _untested(spec, condition, own_margin, own_relative, note)
        if recorded and spec.metric in skip_metrics:
            return _untested(spec, condition, own_margin, own_relative, skip_metrics[spec.metric])
        return _test(saved, current, spec, condition, own_margin, own_relative)

    tested = [one(spec, condition) for spec in specs for condition in conditions]
    correction, alpha = current.provenance.correction, current.provenance.alpha

    def adjusted(pick: Callable[[_Tested], Comparison | None]) -> dict[int, float]:
        chosen = [(i, c.p_value) for i, t in enumerate(tested) if (c := pick(t)) is not None]
        if not chosen:
            return {}
        values = adjust_pvalues([p for _, p in chosen], correction)
        return {i: float(a) for (i, _), a in zip(chosen, values, strict=True)}

    worse_adj = adjusted(lambda t: t.worse)
    better_adj = adjusted(lambda t: t.better)
    no_worse_adj = adjusted(lambda t: t.no_worse)
    return tuple(
        _row(t, worse_adj.get(i, math.nan), better_adj.get(i, math.nan), no_worse_adj.get(i, math.nan), alpha)
        for i, t in enumerate(tested)
    )


def _row(t: _Tested, p_worse: float, p_better: float, p_no_worse: float, alpha: float) -> GateRow:
    spec = t.spec
    head: dict[str, Any] = {"condition": t.condition, "metric": spec.metric, "better": spec.better, "margin": t.margin,
            "relative_margin": t.relative}
    c = t.worse
    if c is None or t.better is None:
        return GateRow(**head, status=t.status or NOT_COMPARED, note=t.note, n_saved=t.counts[0],
                       n_current=t.counts[1], mean_saved=t.means[0], mean_current=t.means[1])
    if p_worse < alpha:
        status = REGRESSED
    elif p_better < alpha:
        status = IMPROVED
    elif t.no_worse is not None:
        status = NO_WORSE if p_no_worse < alpha else INCONCLUSIVE
    else:
        status = NO_CHANGE
    return GateRow(
        **head, status=status, n_saved=c.n_baseline, n_current=c.n_treatment, mean_saved=c.mean_baseline,
        mean_current=c.mean_treatment, difference=c.difference, relative_difference=c.relative_difference,
        ci_low=c.ci_low, ci_high=c.ci_high, p_worse=c.p_value, p_worse_adjusted=p_worse,
        p_better=t.better.p_value, p_better_adjusted=p_better,
        p_no_worse=math.nan if t.no_worse is None else t.no_worse.p_value, p_no_worse_adjusted=p_no_worse,
        paired=c.paired, test=c.test, note=_join(_no_variation_words(c), t.note),
        detectable=t.margin + _detectable_shift(c, alpha),
    )


def _detectable_shift(c: Comparison, alpha: float, power: float = 0.8) -> float:
    """About the true regression past the margin that a one-sided test at ``alpha`` detects with ``power``.

    The standard error is read off the comparison's interval; the shift is
    ``(t_{1-alpha} + t_{power}) x se`` (the usual sample-size formula run
    backwards), with the t quantiles on the test's degrees of freedom.
    """
    from scipy import stats

    df = c.n_baseline - 1 if c.paired else c.n_baseline + c.n_treatment - 2
    width = c.ci_high - c.ci_low
    if df < 1 or not math.isfinite(width) or width <= 0:
        return math.nan
    se = width / (2 * float(stats.t.ppf(0.5 + c.confidence / 2, df)))
    return (float(stats.t.ppf(1 - alpha, df)) + float(stats.t.ppf(power, df))) * se


def _no_variation_words(c: Comparison) -> str:
    """What had no spread, in the gate's words: saved run for baseline, current run for treatment."""
    return "" if c.no_variation is None else no_variation_note(c.no_variation, versus_saved=True)
