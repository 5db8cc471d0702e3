"""The gate's statistics, checked against scipy and statsmodels computed independently."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttest_ind

from pytest_crystallize import ExperimentResult, Provenance, ReplicateError
from pytest_crystallize.core.report.gate_text import gate_failure, gate_heading, gate_lines, gate_totals
from pytest_crystallize.core.store.gate import GateReport
from pytest_crystallize.core.store.gate_rows import (
    IMPROVED,
    INCONCLUSIVE,
    NO_CHANGE,
    NO_WORSE,
    NOT_COMPARED,
    REGRESSED,
    GateRow,
    compare_results,
)
from pytest_crystallize.core.store.gate_specs import GateSpec

# Statuses by value: these tests also run against versions that predate the constants.
NOT_FINITE, MISSING, NEVER_RECORDED = "not finite", "missing", "never recorded"
FAILING = {REGRESSED, NOT_FINITE, MISSING, NEVER_RECORDED}


def result_of(
    values: Mapping[str, Mapping[str, Sequence[float]]], *, seed: int = 1, errors: Sequence[tuple[str, int]] = (),
    correction: str = "holm",
) -> ExperimentResult:
    conditions = tuple(values)
    metrics = tuple(dict.fromkeys(m for per in values.values() for m in per))
    codes, reps, mcodes, vals = [], [], [], []
    for c, per in values.items():
        for m, series in per.items():
            for r, v in enumerate(series):
                codes.append(conditions.index(c))
                reps.append(r)
                mcodes.append(metrics.index(m))
                vals.append(v)
    n = max(len(s) for per in values.values() for s in per.values())
    return ExperimentResult(
        experiment="exp", conditions=conditions, metrics=metrics, condition_codes=np.array(codes),
        replicates=np.array(reps), metric_codes=np.array(mcodes), values=np.array(vals, dtype=float),
        tags=(None,) * len(vals),
        errors=tuple(ReplicateError(c, r, "ValueError", "boom", "tb") for c, r in errors), verdicts=(),
        provenance=Provenance(experiment="exp", master_seed=seed, replicates=n, conditions=conditions,
                              treatments={c: {} for c in conditions[1:]}, alpha=0.05, correction=correction,
                              started_at="2025-01-01T00:00:00+00:00", duration_s=0.0),
    )


RNG = np.random.default_rng(12345)
SAVED_A, SAVED_B = RNG.normal(10, 1, 25), RNG.normal(12, 1, 25)
NOISE_A, NOISE_B = RNG.normal(0, 0.3, 25), RNG.normal(0, 0.3, 25)


def test_paired_rows_match_one_sample_t_tests_on_the_differences_and_holm() -> None:
    margin = 0.1
    saved = result_of({"baseline": {"acc": SAVED_A}, "t": {"acc": SAVED_B}})
    current = result_of({"baseline": {"acc": SAVED_A - 0.3 + NOISE_A}, "t": {"acc": SAVED_B + 0.05 + NOISE_B}})
    rows = compare_results(current, saved, [GateSpec("acc", "higher", margin=margin)])
    d = [SAVED_A - 0.3 + NOISE_A - SAVED_A, SAVED_B + 0.05 + NOISE_B - SAVED_B]
    worse = [stats.ttest_1samp(x + margin, 0, alternative="less").pvalue for x in d]
    better = [stats.ttest_1samp(x, 0, alternative="greater").pvalue for x in d]
    no_worse = [stats.ttest_1samp(x + margin, 0, alternative="greater").pvalue for x in d]
    for row, w, b, nw in zip(rows, worse, better, no_worse, strict=True):
        assert row.paired
        assert row.test == "paired_t"
        assert row.p_worse == pytest.approx(w, rel=1e-9)
        assert row.p_better == pytest.approx(b, rel=1e-9)
        assert row.p_no_worse == pytest.approx(nw, rel=1e-9)
    for name, raw in (("p_worse_adjusted", worse), ("p_better_adjusted", better), ("p_no_worse_adjusted", no_worse)):
        expected = multipletests(raw, method="holm")[1]
        assert [getattr(r, name) for r in rows] == pytest.approx(list(expected), rel=1e-9)
    low, high = stats.ttest_1samp(d[0], 0).confidence_interval(0.95)
    assert (rows[0].ci_low, rows[0].ci_high) == pytest.approx((low, high), rel=1e-9)
    assert [r.status for r in rows] == [REGRESSED, NO_WORSE]
    assert rows[0].difference == pytest.approx(float(np.mean(d[0])))


def test_different_master_seeds_compare_unpaired_with_welch_like_statsmodels() -> None:
    margin = 0.2
    saved = result_of({"baseline": {"latency": SAVED_A}}, seed=1)
    current = result_of({"baseline": {"latency": SAVED_B[:20]}}, seed=2)
    (row,) = compare_results(current, saved, [GateSpec("latency", "lower", margin=margin)])
    assert not row.paired
    assert row.test == "welch_t"
    assert (row.n_saved, row.n_current) == (25, 20)
    _, p_worse, _ = ttest_ind(SAVED_B[:20], SAVED_A, alternative="larger", usevar="unequal", value=margin)
    _, p_better, _ = ttest_ind(SAVED_B[:20], SAVED_A, alternative="smaller", usevar="unequal", value=0)
    assert row.p_worse == pytest.approx(p_worse, rel=1e-9)
    assert row.p_better == pytest.approx(p_better, rel=1e-9)
    assert row.status == REGRESSED  # latency went up by about 2: lower is better


def test_a_relative_margin_is_a_fraction_of_the_saved_mean() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A}})
    current = result_of({"baseline": {"acc": SAVED_A * 0.97 + NOISE_A / 10}})
    (row,) = compare_results(current, saved, [GateSpec("acc", "higher")], margin=0.05, relative=True)
    margin = 0.05 * abs(SAVED_A.mean())
    assert row.margin == pytest.approx(margin)
    assert row.relative_margin
    d = current.select("acc", "baseline")[1] - SAVED_A
    assert row.p_worse == pytest.approx(stats.ttest_1samp(d + margin, 0, alternative="less").pvalue, rel=1e-9)
    assert row.status == NO_WORSE  # 3% worse, within the 5% tolerated


def test_zero_one_metrics_paired_use_the_exact_mcnemar_test() -> None:
    saved = np.array([1] * 30 + [0] * 10)
    current = saved.copy()
    current[:9] = 0  # nine wins lost
    current[30:31] = 1  # one gained
    (row,) = compare_results(result_of({"baseline": {"win": current}}), result_of({"baseline": {"win": saved}}),
                             [GateSpec("win", "higher")])
    assert row.test == "mcnemar"
    assert row.p_worse == pytest.approx(stats.binomtest(9, 10, 0.5, alternative="greater").pvalue, rel=1e-9)
    assert row.status == REGRESSED


def test_failed_replicates_drop_out_of_both_sides_of_the_pairing() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A}})
    current = result_of({"baseline": {"acc": SAVED_A + NOISE_A}}, errors=[("baseline", 3)])
    (row,) = compare_results(current, saved, [GateSpec("acc", "higher")])
    keep = np.arange(25) != 3
    assert row.paired
    assert (row.n_saved, row.n_current) == (24, 24)
    assert row.p_better == pytest.approx(stats.ttest_1samp(NOISE_A[keep], 0, alternative="greater").pvalue, rel=1e-9)


def test_statuses_improved_no_change_inconclusive_missing_not_compared_and_strict() -> None:
    saved = result_of({"baseline": {"a": SAVED_A, "b": SAVED_A, "c": SAVED_A, "d": SAVED_A}})
    current = result_of({"baseline": {"a": SAVED_A + 1 + NOISE_A, "b": SAVED_A + NOISE_A / 10,
                                      "c": SAVED_A - 0.05 + NOISE_A, "e": SAVED_A}})
    # 'a' names its test: 25 normal values can trip auto's skewness screen, which is not under test here.
    specs = [GateSpec("a", "higher", test="paired_t"), GateSpec("b", "higher"), GateSpec("c", "higher", margin=0.06),
             GateSpec("d", "higher"), GateSpec("e", "higher")]
    rows = compare_results(current, saved, specs)
    assert [r.status for r in rows] == [IMPROVED, NO_CHANGE, INCONCLUSIVE, MISSING, NOT_COMPARED]
    assert rows[3].note == "'d' was recorded in 'baseline' in the saved run (25 values) but not in the current run"
    assert rows[4].note == "no values of 'e' in the saved run"
    common = {"nodeid": "x", "saved_run": "r", "status": "compared", "rows": rows}
    assert [r.metric for r in GateReport(**common).failing_rows] == ["d"]
    assert not GateReport(**common, enforced=False).failed
    strict = GateReport(**common, strict=True)
    assert strict.failed
    assert [r.metric for r in strict.failing_rows] == ["c", "d", "e"]
    assert not GateReport(**common, strict=True, enforced=False).failed


def test_identical_runs_never_regress_and_reports_survive_json() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A}, "t": {"acc": SAVED_B}})
    rows = compare_results(saved, saved, [GateSpec("acc", "higher", margin=0.01)])
    assert [r.status for r in rows] == [NO_WORSE, NO_WORSE]
    assert rows[0].p_worse == 1.0
    assert rows[0].p_no_worse == pytest.approx(2.0**-25)
    assert rows[0].note == "identical to the saved run, replicate for replicate"
    report = GateReport("x", "r", "compared", rows=rows, notes=("n",))
    again = GateReport.from_dict(json.loads(json.dumps(report.to_dict(), allow_nan=False)))
    assert again.to_dict() == report.to_dict()
    assert math.isnan(GateReport.from_dict(report.to_dict() | {"rows": [{**rows[0].to_dict(), "ci_low": None}]})
                      .rows[0].ci_low)


def test_a_gate_note_says_what_had_no_spread_in_the_words_of_saved_and_current_runs() -> None:
    varying = [1.0, 4.0, 2.0, 6.0, 3.0, 5.0]

    def note(saved: Sequence[float], current: Sequence[float], *, seed: int = 1) -> str:
        runs = result_of({"baseline": {"acc": saved}}), result_of({"baseline": {"acc": current}}, seed=seed)
        return compare_results(runs[1], runs[0], [GateSpec("acc", "higher")])[0].note

    assert note(varying, varying) == "identical to the saved run, replicate for replicate"
    assert note([0.5] * 6, [0.5] * 6) == "no variation: the saved and the current run gave the same constant value"
    assert note(varying, [v + 2 for v in varying]) == (
        "no variation in the paired differences: every current value is its saved value + 2; "
        "the p-value is the exact sign-flip one (at best 2^-6 one-sided)"
    )
    assert note([0.5] * 6, [0.75] * 6, seed=2) == (  # other seeds: unpaired
        "no variation: saved is always 0.5 and current always 0.75; "
        "the p-value is the exact label-shuffle one (at best 1/C(12, 6) one-sided)"
    )
    assert note(varying, [v + 0.5 for v in reversed(varying)]) == ""


def test_non_finite_current_values_fail_the_gate_naming_metric_condition_and_replicates() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A[:6]}, "t": {"acc": SAVED_B[:6]}})
    current_a = SAVED_A[:6].copy()
    current_a[[0, 1, 3, 5]] = [math.nan, math.nan, math.inf, math.nan]
    current = result_of({"baseline": {"acc": current_a}, "t": {"acc": SAVED_B[:6] + NOISE_B[:6]}})
    rows = compare_results(current, saved, [GateSpec("acc", "higher")])
    assert [r.status for r in rows] == [NOT_FINITE, NO_CHANGE]
    bad = rows[0]
    assert (bad.n_saved, bad.n_current) == (6, 2)  # what was found, untested
    assert math.isnan(bad.p_worse)
    assert "4 non-finite value(s) (inf and nan) of 'acc' in 'baseline', of 6: replicate(s) 0, 1, 3, 5" in bad.note
    # The untested row stays out of the correction family: the other row is as if alone.
    expected = stats.ttest_1samp(NOISE_B[:6], 0, alternative="greater").pvalue
    assert rows[1].p_better_adjusted == pytest.approx(expected, rel=1e-9)
    report = GateReport("x", "r", "compared", rows=rows)
    assert report.failed
    assert [r.metric for r in report.failing_rows] == ["acc"]
    all_nan = result_of({"baseline": {"acc": [math.nan] * 6}, "t": {"acc": SAVED_B[:6]}})
    rows = compare_results(all_nan, saved, [GateSpec("acc", "higher")])
    assert rows[0].status == NOT_FINITE
    assert GateReport("x", "r", "compared", rows=rows).failed


def test_non_finite_saved_values_are_left_out_with_a_note() -> None:
    saved_a = SAVED_A[:8].copy()
    saved_a[[2, 5]] = math.nan
    saved = result_of({"baseline": {"acc": saved_a}})
    current = result_of({"baseline": {"acc": SAVED_A[:8] + NOISE_A[:8]}})
    (row,) = compare_results(current, saved, [GateSpec("acc", "higher")])
    keep = ~np.isin(np.arange(8), [2, 5])
    assert row.paired
    assert (row.n_saved, row.n_current) == (6, 6)
    expected = stats.ttest_1samp(NOISE_A[:8][keep], 0, alternative="greater").pvalue
    assert row.p_better == pytest.approx(expected, rel=1e-9)
    assert "the saved run has 2 non-finite value(s) of 'acc' in 'baseline' (replicate(s) 2, 5): left out" in row.note
    assert "paired on the 6 replicates both runs have; left out 2 current-only replicate(s)" in row.note
    assert row.status not in FAILING
    nothing = result_of({"baseline": {"acc": [math.nan] * 8}})
    (row,) = compare_results(current, nothing, [GateSpec("acc", "higher")])
    assert row.status == NOT_COMPARED
    assert "8 non-finite value(s)" in row.note


def test_a_metric_that_disappeared_fails_and_one_never_recorded_is_named() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A, "loss": SAVED_B}, "t": {"acc": SAVED_A, "loss": SAVED_B}})
    current = result_of({"baseline": {"acc": SAVED_A, "loss": SAVED_B}, "t": {"acc": SAVED_A}})
    specs = [GateSpec("acc", "higher"), GateSpec("loss", "lower"), GateSpec("acc_typo", "higher", source="gate=")]
    rows = compare_results(current, saved, specs)
    assert [(r.condition, r.metric, r.status) for r in rows] == [
        ("baseline", "acc", NO_CHANGE), ("t", "acc", NO_CHANGE), ("baseline", "loss", NO_CHANGE),
        ("t", "loss", MISSING), ("baseline", "acc_typo", NEVER_RECORDED), ("t", "acc_typo", NEVER_RECORDED),
    ]
    assert rows[3].note == "'loss' was recorded in 't' in the saved run (25 values) but not in the current run"
    assert rows[4].note == ("neither run recorded 'acc_typo': check the gate= key or the hypothesis' metric "
                            "(recorded metrics: 'acc', 'loss')")
    report = GateReport("x", "r", "compared", rows=rows)
    assert report.failed
    assert [(r.condition, r.metric) for r in report.failing_rows] == [
        ("t", "loss"), ("baseline", "acc_typo"), ("t", "acc_typo")]
    text = "\n".join(gate_lines(report))
    assert "note (acc_typo: baseline, t): neither run recorded 'acc_typo'" in text
    assert "MISSING" in text
    assert "NEVER RECORDED" in text
    assert "3 of 6 gated metric(s) failed: 'loss' in 't' missing, 'acc_typo' in 'baseline' never recorded" in (
        gate_failure(report))
    assert gate_totals([report]) == ("0 regressed, 0 improved of 3 compared metric(s) in 1 experiment; "
                                     "1 missing, 2 never recorded metric(s); 1 failed the gate")


def test_more_replicates_now_pair_on_the_common_ones_and_say_so() -> None:
    saved = result_of({"baseline": {"acc": SAVED_A[:20]}})
    longer = np.concatenate([SAVED_A[:20] + NOISE_A[:20], RNG.normal(10, 1, 20)])
    current = result_of({"baseline": {"acc": longer}})
    (row,) = compare_results(current, saved, [GateSpec("acc", "higher")])
    assert row.paired
    assert (row.n_saved, row.n_current) == (20, 20)
    expected = stats.ttest_1samp(NOISE_A[:20], 0, alternative="greater").pvalue
    assert row.p_better == pytest.approx(expected, rel=1e-9)
    assert row.note.endswith("paired on the 20 replicates both runs have; left out 20 current-only replicate(s) "
                             "without a partner")


def test_totals_count_only_compared_rows_and_name_the_rest() -> None:
    rows = (GateRow("baseline", "a", "higher", NOT_COMPARED), GateRow("t", "a", "higher", NOT_COMPARED))
    report = GateReport("x", "r", "compared", rows=rows)
    # Nothing tested: the gate must not read as passed.
    assert gate_totals([report]) == ("0 regressed, 0 improved of 0 compared metric(s) in 1 experiment; "
                                     "2 not compared metric(s); gate failed: nothing was compared")
    assert gate_heading(report) == "vs saved run r: 2 not compared -> not gated"


def test_each_tested_row_says_the_regression_it_catches_with_80_percent_power() -> None:
    n = 30
    rng = np.random.default_rng(11)
    saved_values = rng.normal(10, 1, n)
    current_values = saved_values + rng.normal(0, 0.5, n)
    (row,) = compare_results(result_of({"baseline": {"acc": current_values}}),
                             result_of({"baseline": {"acc": saved_values}}), [GateSpec("acc", "higher", margin=0.1)])
    # By hand: the paired t's standard error, and the sample-size formula run backwards, plus the margin.
    d = current_values - saved_values
    se = d.std(ddof=1) / np.sqrt(n)
    expected = 0.1 + (stats.t.ppf(0.95, n - 1) + stats.t.ppf(0.8, n - 1)) * se
    assert row.detectable == pytest.approx(expected, rel=1e-9)
    # Independently, the exact power of the one-sided paired t (noncentral t) at that true regression is ~80%.
    sigma = d.std(ddof=1)
    noncentrality = (row.detectable - 0.1) / (sigma / np.sqrt(n))
    exact = stats.nct.sf(stats.t.ppf(0.95, n - 1), n - 1, noncentrality)
    assert 0.78 < exact < 0.82
    lines = gate_lines(GateReport("x", "r", "compared", rows=(row,)))
    assert any(line.startswith("  80% power to catch a regression of about: acc (baseline, n 30) ") for line in lines)
