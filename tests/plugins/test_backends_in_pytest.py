"""Execution backends in a pytest run: async experiments, process workers dying, pytest-asyncio."""

from __future__ import annotations

import pytest

ASYNC_EXPERIMENT = """
    import asyncio
    import pytest
    from pytest_crystallize import (
        AsyncExecution, ParallelExecution, SerialExecution, Treatment, data_source, pipeline_step,
    )

    @data_source
    async def prompt(ctx):
        await asyncio.sleep(0.001)
        return ctx.replicate

    @pipeline_step()
    async def answer(data, ctx, bonus=0):
        await asyncio.sleep(0.001)
        ctx.metrics.add("score", data + bonus + ctx.rng.uniform())
        return data

    @pytest.mark.experiment(replicates=6, seed=3, treatments=[Treatment("bonus", {"bonus": 10})],
                            plugins=[BACKEND])
    async def experiment_llm(prompt, ctx):
        await answer(prompt, ctx)
"""


@pytest.mark.parametrize(
    "backend",
    ["SerialExecution()", "AsyncExecution(max_workers=3)", "ParallelExecution(2, kind='thread')"],
)
def test_async_experiments_run_on_in_process_backends_without_pytest_asyncio(
    pytester: pytest.Pytester, backend: str,
) -> None:
    pytester.makepyfile(test_llm=ASYNC_EXPERIMENT.replace("BACKEND", backend))
    result = pytester.runpytest("--crystallize", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline*score*6*", "*bonus*score*6*"])


def test_process_execution_in_pytest_survives_a_dying_worker_and_reports_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_proc=ASYNC_EXPERIMENT.replace("BACKEND", "ParallelExecution(2)") + """
    import os

    @pytest.mark.experiment(replicates=6, plugins=[ParallelExecution(2)])
    def experiment_dies(ctx):
        if ctx.replicate == 3:
            os._exit(1)
        ctx.metrics.add("x", 1)
    """)
    result = pytester.runpytest_subprocess("--crystallize", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*replicate 3*WorkerProcessDied*worker process running this replicate died (exit code 1)*",
    ])
    assert "BrokenProcessPool" not in result.stdout.str()


def test_experiments_stay_experiments_under_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_llm=ASYNC_EXPERIMENT.replace("BACKEND", "AsyncExecution(3)") + """

    async def test_plain_async():
        await asyncio.sleep(0)
    """)
    result = pytester.runpytest_subprocess("--crystallize", "-p", "asyncio")
    result.assert_outcomes(passed=2)
    # Six replicates per condition ran: the experiment was not run once as a coroutine test.
    result.stdout.fnmatch_lines(["*experiment_llm (6 replicates*", "*baseline*score*6*"])
