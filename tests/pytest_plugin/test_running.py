"""Running experiments: fixtures, ctx, datasources, pass and fail reports."""

from __future__ import annotations

import pytest


def test_fixtures_resolve_once_per_item_while_ctx_and_datasources_come_per_replicate(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, data_source

        CALLS = {"fixture": 0, "source": []}

        @pytest.fixture
        def offset():
            CALLS["fixture"] += 1
            return 10

        @data_source
        def number(ctx):
            CALLS["source"].append((ctx.condition, ctx.replicate))
            return ctx.replicate + ctx.get("bump", 0)

        @pytest.mark.experiment(replicates=5, treatments=[Treatment("bumped", {"bump": 100})])
        def experiment_uses_everything(offset, number, ctx):
            ctx.metrics.add("value", offset + number)

        def test_counts():
            assert CALLS["fixture"] == 1
            assert sorted(CALLS["source"]) == sorted(
                [(c, r) for c in ("baseline", "bumped") for r in range(5)]
            )
    """)
    result = pytester.runpytest("--crystallize", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*baseline*value*5*12*",
        "*bumped*value*5*112*",
    ])


def test_datasources_from_a_conftest_are_found_and_scoped_to_its_directory(pytester: pytest.Pytester) -> None:
    pytester.mkpydir("inner")
    pytester.makeconftest("""
        from pytest_crystallize import data_source

        @data_source
        def shared(ctx):
            return 1.0
    """)
    (pytester.path / "inner" / "conftest.py").write_text(
        "from pytest_crystallize import data_source\n\n"
        "@data_source\n"
        "def shared(ctx):\n"
        "    return 2.0\n"
    )
    pytester.makepyfile(test_outer="""
        def experiment_outer(shared, ctx):
            ctx.metrics.add("shared", shared)
    """)
    (pytester.path / "inner" / "test_inner.py").write_text(
        "def experiment_inner(shared, ctx):\n"
        "    ctx.metrics.add('shared', shared)\n"
    )
    result = pytester.runpytest("--crystallize", "--crystallize-replicates", "2")
    result.assert_outcomes(passed=2)
    text = result.stdout.str()
    assert _mean_in_table(text, "test_outer.py::experiment_outer", "shared") == 1.0
    assert _mean_in_table(text, "inner/test_inner.py::experiment_inner", "shared") == 2.0


def _mean_in_table(text: str, nodeid: str, metric: str) -> float:
    """The baseline mean of ``metric`` in the summary table of ``nodeid``."""
    lines = text[text.index(f"{nodeid} ("):].splitlines()
    row = next(line.split() for line in lines[1:] if line.split()[:2] == ["baseline", metric])
    return float(row[3])


def test_a_failed_hypothesis_fails_the_item_with_its_statistics(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=10, treatments=[Treatment("same", {})])
        @hypothesis(metric="score", direction="maximize", test="welch_t")
        def experiment_no_effect(ctx):
            ctx.metrics.add("score", ctx.rng.normal())
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_no_effect': 1 of 1 hypotheses did not hold",
        "*hypothesis 'score maximize' for treatment 'same': *",
        "*test: welch_t*n 10 vs 10*",
        "*baseline mean*treatment mean*difference*",
    ])
    # The report replaces the traceback: none of our frames appear.
    result.stdout.no_fnmatch_line("*pytest_crystallize/*")


def test_a_clear_effect_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=30, treatments=[Treatment("better", {"shift": 1.0})])
        @hypothesis(metric="score", direction="maximize")
        def experiment_effect(ctx):
            ctx.metrics.add("score", ctx.rng.normal() + ctx.get("shift", 0.0))
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 hypothesis passed, 0 failed in 1 experiment"])


def test_replicate_errors_fail_the_item_with_the_users_traceback_and_the_count(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import pipeline_step

        @pipeline_step()
        def fragile(data, ctx):
            if ctx.replicate % 2:
                raise ValueError(f"odd replicate {ctx.replicate}")
            ctx.metrics.add("m", data)

        @pytest.mark.experiment(replicates=6)
        def experiment_fragile(ctx):
            fragile(1.0, ctx)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_fragile': 3 of 6 replicates raised an error; the first, "
        "condition 'baseline', replicate 1, step 'fragile': ValueError: odd replicate 1",
        "*in fragile",
        "*raise ValueError*",
    ])
    result.stdout.no_fnmatch_line("*pytest_crystallize/core*")


def test_ctx_fixture_gives_ordinary_tests_a_standalone_context(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from pytest_crystallize import FrozenContext, pipeline_step

        @pipeline_step()
        def scale(data, ctx, factor=2):
            ctx.metrics.add("scaled", data * factor)
            return data * factor

        def test_step(ctx):
            assert isinstance(ctx, FrozenContext)
            ctx.add("factor", 3)
            assert scale(5, ctx) == 15
            assert ctx.metrics.get("scaled") == (15.0,)
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_async_experiments_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import asyncio
        import pytest
        from pytest_crystallize import data_source

        @data_source
        async def slow_number(ctx):
            await asyncio.sleep(0)
            return ctx.replicate

        @pytest.mark.experiment(replicates=3)
        async def experiment_async(slow_number, ctx):
            await asyncio.sleep(0)
            ctx.metrics.add("n", slow_number)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline*n*3*1 *"])
