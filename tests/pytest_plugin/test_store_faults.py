"""Saving and gating under faults: a clear failure or usage error naming the path, never INTERNALERROR.

After each fault the saved runs are exactly as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from pytest_crystallize.core.store.stores import DirectoryStore

EXPERIMENT = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=6, seed=3, treatments=[Treatment("hot", {"bump": 1.0})])
    @hypothesis(metric="score", direction="maximize")
    def experiment_score(ctx):
        rng = np.random.default_rng(ctx.seed)
        ctx.metrics.add("score", rng.normal(10, 1) + ctx.get("bump", 0.0))
"""
NODE = "test_faults.py::experiment_score"
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def saved(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with one experiment and a run saved as 'main'."""
    pytester.makepyfile(test_faults=EXPERIMENT)
    pytester.runpytest("--crystallize", "--crystallize-save=main").assert_outcomes(passed=1)
    return pytester


def _store(pytester: pytest.Pytester) -> DirectoryStore:
    return DirectoryStore(pytester.path / ".crystallize")


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _no_internal_error(result: pytest.RunResult) -> None:
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.INTERNAL_ERROR)
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text
    assert "RecursionError" not in text


def test_a_symlinked_staging_directory_fails_the_save_and_deletes_nothing(
    saved: pytest.Pytester, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "old_project").mkdir(parents=True)
    (elsewhere / "old_project" / "data.csv").write_text("precious")
    old = time.time() - 3 * 24 * 3600
    os.utime(elsewhere / "old_project", (old, old))
    store = _store(saved)
    runs = _files(store.runs_dir)
    staging = store.root / "staging"
    staging.rmdir()
    staging.symlink_to(elsewhere)
    result = saved.runpytest("--crystallize", "--crystallize-save=again")
    assert (elsewhere / "old_project" / "data.csv").read_text() == "precious"
    assert _files(store.runs_dir) == runs
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        f"crystallize: ERROR: could not save the run to {store.root}: {staging}: is a symbolic link (to "
        f"{str(elsewhere)!r}); the store never follows a link out of itself*",
    ])


def test_a_gate_against_a_deeply_nested_run_record_is_a_usage_error_naming_it(saved: pytest.Pytester) -> None:
    store = _store(saved)
    record = store.find("main")
    path = Path(record.location) / "run.json"
    data = json.loads(path.read_text())
    data["options"]["deep"] = "@"
    path.write_text(json.dumps(data).replace('"@"', DEEP))
    before = _files(store.root)
    for args in (["--crystallize-gate"], ["--crystallize-gate", f"--crystallize-compare={record.id}"],
                 [f"--crystallize-compare={path}"]):
        result = saved.runpytest("--crystallize", *args)
        _no_internal_error(result)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        assert f"{path}: not a readable run record (nested more than 100 levels deep)" in result.stderr.str(), args
    assert _files(store.root) == before


def test_a_gate_against_a_deeply_nested_parquet_header_fails_the_item_naming_it(saved: pytest.Pytester) -> None:
    import pyarrow.parquet as pq

    store = _store(saved)
    run_dir = Path(store.find("main").location)
    parquet = run_dir / "0000.parquet"
    table = pq.read_table(parquet)
    header = json.loads(table.schema.metadata[b"pytest_crystallize"])
    header["provenance"]["versions"] = "@"
    raw = json.dumps(header).replace('"@"', DEEP).encode()
    pq.write_table(table.replace_schema_metadata({b"pytest_crystallize": raw}), parquet)
    record = json.loads((run_dir / "run.json").read_text())
    record["experiments"][0]["sha256"] = hashlib.sha256(parquet.read_bytes()).hexdigest()
    (run_dir / "run.json").write_text(json.dumps(record))
    before = _files(store.root)
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    _no_internal_error(result)
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"*{parquet}: malformed Parquet result (nested more than 100 levels deep)*"])
    assert _files(store.root) == before


def test_a_runs_directory_that_is_a_file_fails_gates_and_saves_naming_it(saved: pytest.Pytester) -> None:
    store = _store(saved)
    kept = saved.path / "kept-runs"
    store.runs_dir.rename(kept)
    store.runs_dir.write_text("not a directory")
    before = _files(kept)
    problem = f"{store.runs_dir}: is a file, not a directory, so it cannot be the store's runs/"
    result = saved.runpytest("--crystallize", "--crystallize-gate")
    _no_internal_error(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: ini option crystallize_baseline: {problem}" in result.stderr.str()
    result = saved.runpytest("--crystallize", "--crystallize-save")
    _no_internal_error(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"crystallize: ERROR: could not save the run to {store.root}: {problem}*"])
    assert _files(kept) == before
    assert store.runs_dir.read_text() == "not a directory"


def test_a_run_name_too_long_is_a_usage_error_naming_the_limit(saved: pytest.Pytester) -> None:
    before = _files(_store(saved).root)
    result = saved.runpytest("--crystallize", "--crystallize-save=" + "a" * 300)
    _no_internal_error(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: --crystallize-save: run name {'a' * 24!r}... is not allowed: it is too long (300 characters, "
        "at most 64)*",
    ])
    assert _files(_store(saved).root) == before


def test_a_store_path_too_long_for_the_file_system_is_a_clear_failure(saved: pytest.Pytester) -> None:
    before = _files(_store(saved).root)
    storage = f"--crystallize-storage={'s' * 300}"
    result = saved.runpytest("--crystallize", "--crystallize-gate", storage)
    _no_internal_error(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{saved.path / ('s' * 300) / 'runs'}: the store cannot use it" in result.stderr.str()
    result = saved.runpytest("--crystallize", "--crystallize-save", storage)
    _no_internal_error(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["crystallize: ERROR: could not save the run to *: *File name too long*"])
    assert _files(_store(saved).root) == before


def test_a_deeply_nested_config_file_is_a_collection_error_naming_it(pytester: pytest.Pytester) -> None:
    config = pytester.path / "treatments.json"  # named as the test module names it
    config.write_text('{"params": {"x": ' + DEEP + "}}")
    pytester.makepyfile(test_config="""
        from pytest_crystallize import load_config

        CONFIG = load_config("treatments.json")

        def test_never_collected():
            pass
    """)
    result = pytester.runpytest("--crystallize")
    _no_internal_error(result)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"E   *ConfigurationError: {config.name}: nested more than 100 levels deep; flatten it*"])
