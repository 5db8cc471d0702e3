"""--crystallize-resume: an interrupted session's finished replicates are not run again."""

from __future__ import annotations

from pathlib import Path

import pytest

EXPERIMENTS = """
    import os
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    def _log(ctx, prefix=""):
        with open(os.environ["CALLS"], "a") as out:
            out.write(f"{{prefix}}{{ctx.condition}} {{ctx.replicate}}\\n")

    @hypothesis(metric="x", direction="maximize")
    @pytest.mark.experiment(replicates=20, params={{"mu": 0.0}}, treatments=[Treatment("up", {{"mu": {mu}}})])
    def experiment_a(ctx):
        _log(ctx)
        if os.environ.get("STOP") and ctx.replicate == 12:
            raise KeyboardInterrupt
        ctx.metrics.add("x", float(ctx.rng.normal(ctx.get("mu"))))

    @pytest.mark.experiment(replicates=5)
    def experiment_b(ctx):
        _log(ctx, prefix="b:")
        ctx.metrics.add("y", float(ctx.replicate))
"""


def _calls(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


@pytest.fixture
def calls(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "calls.log"
    monkeypatch.setenv("CALLS", str(path))
    return path


def _summary_line(result: pytest.RunResult, name: str) -> str:
    return next(line for line in result.stdout.lines if line.startswith(f"test_resume_me.py::{name} ("))


def test_ctrl_c_keeps_the_finished_replicates_and_resume_runs_only_the_rest(
    pytester: pytest.Pytester, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=0.9))
    whole = pytester.runpytest_subprocess("--crystallize", "-p", "no:randomly")
    whole_table = [line for line in whole.stdout.lines if line.strip().startswith(("baseline", "up"))]
    _calls(calls)

    monkeypatch.setenv("STOP", "1")
    stopped = pytester.runpytest_subprocess("--crystallize", "-p", "no:randomly")
    assert stopped.ret == pytest.ExitCode.INTERRUPTED
    stopped.stdout.fnmatch_lines([
        "*experiment_a (12 replicates*): interrupted",
        "*note: interrupted (KeyboardInterrupt) after 12 of 20 replicates per condition*not saved; 24 finished "
        "replicate tasks are kept in the journal (*): rerun with --crystallize-resume to run only the missing ones",
    ])
    _calls(calls)

    monkeypatch.delenv("STOP")
    resumed = pytester.runpytest_subprocess("--crystallize", "--crystallize-resume", "-p", "no:randomly")
    resumed.assert_outcomes(passed=2)
    resumed.stdout.fnmatch_lines([
        "*note: resumed: 24 of 40 replicate tasks came from the journal of an interrupted run; the others ran now",
    ])
    ran = _calls(calls)
    assert len([c for c in ran if c.startswith(("baseline", "up"))]) == 40 - 24
    assert len(ran) - 16 == 5  # experiment_b never started in the stopped session: it runs whole
    # The numbers a user reads are the uninterrupted run's.
    assert [line for line in resumed.stdout.lines if line.strip().startswith(("baseline", "up"))] == whole_table
    assert not (pytester.path / ".crystallize").exists(), "a run that saves nothing leaves a store behind"


def test_a_changed_experiment_discards_its_journal_and_says_so(
    pytester: pytest.Pytester, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=0.9))
    monkeypatch.setenv("STOP", "1")
    pytester.runpytest_subprocess("--crystallize", "-p", "no:randomly")
    monkeypatch.delenv("STOP")
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=1.5))
    _calls(calls)
    resumed = pytester.runpytest_subprocess("--crystallize", "--crystallize-resume", "-p", "no:randomly")
    resumed.assert_outcomes(passed=2)
    resumed.stdout.fnmatch_lines([
        "*note: journal: 24 journaled replicate tasks were written by a different definition or code of this "
        "experiment and were discarded",
    ])
    assert len(_calls(calls)) == 40 + 5


def test_resume_works_under_xdist(pytester: pytest.Pytester, calls: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=0.9))
    monkeypatch.setenv("STOP", "1")
    pytester.runpytest_subprocess("--crystallize", "-n", "2", "-p", "no:randomly")
    monkeypatch.delenv("STOP")
    kept = _calls(calls)
    resumed = pytester.runpytest_subprocess("--crystallize", "--crystallize-resume", "-n", "2", "-p", "no:randomly")
    resumed.assert_outcomes(passed=2)
    ran = [c for c in _calls(calls) if c.startswith(("baseline", "up"))]
    assert len(ran) < 40
    assert any(c.startswith("up") for c in kept)


def test_no_journal_writes_nothing_and_says_resume_has_nothing(
    pytester: pytest.Pytester, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=0.9))
    monkeypatch.setenv("STOP", "1")
    stopped = pytester.runpytest_subprocess("--crystallize", "--crystallize-no-journal", "-p", "no:randomly")
    stopped.stdout.fnmatch_lines(["*not saved (the journal is off: --crystallize-no-journal)"])
    assert not (pytester.path / ".crystallize").exists()


def test_the_ini_twins_turn_resume_on_and_the_journal_off(pytester: pytest.Pytester, calls: Path) -> None:
    pytester.makeini("[pytest]\ncrystallize_journal = false\ncrystallize_resume = true\n")
    pytester.makepyfile(test_resume_me=EXPERIMENTS.format(mu=0.9))
    pytester.runpytest("--crystallize", "-p", "no:randomly").assert_outcomes(passed=2)
    assert not (pytester.path / ".crystallize").exists()
    pytester.makeini("[pytest]\ncrystallize_journal = maybe\n")
    result = pytester.runpytest("--crystallize")
    result.stderr.fnmatch_lines(["*ini option crystallize_journal*use true or false*"])


def test_resume_with_nothing_journaled_says_nothing_was_resumed(pytester: pytest.Pytester, calls: Path) -> None:
    pytester.makepyfile(test_exp=EXPERIMENTS.format(mu=1.0))
    result = pytester.runpytest_subprocess("--crystallize", "--crystallize-resume", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert "resumed:" not in result.stdout.str()
    assert len(_calls(calls)) == 45  # every replicate ran: 2 x 20 of a, 5 of b
