"""Plugins in a pytest run: marker, conftest hook (scoped), entry points, artifacts, logs, progress."""

from __future__ import annotations

import json
import textwrap

import pytest

# A plugin that appends "<label>:<experiment name>" to seen.txt after each run.
RECORDING_PLUGIN = """
    from pathlib import Path
    from pytest_crystallize import hookimpl

    class Seen:
        def __init__(self, label):
            self.label = label

        @hookimpl
        def crystallize_run_after(self, experiment, result):
            with open(Path(__file__).parent / "seen.txt", "a") as out:
                out.write(f"{self.label}:{experiment.name}\\n")

    class Backend:
        def __init__(self, label):
            self.label = label

        @hookimpl
        def crystallize_replicates_run(self, experiment, tasks, run_batch):
            with open(Path(__file__).parent / "seen.txt", "a") as out:
                out.write(f"backend {self.label}:{experiment.name}\\n")
            return [run_batch(tasks)]
"""


def _seen(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "seen.txt"
    return sorted(path.read_text().splitlines()) if path.exists() else []


def _write(pytester: pytest.Pytester, relative: str, source: str) -> None:
    path = pytester.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def test_marker_plugins_run(pytester: pytest.Pytester) -> None:
    _write(pytester, "recording.py", RECORDING_PLUGIN)
    pytester.makepyfile(test_marked="""
        import pytest
        from recording import Seen

        @pytest.mark.experiment(replicates=2, plugins=[Seen("marker")])
        def experiment_marked(ctx):
            ctx.metrics.add("x", 1)
    """)
    pytester.syspathinsert()
    pytester.runpytest("--crystallize").assert_outcomes(passed=1)
    assert _seen(pytester) == ["marker:experiment_marked"]


def test_conftest_plugins_apply_to_their_directory_and_inner_ones_win(pytester: pytest.Pytester) -> None:
    _write(pytester, "recording.py", RECORDING_PLUGIN)
    pytester.syspathinsert()
    _write(pytester, "conftest.py", """
        import pytest
        from recording import Backend, Seen

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            return [Seen("outer"), Backend("outer")]
    """)
    _write(pytester, "inner/conftest.py", """
        import pytest
        from recording import Backend, Seen

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            return [Seen("inner"), Backend("inner")]
    """)
    _write(pytester, "inner/test_in.py", """
        def experiment_in(ctx):
            ctx.metrics.add("x", 1)
    """)
    _write(pytester, "other/test_out.py", """
        import pytest
        from recording import Backend

        @pytest.mark.experiment(plugins=[Backend("marker")])
        def experiment_out(ctx):
            ctx.metrics.add("x", 1)
    """)
    result = pytester.runpytest("--crystallize", "--crystallize-replicates", "2")
    result.assert_outcomes(passed=2)
    assert _seen(pytester) == [
        "backend inner:experiment_in",    # the inner conftest's backend beat the outer one's
        "backend marker:experiment_out",  # the marker's backend beat the conftest's
        "inner:experiment_in",
        "outer:experiment_in",
        "outer:experiment_out",           # the inner conftest does not reach other/
    ]


def test_a_conftest_hook_marked_optional_survives_disabling_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            return []
    """)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    pytester.runpytest("-p", "no:crystallize").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_conftest_hook_returning_a_non_list_fails_the_experiment_clearly(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest
        from pytest_crystallize import SeedPlugin

        @pytest.hookimpl(optionalhook=True)
        def pytest_crystallize_plugins(item, experiment):
            return SeedPlugin()
    """)
    pytester.makepyfile(test_bad="def experiment_bad(ctx):\n    ctx.metrics.add('x', 1)\n")
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pytest_crystallize_plugins hook returned SeedPlugin(*return a list of plugins*"])


def test_installed_packages_provide_plugins_through_entry_points(pytester: pytest.Pytester) -> None:
    site = pytester.path / "site"
    _write(pytester, "site/crystal_ep.py", RECORDING_PLUGIN + """
    class FromEntryPoint(Seen):
        def __init__(self):
            super().__init__("entry-point")
    """)
    info = site / "crystal_ep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: crystal-ep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[crystallize.plugins]\nrecorder = crystal_ep:FromEntryPoint\n")
    pytester.syspathinsert(site)
    pytester.makepyfile(test_ep="def experiment_ep(ctx):\n    ctx.metrics.add('x', 1)\n")
    pytester.runpytest("--crystallize", "--crystallize-replicates", "2").assert_outcomes(passed=1)
    assert (site / "seen.txt").read_text().splitlines() == ["entry-point:experiment_ep"]


def test_a_broken_entry_point_names_itself(pytester: pytest.Pytester) -> None:
    info = pytester.path / "site" / "broken_ep-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-ep\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[crystallize.plugins]\nbroken = no_such_module_xyz:Plugin\n")
    pytester.syspathinsert(pytester.path / "site")
    pytester.makepyfile(test_ep="def experiment_ep(ctx):\n    ctx.metrics.add('x', 1)\n")
    result = pytester.runpytest("--crystallize", "--crystallize-replicates", "2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*'crystallize.plugins' entry point 'broken'*failed to load*"])


def test_artifact_plugin_defaults_to_the_rootdir_not_the_working_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytester.makeini("[pytest]\n")
    _write(pytester, "tests/test_art.py", """
        import pytest
        from pytest_crystallize import ArtifactPlugin, pipeline_step

        @pipeline_step()
        def save(data, ctx):
            ctx.artifacts.add("out.txt", str(ctx.replicate))
            return data

        @pytest.mark.experiment(replicates=2, plugins=[ArtifactPlugin(), ArtifactPlugin("relative")])
        def experiment_art(ctx):
            save(1, ctx)
            ctx.metrics.add("x", 1)
    """)
    monkeypatch.chdir(pytester.path / "tests")
    pytester.runpytest("--crystallize", "test_art.py").assert_outcomes(passed=1)
    for root in ("crystallize_artifacts", "relative"):
        run = pytester.path / root / "experiment_art" / "v0"
        assert (run / "baseline" / "replicate_1" / "save" / "out.txt").read_text() == "1"
        assert json.loads((run / "metadata.json").read_text())["replicates"] == 2
    assert not (pytester.path / "tests" / "crystallize_artifacts").exists()


def test_the_default_artifact_root_comes_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrystallize_artifacts_dir = build/arts\n")
    pytester.makepyfile(test_art="""
        import pytest
        from pytest_crystallize import ArtifactPlugin

        @pytest.mark.experiment(replicates=1, plugins=[ArtifactPlugin()])
        def experiment_art(ctx):
            ctx.metrics.add("x", 1)
    """)
    pytester.runpytest("--crystallize").assert_outcomes(passed=1)
    assert (pytester.path / "build" / "arts" / "experiment_art" / "v0" / "metadata.json").exists()


def test_logging_plugin_lines_show_with_live_logs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_logs="""
        import pytest
        from pytest_crystallize import LoggingPlugin

        @pytest.mark.experiment(replicates=3, plugins=[LoggingPlugin()])
        def experiment_logs(ctx):
            if ctx.replicate == 2:
                raise ValueError("two")
            ctx.metrics.add("x", 1)
    """)
    result = pytester.runpytest("--crystallize", "--log-cli-level=INFO")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*INFO*crystallize*experiment 'experiment_logs': running 3 replicates*",
        "*WARNING*crystallize*replicate 2: ValueError: two*",
        "*INFO*crystallize*finished in*",
    ])
    assert "step" not in result.stdout.str().split("live log call")[1].split("finished in")[0]


SLOW_EXPERIMENT = """
    import time

    def test_before():
        pass

    def experiment_slow(ctx):
        time.sleep(0.003)
        ctx.metrics.add("x", 1)
"""


def test_progress_shows_done_of_total_and_erases_itself(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_progress=SLOW_EXPERIMENT)
    result = pytester.runpytest(
        "--crystallize", "--crystallize-replicates", "100", "--crystallize-progress", "on",
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "/100 replicates, " in out
    assert "ETA" in out
    drawn = out[out.index(" ["):]
    assert "\x1b[K" in drawn  # erased in place before pytest wrote the outcome
    line = next(raw for raw in out.splitlines() if raw.startswith("test_progress.py"))
    # What remains on screen once the escape codes are applied: pytest's own line.
    assert _rendered(line).startswith("test_progress.py ..")
    assert "replicates" not in _rendered(line)


@pytest.mark.parametrize("args", [("-q",), ()], ids=["quiet", "not-a-terminal"])
def test_no_progress_under_quiet_or_without_a_terminal(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    pytester.makepyfile(test_progress=SLOW_EXPERIMENT)
    mode = ("--crystallize-progress", "on") if args else ()
    result = pytester.runpytest("--crystallize", "--crystallize-replicates", "100", *mode, *args)
    result.assert_outcomes(passed=2)
    assert "elapsed, ETA" not in result.stdout.str()


def test_a_bad_progress_mode_in_the_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrystallize_progress = sometimes\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*ini option crystallize_progress must be one of auto, on, off*"])


def _rendered(line: str) -> str:
    """Apply 'cursor left n' and 'erase to end of line' to one line of terminal output."""
    import re

    screen: list[str] = []
    cursor = 0
    for token in re.split(r"(\x1b\[\d*[A-Za-z])", line):
        if not token.startswith("\x1b["):
            for char in token:
                if cursor < len(screen):
                    screen[cursor] = char
                else:
                    screen.append(char)
                cursor += 1
        elif token.endswith("D"):
            cursor = max(0, cursor - int(token[2:-1] or 1))
        elif token.endswith("K"):
            del screen[cursor:]
    return "".join(screen)


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "expected"),
    [
        (0, 10, 0.3, " [0/10 replicates, 0.3s elapsed, ETA ?]"),
        (50, 100, 10.0, " [50/100 replicates, 5/s, 10.0s elapsed, ETA 10.0s]"),
        (2, 1000, 120.0, " [2/1000 replicates, 60s each, 2m 00s elapsed, ETA 16h 38m]"),
        (3, 3_000_000, 1.0, " [3/3000000 replicates, 3/s, 1.0s elapsed, ETA 11d 13h]"),
    ],
)
def test_the_progress_text_gives_rate_and_a_readable_eta(done: int, total: int, elapsed: float, expected: str) -> None:
    from pytest_crystallize.pytest_plugin.progress import progress_text

    # ETA by hand: (total - done) / (done / elapsed) seconds; 998 * 60 s = 16 h 38 m, 2,999,997 / 3 s = 11 d 13 h.
    assert progress_text(done, total, elapsed, brevity=1) == expected  # the variant without the bar
