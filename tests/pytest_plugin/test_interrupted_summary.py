"""An experiment stopped midway (Ctrl-C, pytest-timeout) still shows the replicates it finished."""

from __future__ import annotations

import pytest

STOPPED = """
    import pytest

    @pytest.mark.experiment(replicates=10, seed=1)
    def experiment_stopped(ctx):
        if ctx.replicate == 5:
            {stop}
        ctx.metrics.add("x", float(ctx.replicate))
"""


def test_a_timeout_like_failure_shows_what_finished(pytester: pytest.Pytester) -> None:
    # pytest-timeout's signal method fails the test from inside it, as pytest.fail does here.
    pytester.makepyfile(STOPPED.format(stop='pytest.fail("Timeout >0.5s")'))
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment_stopped*",
        "*note: interrupted (Failed) after 5 of 10 replicates per condition: no verdicts, and this "
        "experiment's result was not saved*",
    ])


def test_ctrl_c_shows_what_finished(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STOPPED.format(stop="raise KeyboardInterrupt"))
    result = pytester.runpytest_subprocess("--crystallize")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*note: interrupted (KeyboardInterrupt) after 5 of 10 replicates*not saved*"])


def test_a_backend_that_cannot_go_on_fails_its_experiment_with_its_message_and_what_the_journal_kept(
    pytester: pytest.Pytester,
) -> None:
    # As a lost Dask scheduler does: half the replicates ran (and were journaled), then the backend gives up.
    pytester.makeconftest("""
        import pytest
        from pytest_crystallize import CrystallizeError, hookimpl

        class GivesUp:
            @hookimpl
            def crystallize_replicates_run(self, experiment, tasks, run_batch):
                run_batch(tasks[: len(tasks) // 2])
                raise CrystallizeError("the cluster at tcp://127.0.0.1:1 was lost")

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            return [GivesUp()]
    """)
    pytester.makepyfile(STOPPED.format(stop="pass"))
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "CrystallizeError: the cluster at tcp://127.0.0.1:1 was lost; 5 finished replicate tasks are kept in "
        "the journal (*): rerun with --crystallize-resume to run only the missing ones",
    ])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*crystallize_replicates_run*")
