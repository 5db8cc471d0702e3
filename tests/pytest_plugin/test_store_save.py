"""--crystallize-save / --crystallize-autosave / --crystallize-storage: what a saved run holds, and where."""

from __future__ import annotations

import json
import textwrap

import pytest

from pytest_crystallize.core.store.stores import DirectoryStore

EXPERIMENT = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=6, seed=3, treatments=[Treatment("hot", {"bump": 1.0})],
                            gate={"latency": "minimize"})
    @hypothesis(metric="score", direction="maximize")
    def experiment_score(ctx):
        rng = np.random.default_rng(ctx.seed)
        ctx.metrics.add("score", rng.normal(10, 1) + ctx.get("bump", 0.0))
        ctx.metrics.add("latency", rng.normal(5, 1))

    def test_ordinary():
        pass
"""


def test_save_writes_a_run_with_its_record_and_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_save=EXPERIMENT)
    result = pytester.runpytest("--crystallize", "--crystallize-save=main")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["crystallize: saved run * (main) to *.crystallize*runs*"])
    store = DirectoryStore(pytester.path / ".crystallize")
    record = store.find("main")
    entry = record.experiments["test_save.py::experiment_score"]
    assert (entry.master_seed, entry.replicates, entry.values, entry.passed) == (3, 6, 24, True)
    assert {m: s["better"] for m, s in entry.gate.items()} == {"score": "higher", "latency": "lower"}
    assert entry.definition["treatments"]["hot"]["params"] == {"bump": 1.0}
    assert len(entry.fingerprint) == 16
    assert record.options["args"][:2] == ["--crystallize", "--crystallize-save=main"]
    assert record.options["settings"]["correction"] == "holm"
    assert record.git is None  # pytester's directory is no git repository
    assert {"python", "numpy", "pytest"} <= set(record.versions)
    saved = store.result(record, "test_save.py::experiment_score")
    assert saved.provenance.master_seed == 3
    assert [v.holds for v in saved.verdicts] == [True]
    raw = json.loads((pytester.path / ".crystallize" / "runs" / record.id / "run.json").read_text())
    assert raw["format"] == "pytest-crystallize/run"


def test_autosave_and_storage_from_the_ini_are_anchored_at_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\ncrystallize_autosave = true\ncrystallize_storage = saved/runs\n")
    sub = pytester.mkdir("sub")
    (sub / "test_sub.py").write_text(textwrap.dedent(EXPERIMENT))
    monkeypatch.chdir(sub)
    result = pytester.runpytest("--crystallize", "test_sub.py")
    result.assert_outcomes(passed=2)
    listing = DirectoryStore(pytester.path / "saved" / "runs").listing()
    assert [r.name for r in listing.runs] == [None]
    assert not (sub / "saved").exists()
    assert list(listing.runs[0].experiments) == ["sub/test_sub.py::experiment_score"]


def test_nothing_is_saved_when_no_experiment_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skip=EXPERIMENT)
    result = pytester.runpytest("--crystallize-save")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["crystallize: no experiment ran, nothing saved"])
    assert not (pytester.path / ".crystallize").exists()


def test_a_failed_save_fails_the_session_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fail=EXPERIMENT)
    (pytester.path / "blocked").mkdir()
    (pytester.path / "blocked" / "runs").write_text("a file where the store keeps its runs")
    result = pytester.runpytest("--crystallize", "--crystallize-autosave", "--crystallize-storage=blocked")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["crystallize: ERROR: could not save the run to *blocked: *"])


@pytest.mark.parametrize(
    ("args", "ini", "store", "source"),
    [
        (["--crystallize-save", "--crystallize-storage=blocked"], "", "blocked", "--crystallize-save"),
        (["--crystallize-save=nightly", "--crystallize-storage=blocked/runs"], "", "blocked/runs",
         "--crystallize-save"),
        (["--crystallize-autosave"], "crystallize_storage = blocked", "blocked", "--crystallize-autosave"),
        ([], "crystallize_storage = blocked\ncrystallize_autosave = true", "blocked",
         "ini option crystallize_autosave"),
    ],
)
def test_a_store_path_that_is_a_file_is_a_usage_error_before_the_run(
    pytester: pytest.Pytester, args: list[str], ini: str, store: str, source: str,
) -> None:
    pytester.makepyfile(test_fail=EXPERIMENT)
    pytester.makeini(f"[pytest]\n{ini}\n")
    (pytester.path / "blocked").write_text("a file where the store should be")
    result = pytester.runpytest("--crystallize", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"*{source}: cannot save to the store '{pytester.path / store}': '{pytester.path / 'blocked'}' is a file, "
        "not a directory; give the store a directory with --crystallize-storage=DIR (ini crystallize_storage) "
        "or move the file",
    ])
    assert "passed" not in result.stdout.str()  # nothing ran
    assert (pytester.path / "blocked").read_text() == "a file where the store should be"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crystallize-save=bad name"], "*--crystallize-save: run name 'bad name' is not allowed*"),
        (["--crystallize-gate=abc"], "*--crystallize-gate: the margin must be a number >= 0*(write --crystallize-gate=MARGIN*"),
        (["--crystallize-gate-strict"], "*--crystallize-gate-strict needs a margin > 0*"),
        (["--crystallize-compare=main"], "*--crystallize-compare: no saved run matches 'main'*"),
    ],
)
def test_bad_storage_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile(test_usage=EXPERIMENT)
    result = pytester.runpytest("--crystallize", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize("name", ["test_path.py", "sub/test_path.py", "sub", "thing.py"])
def test_a_save_name_that_looks_like_a_test_path_is_a_usage_error(pytester: pytest.Pytester, name: str) -> None:
    pytester.makepyfile(test_path=EXPERIMENT)
    pytester.mkdir("sub")
    result = pytester.runpytest("--crystallize", "--crystallize-save", name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"*--crystallize-save: '{name}' looks like a test path, not a run name*write --crystallize-save=NAME*"
    ])
    assert not (pytester.path / ".crystallize").exists()
    pytester.runpytest("--crystallize", "--crystallize-save=fine", "test_path.py").assert_outcomes(passed=2)


@pytest.mark.parametrize("option", ["crystallize_autosave", "crystallize_gate_strict"])
def test_a_bad_truth_value_in_the_ini_names_the_option(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_ini=EXPERIMENT)
    pytester.makeini(f"[pytest]\n{option} = maybe\n")
    result = pytester.runpytest("--crystallize")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*ini option {option}: invalid truth value 'maybe'; use true or false*"])
