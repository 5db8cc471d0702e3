"""The run store under faults: links, files where directories belong, deep nesting, long names.

Each fault is a ResultsError naming the path, and the store (and anything
outside it) is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pytest_crystallize import ExperimentResult, Provenance, ResultsError
from pytest_crystallize.core.store.records import ExperimentRun, NewRun, check_run_name
from pytest_crystallize.core.store.stores import DirectoryStore

NODE = "test_x.py::exp"
DEEP = "[" * 100_000 + "]" * 100_000
OLD = time.time() - 3 * 24 * 3600


def _result(n: int = 4) -> ExperimentResult:
    conditions = ("baseline", "t")
    return ExperimentResult(
        experiment="exp", conditions=conditions, metrics=("score",), condition_codes=np.repeat([0, 1], n),
        replicates=np.tile(np.arange(n), 2), metric_codes=np.zeros(2 * n), values=np.arange(2.0 * n),
        tags=(None,) * (2 * n), errors=(), verdicts=(),
        provenance=Provenance(experiment="exp", master_seed=1, replicates=n, conditions=conditions,
                              treatments={"t": {}}, alpha=0.05, correction="holm",
                              started_at="2025-01-01T00:00:00+00:00", duration_s=0.1),
    )


def _run(name: str | None = None, definition: object = None) -> NewRun:
    entry = ExperimentRun(nodeid=NODE, result=_result(), definition={"d": definition or 1}, fingerprint="f",
                          gate={"score": {"metric": "score", "better": "higher"}})
    return NewRun(experiments=(entry,), name=name)


def _snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry under ``directory`` (links not followed): file bytes, link targets, directories."""
    found: dict[str, bytes | str] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            found[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[key] = path.read_bytes()
        else:
            found[key] = "dir"
    return found


def _old_directory(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "keep.txt").write_text("precious")
    os.utime(path, (OLD, OLD))
    return path


def _raised(action: Callable[[], object]) -> Exception | None:
    """The exception ``action`` raised, or None: for checking what it did before what it said."""
    try:
        action()
    except Exception as exc:  # returned to the test, which checks its type
        return exc
    return None


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    store = DirectoryStore(tmp_path / ".crystallize")
    store.save(_run("before"))
    return store


def _intact(store: DirectoryStore, before: dict[str, bytes | str]) -> None:
    """The store's saved runs are exactly as they were, and still load."""
    assert _snapshot(store.runs_dir) == before
    (record,) = [r for r in store.listing().runs if r.name == "before"]
    assert store.result(record, NODE) == _result()


def test_a_symlinked_staging_directory_is_refused_and_nothing_it_points_to_is_deleted(
    store: DirectoryStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    _old_directory(elsewhere / "old_project")
    _old_directory(elsewhere / "20250101-000000-000000-deadbeef.cafebabe")  # even one named like a save
    outside, runs = _snapshot(elsewhere), _snapshot(store.runs_dir)
    staging = store.root / "staging"
    staging.rmdir()
    staging.symlink_to(elsewhere)
    error = _raised(lambda: store.save(_run("after")))
    assert _snapshot(elsewhere) == outside  # not one directory deleted
    _intact(store, runs)  # and nothing saved through the link
    assert isinstance(error, ResultsError)
    message = str(error)
    assert message.startswith(f"{staging}: is a symbolic link (to {str(elsewhere)!r})")
    assert "never follows a link out of itself" in message
    assert "Remove the link" in message


@pytest.mark.parametrize("shape", ["link", "file"])
def test_a_runs_directory_that_is_a_link_or_a_file_is_refused_by_save_and_listing(
    store: DirectoryStore, tmp_path: Path, shape: str
) -> None:
    runs = store.runs_dir
    moved = tmp_path / "moved-runs"
    runs.rename(moved)
    if shape == "link":
        runs.symlink_to(moved)
        expected = f"{runs}: is a symbolic link"
    else:
        runs.write_text("not a directory")
        expected = f"{runs}: is a file, not a directory, so it cannot be the store's runs/"
    outside = _snapshot(moved)
    for action in (store.listing, lambda: store.find("before"), lambda: store.save(_run("after"))):
        with pytest.raises(ResultsError) as info:
            action()
        assert str(info.value).startswith(expected)
    assert _snapshot(moved) == outside  # nothing written through the link
    assert runs.is_symlink() if shape == "link" else runs.read_text() == "not a directory"


def test_a_store_root_that_is_a_file_is_refused_by_save_and_listing(tmp_path: Path) -> None:
    root = tmp_path / ".crystallize"
    root.write_text("a file")
    store = DirectoryStore(root)
    for action in (store.listing, lambda: store.save(_run("x"))):
        with pytest.raises(ResultsError, match="is a file, not a directory, so it cannot be the store;") as info:
            action()
        assert str(info.value).startswith(f"{root}: ")
    assert root.read_text() == "a file"
    assert DirectoryStore(tmp_path / "absent").listing().runs == ()  # no store yet: simply no runs


def test_a_store_path_too_long_for_the_file_system_is_a_results_error_naming_it(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / ("a" * 300))
    with pytest.raises(ResultsError, match="the store cannot use it") as info:
        store.listing()
    assert str(info.value).startswith(f"{store.root / 'runs'}: ")


def test_cleanup_removes_only_old_staging_directories_named_like_a_save(
    store: DirectoryStore, tmp_path: Path
) -> None:
    staging = store.root / "staging"
    abandoned = _old_directory(staging / "20250101-000000-000000-deadbeef.cafebabe")
    fresh = staging / "20250101-000000-000000-deadbeef.0badf00d"
    fresh.mkdir()
    foreign = _old_directory(staging / "notes")
    almost = _old_directory(staging / "20250101-000000-000000-deadbeef.cafe")
    target = _old_directory(tmp_path / "target")
    link = staging / "20250101-000000-000000-deadbeef.feedface"
    link.symlink_to(target)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    store.save(_run("after"))
    assert not abandoned.exists()
    assert fresh.is_dir()
    assert (foreign / "keep.txt").read_text() == "precious"
    assert (almost / "keep.txt").read_text() == "precious"
    assert link.is_symlink()
    assert (target / "keep.txt").read_text() == "precious"


def test_a_link_in_runs_is_reported_not_read(store: DirectoryStore, tmp_path: Path) -> None:
    other = DirectoryStore(tmp_path / "other")
    foreign = other.save(_run("foreign"))
    link = store.runs_dir / foreign.id
    link.symlink_to(foreign.location)
    listing = store.listing()
    assert [r.name for r in listing.runs] == ["before"]
    assert listing.problems == (f"{link}: is a symbolic link, not a run saved in this store (the store never follows "
                                "a link out of itself); move the run it points to into the store instead",)
    with pytest.raises(ResultsError, match=f"run {foreign.id} in .* cannot be read: .* is a symbolic link"):
        store.find(foreign.id)


def _reseal(run_dir: Path) -> None:
    path = run_dir / "run.json"
    data = json.loads(path.read_text())
    data["experiments"][0]["sha256"] = hashlib.sha256((run_dir / "0000.parquet").read_bytes()).hexdigest()
    path.write_text(json.dumps(data))


def test_a_deeply_nested_run_record_is_an_unreadable_run_naming_its_file(store: DirectoryStore) -> None:
    record = store.save(_run("deep"))
    path = Path(record.location) / "run.json"
    data = json.loads(path.read_text())
    data["machine"] = {"deep": "@"}
    path.write_text(json.dumps(data).replace('"@"', DEEP))
    before = _snapshot(store.runs_dir)
    listing = store.listing()
    assert [r.name for r in listing.runs] == ["before"]
    assert listing.problems == (f"{path}: not a readable run record (nested more than 100 levels deep)",)
    for reference in (record.id, "latest", str(path)):
        with pytest.raises(ResultsError, match="nested more than 100 levels deep") as info:
            store.find(reference)
        assert str(path) in str(info.value)
    _intact(store, before)


def test_an_unreadable_record_still_shows_its_name_unless_nested_too_deeply(store: DirectoryStore) -> None:
    nan = store.save(_run("other"))
    path = Path(nan.location) / "run.json"
    path.write_text(path.read_text().replace('"master_seed": 1', '"master_seed": NaN'))
    assert store.find("before").name == "before"  # the newer unreadable run is named 'other', so not skipped over
    path.write_text(json.dumps({"name": "other", "deep": "@"}).replace('"@"', DEEP))
    with pytest.raises(ResultsError, match=r"may be the newest 'before' \(its name cannot be read\) is unreadable"):
        store.find("before")


def test_a_deeply_nested_parquet_header_is_a_results_error_naming_its_file(
    store: DirectoryStore, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    record = store.save(_run("deep"))
    parquet = Path(record.location) / "0000.parquet"
    table = pq.read_table(parquet)
    header = json.loads(table.schema.metadata[b"pytest_crystallize"])
    header["provenance"]["versions"] = "@"
    raw = json.dumps(header).replace('"@"', DEEP).encode()
    pq.write_table(table.replace_schema_metadata({b"pytest_crystallize": raw}), parquet)
    _reseal(Path(record.location))
    before = _snapshot(store.runs_dir)
    expected = f"{parquet}: malformed Parquet result (nested more than 100 levels deep)"
    with pytest.raises(ResultsError) as info:
        store.result(store.find("deep"), NODE)
    assert str(info.value) == expected
    with pytest.raises(ResultsError) as info:
        ExperimentResult.from_parquet(parquet)
    assert str(info.value) == expected
    as_json = tmp_path / "result.json"
    as_json.write_text(_result().to_json().replace('"versions": {}', f'"versions": {DEEP}'))
    with pytest.raises(ResultsError, match=r"not a readable JSON result \(nested more than 100 levels deep\)"):
        ExperimentResult.from_json(as_json)
    _intact(store, before)


def test_a_run_nested_too_deeply_to_be_read_back_is_not_saved(store: DirectoryStore) -> None:
    deep: object = 1
    for _ in range(150):
        deep = {"k": deep}
    before = _snapshot(store.runs_dir)
    with pytest.raises(ResultsError, match="nest more than the 100 levels a saved run may have"):
        store.save(_run("deep", definition=deep))
    _intact(store, before)
    assert list((store.root / "staging").iterdir()) == []


def test_a_run_name_too_long_names_the_limit_and_its_length() -> None:
    with pytest.raises(ResultsError) as info:
        check_run_name("a" * 300)
    message = str(info.value)
    assert message.startswith(f"run name {'a' * 24!r}... is not allowed: it is too long (300 characters, at most 64)")
    assert len(message) < 250
    assert check_run_name("a" * 64) == "a" * 64
