"""The journal: finished replicates survive an interruption, and a resumed run is the uninterrupted one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import (
    AsyncExecution,
    FrozenContext,
    ParallelExecution,
    SharedDataWarning,
    Treatment,
    data_source,
    hypothesis,
    run_experiment,
)
from pytest_crystallize.core.store.journal import JOURNAL_DIR

STOP: dict[str, int | None] = {"at": None}


def _body(ctx: FrozenContext) -> None:
    if STOP["at"] is not None and ctx.replicate == STOP["at"] and ctx.condition == "up":
        raise KeyboardInterrupt
    ctx.metrics.add("x", float(ctx.rng.normal(ctx.get("mu"))))
    ctx.record("draw", ctx.replicate % 3, tags={"fold": str(ctx.replicate % 2)})


@hypothesis(metric="x", direction="maximize")
def _noisy(ctx: FrozenContext) -> None:
    _body(ctx)


@hypothesis(metric="x", direction="maximize")
async def _noisy_async(ctx: FrozenContext) -> None:
    await asyncio.sleep(0)
    _body(ctx)


OPTIONS: dict[str, Any] = {"replicates": 30, "params": {"mu": 0.0}, "treatments": [Treatment("up", {"mu": 0.8})]}


def _same(a: Any, b: Any) -> None:
    """Every value, tag, code and verdict identical: what a user compares."""
    assert a.metrics == b.metrics
    assert a.conditions == b.conditions
    for name in ("values", "replicates", "condition_codes", "metric_codes"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.tags == b.tags
    assert [(v.treatment, v.p_value, v.holds) for v in a.verdicts] == [(v.treatment, v.p_value, v.holds) for v in b.verdicts]


def _journal_parts(store: Path) -> list[Path]:
    return sorted((store / JOURNAL_DIR).rglob("part-*.npz"))


@pytest.mark.parametrize(
    ("function", "plugins"),
    [
        (_noisy, []),
        (_noisy, [ParallelExecution(2, kind="thread")]),
        (_noisy, [ParallelExecution()]),  # auto, too small for processes: the rest continues the probe's batch
        (_noisy_async, [AsyncExecution(4)]),
    ],
    ids=["serial", "threads", "processes-run-serially", "async"],
)
def test_a_resumed_run_is_the_uninterrupted_one_value_for_value(
    tmp_path: Path, function: Any, plugins: list[object]
) -> None:
    whole = run_experiment(function, plugins=plugins, **OPTIONS)
    STOP["at"] = 17
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(function, plugins=plugins, journal=tmp_path, **OPTIONS)
    finally:
        STOP["at"] = None
    assert _journal_parts(tmp_path), "the finished replicates were not journaled"
    resumed = run_experiment(function, plugins=plugins, journal=tmp_path, resume=True, **OPTIONS)
    _same(resumed, whole)
    assert 0 < (resumed.provenance.resumed or 0) < 2 * OPTIONS["replicates"]
    assert not _journal_parts(tmp_path), "a finished run leaves its journal behind"


def _interrupted(tmp_path: Path, **options: Any) -> None:
    STOP["at"] = 17
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_noisy, journal=tmp_path, **{**OPTIONS, **options})
    finally:
        STOP["at"] = None


def test_a_sequential_run_resumes_to_the_same_looks_and_verdicts(tmp_path: Path) -> None:
    options = {"replicates": "auto", "max_replicates": 60, "looks": 3}
    whole = run_experiment(_noisy, **{**OPTIONS, **options})
    _interrupted(tmp_path, **options)
    resumed = run_experiment(_noisy, journal=tmp_path, resume=True, **{**OPTIONS, **options})
    _same(resumed, whole)
    assert resumed.provenance.looks_taken == whole.provenance.looks_taken


def test_a_changed_definition_discards_the_journal_and_says_so(tmp_path: Path) -> None:
    _interrupted(tmp_path)
    changed = {**OPTIONS, "treatments": [Treatment("up", {"mu": 2.0})]}
    fresh = run_experiment(_noisy, **changed)
    resumed = run_experiment(_noisy, journal=tmp_path, resume=True, **changed)
    _same(resumed, fresh)
    assert resumed.provenance.resumed == 0
    assert any("different definition or code" in note for note in resumed.provenance.journal_notes)


def test_a_changed_seed_discards_the_journal(tmp_path: Path) -> None:
    _interrupted(tmp_path)
    resumed = run_experiment(_noisy, journal=tmp_path, resume=True, **{**OPTIONS, "seed": 7})
    _same(resumed, run_experiment(_noisy, **{**OPTIONS, "seed": 7}))
    assert resumed.provenance.resumed == 0


def test_a_corrupt_part_is_discarded_with_a_note_and_its_replicates_run_again(tmp_path: Path) -> None:
    whole = run_experiment(_noisy, **OPTIONS)
    _interrupted(tmp_path)
    (part,) = _journal_parts(tmp_path)
    part.write_bytes(part.read_bytes()[:40])
    resumed = run_experiment(_noisy, journal=tmp_path, resume=True, **OPTIONS)
    _same(resumed, whole)
    assert resumed.provenance.resumed == 0
    assert any("could not be read" in note for note in resumed.provenance.journal_notes)


def test_without_resume_a_run_starts_its_journal_afresh(tmp_path: Path) -> None:
    _interrupted(tmp_path)
    result = run_experiment(_noisy, journal=tmp_path, **OPTIONS)
    assert result.provenance.resumed is None
    assert not _journal_parts(tmp_path)


def test_a_store_that_cannot_hold_a_journal_never_stops_the_run(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the user's file")
    store = tmp_path / "store"
    store.mkdir()
    (store / JOURNAL_DIR).symlink_to(outside)
    result = run_experiment(_noisy, journal=store, **OPTIONS)
    assert result.passed
    assert any("symbolic link" in note and "cannot be resumed" in note for note in result.provenance.journal_notes)
    assert [p.name for p in outside.iterdir()] == ["keep.txt"]


def test_resume_without_a_journal_is_a_clear_error() -> None:
    from pytest_crystallize import ConfigurationError

    with pytest.raises(ConfigurationError, match="resume=True needs journal="):
        run_experiment(_noisy, resume=True, **OPTIONS)


KILLED = """
    import os, sys
    from pytest_crystallize import ParallelExecution, Treatment, hypothesis, run_experiment

    def experiment(ctx):
        with open(sys.argv[2], "a") as log:
            log.write(f"{ctx.condition} {ctx.replicate}\\n")
        if os.environ.get("KILL") and ctx.replicate == 24 and ctx.condition == "up":
            os.killpg(os.getpgid(0), 9)  # a killed CI job: the whole process group
        if os.environ.get("KILL"):
            import time; time.sleep(0.03)  # past the journal's flush interval before the kill
        ctx.metrics.add("x", float(ctx.rng.normal(ctx.get("mu"))))

    experiment = hypothesis(metric="x", direction="maximize")(experiment)
    result = run_experiment(
        experiment, replicates=30, params={"mu": 0.0}, treatments=[Treatment("up", {"mu": 0.8})],
        journal=sys.argv[1], resume=bool(os.environ.get("RESUME")),
        plugins=[ParallelExecution(2, kind="process")] if PROCESS else [],
    )
    print(repr(result.values.tolist()), result.provenance.resumed)
"""


@pytest.mark.parametrize("process", [False, True], ids=["serial", "process-workers"])
def test_a_killed_run_loses_at_most_the_last_moments(tmp_path: Path, process: bool) -> None:
    """SIGKILL leaves no chance to clean up: the journal was written as replicates finished."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILLED).replace("PROCESS", str(process)))
    log = tmp_path / "calls.log"
    store = tmp_path / "store"

    def run(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(store), str(log)], capture_output=True, text=True, timeout=120,
            env={**os.environ, **env}, check=False, start_new_session=True,
        )

    killed = run(KILL="1")
    assert killed.returncode != 0
    assert _journal_parts(store), killed.stderr
    log.write_text("")
    resumed = run(RESUME="1")
    assert resumed.returncode == 0, resumed.stderr
    whole = run()
    values, kept = resumed.stdout.split()[:-1], int(resumed.stdout.split()[-1])
    assert " ".join(values) == " ".join(whole.stdout.split()[:-1])
    ran_again = len(log.read_text().splitlines()) - 60  # the uninterrupted run's 60 calls came last
    assert kept > 0
    assert ran_again == 60 - kept


class _Planted:
    """Unpickling this creates a file: proof that a planted part was never unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def test_a_planted_part_that_needs_pickle_is_never_unpickled(tmp_path: Path) -> None:
    whole = run_experiment(_noisy, **OPTIONS)
    _interrupted(tmp_path)
    (part,) = _journal_parts(tmp_path)
    proof = tmp_path / "unpickled"
    planted = part.with_name("part-1-1-deadbeef.npz")
    np.savez(planted, header=np.array([_Planted(str(proof))], dtype=object))
    resumed = run_experiment(_noisy, journal=tmp_path, resume=True, **OPTIONS)
    assert not proof.exists()
    _same(resumed, whole)
    assert any("part-1-1-deadbeef.npz could not be read" in note for note in resumed.provenance.journal_notes)


@data_source
def _whole_data(ctx: FrozenContext) -> Any:
    return np.arange(64.0)  # every replicate the same data: the shared-data check notices


@hypothesis(metric="x", direction="maximize")
def _on_shared_data(whole: Any, ctx: FrozenContext) -> None:
    _body(ctx)


def test_a_resumed_run_warns_about_shared_data_as_the_uninterrupted_one_does(tmp_path: Path) -> None:
    # The data digests of journaled replicates come back with them: a run resumed from
    # nearly all its replicates still notices that they shared one data set.
    options = {**OPTIONS, "datasources": {"whole": _whole_data}}
    with pytest.warns(SharedDataWarning):
        whole = run_experiment(_on_shared_data, **options)
    STOP["at"] = 28
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_on_shared_data, journal=tmp_path, **options)
    finally:
        STOP["at"] = None
    with pytest.warns(SharedDataWarning):
        resumed = run_experiment(_on_shared_data, journal=tmp_path, resume=True, **options)
    assert (resumed.provenance.resumed or 0) >= 56
    assert resumed.provenance.shared_data == whole.provenance.shared_data
    assert "to 30 of 30 replicates" in whole.provenance.shared_data[0]


def test_each_journal_part_holds_only_the_values_of_its_own_tasks(tmp_path: Path) -> None:
    # ParallelExecution() on trivial work runs the rest serially, continuing the probe's batch: the rest's
    # part must not repeat the probe's values (a resumed run would ignore them, but the parts would grow).
    STOP["at"] = 17
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_noisy, plugins=[ParallelExecution()], journal=tmp_path, **OPTIONS)
    finally:
        STOP["at"] = None
    parts = _journal_parts(tmp_path)
    assert len(parts) >= 2  # the probe's part, then the rest's
    for part in parts:
        with np.load(part) as data:
            tasks = {tuple(task) for task in json.loads(data["header"].tobytes())["tasks"]}
            values_of = set(zip(data["condition"].tolist(), data["replicate"].tolist(), strict=True))
        assert values_of <= tasks, part.name
