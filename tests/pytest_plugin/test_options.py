"""Options: ini defaults, marker settings, command-line overrides, and bad input."""

from __future__ import annotations

import pytest

COUNTING = """
    import pytest

    @pytest.mark.experiment({marker})
    def experiment_counted(ctx):
        ctx.metrics.add("seed", ctx.master_seed)
        ctx.metrics.add("one", 1)
"""


def _replicates_and_seed(result: pytest.RunResult) -> tuple[int, int]:
    line = next(text for text in result.outlines if "experiment_counted (" in text)
    words = line.split("(")[1].split()
    return int(words[0]), int(words[3].rstrip("):"))


@pytest.mark.parametrize(
    ("ini", "marker", "cli", "expected"),
    [
        ("", "", [], (30, 20241123)),
        ("crystallize_replicates = 7\ncrystallize_seed = 3\n", "", [], (7, 3)),
        ("crystallize_replicates = 7\ncrystallize_seed = 3\n", "replicates=4, seed=9", [], (4, 9)),
        (
            "crystallize_replicates = 7\n",
            "replicates=4, seed=9",
            ["--crystallize-replicates", "2", "--crystallize-seed", "5"],
            (2, 5),
        ),
    ],
    ids=["defaults", "ini", "marker-beats-ini", "cli-beats-all"],
)
def test_settings_precedence(
    pytester: pytest.Pytester, ini: str, marker: str, cli: list[str], expected: tuple[int, int]
) -> None:
    pytester.makeini(f"[pytest]\n{ini}")
    pytester.makepyfile(COUNTING.format(marker=marker))
    result = pytester.runpytest("--crystallize", *cli)
    result.assert_outcomes(passed=1)
    assert _replicates_and_seed(result) == expected


def test_the_alpha_option_changes_verdicts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=12, seed=1, treatments=[Treatment("t", {"d": 0.3})])
        @hypothesis(metric="x", direction="maximize", test="welch_t")
        def experiment_borderline(ctx):
            ctx.metrics.add("x", ctx.rng.normal() + ctx.get("d", 0.0))
    """)
    strict = pytester.runpytest("--crystallize", "--crystallize-alpha", "0.0001")
    strict.assert_outcomes(failed=1)
    lenient = pytester.runpytest("--crystallize", "--crystallize-alpha", "0.9999")
    lenient.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crystallize-replicates", "0"], "--crystallize-replicates must be an integer >= 1, got '0'"),
        (["--crystallize-replicates", "many"], "--crystallize-replicates must be an integer >= 1*"),
        (["--crystallize-alpha", "1.5"], "--crystallize-alpha must be a number strictly between 0 and 1*"),
        (["--crystallize-seed", "-1"], "--crystallize-seed must be an integer >= 0*"),
        (["--crystallize-correction", "fdr"], "--crystallize-correction must be one of holm, bh*"),
    ],
)
def test_bad_command_line_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(COUNTING.format(marker=""))
    result = pytester.runpytest("--crystallize", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_a_bad_ini_value_is_a_usage_error_naming_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrystallize_alpha = 5\n")
    pytester.makepyfile(COUNTING.format(marker=""))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option crystallize_alpha must be a number strictly between 0 and 1*"])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("@pytest.mark.experiment(replicates=0)", "*experiment 'experiment_bad': replicates must be an integer >= 1, got 0"),
        ("@pytest.mark.experiment(alpha=1.0)", "*experiment 'experiment_bad': alpha must be a number strictly between 0 and 1, got 1.0"),
        ("@pytest.mark.experiment(replicate=3)", "*experiment 'experiment_bad': unknown @pytest.mark.experiment option 'replicate'*"),
        ("@hypothesis(metric='m', direction='maximise')", "*experiment 'experiment_bad': hypothesis 'm maximise': unknown direction 'maximise'*"),
        ("@hypothesis(metric='m', test='t_test')", "*experiment 'experiment_bad': hypothesis 'm two-sided': unknown test 't_test'*"),
        ("@pytest.mark.experiment(treatments=[Treatment('a'), Treatment('a')])", "*experiment 'experiment_bad': treatment name 'a' is used twice*"),
        ("@pytest.mark.experiment(treatments=[Treatment('baseline')])", "*'baseline' is reserved*"),
    ],
    ids=["replicates", "alpha", "unknown-option", "direction", "test", "duplicate", "reserved"],
)
def test_bad_definitions_error_at_setup_naming_the_experiment_even_without_the_flag(
    pytester: pytest.Pytester, source: str, message: str
) -> None:
    pytester.makepyfile(f"""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        {source}
        def experiment_bad(ctx):
            ctx.metrics.add("m", 1)

        def test_neighbour_still_runs():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_hypothesis_on_a_metric_nobody_records_fails_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=3, treatments=[Treatment("t")])
        @hypothesis(metric="acuracy", direction="maximize")
        def experiment_typo(ctx):
            ctx.metrics.add("accuracy", 0.5)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_typo': 1 of 1 hypotheses did not hold",
        "*metric missing: no replicate of 'baseline' and 't' recorded 'acuracy' (recorded metrics: 'accuracy')",
    ])


def test_a_non_numeric_metric_value_fails_naming_experiment_and_metric(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.experiment(replicates=2)
        def experiment_text(ctx):
            ctx.metrics.add("label", "cat")
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_text': 2 of 2 replicates raised an error; the first, condition 'baseline', "
        "replicate 0: MetricError: metric 'label' got a value of type str ('cat'); metrics must be real numbers*",
    ])


def test_an_unknown_parameter_is_reported_with_a_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        def experiment_missing(nowhere, ctx):
            pass
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'nowhere' not found*"])


def test_a_bad_truth_value_for_the_crystallize_ini_option_names_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrystallize = maybe\n")
    pytester.makepyfile(COUNTING.format(marker=""))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option crystallize: *maybe*; use true or false*"])
