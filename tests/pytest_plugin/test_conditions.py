"""Choosing conditions under pytest: --crystallize-treatment and the pytest_crystallize_conditions hook."""

from __future__ import annotations

import ast

import pytest

SWEEP = """
    import pytest
    from pytest_crystallize import grid, hypothesis

    ORDER = []

    @pytest.mark.experiment(replicates=6, treatments=grid(model=["small", "large"], temperature=[0.1, 0.9]))
    @hypothesis(metric="score", direction="maximize")
    def experiment_sweep(ctx):
        ORDER.append(ctx.condition)
        bonus = {"small": 1.0, "large": 3.0}[ctx.get("model", "small")] if ctx.condition != "baseline" else 0.0
        ctx.metrics.add("score", bonus + 0.1 * ctx.rng.normal())

    @pytest.mark.experiment(replicates=3)
    def experiment_plain(ctx):
        ctx.metrics.add("one", 1)

    def test_order():
        seen = list(dict.fromkeys(ORDER))
        print("ORDER", seen)
"""


def _conditions_of(result: pytest.RunResult) -> list[str]:
    line = next(text for text in result.outlines if "ORDER [" in text)
    return list(ast.literal_eval(line[line.index("ORDER [") + len("ORDER "):]))


def test_the_option_runs_only_the_named_treatments_and_the_baseline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest(
        "--crystallize", "-s", "-rs", "-p", "no:randomly",
        "--crystallize-treatment", "model=large,temperature=0.9", "--crystallize-treatment", "model=small,temperature=0.1",
    )
    result.assert_outcomes(passed=2, skipped=1)
    assert _conditions_of(result) == ["baseline", "model=small,temperature=0.1", "model=large,temperature=0.9"]
    result.stdout.fnmatch_lines([
        "SKIPPED*experiment: no treatment matches --crystallize-treatment "
        "'model=large,temperature=0.9' 'model=small,temperature=0.1'",
    ])


def test_a_glob_selects_several_treatments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize", "-s", "-p", "no:randomly", "--crystallize-treatment", "model=large*")
    result.assert_outcomes(passed=2, skipped=1)
    assert _conditions_of(result) == ["baseline", "model=large,temperature=0.1", "model=large,temperature=0.9"]


LIST_SWEEP = """
    import pytest
    from pytest_crystallize import grid

    ORDER = []

    @pytest.mark.experiment(replicates=2, treatments=grid(shape=[[3], [3, 4], 3], k=[1, 2]))
    def experiment_shapes(ctx):
        ORDER.append(ctx.condition)
        ctx.metrics.add("one", 1)

    def test_order():
        print("ORDER", list(dict.fromkeys(ORDER)))
"""


@pytest.mark.parametrize(
    ("pattern", "chosen"),
    [
        ("shape=[3]*", ["shape=[3],k=1", "shape=[3],k=2"]),  # a literal prefix, not the glob class [3]
        ("shape=[3],k=2", ["shape=[3],k=2"]),  # the exact name
        ("shape=[3,4]*", ["shape=[3,4],k=1", "shape=[3,4],k=2"]),
        ("shape=3*", ["shape=3,k=1", "shape=3,k=2"]),
        ("shape=[[]3*", ["shape=[3],k=1", "shape=[3],k=2", "shape=[3,4],k=1", "shape=[3,4],k=2"]),  # a glob
    ],
)
def test_names_holding_brackets_are_matched_exactly_then_by_literal_prefix_then_as_globs(
    pytester: pytest.Pytester, pattern: str, chosen: list[str]
) -> None:
    pytester.makepyfile(LIST_SWEEP)
    result = pytester.runpytest("--crystallize", "-s", "-p", "no:randomly", "--crystallize-treatment", pattern)
    result.assert_outcomes(passed=2)
    assert _conditions_of(result) == ["baseline", *chosen]


def test_the_ini_twin_selects_and_the_command_line_replaces_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    pytester.makeini("[pytest]\ncrystallize_treatment =\n    model=small,temperature=0.9\n")
    result = pytester.runpytest("--crystallize", "-s", "-p", "no:randomly")
    assert _conditions_of(result) == ["baseline", "model=small,temperature=0.9"]
    result = pytester.runpytest("--crystallize", "-s", "-p", "no:randomly", "--crystallize-treatment", "model=large*")
    assert _conditions_of(result) == ["baseline", "model=large,temperature=0.1", "model=large,temperature=0.9"]


def test_an_unknown_treatment_is_a_usage_error_listing_the_known_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize", "--crystallize-treatment", "model=medium")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*--crystallize-treatment 'model=medium' matches no treatment of the collected experiments; "
        "known treatments: 'model=large,temperature=0.1', 'model=large,temperature=0.9', "
        "'model=small,temperature=0.1', 'model=small,temperature=0.9'*",
    ])


def test_an_empty_treatment_name_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize", "--crystallize-treatment", " ")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--crystallize-treatment needs a treatment name*"])


def test_the_option_works_across_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest_subprocess(
        "--crystallize", "-n", "2", "--crystallize-treatment", "model=large,temperature=0.1"
    )
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*model=large,temperature=0.1*"])
    assert "model=small" not in result.stdout.str()


def test_an_unknown_treatment_under_xdist_stops_the_run_with_the_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest_subprocess("--crystallize", "-n", "2", "--crystallize-treatment", "model=medium")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*--crystallize-treatment 'model=medium' matches no treatment*known treatments:*"])
    assert "passed" not in result.stdout.str()


def test_the_pytest_hook_in_a_conftest_chooses_and_orders(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_conditions(item, experiment, treatments):
            assert item.name == experiment.name
            return [t for t in reversed(treatments) if "temperature=0.9" in t.name]
    """)
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize", "-s", "-p", "no:randomly", "--crystallize-treatment", "model=*")
    result.assert_outcomes(passed=2, skipped=1)  # experiment_plain has no treatment to select
    assert _conditions_of(result) == ["baseline", "model=large,temperature=0.9", "model=small,temperature=0.9"]


def test_the_pytest_hook_is_scoped_to_its_conftests_directory(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("narrow")
    (pytester.path / "narrow" / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_crystallize_conditions(item, experiment, treatments):\n"
        "    return treatments[:1]\n"
    )
    body = (
        "import pytest\nfrom pytest_crystallize import Treatment\n\n"
        "@pytest.mark.experiment(replicates=2, treatments=[Treatment('a'), Treatment('b')])\n"
        "def experiment_{name}(ctx):\n    ctx.metrics.add('x', 1)\n"
    )
    (pytester.path / "narrow" / "test_narrow.py").write_text(body.format(name="narrow"))
    pytester.makepyfile(test_wide=body.format(name="wide"))
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    wide, narrow = out.index("test_wide.py::experiment_wide"), out.index("test_narrow.py::experiment_narrow")
    assert " b " in out[wide:] or "\nb" in out[wide:] or " b\n" in out[wide:]
    narrow_table = out[narrow:wide] if narrow < wide else out[narrow:]
    assert "  b " not in narrow_table


def test_a_bad_hook_choice_fails_the_item_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_conditions(item, experiment, treatments):
            return ["nope"]
    """)
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize", "-k", "sweep")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_sweep': a pytest_crystallize_conditions hook chose 'nope', "
        "which is not one of its treatments*",
    ])


def test_a_conftest_hook_with_optionalhook_survives_disabling_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_conditions(item, experiment, treatments):
            return None
    """)
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("-p", "no:crystallize")
    result.assert_outcomes(passed=1)
