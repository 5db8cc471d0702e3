"""The run store: saving, listing, finding, loading; corrupt files; atomic and concurrent saves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_crystallize import ExperimentResult, Provenance, ResultsError
from pytest_crystallize.core.environment import git_info, machine_info
from pytest_crystallize.core.runs import ExperimentRun, NewRun, check_run_name
from pytest_crystallize.core.store import DirectoryStore, MemoryStore, RunStore, write_atomic


def make_result(name: str = "exp", shift: float = 0.0, n: int = 8, seed: int = 1) -> ExperimentResult:
    conditions = ("baseline", "t")
    rng = np.random.default_rng(seed)
    codes = np.repeat([0, 1], n)
    values = rng.normal(size=2 * n) + shift
    return ExperimentResult(
        experiment=name, conditions=conditions, metrics=("score",), condition_codes=codes,
        replicates=np.tile(np.arange(n), 2), metric_codes=np.zeros(2 * n), values=values,
        tags=(None,) * (2 * n), errors=(), verdicts=(),
        provenance=Provenance(experiment=name, master_seed=seed, replicates=n, conditions=conditions,
                              treatments={"t": {}}, alpha=0.05, correction="holm",
                              started_at="2025-01-01T00:00:00+00:00", duration_s=0.1),
    )


def new_run(name: str | None = None, shift: float = 0.0) -> NewRun:
    entries = tuple(
        ExperimentRun(nodeid=f"test_x.py::exp_{i}", result=make_result(f"exp_{i}", shift), definition={"d": i},
                      fingerprint=f"f{i}", gate={"score": {"metric": "score", "better": "higher"}})
        for i in range(2)
    )
    return NewRun(experiments=entries, name=name, machine=machine_info(), versions={"numpy": np.__version__},
                  options={"args": ["--crystallize"]})


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / ".crystallize")


def test_a_saved_run_lists_finds_and_loads_value_for_value(store: DirectoryStore) -> None:
    record = store.save(new_run("main"))
    assert Path(record.location) == store.runs_dir / record.id
    assert sorted(p.name for p in Path(record.location).iterdir()) == ["0000.parquet", "0001.parquet", "run.json"]
    listing = store.listing()
    assert [r.id for r in listing.runs] == [record.id]
    assert listing.problems == ()
    for reference in ("latest", "main", record.id, record.id[:12], str(Path(record.location)),
                      str(Path(record.location) / "run.json")):
        assert store.find(reference).id == record.id, reference
    loaded = store.result(record, "test_x.py::exp_1")
    assert loaded == make_result("exp_1")
    saved = store.find("main")
    assert saved.experiments["test_x.py::exp_0"].master_seed == 1
    assert saved.experiments["test_x.py::exp_0"].gate == {"score": {"metric": "score", "better": "higher"}}
    assert saved.machine["python"] == sys.version.split()[0]
    assert saved.options == {"args": ["--crystallize"]}


def test_names_pick_their_newest_run_and_latest_the_newest_of_all(store: DirectoryStore) -> None:
    first = store.save(new_run("main"))
    second = store.save(new_run("main"))
    other = store.save(new_run("feature"))
    assert store.find("main").id == second.id != first.id
    assert store.find("latest").id == other.id
    assert [r.id for r in store.listing().runs] == [first.id, second.id, other.id]


def test_unknown_references_and_bad_names_say_what_to_do(store: DirectoryStore) -> None:
    with pytest.raises(ResultsError, match=r"no saved run matches 'main' in .*no runs are saved there.*--crystallize-save"):
        store.find("main")
    store.save(new_run())
    with pytest.raises(ResultsError, match=r"'nope'.*1 runs, newest"):
        store.find("nope")
    for bad in ("latest", "with space", "../up", "-dash", "x" * 65):
        with pytest.raises(ResultsError, match=r"run name .* is not allowed"):
            check_run_name(bad)
    with pytest.raises(ResultsError, match="not allowed"):
        store.save(new_run("bad name"))
    assert len(store.listing().runs) == 1  # nothing half-saved
    assert list((store.root / "staging").iterdir()) == []


def test_a_corrupt_run_is_reported_and_never_breaks_listing_the_others(store: DirectoryStore) -> None:
    good = store.save(new_run("good"))
    broken = [store.save(new_run(f"bad{i}")) for i in range(4)]
    (Path(broken[0].location) / "run.json").write_text("{ not json")
    (Path(broken[1].location) / "run.json").unlink()
    (Path(broken[2].location) / "run.json").write_text(json.dumps({"format": "something-else"}))
    record = json.loads((Path(broken[3].location) / "run.json").read_text())
    record["version"] = 99
    (Path(broken[3].location) / "run.json").write_text(json.dumps(record))
    listing = store.listing()
    assert [r.id for r in listing.runs] == [good.id]
    problems = "\n".join(listing.problems)
    assert f"{broken[0].id}/run.json: not a readable run record" in problems
    assert f"{broken[1].id}/run.json: missing (not a saved run)" in problems
    assert "not a pytest-crystallize run record (format 'something-else')" in problems
    assert "run record version 99 is not supported" in problems
    with pytest.raises(ResultsError, match=r"run\.json: not a readable run record"):
        store.find(broken[0].location)
    record = json.loads((Path(good.location) / "run.json").read_text())
    record["experiments"][0]["file"] = "../../elsewhere.parquet"
    (Path(good.location) / "run.json").write_text(json.dumps(record))
    with pytest.raises(ResultsError, match=r"malformed run record .*'../../elsewhere.parquet' is not a plain file name"):
        store.find("good")


def test_missing_or_tampered_result_files_are_named(store: DirectoryStore) -> None:
    record = store.save(new_run())
    parquet = Path(record.location) / "0000.parquet"
    data = bytearray(parquet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    parquet.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match=r"0000\.parquet: corrupt \(its SHA-256 checksum differs"):
        store.result(record, "test_x.py::exp_0")
    (Path(record.location) / "0001.parquet").unlink()
    with pytest.raises(ResultsError, match=r"0001\.parquet: missing \(run .* lists it for 'test_x.py::exp_1'\)"):
        store.result(record, "test_x.py::exp_1")
    with pytest.raises(ResultsError, match="has no experiment 'nope'"):
        store.result(record, "nope")
    with pytest.raises(ResultsError, match="no such run directory"):
        store.find(str(store.runs_dir / "missing"))


def test_a_save_that_fails_midway_leaves_no_run_behind(store: DirectoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save(new_run("before"))

    def crash(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        store.save(new_run("interrupted"))
    monkeypatch.undo()
    assert [r.name for r in store.listing().runs] == ["before"]
    assert list((store.root / "staging").iterdir()) == []
    # A save abandoned by a killed process (its staging directory) is never read.
    (store.root / "staging" / "20250101-000000-000000-deadbeef.cafe").mkdir()
    assert [r.name for r in store.listing().runs] == ["before"]


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


CONCURRENT_SAVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from test_run_store import new_run
    from pytest_crystallize.core.store import DirectoryStore

    store = DirectoryStore(sys.argv[1])
    for i in range(3):
        store.save(new_run(f"proc{sys.argv[3]}"))
""")


def test_several_processes_saving_at_once_lose_nothing(store: DirectoryStore, tmp_path: Path) -> None:
    script = tmp_path / "saver.py"
    script.write_text(CONCURRENT_SAVER)
    here = str(Path(__file__).parent)
    processes = [
        subprocess.Popen([sys.executable, str(script), str(store.root), here, str(k)]) for k in range(4)
    ]
    assert [p.wait(timeout=60) for p in processes] == [0] * 4
    listing = store.listing()
    assert listing.problems == ()
    assert len(listing.runs) == 12
    assert len({r.id for r in listing.runs}) == 12
    assert sorted({r.name for r in listing.runs}) == [f"proc{k}" for k in range(4)]
    for record in listing.runs:
        assert store.result(record, "test_x.py::exp_0") == make_result("exp_0")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_commit_branch_and_dirty_flag(tmp_path: Path) -> None:
    assert git_info(tmp_path) is None
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for args in (["init", "-q", "-b", "trunk"], ["add", "."], ["commit", "-q", "-m", "one"]):
        (tmp_path / "f.txt").write_text("one")
        subprocess.run(["git", *args], cwd=tmp_path, check=True, env=env)
    info = git_info(tmp_path)
    assert info is not None
    assert len(info.commit) == 40
    assert (info.branch, info.dirty) == ("trunk", False)
    (tmp_path / "f.txt").write_text("two")
    info = git_info(tmp_path)
    assert info is not None
    assert info.dirty
    assert info.short.endswith("+dirty")


def test_the_memory_store_follows_the_same_protocol() -> None:
    memory: RunStore = MemoryStore()
    record = memory.save(new_run("m"))
    assert memory.find("m").id == record.id == memory.find("latest").id
    assert memory.result(record, "test_x.py::exp_0") == make_result("exp_0")
    assert memory.listing().runs == (record,)
