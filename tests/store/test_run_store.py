"""The run store: saving, listing, finding, loading; corrupt files; atomic and concurrent saves."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pytest_crystallize import ExperimentResult, Provenance, ResultsError
from pytest_crystallize.core.environment import git_info, machine_info
from pytest_crystallize.core.store.records import ExperimentRun, NewRun, check_run_name
from pytest_crystallize.core.store.stores import DirectoryStore, MemoryStore, RunStore, write_atomic


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
    with pytest.raises(ResultsError, match=r"'nope'.*1 run, newest"):
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


def test_a_result_file_of_several_megabytes_is_checksummed_whole(store: DirectoryStore) -> None:
    big = make_result("big", n=200_000)  # random float64 values: ~3 MB of Parquet, checksummed a block at a time
    run = NewRun(experiments=(ExperimentRun(nodeid="test_x.py::big", result=big, definition={}, fingerprint="f",
                                            gate={}),), machine=machine_info())
    record = store.save(run)
    parquet = Path(record.location) / "0000.parquet"
    assert parquet.stat().st_size > 2 * 2**20
    assert record.experiments["test_x.py::big"].sha256 == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert store.result(record, "test_x.py::big") == big


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
    from pytest_crystallize.core.store.stores import DirectoryStore

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


def test_latest_and_names_never_skip_a_corrupt_newest_run(store: DirectoryStore) -> None:
    old_main = store.save(new_run("main"))
    feature = store.save(new_run("feature"))
    new_main = store.save(new_run("main"))
    record_file = Path(new_main.location) / "run.json"
    data = json.loads(record_file.read_text())
    data["experiments"][0]["master_seed"] = "three"  # still shows its name
    record_file.write_text(json.dumps(data))
    for reference in ("latest", "main"):
        with pytest.raises(ResultsError) as info:
            store.find(reference)
        message = str(info.value)
        assert f"the newest run matching {reference!r} cannot be read: {record_file}: malformed run record" in message
        assert "master_seed is 'three', expected an integer >= 0" in message
        assert "Delete or repair that run, or name another run (e.g. by its id)" in message
    assert store.find("feature").id == feature.id  # another name is not affected
    assert store.find(old_main.id).id == old_main.id  # an older run by id still works
    for reference in (new_main.id, new_main.id[:-3]):  # by id or unique id prefix: an error naming the file
        with pytest.raises(ResultsError, match=rf"run {new_main.id} in .* cannot be read: .*master_seed"):
            store.find(reference)
    assert store.find(feature.id[:-3]).id == feature.id
    record_file.write_text("{ garbage")  # its name cannot be read any more: it may be any name's newest
    with pytest.raises(ResultsError, match=r"a saved run that may be the newest 'feature' \(its name cannot be read\)"):
        store.find("feature")
    shutil.rmtree(new_main.location)
    (store.runs_dir / "zz-not-a-run").mkdir()  # no time to be newer by: listed as a problem, never in the way
    assert store.find("latest").id == feature.id
    assert any("zz-not-a-run" in problem for problem in store.listing().problems)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("master_seed", float("nan"), "NaN is not valid in strict JSON"),
        ("master_seed", 1.5, "master_seed is 1.5, expected an integer >= 0"),
        ("replicates", -1, "replicates is -1, expected an integer >= 0"),
        ("passed", "yes", "passed is 'yes', expected true or false"),
        ("sha256", None, "sha256 is None, expected a string"),
        ("gate", {"score": {"metric": "score", "better": "up"}}, "better is 'up'"),
        ("gate", {"score": [1]}, "expected a gate spec of that metric"),
        ("definition", {"conditions": "baseline"}, "definition: conditions is 'baseline'"),
    ],
)
def test_malformed_record_fields_are_refused_naming_the_field(
    store: DirectoryStore, field: str, value: object, message: str
) -> None:
    record = store.save(new_run("main"))
    path = Path(record.location) / "run.json"
    data = json.loads(path.read_text())
    data["experiments"][0][field] = value
    path.write_text(json.dumps(data))  # json.dumps writes NaN unless told not to
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        store.read_record(Path(record.location))
    assert str(path) in str(info.value)
    assert store.listing().runs == ()


def _rewrite_header(path: Path, change: object) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    header = json.loads(table.schema.metadata[b"pytest_crystallize"])
    header = change(header) if callable(change) else change
    pq.write_table(table.replace_schema_metadata({b"pytest_crystallize": json.dumps(header).encode()}), path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["a", "list"], "not a pytest-crystallize result (its header is a list, not an object)"),
        (lambda h: {**h, "conditions": ["baseline"]}, "column 'condition' holds values from 0 to 1, expected between "
                                                        "0 and 0"),
        (lambda h: {**h, "metrics": []}, "column 'metric' holds values from 0 to 0, expected between"),
        (lambda h: {**h, "provenance": {**h["provenance"], "master_seed": "x"}},
         "Provenance.master_seed is 'x', expected int"),
        (lambda h: {**h, "provenance": [1]}, "malformed result header"),
        (lambda h: {**h, "conditions": ["baseline", 3]}, "conditions must be distinct strings"),
        (lambda h: {**h, "errors": [{"condition": "t", "replicate": "one", "error_type": "E", "message": "m",
                                     "traceback": ""}]}, "ReplicateError.replicate is 'one', expected int"),
    ],
)
def test_a_result_file_with_a_malformed_header_is_refused_naming_it(
    tmp_path: Path, change: object, message: str
) -> None:
    path = tmp_path / "r.parquet"
    make_result().to_parquet(path)
    _rewrite_header(path, change)
    with pytest.raises(ResultsError, match=re.escape(message)) as info:
        ExperimentResult.from_parquet(path)
    assert str(path) in str(info.value)


def test_result_records_with_wrong_types_or_codes_are_refused() -> None:
    data = make_result().to_dict()
    for column, values, message in [
        ("condition", [0.5] * 16, "column 'condition' holds float64 values, expected integers"),
        ("metric", [3] * 16, "column 'metric' holds values from 3 to 3, expected between 0 and 0"),
        ("replicate", [-1] * 16, "column 'replicate' holds values from -1 to -1, expected >= 0"),
        ("tags", ["not json"] * 16, "tags must be JSON object text or null"),
        ("value", [True] * 16, "value True is not a number"),
    ]:
        broken = {**data, "records": {**data["records"], column: values}}
        with pytest.raises(ResultsError, match=re.escape(message)):
            ExperimentResult.from_dict(broken, source="here")
