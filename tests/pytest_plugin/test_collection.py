"""Collection: which functions become experiment items, and how they are selected."""

from __future__ import annotations

import pytest

EXPERIMENT = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=3, treatments=[Treatment("t", {"k": 1})])
    def experiment_module_level(ctx):
        ctx.metrics.add("m", ctx.get("k", 0))

    class TestGroup:
        @pytest.mark.experiment(replicates=2)
        def experiment_in_class(self, ctx):
            ctx.metrics.add("m", 1.0)

    def test_ordinary():
        pass
"""


def test_experiments_are_collected_at_module_level_and_in_test_classes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "test_things.py::experiment_module_level",
        "test_things.py::TestGroup::experiment_in_class",
        "test_things.py::test_ordinary",
    ])


def test_experiment_files_are_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(experiment_accuracy="""
        def experiment_one(ctx):
            ctx.metrics.add("m", 1)
    """)
    result = pytester.runpytest("--crystallize", "-v")
    result.stdout.fnmatch_lines(["experiment_accuracy.py::experiment_one PASSED*"])


def test_without_the_flag_experiments_are_skipped_with_a_reason_saying_how_to_run_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*pytest --crystallize*"])


def test_with_the_flag_experiments_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=3)


def test_the_ini_setting_runs_experiments_without_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrystallize = true\n")
    pytester.makepyfile(test_things=EXPERIMENT)
    pytester.runpytest().assert_outcomes(passed=3)


def test_every_experiment_carries_the_experiment_mark_for_selection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("--crystallize", "-m", "experiment")
    result.assert_outcomes(passed=2, deselected=1)
    result = pytester.runpytest("--crystallize", "-m", "not experiment")
    result.assert_outcomes(passed=1, deselected=2)


def test_keyword_selection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("--crystallize", "-k", "in_class")
    result.assert_outcomes(passed=1, deselected=2)


def test_parametrize_makes_one_experiment_per_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("level", [1, 2])
        @pytest.mark.experiment(replicates=2)
        def experiment_levels(level, ctx):
            ctx.metrics.add("level", level)
    """)
    result = pytester.runpytest("--crystallize", "-v")
    result.stdout.fnmatch_lines([
        "*experiment_levels?1? PASSED*",
        "*experiment_levels?2? PASSED*",
    ])


def test_the_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_things=EXPERIMENT)
    result = pytester.runpytest("-p", "no:crystallize", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_things.py::test_ordinary"])
    result.stdout.no_fnmatch_line("*experiment_module_level*")


def test_a_marked_test_function_is_an_experiment_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.experiment(replicates=4)
        def test_marked(ctx):
            ctx.metrics.add("m", ctx.replicate)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_marked (4 replicates*"])
