"""Comparing a run with a saved run: rows per condition and metric, a report per experiment.

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

Values pair up by replicate when both runs used the same master seed (the
same replicate has the same seed in both, so the comparison is paired);
replicates that failed or gave non-finite values are left out. The p-values
of one family (all worse-tests of one experiment, and so on) are corrected
with the experiment's correction and compared with its alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from pytest_crystallize.core.definition import definition_changes, fingerprint
from pytest_crystallize.errors import ResultsError, StatisticsError

from ._specs import GateSpec

if TYPE_CHECKING:
    from pytest_crystallize.core.results import ExperimentResult
    from pytest_crystallize.core.runs import RunRecord
    from pytest_crystallize.core.stats import Comparison

__all__ = ["GateReport", "GateRow", "compare_results", "gate_experiment"]

REGRESSED: Final = "regressed"
IMPROVED: Final = "improved"
NO_WORSE: Final = "no worse"
INCONCLUSIVE: Final = "inconclusive"
NO_CHANGE: Final = "no change"
NOT_COMPARED: Final = "not compared"
#: Experiment-level outcomes: compared, or why not.
COMPARED: Final = "compared"
NEW: Final = "not in saved run"
CHANGED: Final = "definition changed"
UNREADABLE: Final = "saved result unreadable"


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


@dataclass(frozen=True, slots=True)
class GateReport:
    """One experiment compared with a saved run; ``failed`` decides the experiment's item.

    ``enforced`` is false when comparing only to report (no gate); ``strict``
    also fails inconclusive rows and experiments that could not be compared.
    """

    nodeid: str
    saved_run: str
    status: str
    rows: tuple[GateRow, ...] = ()
    notes: tuple[str, ...] = ()
    alpha: float = 0.05
    correction: str = "holm"
    enforced: bool = True
    strict: bool = False

    @property
    def failing_rows(self) -> tuple[GateRow, ...]:
        """The rows that fail the gate (when enforced)."""
        bad = {REGRESSED, INCONCLUSIVE, NOT_COMPARED} if self.strict else {REGRESSED}
        return tuple(r for r in self.rows if r.status in bad)

    @property
    def failed(self) -> bool:
        """True when the gate fails the experiment."""
        if not self.enforced:
            return False
        if self.status == UNREADABLE or (self.strict and self.status != COMPARED):
            return True
        return bool(self.failing_rows)

    def count(self, status: str) -> int:
        """How many rows have ``status``."""
        return sum(1 for r in self.rows if r.status == status)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-able dict."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rows"] = [r.to_dict() for r in self.rows]
        out["notes"] = list(self.notes)
        out["failed"] = self.failed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        """Rebuild from :meth:`to_dict` output."""
        values = {k: v for k, v in data.items() if k != "failed"}
        values["rows"] = tuple(GateRow.from_dict(r) for r in values.get("rows", ()))
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def _values(result: ExperimentResult, metric: str, condition: str) -> tuple[np.ndarray, np.ndarray]:
    replicates, values = result.select(metric, condition)
    failed = [e.replicate for e in result.errors if e.condition == condition]
    keep = np.isfinite(values) & ~np.isin(replicates, failed)
    return replicates[keep], values[keep]


def _aligned(saved: ExperimentResult, current: ExperimentResult, metric: str, condition: str) -> tuple[
    np.ndarray, np.ndarray, bool
]:
    """Saved and current values; paired on common replicates when both runs share their seeds."""
    s_rep, s_val = _values(saved, metric, condition)
    c_rep, c_val = _values(current, metric, condition)
    p, q = saved.provenance, current.provenance
    same_seeds = p.master_seed == q.master_seed and p.seed_scheme == q.seed_scheme
    one_each = len(s_rep) == len(np.unique(s_rep)) and len(c_rep) == len(np.unique(c_rep))
    common = np.intersect1d(s_rep, c_rep) if same_seeds and one_each else np.array([])
    if len(common) < 2:
        return s_val, c_val, False
    s_order, c_order = np.argsort(s_rep, kind="stable"), np.argsort(c_rep, kind="stable")
    s_rep, s_val, c_rep, c_val = s_rep[s_order], s_val[s_order], c_rep[c_order], c_val[c_order]
    return s_val[np.isin(s_rep, common)], c_val[np.isin(c_rep, common)], True


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


def _test(saved: ExperimentResult, current: ExperimentResult, spec: GateSpec, condition: str,
          margin: float, relative: bool) -> _Tested:
    from pytest_crystallize.core.stats import compare

    s_val, c_val, paired = _aligned(saved, current, spec.metric, condition)
    if not len(s_val) or not len(c_val):
        side = "saved" if not len(s_val) else "current"
        note = f"no values of {spec.metric!r} in the {side} run"
        return _Tested(spec, condition, None, None, None, margin, relative, note)
    if relative:
        if float(np.mean(s_val)) == 0.0:
            note = "a relative margin needs a non-zero saved mean"
            return _Tested(spec, condition, None, None, None, margin, relative, note)
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
        return _Tested(spec, condition, None, None, None, margin, relative, str(exc))
    return _Tested(spec, condition, worse, better, no_worse, margin, relative, "")


def compare_results(
    current: ExperimentResult, saved: ExperimentResult, specs: Iterable[GateSpec], *,
    margin: float = 0.0, relative: bool = False,
) -> tuple[GateRow, ...]:
    """Compare every gated metric in every condition both runs have; see the module docstring.

    ``margin``/``relative`` apply to specs without a margin of their own.
    """
    from pytest_crystallize.core.stats import adjust_pvalues

    conditions = [c for c in current.conditions if c in saved.conditions]
    tested = [
        _test(saved, current, spec, condition,
              margin if spec.margin is None else spec.margin, relative if spec.margin is None else spec.relative)
        for spec in specs for condition in conditions
    ]
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
        return GateRow(**head, status=NOT_COMPARED, note=t.note)
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
        paired=c.paired, test=c.test, note=_gate_words(c.degenerate),
    )


def _gate_words(note: str) -> str:
    """A note of compare() in the words of a gate: saved run for baseline, current run for treatment."""
    if note.startswith("no variation in the paired differences: every treatment value equals"):
        return "identical to the saved run, replicate for replicate"
    return note.replace("treatment value", "current value").replace("its baseline", "its saved value").replace(
        "baseline is always", "saved is always").replace("treatment always", "current always")


def _treatments_not_run(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str] | None:
    """Treatments of ``saved`` missing from ``current`` when that is the only difference, else None.

    A run narrowed with ``--crystallize-treatment`` (or a condition-choosing
    hook) still compares the conditions it ran, as long as their definitions
    and the hypotheses are unchanged.
    """
    old: Mapping[str, Any] = saved.get("treatments") or {}
    new: Mapping[str, Any] = current.get("treatments") or {}
    same = (
        saved.get("hypotheses") == current.get("hypotheses")
        and all(name in old and old[name] == spec for name, spec in new.items())
    )
    return [name for name in old if name not in new] if same else None


def gate_experiment(
    nodeid: str, current: ExperimentResult, definition: Mapping[str, Any], specs: Iterable[GateSpec],
    record: RunRecord, load: Callable[[], ExperimentResult], *, margin: float = 0.0, relative: bool = False,
    enforced: bool = True, strict: bool = False,
) -> GateReport:
    """Compare one experiment with its result in the saved run ``record``.

    ``load`` reads the saved result (only when the definitions match). A
    missing experiment or a changed definition is reported, not compared.
    """
    common: dict[str, Any] = {"nodeid": nodeid, "saved_run": record.label, "alpha": current.provenance.alpha,
              "correction": current.provenance.correction, "enforced": enforced, "strict": strict}
    entry = record.experiments.get(nodeid)
    if entry is None:
        return GateReport(**common, status=NEW, notes=(f"{nodeid!r} is not in saved run {record.id}",))
    not_run = _treatments_not_run(entry.definition, definition)
    if entry.fingerprint != fingerprint(definition) and not_run is None:
        changes = definition_changes(entry.definition, definition)
        said = (f"its hypotheses or treatments changed since saved run {record.id}; not compared:", *changes)
        return GateReport(**common, status=CHANGED, notes=said)
    try:
        saved = load()
    except ResultsError as exc:
        return GateReport(**common, status=UNREADABLE, notes=(str(exc),))
    rows = compare_results(current, saved, specs, margin=margin, relative=relative)
    notes: tuple[str, ...] = ()
    if not_run:
        notes += (f"treatments not run this time, so not compared: {', '.join(repr(t) for t in not_run)}",)
    if saved.provenance.master_seed != current.provenance.master_seed:
        notes = (f"master seeds differ (saved {saved.provenance.master_seed}, current "
                 f"{current.provenance.master_seed}): values compared unpaired",)
    if not rows:
        notes += ("no metric has a known good direction: add a maximize/minimize hypothesis or gate= to the marker",)
    return GateReport(**common, status=COMPARED, rows=rows, notes=notes)
