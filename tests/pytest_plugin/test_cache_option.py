"""The step cache under pytest: on by default for cached steps, its switches, xdist workers, the CLI.

Process workers (``ParallelExecution(kind="process")``) are proven in tests/core/test_step_cache.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pytest_crystallize.cli import main

EXPERIMENTS = """
    import os
    import pytest
    from pytest_crystallize import Treatment, hypothesis, pipeline_step

    @pipeline_step(cache=True)
    def slow_score(data, ctx, temperature=0.7):
        with open(os.environ["CALLS"], "a") as out:
            out.write("call\\n")
        value = data * temperature + ctx.rng.normal()
        ctx.metrics.add("score", value)
        ctx.record("seen", 1.0, tags={"t": temperature})
        return value

    @hypothesis(metric="score", direction="maximize")
    @pytest.mark.experiment(replicates=8, seed=3, treatments=[Treatment("hot", {"temperature": 1.5})])
    def experiment_hot(ctx):
        slow_score(1.0, ctx)

    @pytest.mark.experiment(replicates=6, seed=4, treatments=[Treatment("cold", {"temperature": 0.1})])
    def experiment_twice(ctx):
        ctx.metrics.add("twice", 2 * slow_score(2.0, ctx))
"""


@pytest.fixture
def calls(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = pytester.path / "calls.log"
    monkeypatch.setenv("CALLS", str(path))
    monkeypatch.setenv("CRYSTALLIZE_CACHE_SECRET", str(pytester.path / "home" / "secret"))
    pytester.makepyfile(test_cached=EXPERIMENTS)
    return path


def _drain(path: Path) -> int:
    count = len(path.read_text().splitlines()) if path.exists() else 0
    path.write_text("")
    return count


def _table(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.strip().startswith(("baseline", "hot", "cold"))]


def test_a_second_run_replays_every_cached_call_and_reports_the_same_table(
    pytester: pytest.Pytester, calls: Path
) -> None:
    cold = pytester.runpytest_subprocess("--crystallize", "-p", "no:randomly")
    cold.assert_outcomes(passed=2)
    assert _drain(calls) == 16 + 12
    assert (pytester.path / ".crystallize" / "cache" / "steps").is_dir()
    warm = pytester.runpytest_subprocess("--crystallize", "-p", "no:randomly")
    warm.assert_outcomes(passed=2)
    assert _drain(calls) == 0
    assert _table(warm) == _table(cold)
    assert len(_table(cold)) >= 4

    pytester.runpytest("--crystallize", "--crystallize-no-cache", "-p", "no:randomly").assert_outcomes(passed=2)
    assert _drain(calls) == 28


def test_the_ini_switch_turns_it_off_and_the_command_line_back_on(pytester: pytest.Pytester, calls: Path) -> None:
    pytester.makeini("[pytest]\ncrystallize_cache = false\ncrystallize_storage = store\n")
    pytester.runpytest("--crystallize", "-k", "hot").assert_outcomes(passed=1, deselected=1)
    pytester.runpytest("--crystallize", "-k", "hot").assert_outcomes(passed=1, deselected=1)
    assert _drain(calls) == 32
    assert not (pytester.path / "store").exists()
    for _ in range(2):
        pytester.runpytest("--crystallize", "--crystallize-cache", "-k", "hot").assert_outcomes(passed=1, deselected=1)
    assert _drain(calls) == 16
    assert (pytester.path / "store" / "cache" / "CACHEDIR.TAG").is_file()


def test_contradicting_switches_and_a_bad_size_are_usage_errors(pytester: pytest.Pytester, calls: Path) -> None:
    result = pytester.runpytest("--crystallize", "--crystallize-cache", "--crystallize-no-cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--crystallize-cache and --crystallize-no-cache contradict*"])
    pytester.makeini("[pytest]\ncrystallize_cache_size = lots\n")
    result = pytester.runpytest("--crystallize")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*crystallize_cache_size must be a size > 0 such as 2GiB*'lots'*"])


def test_xdist_workers_share_one_cache(pytester: pytest.Pytester, calls: Path) -> None:
    pytest.importorskip("xdist")
    cold = pytester.runpytest_subprocess("--crystallize", "-n", "2", "-p", "no:randomly")
    cold.assert_outcomes(passed=2)
    assert _drain(calls) == 28
    warm = pytester.runpytest_subprocess("--crystallize", "-n", "2", "-p", "no:randomly")
    warm.assert_outcomes(passed=2)
    assert _drain(calls) == 0
    assert sorted(_table(warm)) == sorted(_table(cold))


def test_the_command_line_shows_clears_and_prunes_the_cache(pytester: pytest.Pytester, calls: Path) -> None:
    pytester.runpytest("--crystallize", "-k", "hot").assert_outcomes(passed=1, deselected=1)
    store = str(pytester.path / ".crystallize")

    def run(*args: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--storage", store, "cache", *args], stdout=out, stderr=err)
        return code, out.getvalue() + err.getvalue()

    code, text = run("info")
    assert code == 0
    assert "16 entries" in text
    assert "slow_score-" in text
    code, text = run("prune", "--max-size", "1")
    assert (code, text.split(";")[0]) == (0, text.split(";")[0])
    assert "removed 16 least recently used entries" in text
    pytester.runpytest("--crystallize", "-k", "hot").assert_outcomes(passed=1, deselected=1)
    assert _drain(calls) == 32  # pruned away: computed again
    code, text = run("clear")
    assert (code, text.strip().split(" from ")[0]) == (0, "removed 16 entries")
    code, text = run("prune", "--max-size", "0")
    assert code == 2
    assert "--max-size must be a size > 0" in text


def test_the_docs_pages_example_runs_and_replays(pytester: pytest.Pytester, calls: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "how-to" / "cache-steps.md").read_text(encoding="utf-8")
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    stub = (
        "import os\n\n"
        "def ask_model(question, temperature, seed):\n"
        "    with open(os.environ['CALLS'], 'a') as out:\n"
        "        out.write('call\\n')\n"
        "    return '4' if (seed % 10) / 10 > temperature - 0.6 else '5'\n\n"
    )
    pytester.makepyfile(test_docs_example=example + "\n\n" + stub)  # the stub's ask_model replaces the page's
    first = pytester.runpytest("--crystallize", "-k", "heat")
    first.assert_outcomes(passed=1, deselected=2)
    assert _drain(calls) == 40
    second = pytester.runpytest("--crystallize", "-k", "heat")
    second.assert_outcomes(passed=1, deselected=2)
    assert _drain(calls) == 0
    assert _table(second) == _table(first)


@pytest.mark.parametrize("action", ["info", "clear", "prune"])
def test_a_cache_path_that_is_a_file_is_an_error_naming_it(tmp_path: Path, action: str) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "cache").write_text("not a directory")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--storage", str(tmp_path / "store"), "cache", action], stdout=out, stderr=err)
    assert code == 2
    assert f"{tmp_path / 'store' / 'cache'}: is a file, not the step cache's directory" in err.getvalue()
    assert (tmp_path / "store" / "cache").read_text() == "not a directory"
