"""Backends that choose well: trivial work runs serially and says so, real work goes to the pool."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_crystallize import (
    AsyncExecution,
    ConfigurationError,
    FrozenContext,
    ParallelExecution,
    SharedDataWarning,
    Treatment,
    data_source,
    hypothesis,
    run_experiment,
)
from pytest_crystallize.plugins import sizing
from pytest_crystallize.plugins.execution import available_cpus
from pytest_crystallize.plugins.sizing import chunk_size

TWO_CPUS = pytest.mark.skipif(available_cpus() < 2, reason="a pool gains nothing on one CPU")


def _where(ctx: FrozenContext, seconds: float = 0.0, pids: str | None = None) -> None:
    if seconds:
        time.sleep(seconds)
    if pids is not None:
        Path(pids, f"{os.getpid()}-{threading.get_ident()}").touch()
    ctx.metrics.add("v", ctx.rng.normal())


def _options(**extra: Any) -> dict[str, Any]:
    return {"name": "sized", "seed": 6, "treatments": [Treatment("t", {})], **extra}


def _processes(directory: Path) -> set[int]:
    return {int(p.name.split("-")[0]) for p in directory.iterdir()}


def test_trivial_replicates_run_serially_here_and_the_note_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The decision, not the calibration: on a loaded machine even trivial tasks may measure slow.
    monkeypatch.setattr(sizing, "PROCESS_POOL_SECONDS", 10.0)
    result = run_experiment(_where, replicates=300, plugins=[ParallelExecution()],
                            **_options(arguments={"pids": str(tmp_path)}))
    assert _processes(tmp_path) == {os.getpid()}
    [note] = result.provenance.execution
    assert note.startswith("ParallelExecution: the 600 replicate tasks ran serially: about ")
    assert "too little to gain from" in note
    serial = run_experiment(_where, replicates=300, **_options())
    assert result.values.tolist() == serial.values.tolist()


def test_probing_stops_once_running_the_rest_serially_is_certain() -> None:
    # Each probe step is a batch of its own; once even the slowest step measured says "serial", more cost only that.
    steps: list[int] = []

    class Counting:
        def __call__(self, tasks: Any) -> Any:
            steps.append(len(tasks))
            time.sleep(0.001 * len(tasks))  # 1 ms a task
            from pytest_crystallize.core.tasks import ReplicateBatch

            return ReplicateBatch()

    tasks: list[Any] = list(range(1000))
    certain = sizing.probe(Counting(), tasks, most=500, serial_below=10.0)  # 1 ms x 999 left < 10 s
    assert steps == [1]
    assert certain.done == 1
    steps.clear()
    uncertain = sizing.probe(Counting(), tasks, most=500, serial_below=0.1)  # 1 ms x 999 left > 0.1 s
    assert len(steps) >= 2
    assert uncertain.done == sum(steps)


@TWO_CPUS
def test_replicates_worth_a_pool_go_to_worker_processes_in_chunks(tmp_path: Path) -> None:
    result = run_experiment(_where, replicates=30, plugins=[ParallelExecution()],
                            **_options(arguments={"pids": str(tmp_path), "seconds": 0.03}))
    workers = _processes(tmp_path) - {os.getpid()}
    # Both workers, unless the second started after the first had run them all (a busy machine).
    assert len(workers) in (1, 2)
    [note] = result.provenance.execution
    assert "in chunks of up to 1 on 2 worker processes" in note  # 30 ms each: a task is worth a chunk
    serial = run_experiment(_where, replicates=30, **_options())
    assert result.values.tolist() == serial.values.tolist()


def _waits_for_a_worker(ctx: FrozenContext, parent: int, seen: str, work: float = 0.05) -> None:
    time.sleep(work)  # enough work that the first task says a pool may pay
    if os.getpid() != parent:
        Path(seen, f"worker-{os.getpid()}").touch()
    elif ctx.replicate > 0 or ctx.condition != "baseline":  # the probe's second step, here
        deadline = time.monotonic() + 10  # a bound, not a measure: the workers should come at once
        while not any(Path(seen).iterdir()) and time.monotonic() < deadline:
            time.sleep(0.005)
        Path(seen, f"parent-saw-{bool(any(Path(seen).iterdir()))}-{ctx.replicate}-{ctx.condition}").touch()
    ctx.metrics.add("v", ctx.rng.normal())


@TWO_CPUS
# 15 ms: at least EARLY_START_SECONDS, under PROBE_SECONDS (and enough replicates that a pool pays).
@pytest.mark.parametrize(("work", "replicates"), [(0.05, 6), (0.015, 20)])
def test_under_fork_workers_run_tasks_while_the_probe_checks_its_first_measure(
    tmp_path: Path, work: float, replicates: int,
) -> None:
    # The second probe step runs here, beside the workers, not before they start: the CPUs never
    # wait for the probe. (Under the old order the step would wait here for its whole bound.)
    seen = tmp_path / "seen"
    seen.mkdir()
    backend = ParallelExecution(start_method="fork")
    arguments = {"parent": os.getpid(), "seen": str(seen), "work": work}
    result = run_experiment(
        _waits_for_a_worker, replicates=replicates, plugins=[backend], **_options(arguments=arguments),
    )
    marks = {p.name for p in seen.iterdir()}
    assert {m for m in marks if m.startswith("parent-")} == {"parent-saw-True-0-t", "parent-saw-True-1-baseline"}
    [note] = result.provenance.execution
    assert "the first 3 measured here" in note
    # Each worker's first chunk outlasts the second step's 2 tasks, as nothing sends it another meanwhile.
    assert "the first 3 to each while the probe's second step ran here" in note
    assert result.values.tolist() == run_experiment(
        _waits_for_a_worker, replicates=replicates, **_options(arguments=arguments),
    ).values.tolist()


def test_async_execution_runs_quick_sync_replicates_serially_after_a_first_wave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sizing, "THREAD_POOL_SECONDS", 10.0)  # the decision, not the calibration (see above)
    result = run_experiment(_where, replicates=200, plugins=[AsyncExecution()],
                            **_options(arguments={"pids": str(tmp_path)}))
    [note] = result.provenance.execution
    assert "replicate tasks ran serially" in note
    threads = {p.name for p in tmp_path.iterdir()}
    assert len(threads) <= AsyncExecution().limit + 1  # the first wave's threads and this one, not a task each
    assert result.values.tolist() == run_experiment(_where, replicates=200, **_options()).values.tolist()


def test_async_execution_overlaps_sync_replicates_that_wait() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def waits(ctx: FrozenContext) -> None:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        ctx.metrics.add("v", 1.0)

    result = run_experiment(waits, replicates=40, plugins=[AsyncExecution(max_workers=8)])
    assert state["peak"] == 8
    assert "in chunks of up to 1 on 8 threads" in result.provenance.execution[0]


def test_verbose_summary_says_how_the_replicates_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_quick="""
        import pytest
        from pytest_crystallize import ParallelExecution

        @pytest.mark.experiment(replicates=50, plugins=[ParallelExecution()])
        def experiment_quick(ctx):
            ctx.metrics.add("v", ctx.rng.normal())
    """)
    verbose = pytester.runpytest("--crystallize", "-p", "no:xdist", "-v")
    verbose.assert_outcomes(passed=1)
    verbose.stdout.fnmatch_lines([
        "*execution: ParallelExecution: the 50 replicate tasks ran serially: about * each*too little to gain from*",
    ])
    quiet = pytester.runpytest("--crystallize", "-p", "no:xdist")
    assert "execution:" not in quiet.stdout.str()


@pytest.mark.parametrize(
    ("per_task", "tasks", "workers", "expected"),
    [
        (0.001, 1000, 2, 20),  # 20 ms of work per chunk
        (0.0001, 1000, 2, 200),
        (0.00001, 1000, 2, 500),  # never more than an even share per worker
        (0.05, 80, 2, 1),  # a task is worth its own chunk
        (0.0, 80, 2, 10),  # unmeasured: four chunks per worker
    ],
)
def test_chunk_size_known_answers(per_task: float, tasks: int, workers: int, expected: int) -> None:
    assert chunk_size(per_task, tasks, workers) == expected


def test_auto_is_the_default_and_a_bad_value_names_itself() -> None:
    assert ParallelExecution().max_workers == "auto"
    assert AsyncExecution(None).max_workers == "auto"
    with pytest.raises(ConfigurationError, match="max_workers must be an integer >= 1 or 'auto', got 'many'"):
        ParallelExecution("many")  # type: ignore[arg-type]


@data_source
def _shared_data(ctx: FrozenContext) -> Any:
    import numpy as np

    return np.arange(64.0)  # every replicate the same data: what the shared-data check notices


def _keeps(shared: Any, ctx: FrozenContext) -> None:
    ctx.artifacts.add("seed.txt", str(ctx.seed))
    ctx.metrics.add("v", shared[ctx.replicate % 4] + ctx.rng.normal())


@pytest.mark.parametrize(
    "backend", [ParallelExecution(), ParallelExecution(kind="thread"), AsyncExecution()], ids=repr,
)
def test_work_run_serially_keeps_artifacts_and_data_digests(
    backend: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The serial choice hands back one joined batch: a chain's upstream artifacts and the
    # shared-data check's digests must survive it as they do a serial run.
    monkeypatch.setattr(sizing, "PROCESS_POOL_SECONDS", 10.0)
    monkeypatch.setattr(sizing, "THREAD_POOL_SECONDS", 10.0)
    options = _options(replicates=12, keep_artifacts=True, datasources={"shared": _shared_data},
                       hypotheses=[hypothesis(metric="v", direction="maximize")])
    with pytest.warns(SharedDataWarning):
        serial = run_experiment(_keeps, **options)
    with pytest.warns(SharedDataWarning):
        result = run_experiment(_keeps, plugins=[backend], **options)
    assert "serially" in result.provenance.execution[-1]
    assert result.artifacts is not None
    assert serial.artifacts is not None
    assert {key: dict(kept) for key, kept in result.artifacts.items()} == {
        key: dict(kept) for key, kept in serial.artifacts.items()
    }
    assert len(result.artifacts) == 24
    assert result.provenance.shared_data == serial.provenance.shared_data != ()


STOP_AT: dict[str, int] = {}


def _stops_partway(ctx: Any) -> None:
    if ctx.replicate == STOP_AT["replicate"] and ctx.condition == "t":
        raise KeyboardInterrupt
    ctx.metrics.add("v", ctx.replicate)


# Sizes the auto mode runs serially after its probe: processes below 0.4 s of work left, threads below 50 ms.
@pytest.mark.parametrize(("kind", "replicates", "stop"), [("process", 1000, 600), ("thread", 100, 60)])
def test_ctrl_c_in_the_serial_rest_keeps_every_finished_replicate_once(kind: str, replicates: int, stop: int) -> None:
    # Trivial work: after the probe the rest runs here, continuing the probe's batch; interrupted there,
    # the partial result has the probe's replicates and the rest's that finished, each once.
    from pytest_crystallize.core.runner import PARTIAL_RESULT

    STOP_AT["replicate"] = stop
    with pytest.raises(KeyboardInterrupt) as caught:
        run_experiment(_stops_partway, name="stopped", replicates=replicates, treatments=[Treatment("t")],
                       plugins=[ParallelExecution(kind=kind)])  # type: ignore[arg-type]
    partial = getattr(caught.value, PARTIAL_RESULT)
    assert "ran serially" in partial.provenance.execution[0]
    for condition, finished in (("baseline", stop + 1), ("t", stop)):
        replicates_seen, values = partial.select("v", condition)
        assert replicates_seen.tolist() == list(range(finished))
        assert values.tolist() == [float(r) for r in range(finished)]
