"""--crystallize-compare and --crystallize-gate: regressions fail the item, with a table."""

from __future__ import annotations

import pytest

from pytest_crystallize.core.store.stores import DirectoryStore

# The same replicate draws the same numbers whatever SHIFT is, so runs pair up by replicate.
EXPERIMENT = """
    import os
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    SHIFT = float(os.environ.get("CRYSTALLIZE_TEST_SHIFT", "0"))
    BUMP = float(os.environ.get("CRYSTALLIZE_TEST_BUMP", "1"))
    NAN = {int(r) for r in os.environ.get("CRYSTALLIZE_TEST_NAN", "").split(",") if r}
    DROP = os.environ.get("CRYSTALLIZE_TEST_DROP", "")

    @pytest.mark.experiment(replicates=12, seed=3, treatments=[Treatment("hot", {"bump": BUMP})],
                            gate={"latency": "minimize"})
    @hypothesis(metric="score", direction="maximize")
    def experiment_score(ctx):
        rng = np.random.default_rng(ctx.seed)
        score, wobble, latency, wobble2 = rng.normal(10, 1), rng.normal(1, 0.2), rng.normal(5, 1), rng.normal(1, 0.2)
        ctx.metrics.add("score", score + ctx.get("bump", 0.0) + SHIFT * wobble)
        if DROP != "latency":
            nan = ctx.condition == "baseline" and ctx.replicate in NAN
            ctx.metrics.add("latency", float("nan") if nan else latency - SHIFT * wobble2)
"""
NODE = "test_gate.py::experiment_score"


@pytest.fixture
def saved(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with the experiment and a run saved as 'main'."""
    pytester.makepyfile(test_gate=EXPERIMENT)
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    return pytester


def test_the_gate_passes_an_unchanged_run(saved: pytest.Pytester) -> None:
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*= crystallize compare with * (main*), saved 20* =*",
        f"{NODE}: vs saved run * (main): 4 no change -> gate passed",
        "*condition*metric*better*n saved/now*saved*current*diff*95% CI*margin*p worse*p better*status",
        "*baseline*score*higher*12/12*NO CHANGE",
        "*note (score: baseline, hot; latency: baseline, hot): identical to the saved run, replicate for replicate",
        "*paired by replicate; paired_t; p-values holm-adjusted, alpha 0.05",
        "0 regressed, 0 improved of 4 compared metric(s) in 1 experiment; gate passed",
    ])


def test_a_significant_regression_fails_the_item_with_a_table(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    result = saved.runpytest("--crystallize", "--crystallize-gate=0.1")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*_ experiment_score _*",
        f"regression gate failed for '{NODE}' against saved run * (main): 4 of 4 gated metric(s) failed: "
        "'score' in 'baseline' regressed, 'score' in 'hot' regressed, 'latency' in 'baseline' regressed, *",
        "comparison: vs saved run * (main): 4 regressed -> gate FAILED",
        "*baseline*score*higher*12/12*-0.45*(-4.5%)*[[]-0.51*, -0.38*]*0.1 *REGRESSED",
        "*baseline*latency*lower*12/12*+0.5*REGRESSED",
    ])
    # The hypotheses themselves still hold; the gate alone failed the experiment, and the summary says both.
    result.stdout.fnmatch_lines([
        "*= crystallize =*",
        f"{NODE} (12 replicates, seed 3): hypotheses passed; gate FAILED",
        "1 hypothesis passed, 0 failed in 1 experiment; 1 failed the regression gate",
        "*1 failed the gate",
    ])


def test_compare_alone_reports_regressions_and_improvements_without_failing(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "0.5")
    result = saved.runpytest("--crystallize", "--crystallize-compare=main")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{NODE}: vs saved run * (main): 4 improved", "*hot*score*+0.5*IMPROVED"])
    assert "-> gate" not in result.stdout.str()
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    result = saved.runpytest("--crystallize", "--crystallize-compare")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*: 4 regressed", "4 regressed, 0 improved of 4 compared metric(s) in 1 experiment"])


def test_a_changed_treatment_is_not_compared_but_the_baseline_still_is(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_BUMP", "2")
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-3")
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"{NODE}: vs saved run * (main): 2 regressed, 2 not compared -> gate FAILED",
        "*baseline*score*higher*12/12*REGRESSED",
        "*hot*score*higher*NOT COMPARED",
        "*baseline*latency*lower*12/12*REGRESSED",
        "*hot*latency*lower*NOT COMPARED",
        "  note (score: hot; latency: hot): 'hot' runs with other inputs than in the saved run: "
        "params {'bump': 1.0} -> {'bump': 2.0}",
        "  definition changed since saved run *; what it touches is not compared:",
        "    treatment 'hot': params {'bump': 1.0} -> {'bump': 2.0}",
    ])
    result.stdout.fnmatch_lines(["2 regressed, 0 improved of 2 compared metric(s) in 1 experiment; "
                                 "2 not compared metric(s); 1 failed the gate"])


def test_a_strict_gate_fails_what_it_could_not_compare(saved: pytest.Pytester) -> None:
    saved.makepyfile(test_new="""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=4, treatments=[Treatment("t", {"x": 1})])
        @hypothesis(metric="m", direction="maximize")
        def experiment_new(ctx):
            ctx.metrics.add("m", ctx.replicate + ctx.get("x", 0))
    """)
    result = saved.runpytest("--crystallize", "--crystallize-gate=2%", "--crystallize-gate-strict")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "regression gate failed for 'test_new.py::experiment_new' against saved run * (main): "
        "strict gate: not in saved run",
    ])
    result.stdout.fnmatch_lines([f"{NODE}: vs saved run * (main): 4 no worse -> gate passed"])


def test_a_corrupt_saved_result_fails_the_gate_naming_the_file(saved: pytest.Pytester) -> None:
    record = DirectoryStore(saved.path / ".crystallize").find("main")
    parquet = saved.path / ".crystallize" / "runs" / record.id / "0000.parquet"
    parquet.write_bytes(parquet.read_bytes()[:-20])
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"regression gate failed for '{NODE}' against saved run * (main): the saved result could not be read",
        f"*{record.id}*0000.parquet: corrupt (its SHA-256 checksum differs from the one run {record.id} recorded)",
    ])
    (saved.path / ".crystallize" / "runs" / record.id / "run.json").write_text("{")
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # The gate looks for the baseline name; the only run cannot say its name, so it is named as unreadable.
    result.stderr.fnmatch_lines([f"*no saved run named 'main'*no saved run matches 'main'*1 unreadable run(s)*"
                                 f"{record.id}*run.json: not a readable run record*--crystallize-save=main*"])
    result = saved.runpytest("--crystallize", "--crystallize-gate", "--crystallize-compare=latest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*the newest run matching 'latest' cannot be read: *{record.id}*run.json: not a "
                                 "readable run record*Delete or repair that run, or name another run*"])


def test_a_corrupt_newest_run_is_a_usage_error_not_a_silent_fallback(saved: pytest.Pytester) -> None:
    older = DirectoryStore(saved.path / ".crystallize").find("main")
    saved.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    newest = DirectoryStore(saved.path / ".crystallize").find("main")
    assert newest.id != older.id
    record_file = saved.path / ".crystallize" / "runs" / newest.id / "run.json"
    record_file.write_text(record_file.read_text().replace('"passed": true', '"passed": "yes"'))
    for option in ("--crystallize-gate", "--crystallize-compare=main"):
        result = saved.runpytest("--crystallize", option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([
            f"*the newest run matching '*' cannot be read: {record_file}: malformed run record*passed is 'yes'*"
            f"Delete or repair that run, or name another run (e.g. by its id); the newest readable match is "
            f"{older.id} (main)"
        ])
    saved.runpytest("--crystallize", f"--crystallize-compare={older.id}").assert_outcomes(passed=1)


def test_non_finite_values_of_a_gated_metric_fail_the_gate(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_NAN", "0,1,3,5,6,7,8,9")
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"regression gate failed for '{NODE}' against saved run * (main): 1 of 4 gated metric(s) failed: "
        "'latency' in 'baseline' not finite",
        "*baseline*latency*lower*12/4*NOT FINITE",
        "*note (baseline, latency): the current run recorded 8 non-finite value(s) (nan) of 'latency' in "
        "'baseline', of 12: replicate(s) 0, 1, 3, 5, 6, 7, 8, 9; a gated metric must be finite*",
    ])
    monkeypatch.setenv("CRYSTALLIZE_TEST_NAN", ",".join(str(r) for r in range(12)))
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*baseline*latency*lower*12/0*NOT FINITE"])


def test_a_gated_metric_that_disappeared_fails_the_gate(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_DROP", "latency")
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"regression gate failed for '{NODE}' against saved run * (main): 2 of 4 gated metric(s) failed: "
        "'latency' in 'baseline' missing, 'latency' in 'hot' missing",
        "*baseline*latency*lower*12/0*MISSING",
        "*note (baseline, latency): 'latency' was recorded in 'baseline' in the saved run (12 values) but not in the "
        "current run",
    ])


def test_a_gate_key_no_run_recorded_fails_naming_the_recorded_metrics(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT.replace('gate={"latency": "minimize"}',
                                                     'gate={"latency": "minimize", "latncy": "minimize"}'))
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    result = pytester.runpytest("--crystallize", "--crystallize-gate")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*'latncy' in 'baseline' never recorded, 'latncy' in 'hot' never recorded",
        "*baseline*latncy*lower*NEVER RECORDED",
        "*note (latncy: baseline, hot): neither run recorded 'latncy': check the gate= key or the hypothesis' "
        "metric (recorded metrics: 'score', 'latency')",
    ])


def test_more_replicates_than_saved_pair_on_the_common_ones_and_say_so(saved: pytest.Pytester) -> None:
    result = saved.runpytest("--crystallize", "--crystallize-gate", "--crystallize-replicates=20")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*baseline*score*higher*12/12*NO CHANGE",
        "*note (score: baseline, hot; latency: baseline, hot): identical to the saved run, replicate for replicate; "
        "paired on the 12 replicates both runs have; left out 8 current-only replicate(s) without a partner",
    ])


def test_a_bad_gate_marker_fails_the_experiment_at_setup(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bad="""
        import pytest

        @pytest.mark.experiment(replicates=2, gate={"score": "up"})
        def experiment_bad(ctx):
            ctx.metrics.add("score", 1.0)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*experiment 'experiment_bad': gate of metric 'score' needs direction*"])


def test_ini_twins_turn_on_the_gate(saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    saved.makeini("[pytest]\ncrystallize = true\ncrystallize_gate = 1%\ncrystallize_compare = main\n")
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-1")
    result = saved.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*baseline*score*higher*12/12*0.09959 (1.0%)*REGRESSED"])


def test_a_run_of_some_treatments_still_gates_the_conditions_it_ran(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT.replace(
        'treatments=[Treatment("hot", {"bump": BUMP})]',
        'treatments=[Treatment("hot", {"bump": BUMP}), Treatment("cold", {"bump": -BUMP})]',
    ).replace('direction="maximize"', 'direction="two-sided"'))
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "-0.5")
    result = pytester.runpytest("--crystallize", "--crystallize-gate=0.1", "--crystallize-treatment", "hot")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*baseline*latency*lower*12/12*REGRESSED",
        "*hot*latency*lower*12/12*REGRESSED",
    ])
    result.stdout.fnmatch_lines(["*treatments not run this time, so not compared: 'cold'"])
    result.stdout.no_fnmatch_line("*cold*latency*")
    result.stdout.no_fnmatch_line("*not compared:*changed*")


def test_the_gate_compares_with_the_baseline_name_not_the_newest_save(
    saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = DirectoryStore(saved.path / ".crystallize").find("main")
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "3")  # a better run, saved last under another name
    saved.runpytest("--crystallize", "--crystallize-save=branch")
    monkeypatch.delenv("CRYSTALLIZE_TEST_SHIFT")
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    # Against the newest save ('branch') this run regressed; against 'main' it is unchanged.
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["0 regressed, * gate passed"])
    # What the old default (the newest run) would have compared with:
    saved.runpytest("--crystallize", "--crystallize-gate", "--crystallize-compare=latest").assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*= crystallize compare with {main.id} (main*), saved {main.created_at} =*"])


def test_the_baseline_name_comes_from_the_ini(saved: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYSTALLIZE_TEST_SHIFT", "3")
    saved.runpytest("--crystallize", "--crystallize-save=release")
    saved.makeini("[pytest]\ncrystallize_baseline = release\n")
    saved.runpytest("--crystallize", "--crystallize-gate").assert_outcomes(passed=1)  # same numbers as 'release'


def test_without_a_baseline_run_the_gate_is_a_usage_error_naming_what_is_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gate=EXPERIMENT)
    pytester.runpytest("--crystallize", "--crystallize-save=nightly").assert_outcomes(passed=1)
    result = pytester.runpytest("--crystallize", "--crystallize-gate")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no saved run named 'main' to compare with*1 run, newest * (nightly*"
                                 "--crystallize-save=main*"])


def test_a_gate_that_compared_nothing_fails_the_session(saved: pytest.Pytester) -> None:
    saved.makepyfile(test_gate="""
        import pytest

        @pytest.mark.experiment(replicates=5, gate={"x": "maximize"})
        def experiment_brand_new(ctx):
            ctx.metrics.add("x", 1.0)
    """)
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*gate failed: nothing was compared*",
        "*ERROR: the regression gate compared nothing with saved run*not in saved run*cannot pass*",
    ])
