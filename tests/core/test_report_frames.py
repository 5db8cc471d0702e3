"""A result in a notebook: summary() and verdicts_frame() as DataFrames, a short repr, the evidence of figures.

Numbers are checked against numpy and scipy on the raw values (not against
the code under test); the frames must also match the terminal table,
row for row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report.evidence import evidence_of
from pytest_crystallize.core.report.text import summarize, summary_lines
from pytest_crystallize.errors import ResultsError


def _scored(ctx):
    lift = ctx.get("lift", 0.0)
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))  # noise of this condition alone
    ctx.metrics.add("score", float(ctx.rng.normal(1.0 + lift, 0.5) + own.normal(0, 0.3)))
    ctx.metrics.add("hit", int(ctx.rng.random() < 0.3 + lift / 2))
    ctx.metrics.add("hit", int(ctx.rng.random() < 0.3 + lift / 2))  # two values: the row is per-replicate means


@pytest.fixture(scope="module")
def result():
    return run_experiment(
        _scored, name="scoring", replicates=24, seed=5, params={"lift": 0.0, "stream": 0},
        treatments=[Treatment("lifted", {"lift": 0.4, "stream": 1}), Treatment("flat", {"lift": 0.0, "stream": 2})],
        hypotheses=[hypothesis("score", "maximize", test="paired_t"),
                    hypothesis("score", "no_worse", margin=0.2, test="paired_t")],
    )


def _per_replicate(result, metric, condition):
    replicates, values = result.select(metric, condition)
    return np.array([values[replicates == r].mean() for r in np.unique(replicates)])


def test_summary_has_one_row_per_condition_and_metric_with_the_numbers_of_the_raw_values(result):
    frame = result.summary()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["condition", "metric", "n", "mean", "std", "ci_low", "ci_high", "difference",
                                   "p", "verdict"]
    assert len(frame) == len(result.conditions) * len(result.metrics)
    row = frame.set_index(["condition", "metric"]).loc[("lifted", "score")]
    values = _per_replicate(result, "score", "lifted")
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert row["n"] == 24
    assert row["mean"] == pytest.approx(values.mean())
    assert row["std"] == pytest.approx(values.std(ddof=1))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["difference"] == pytest.approx(values.mean() - _per_replicate(result, "score", "baseline").mean())
    base = frame.set_index(["condition", "metric"]).loc[("baseline", "score")]
    assert math.isnan(base["difference"])
    assert base["verdict"] == ""


def test_summary_rows_show_what_the_terminal_table_shows(result):
    table = [line.split() for line in summary_lines(summarize(result))[2:2 + len(result.summary())]]
    frame = result.summary()
    for cells, (_, row) in zip(table, frame.iterrows(), strict=True):
        assert cells[:3] == [row["condition"], row["metric"], str(row["n"])]
        assert float(cells[3]) == pytest.approx(row["mean"], rel=1e-3)
    # Two hypotheses test "score": the terminal shows both outcomes, so does the frame.
    lifted = frame.set_index(["condition", "metric"]).loc[("lifted", "score")]
    assert lifted["verdict"] == "PASS PASS"
    assert isinstance(lifted["p"], tuple)
    assert len(lifted["p"]) == 2


def test_verdicts_frame_has_a_row_per_hypothesis_and_treatment_with_every_field(result):
    frame = result.verdicts_frame()
    assert len(frame) == 4
    assert {"hypothesis", "treatment", "holds", "p_value", "p_adjusted", "reason", "ci_low", "ci_high",
            "effect_size", "paired", "test_reason"} <= set(frame.columns)
    row = frame[(frame["treatment"] == "lifted") & (frame["direction"] == "maximize")].iloc[0]
    lifted, base = _per_replicate(result, "score", "lifted"), _per_replicate(result, "score", "baseline")
    expected = stats.ttest_rel(lifted, base, alternative="greater")
    assert row["p_value"] == pytest.approx(expected.pvalue)
    differences = lifted - base
    low, high = stats.t.interval(0.95, len(differences) - 1, loc=differences.mean(), scale=stats.sem(differences))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert bool(row["paired"]) is True
    assert row["p_adjusted"] >= row["p_value"]


def test_the_plain_repr_is_one_short_readable_line(result):
    text = repr(result)
    assert "\n" not in text
    assert len(text) < 200
    assert "array" not in text
    assert "scoring" in text
    held = sum(v.holds for v in result.verdicts)
    assert f"{'passed' if result.passed else 'FAILED'}: {held} of 4 hypotheses held" in text
    assert "3 conditions x 24 replicates" in text
    assert "score, hit" in text


def test_evidence_holds_the_values_behind_each_row_and_the_paired_differences(result):
    evidence = evidence_of(result)
    for condition in result.conditions:
        shown = evidence["values"]["hit"][condition]
        assert shown["replicates"] == list(range(24))
        assert shown["values"] == pytest.approx(_per_replicate(result, "hit", condition))
    lifted, base = _per_replicate(result, "score", "lifted"), _per_replicate(result, "score", "baseline")
    assert evidence["paired"]["score"]["lifted"] == pytest.approx(lifted - base)
    assert "hit" not in evidence["paired"]  # no hypothesis compares it
    assert evidence["settings"] == {"lifted": {"lift": "0.4", "stream": "1"}, "flat": {"lift": "0.0", "stream": "2"}}
    assert evidence["provenance"]["master_seed"] == 5


def test_a_sequential_verdict_keeps_each_look_p_value_and_every_planned_boundary():
    def shifted(ctx):
        own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
        ctx.metrics.add("y", float(ctx.rng.normal(ctx.get("shift", 0.0), 1.0) + own.normal(0, 0.8)))

    result = run_experiment(
        shifted, replicates="auto", max_replicates=60, looks=3, seed=9, params={"shift": 0.0, "stream": 0},
        treatments=[Treatment("up", {"shift": 0.25, "stream": 1})], hypotheses=[hypothesis("y", "maximize", test="paired_t")],
    )
    seq = result.verdicts[0].details["sequential"]
    assert seq["schedule"] == [20, 40, 60]
    assert len(seq["boundaries"]) == 3
    assert seq["boundaries"][seq["look"] - 1] == seq["nominal_alpha"]
    assert len(seq["p_values"]) == seq["looks_taken"] == 3  # undecided to the end: every look is kept
    for look, p in enumerate(seq["p_values"]):
        n = seq["schedule"][look]
        up, base = (_per_replicate(result, "y", c)[:n] for c in ("up", "baseline"))
        assert p == pytest.approx(stats.ttest_rel(up, base, alternative="greater").pvalue)


def test_plot_of_an_unknown_metric_names_the_recorded_ones(result):
    with pytest.raises(ResultsError, match=r"no metric 'scor'; it recorded: 'score', 'hit'"):
        result.plot("scor")
    with pytest.raises(ResultsError, match=r"unknown plot kind 'bars'"):
        result.plot("score", kind="bars")  # type: ignore[arg-type]
    with pytest.raises(ResultsError, match=r"no 'difference' figure of 'hit': no hypothesis tests it"):
        result.plot("hit", kind="difference")
