"""Every kind of verdict, drawn and written as what it is: futility boundaries, best conditions, designs.

The figures are read back from matplotlib's artists and compared with
numbers computed independently (published tables, numpy).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report import plots


def _null(ctx):
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
    ctx.metrics.add("score", float(ctx.rng.normal(0.0, 1.0) + own.normal(0.0, 1.0)))


def test_the_sequential_figure_draws_the_futility_boundary_of_every_look():
    # gsDesign(k=3, test.type=4): one-sided alpha 0.025, 90% power, Hwang-Shih-DeCani spending (gamma -4 for
    # efficacy, -2 for futility), non-binding; its published futility z-bounds are -0.2387, 0.9411, 1.9992.
    result = run_experiment(
        _null, replicates="auto", max_replicates=60, looks=3, futility=True, spending="hsd", power=0.9,
        alpha=0.025, seed=5, params={"stream": 0}, treatments=[Treatment("same", {"stream": 1})],
        hypotheses=[hypothesis("score", "maximize", test="welch_t")],
    )
    fig = plots.sequential_figure([v.to_dict() for v in result.verdicts])
    ax = fig.axes[0]
    futility = [line for line in ax.get_lines() if "futility" in str(line.get_label())]
    assert len(futility) == 1
    assert list(futility[0].get_xdata()) == [20, 40, 60]
    published = stats.norm.sf([-0.2387, 0.9411, 1.9992])
    assert list(futility[0].get_ydata()) == pytest.approx(published, abs=1e-4)
    assert "futility" in fig.texts[0].get_text()


def test_without_futility_the_sequential_figure_has_no_futility_boundary():
    result = run_experiment(
        _null, replicates="auto", max_replicates=40, looks=2, seed=5, params={"stream": 0},
        treatments=[Treatment("same", {"stream": 1})], hypotheses=[hypothesis("score", "maximize")],
    )
    fig = plots.sequential_figure([v.to_dict() for v in result.verdicts])
    assert not [line for line in fig.axes[0].get_lines() if "futility" in str(line.get_label())]


def _shifted(ctx):
    own = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
    ctx.metrics.add("acc", float(ctx.rng.normal(ctx.get("shift", 0.0), 0.5) + own.normal(0.0, 0.3)))


def _best(shifts: tuple[float, float], replicates: int):
    return run_experiment(
        _shifted, replicates=replicates, seed=3, params={"shift": 0.0, "stream": 0},
        treatments=[Treatment("a", {"shift": shifts[0], "stream": 1}), Treatment("b", {"shift": shifts[1], "stream": 2})],
        hypotheses=[hypothesis("acc", "best", better="higher")],
    )


@pytest.fixture(scope="module")
def identified():
    return _best((1.5, 0.2), 20)


@pytest.fixture(scope="module")
def tied():
    return _best((0.02, 0.0), 6)


def _means(result):
    return {c: float(np.mean(result.select("acc", c)[1])) for c in result.conditions}


def test_a_best_verdict_is_no_row_of_the_pair_table(identified, tied):
    # The table's rows are conditions against the baseline; which condition is best is no such pair.
    for result in (identified, tied):
        assert not tied.verdicts[0].holds
        frame = result.summary()
        assert list(frame["verdict"]) == ["", "", ""]
        assert frame["p"].isna().all()


def test_the_verdict_table_names_the_best_condition_or_every_one_that_may_be(identified, tied):
    from pytest_crystallize.core.report.verdict_text import verdict_table

    means = _means(identified)
    winner, runner_up = sorted(means, key=means.get, reverse=True)[:2]
    (row,) = verdict_table([v.to_dict() for v in identified.verdicts]).rows
    assert row[1] == f"best: {winner}"
    assert row[3] == f"{means[winner] - means[runner_up]:+.4g} better than {runner_up}"
    (row,) = verdict_table([v.to_dict() for v in tied.verdicts]).rows
    assert row[1] == "may be best: " + ", ".join(tied.verdicts[0].details["candidates"])
    assert row[2] == "FAIL"


def test_a_best_verdict_is_drawn_as_every_condition_against_the_best_of_the_others(identified):
    verdicts = [v.to_dict() for v in identified.verdicts]
    assert plots.forest_figure("acc", verdicts) is None  # no pair with the baseline to draw
    fig = identified.plot("acc", kind="difference")
    ax, right = fig.axes
    intervals = [list(line.get_xdata()) for line in ax.get_lines()[1:]]  # after the line at zero
    conditions = identified.verdicts[0].details["conditions"]
    assert intervals == [pytest.approx([conditions[c]["low"], conditions[c]["high"]]) for c in ("baseline", "a", "b")]
    means = _means(identified)
    roles = {t.get_text(): r.get_text() for t, r in zip(ax.get_yticklabels(), right.get_yticklabels(), strict=True)}
    assert roles[max(means, key=means.get)] == "best"
    assert sorted(roles.values()) == ["best", "not best", "not best"]


def test_a_best_verdict_has_no_paired_differences_with_the_baseline(identified):
    from pytest_crystallize.core.report.evidence import evidence_of

    assert evidence_of(identified)["paired"] == {}


def test_junit_properties_say_why_each_verdict_failed(tied):
    from pytest_crystallize.core.report.junit import verdict_properties
    from pytest_crystallize.core.report.text import summarize

    properties = dict(verdict_properties(summarize(tied)))
    assert properties["crystallize.verdict.1.outcome"] == "fail"
    assert properties["crystallize.verdict.1.reason"] == tied.verdicts[0].reason
    assert "cannot separate" in properties["crystallize.verdict.1.reason"]


def test_an_untested_gate_row_shows_its_relative_margin_as_a_fraction_not_in_the_metric_units():
    from pytest_crystallize.core.report.gate_plots import gate_figure
    from pytest_crystallize.core.report.gate_text import gate_table
    from pytest_crystallize.core.store.gate import GateReport
    from pytest_crystallize.core.store.gate_rows import GateRow

    # A 1% margin on a metric near 3: tested, it tolerates 0.03; the untested row was never scaled.
    tested = GateRow("baseline", "acc", "higher", "no worse", n_saved=5, n_current=5, mean_saved=3.0,
                     mean_current=3.0, difference=0.0, ci_low=-0.01, ci_high=0.01, margin=0.03, relative_margin=True)
    untested = GateRow("t", "acc", "higher", "missing", n_saved=5, n_current=0, mean_saved=3.0, margin=0.01,
                       relative_margin=True)
    table = gate_table(GateReport("x", "r", "compared", rows=(tested, untested)))
    margins = [row[table.columns.index(next(c for c in table.columns if c.header == "margin"))] for row in table.rows]
    assert margins == ["0.03 (1.0%)", "1.0% of saved"]
    fig = gate_figure({"rows": [tested.to_dict(), untested.to_dict()]})
    bands = [c for c in fig.axes[0].collections]
    assert len(bands) == 1  # only the tested row's tolerated band
    xs = bands[0].get_paths()[0].vertices[:, 0]
    assert (xs.min(), xs.max()) == pytest.approx((-0.03, 0.0))


@pytest.mark.parametrize(("looks_taken", "expected"), [
    (0, "sequential: stopped by the time budget before the first look, after 12 of 100 replicates per condition; "
        "no claim"),
    (2, "sequential: stopped by the time budget at look 2 of 5 after 40 of 100 replicates per condition; "
        "verdicts of the last look taken"),
])
def test_a_sequential_run_the_budget_stopped_says_whether_any_look_was_taken(looks_taken, expected):
    from pytest_crystallize.core.report.text import summary_notes

    seq = {"replicates": 12 if looks_taken == 0 else 40, "max_replicates": 100, "looks": 5,
           "looks_taken": looks_taken, "conditions": 2, "anytime": False, "stopped_by": "budget", "tasks_run": None}
    assert summary_notes({"sequential": seq, "error_count": 0}) == [expected]


def test_the_verdict_table_shows_a_design_column_when_a_design_is_not_fixed(identified):
    from pytest_crystallize.core.report.verdict_text import verdict_table

    sequential = run_experiment(
        _null, replicates="auto", max_replicates=40, looks=2, seed=5, params={"stream": 0},
        treatments=[Treatment("same", {"stream": 1})], hypotheses=[hypothesis("score", "maximize")],
    )
    table = verdict_table([v.to_dict() for v in sequential.verdicts])
    headers = [c.header for c in table.columns]
    assert table.rows[0][headers.index("design")] == sequential.verdicts[0].details["design"]
    assert table.rows[0][headers.index("design")].startswith("group-sequential design")
    fixed = verdict_table([v.to_dict() for v in identified.verdicts])
    assert "design" not in [c.header for c in fixed.columns]


def _wins(ctx):
    ctx.metrics.add("win", int(ctx.rng.random() < ctx.get("p", 0.4)))


def test_an_anytime_summary_says_its_verdicts_saw_fewer_replicates_than_the_table_counts():
    from pytest_crystallize.core.report.text import summarize, summary_notes

    result = run_experiment(_wins, replicates="anytime", max_replicates=200, seed=7,
                            treatments=[Treatment("strong", {"p": 0.7})], hypotheses=[hypothesis("win", "maximize")])
    (verdict,) = result.verdicts
    decided, ran = verdict.n_treatment, result.provenance.replicates
    assert decided < ran  # the batch that was running when the verdict was decided finished
    summary = summarize(result)
    assert [r["n"] for r in summary["rows"]] == [ran, ran]
    (line,) = [n for n in summary_notes(summary) if n.startswith("anytime:")]
    assert line.endswith(f"; the verdicts were decided on the first {decided} replicates, the table counts every "
                         f"replicate run")


def _with_covariate(ctx):
    rng = np.random.default_rng((ctx.seed, ctx.get("stream", 0)))
    pre = rng.normal(0.0, 1.0)
    ctx.metrics.add("pre", float(pre))
    ctx.metrics.add("y", float(pre + ctx.get("shift", 0.0) + rng.normal(0.0, 0.3)))


def test_a_covariate_adjusted_difference_is_called_adjusted_beside_the_table_s_raw_one():
    from pytest_crystallize.core.report.text import summarize
    from pytest_crystallize.core.report.verdict_text import verdict_lines, verdict_table

    result = run_experiment(_with_covariate, replicates=30, seed=4, params={"shift": 0.0, "stream": 0},
                            treatments=[Treatment("new", {"shift": 0.2, "stream": 1})],
                            hypotheses=[hypothesis("y", "maximize", covariate="pre")])
    (verdict,) = result.verdicts
    row = next(r for r in summarize(result)["rows"] if r["condition"] == "new" and r["metric"] == "y")
    raw = float(np.mean(result.select("y", "new")[1]) - np.mean(result.select("y", "baseline")[1]))
    assert row["difference"] == pytest.approx(raw)
    assert abs(verdict.difference - raw) > 0.05  # the two differences a reader sees do differ
    (line,) = verdict_lines(verdict.to_dict())
    assert f"new vs baseline: adjusted diff {verdict.difference:+.4g} [" in line
    (cells,) = verdict_table([verdict.to_dict()]).rows
    assert cells[3] == f"{verdict.difference:+.4g} (adjusted)"
