"""The crystallize command line: list, show, compare (exit codes), export; errors on stderr."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pytest_crystallize import Experiment, ExperimentResult, Treatment, hypothesis
from pytest_crystallize.cli import main
from pytest_crystallize.core.runner import ExperimentRunner
from pytest_crystallize.core.store.definitions import definition_of, fingerprint
from pytest_crystallize.core.store.gate_specs import gate_specs
from pytest_crystallize.core.store.records import ExperimentRun, NewRun
from pytest_crystallize.core.store.stores import DirectoryStore

NODE = "test_demo.py::demo"


def _run_once(shift: float) -> tuple[ExperimentResult, Experiment]:
    @hypothesis(metric="acc", direction="maximize")
    def demo(ctx):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(ctx.seed)
        ctx.metrics.add("acc", rng.normal(0.9, 0.02) + ctx.get("bump", 0.0) + shift * rng.normal(1, 0.1))
        ctx.record("steps", 10.0, tags={"phase": "fit"})

    experiment = Experiment.define(demo, name="demo", replicates=15, seed=4, treatments=[Treatment("b", {"bump": 0.01})])
    return ExperimentRunner(experiment).run(), experiment


def _save(store: DirectoryStore, name: str, shift: float) -> str:
    result, experiment = _run_once(shift)
    definition = definition_of(experiment)
    specs = gate_specs(experiment.hypotheses, None, "demo")
    entry = ExperimentRun(NODE, result, definition, fingerprint(definition), {s.metric: s.to_dict() for s in specs})
    return store.save(NewRun((entry,), name=name)).id


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DirectoryStore:
    store = DirectoryStore(tmp_path / ".crystallize")
    _save(store, "main", 0.0)
    _save(store, "same", 0.0)
    _save(store, "worse", -0.03)
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")  # the store is found above the working directory
    monkeypatch.delenv("CRYSTALLIZE_STORAGE", raising=False)
    return store


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_list_shows_runs_oldest_first_and_warns_about_unreadable_ones(store: DirectoryStore) -> None:
    code, out, err = cli("list")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "created", "commit", "branch", "experiments", "failed"]
    assert [line.split()[1] for line in lines[1:]] == ["main", "same", "worse"]
    broken = store.find("same")
    (Path(broken.location) / "run.json").write_text("[]")
    code, out, err = cli("list", "--json")
    assert code == 2  # the readable runs are listed, but a run that cannot be read is an error
    assert [r["name"] for r in json.loads(out)] == ["main", "worse"]
    assert f"error: unreadable run: {broken.location}/run.json: not a pytest-crystallize run record" in err


def test_show_prints_the_record_and_each_experiment(store: DirectoryStore) -> None:
    code, out, _ = cli("show", "main")
    assert code == 0
    assert out.startswith(f"run {store.find('main').id} (main)\n")
    assert f"{NODE} (15 replicates, seed 4): passed" in out
    assert "gated metrics: acc (higher is better)" in out
    code, out, _ = cli("show", "--json")
    assert json.loads(out)["name"] == "worse"


def test_compare_exits_1_on_a_regression_and_0_otherwise(store: DirectoryStore) -> None:
    code, out, _ = cli("compare", "main", "worse")
    assert code == 1
    assert f"{NODE}: vs saved run {store.find('main').id} (main): 2 regressed -> gate FAILED" in out
    assert out.rstrip().endswith("2 regressed, 0 improved of 2 compared metric(s) in 1 experiment; 1 failed the gate")
    assert cli("compare", "main", "same")[0] == 0
    code, out, _ = cli("compare", "worse", "main", "--json")
    document = json.loads(out)
    assert code == 0
    assert document["failed"] is False
    assert {r["status"] for r in document["experiments"][0]["rows"]} == {"improved"}
    code, out, _ = cli("compare", "main", "worse", "--margin", "10%")
    assert code == 0
    assert "NO WORSE" in out
    code, out, _ = cli("compare", "main", "worse", "--margin", "0.031")  # the runs differ by about 0.0306
    assert code == 0
    assert "INCONCLUSIVE" in out
    assert "p no worse" in out
    assert cli("compare", "main", "worse", "--margin", "0.031", "--strict")[0] == 1


def test_errors_exit_2_with_a_message(store: DirectoryStore) -> None:
    for args, message in [
        (("compare", "nope"), "error: no saved run matches 'nope'"),
        (("compare", "main", "main"), "BASE and NEW are the same run"),
        (("compare", "main", "--margin", "x"), "--margin: the margin must be a number"),
        (("compare", "main", "--strict"), "--strict needs --margin > 0"),
        (("export", "main", "--format", "parquet"), "Parquet is binary: give an output file with -o PATH"),
        (("export", "main", "--experiment", "nope"), "has no experiment 'nope'"),
        (("--storage", "/nonexistent/store", "show"), "--storage /nonexistent/store: does not exist"),
        (("--storage", "/nonexistent/store", "list"), "--storage /nonexistent/store: does not exist"),
    ]:
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        assert err.startswith("crystallize: error: ")
        assert message in err, (args, err)
    record = store.find("main")
    (Path(record.location) / "0000.parquet").write_bytes(b"PAR1 garbage")
    code, _, err = cli("show", "main")
    assert code == 2
    assert f"{record.location}/0000.parquet: corrupt" in err
    with pytest.raises(SystemExit) as info:
        cli()
    assert info.value.code == 2


def test_export_to_csv_json_and_parquet(store: DirectoryStore, tmp_path: Path) -> None:
    code, out, _ = cli("export", "main")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["nodeid", "experiment", "condition", "replicate", "metric", "value", "tags"]
    assert len(frame) == 60
    assert set(frame["tags"].dropna()) == {'{"phase": "fit"}'}
    original = store.result(store.find("main"), NODE)
    acc = frame[(frame["metric"] == "acc") & (frame["condition"] == "b")]
    assert acc["value"].tolist() == pytest.approx(original.select("acc", "b")[1].tolist(), rel=1e-15)
    assert cli("export", "main", "--format", "parquet", "-o", str(tmp_path / "run.parquet"))[0] == 0
    parquet = pd.read_parquet(tmp_path / "run.parquet")
    assert parquet["value"].tolist() == pytest.approx(frame["value"].tolist(), rel=1e-15)
    assert parquet["nodeid"].unique().tolist() == [NODE]
    assert cli("export", "main", "--format", "json", "-o", str(tmp_path / "run.json"))[0] == 0
    document = json.loads((tmp_path / "run.json").read_text())
    assert ExperimentResult.from_dict(document["results"][NODE]) == original
    assert document["run"]["name"] == "main"


def test_python_m_and_the_console_script(store: DirectoryStore) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest_crystallize", "compare", "main", "worse"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "1 failed the gate" in done.stdout
    assert subprocess.run([sys.executable, "-m", "pytest_crystallize", "--help"], capture_output=True,
                          check=False).returncode == 0
    script = shutil.which("crystallize")
    if script is not None:
        assert subprocess.run([script, "list"], capture_output=True, check=False).returncode == 0


def _reseal(record_dir: Path, file: str) -> None:
    """Record the current checksum of ``file`` in run.json, as if it had been saved like that."""
    path = record_dir / "run.json"
    data = json.loads(path.read_text())
    for entry in data["experiments"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256((record_dir / file).read_bytes()).hexdigest()
    path.write_text(json.dumps(data))


def _rewrite_header(path: Path, change: Callable[[Any], Any]) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    header = json.loads(table.schema.metadata[b"pytest_crystallize"])
    pq.write_table(table.replace_schema_metadata({b"pytest_crystallize": json.dumps(change(header)).encode()}), path)


def _no_traceback(err: str) -> None:
    assert err.startswith("crystallize: error: ")
    assert "Traceback" not in err


def test_unreadable_input_exits_2_with_the_file_never_1_or_a_traceback(store: DirectoryStore) -> None:
    main_dir = Path(store.find("main").location)
    parquet = main_dir / "0000.parquet"
    original = parquet.read_bytes()
    parquet.write_bytes(original[:-20])
    code, out, err = cli("compare", "main", "worse")
    assert (code, out) == (2, "")
    _no_traceback(err)
    assert f"{parquet}: corrupt (its SHA-256 checksum differs" in err
    for change, message in [
        (lambda h: ["a", "list"], "not a pytest-crystallize result (its header is a list, not an object)"),
        (lambda h: {**h, "metrics": h["metrics"][:1]}, "column 'metric' holds values from 0 to 1, expected between "
                                                       "0 and 0"),
        (lambda h: {**h, "conditions": ["baseline"]}, "column 'condition' holds values from 0 to 1"),
    ]:
        parquet.write_bytes(original)
        _rewrite_header(parquet, change)
        _reseal(main_dir, "0000.parquet")  # the checksum matches: only the content is wrong
        for args in (("compare", "main", "worse"), ("compare", "worse", "main"), ("export", "main"),
                     ("export", "main", "--format", "json"), ("show", "main")):
            code, out, err = cli(*args)
            assert (code, out) == (2, ""), (args, out)
            _no_traceback(err)
            assert f"{parquet}: " in err
            assert message in err, (args, err)


def test_a_run_record_with_nan_or_wrong_types_is_refused_by_every_command(store: DirectoryStore) -> None:
    record = store.find("main")
    path = Path(record.location) / "run.json"
    data = json.loads(path.read_text())
    text = path.read_text().replace('"master_seed": 4', '"master_seed": NaN')
    assert text != path.read_text()
    path.write_text(text)
    for args in (("export", "main"), ("export", record.id, "--format", "json"), ("show", record.id),
                 ("compare", record.id, "worse")):
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        _no_traceback(err)
        assert f"{path}: not a readable run record (NaN is not valid in strict JSON)" in err
    code, out, err = cli("list")
    assert code == 2
    assert "error: unreadable run:" in err
    data["experiments"][0]["gate"] = {"acc": {"metric": "acc", "better": "sideways"}}
    path.write_text(json.dumps(data))
    code, _, err = cli("compare", record.id, "worse")
    assert code == 2
    _no_traceback(err)
    assert "gate of 'acc': better is 'sideways'" in err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\ncrystallize_storage = store/runs\n"),
        ("pyproject.toml", "[project]\nname = 'x'\n[tool.pytest.ini_options]\ncrystallize_storage = 'store/runs'\n"),
        ("tox.ini", "[tox]\nenvlist = py\n[pytest]\ncrystallize_storage = store/runs\n"),
        ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\ncrystallize_storage = store/runs\n"),
        ("pytest.toml", "[pytest]\ncrystallize_storage = 'store/runs'\n"),
    ],
)
def test_the_store_is_the_one_the_projects_pytest_config_names(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    project = tmp_path / "project"
    (project / "tests" / "deep").mkdir(parents=True)
    shutil.copytree(store.root, project / "store" / "runs")
    (project / ".crystallize").mkdir()  # a decoy: the config file says where the store is
    (project / name).write_text(text)
    (project / "tests" / "setup.cfg").write_text("[metadata]\nname = not pytest's\n")  # no [tool:pytest]: skipped
    monkeypatch.chdir(project / "tests" / "deep")
    code, out, err = cli("list")
    assert (code, err) == (0, "")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["main", "same", "worse"]
    assert cli("compare", "main", "worse")[0] == 1
    (project / name).write_text(text.replace("store/runs", "elsewhere"))
    code, out, _ = cli("list")
    assert code == 0
    assert out == f"no saved runs in {project / 'elsewhere'} (from crystallize_storage in {project / name})\n"


def test_a_config_file_without_the_setting_means_the_default_store_at_its_rootdir(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q\n")
    monkeypatch.chdir(tmp_path / "deep")
    (tmp_path / "deep" / ".crystallize").mkdir()  # nearer, but not where pytest would save
    code, out, _ = cli("list")
    assert code == 0
    assert len(out.splitlines()) == 4


DEEP = "[" * 100_000 + "]" * 100_000


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_deeply_nested_run_record_is_an_error_naming_it_in_every_command(store: DirectoryStore) -> None:
    record = store.find("main")
    path = Path(record.location) / "run.json"
    data = json.loads(path.read_text())
    data["options"]["deep"] = "@"
    path.write_text(json.dumps(data).replace('"@"', DEEP))
    before = _files(store.root)
    problem = f"{path}: not a readable run record (nested more than 100 levels deep)"
    code, out, err = cli("list")
    assert code == 2
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["same", "worse"]
    assert err == f"crystallize: error: unreadable run: {problem}\n"
    for args in (("show", record.id), ("show", str(path)), ("compare", record.id, "worse"),
                 ("compare", "worse", record.id), ("export", record.id), ("export", record.id, "--format", "json"),
                 ("list", "--json")):
        code, out, err = cli(*args)
        assert code == 2, args
        _no_traceback(err)
        assert problem in err, (args, err)
    assert _files(store.root) == before  # nothing repaired, moved or deleted
    assert cli("compare", "same", "worse")[0] == 1  # the other runs still work


def test_a_deeply_nested_parquet_header_is_an_error_naming_it_in_every_command(store: DirectoryStore) -> None:
    record = store.find("main")
    parquet = Path(record.location) / "0000.parquet"
    _rewrite_header(parquet, lambda h: {**h, "provenance": {**h["provenance"], "versions": "@"}})
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    raw = table.schema.metadata[b"pytest_crystallize"].replace(b'"@"', DEEP.encode())
    pq.write_table(table.replace_schema_metadata({b"pytest_crystallize": raw}), parquet)
    _reseal(Path(record.location), "0000.parquet")
    before = _files(store.root)
    for args in (("show", "main"), ("compare", "main", "worse"), ("compare", "worse", "main"), ("export", "main"),
                 ("export", "main", "--format", "json")):
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        _no_traceback(err)
        assert f"{parquet}: malformed Parquet result (nested more than 100 levels deep)" in err, (args, err)
    assert cli("list")[0] == 0  # the record itself is fine
    assert _files(store.root) == before


@pytest.mark.parametrize("shape", ["runs is a file", "runs is a link", "the store is a file"])
def test_a_store_of_the_wrong_shape_exits_2_naming_the_path(
    store: DirectoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    runs = store.runs_dir
    kept = tmp_path / "kept"
    store.root.rename(kept)
    if shape == "the store is a file":
        (tmp_path / "pytest.ini").write_text("[pytest]\n")  # so the CLI uses <rootdir>/.crystallize, as pytest would
        store.root.write_text("not a store")
        wrong, message = store.root, "is a file, not a directory, so it cannot be the store;"
    else:
        store.root.mkdir()
        if shape == "runs is a file":
            runs.write_text("not a directory")
            wrong, message = runs, "is a file, not a directory, so it cannot be the store's runs/"
        else:
            runs.symlink_to(kept / "runs")
            wrong, message = runs, "is a symbolic link"
    before = _files(kept)
    for args in (("list",), ("list", "--json"), ("show",), ("compare", "main", "worse"), ("export",)):
        code, out, err = cli(*args)
        assert (code, out) == (2, ""), args
        _no_traceback(err)
        assert err.startswith(f"crystallize: error: {wrong}: {message}"), (args, err)
    assert _files(kept) == before


def test_a_run_directory_without_its_record_is_an_error_naming_it(store: DirectoryStore) -> None:
    record = store.find("same")
    (Path(record.location) / "run.json").unlink()
    code, out, err = cli("list")
    assert code == 2
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["main", "worse"]
    assert err == f"crystallize: error: unreadable run: {record.location}/run.json: missing (not a saved run)\n"
    code, out, err = cli("show", record.id)
    assert (code, out) == (2, "")
    assert f"{record.location}/run.json: missing (not a saved run)" in err


def test_a_deeply_nested_project_config_is_an_error_naming_it(store: DirectoryStore, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = " + DEEP + "\n")
    code, out, err = cli("list")
    assert (code, out) == (2, "")
    assert err == f"crystallize: error: {tmp_path / 'pyproject.toml'}: cannot be read as TOML (nested too deeply to parse)\n"


def test_report_writes_a_saved_run_as_an_offline_html_page_with_its_figures(store: DirectoryStore, tmp_path: Path) -> None:
    code, out, err = cli("report", "main", "--html", str(tmp_path / "r" / "main.html"))
    assert (code, err) == (0, "")
    assert "wrote the HTML report of run" in out
    page = (tmp_path / "r" / "main.html").read_text(encoding="utf-8")
    assert f">{NODE}</h2>" in page
    assert 'data-plot="values:acc"' in page
    assert 'data-plot="forest:acc"' in page
    assert "<script" not in page
    assert "Compared with" not in page


def test_report_of_two_runs_shows_the_gate_s_view_of_the_newer_one(store: DirectoryStore, tmp_path: Path) -> None:
    code, _, err = cli("report", "main", "worse", "--html", str(tmp_path / "gate.html"))
    assert (code, err) == (0, "")  # a report, not a gate: compare is the command that fails
    page = (tmp_path / "gate.html").read_text(encoding="utf-8")
    worse, main_run = store.find("worse"), store.find("main")
    assert f"run {worse.id}" in page
    assert f"Compared with saved run {main_run.id}" in page
    assert "REGRESSED" in page
    assert 'data-plot="gate"' in page
    assert "gate FAILED" in page


def test_report_refuses_three_runs_and_a_bad_margin(store: DirectoryStore, tmp_path: Path) -> None:
    code, _, err = cli("report", "main", "same", "worse", "--html", str(tmp_path / "x.html"))
    assert code == 2
    assert "report takes RUN, or BASE NEW; got 3 runs" in err
    code, _, err = cli("report", "main", "worse", "--margin", "lots", "--html", str(tmp_path / "x.html"))
    assert code == 2
    assert "--margin" in err
    assert not (tmp_path / "x.html").exists()


def test_report_names_the_html_file_it_cannot_write_and_how_to_fix_it(store: DirectoryStore, tmp_path: Path) -> None:
    code, out, err = cli("report", "main", "--html", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (f"crystallize: error: --html {tmp_path} is a directory; give a file in it, "
                   f"e.g. --html {tmp_path / 'report.html'}\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = cli("report", "main", "--html", str(blocker / "main.html"))
    assert code == 2
    assert err.startswith(f"crystallize: error: could not write the HTML report {blocker / 'main.html'}: ")
    assert err.endswith("; give --html a path you can write\n")
    assert blocker.read_text() == "not a directory"


def test_report_of_a_run_with_a_corrupt_experiment_reports_the_others_and_names_it(
    store: DirectoryStore, tmp_path: Path,
) -> None:
    result, experiment = _run_once(0.0)
    definition = definition_of(experiment)
    entries = tuple(ExperimentRun(node, result, definition, fingerprint(definition))
                    for node in ("test_a.py::first", "test_b.py::second", "test_c.py::third"))
    record = store.find(store.save(NewRun(entries, name="three")).id)
    broken = sorted(Path(record.location).glob("*.parquet"))[0]
    broken.write_bytes(broken.read_bytes()[:-20])
    code, out, err = cli("report", record.id, "--html", str(tmp_path / "three.html"))
    assert code == 2  # the page is written, but the run is not whole: a script must notice
    _no_traceback(err)
    page = (tmp_path / "three.html").read_text(encoding="utf-8")
    assert ">test_b.py::second</h2>" in page
    assert ">test_c.py::third</h2>" in page
    assert ">test_a.py::first</h2>" not in page
    assert "wrote the HTML report" in out
    assert err.startswith(f"crystallize: error: experiment 'test_a.py::first' of run {record.id} is left out "
                          f"of the report: {broken}: corrupt")
    assert "run it again and save a new run (pytest --crystallize --crystallize-save)" in err
