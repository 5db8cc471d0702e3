"""What every surface says of an experiment matches pytest's outcome for its item, and names what was not gated."""

from __future__ import annotations

import pytest

PASSING = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=8, seed=1, treatments=[Treatment("tuned", {"gain": 1.0})])
    @hypothesis(metric="score", direction="maximize")
    def experiment_tuning(ctx):
        ctx.metrics.add("score", ctx.get("gain", 0.0) + ctx.rng.normal() * (1 + ctx.replicate % 3))
"""


def test_an_experiment_failed_for_not_being_confirmed_is_not_reported_as_passed(pytester: pytest.Pytester) -> None:
    # Its hypotheses hold, but --crystallize-require-confirmed fails the item: no surface may say "passed".
    pytester.makepyfile(test_tuning=PASSING)
    result = pytester.runpytest(
        "--crystallize", "--crystallize-require-confirmed", "--crystallize-markdown=summary.md", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "test_tuning.py::experiment_tuning (8 replicates, seed 1): "
        "hypotheses passed; FAILED: not a clean confirmation (--crystallize-require-confirmed)",
        "1 hypothesis passed, 0 failed in 1 experiment; 1 failed: not a clean confirmation*",
    ])
    assert ": passed" not in result.stdout.str()
    markdown = (pytester.path / "summary.md").read_text()
    assert "✅" not in markdown
    assert "### ❌ test\\_tuning.py::experiment\\_tuning" in markdown


NEW = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=8, seed=2, treatments=[Treatment("t", {"gain": 1.0})])
    @hypothesis(metric="m", direction="maximize")
    def experiment_new(ctx):
        ctx.metrics.add("m", ctx.get("gain", 0.0) + ctx.rng.normal())
"""


def test_an_experiment_new_since_the_saved_run_reads_not_gated_not_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=PASSING)
    pytester.runpytest("--crystallize", "--crystallize-save=main", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.makepyfile(test_new=NEW)
    result = pytester.runpytest(
        "--crystallize", "--crystallize-gate", "--crystallize-markdown=summary.md", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "test_new.py::experiment_new (8 replicates, seed 2): hypotheses passed; not gated",
        "test_new.py::experiment_new: new, not in saved run * (main): not compared -> not gated",
        "test_tuning.py::experiment_tuning: vs saved run * (main): * -> gate passed",
    ])
    assert "experiment_new (8 replicates, seed 2): hypotheses passed; gate passed" not in result.stdout.str()
    assert "### ⚪ test\\_new.py::experiment\\_new: new, not in saved run" in (pytester.path / "summary.md").read_text()


@pytest.mark.parametrize("option", ["--crystallize-html", "--crystallize-markdown", "--crystallize-json"])
def test_a_report_path_that_is_a_directory_is_refused_before_anything_runs(
    pytester: pytest.Pytester, option: str
) -> None:
    pytester.makepyfile(test_tuning=PASSING)
    folder = pytester.mkdir("reports")
    result = pytester.runpytest("--crystallize", f"{option}={folder}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {option}: '{folder}' is a directory; give a file in it, e.g. {option}=*"])
    assert "replicates" not in result.stdout.str()


def test_an_ini_report_path_that_is_a_directory_says_which_ini_line_to_write(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=PASSING)
    pytester.makeini("[pytest]\ncrystallize_html = .\n")
    result = pytester.runpytest("--crystallize", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: ini option crystallize_html: '{pytester.path}' is a directory; give a file in it, "
        f"e.g. crystallize_html = {pytester.path / 'report.html'}",
    ])


def test_compare_with_an_empty_reference_compares_with_the_latest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=PASSING)
    pytester.runpytest("--crystallize", "--crystallize-save=nightly", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    result = pytester.runpytest("--crystallize", "--crystallize-compare=", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*crystallize compare with * (nightly), saved *"])


def test_the_totals_count_an_interrupted_experiment(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stopped="""
        import pytest

        @pytest.mark.experiment(replicates=10, seed=1)
        def experiment_stopped(ctx):
            if ctx.replicate == 5:
                pytest.fail("Timeout >0.5s")
            ctx.metrics.add("x", float(ctx.replicate))
    """)
    result = pytester.runpytest("--crystallize", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["0 hypotheses passed, 0 failed in 1 experiment; 1 interrupted (no verdicts)"])


BROKEN = """
    import pytest

    @pytest.mark.experiment(replicates=5, params="x")
    def experiment_broken(ctx):
        ctx.metrics.add("m", 1.0)
"""


def test_an_experiment_that_errored_before_running_is_named_in_the_markdown_and_html(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tuning=PASSING, test_broken=BROKEN)
    result = pytester.runpytest(
        "--crystallize", "--crystallize-markdown=summary.md", "--crystallize-html=report.html", "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=1, errors=1)
    why = "experiment 'experiment_broken': params must be a mapping of names to values"
    markdown = (pytester.path / "summary.md").read_text()
    assert f"**ERROR:** test\\_broken.py::experiment\\_broken did not run: {why.replace('_', chr(92) + '_')}" in markdown
    assert "test\\_tuning.py::experiment\\_tuning" in markdown
    page = (pytester.path / "report.html").read_text()
    assert f"test_broken.py::experiment_broken did not run: {why.replace(chr(39), '&#x27;')}" in page
