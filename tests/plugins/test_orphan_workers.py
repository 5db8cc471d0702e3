"""A parent killed outright (SIGKILL, an OOM kill, a killed CI job) leaves no worker process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = """
    import os, sys, threading, time
    from pytest_crystallize import ParallelExecution, run_experiment

    def experiment(ctx):
        with open(sys.argv[1], "a") as out:
            out.write(f"{os.getpid()}\\n")
        time.sleep(0.05)
        ctx.metrics.add("x", 1.0)

    def kill_once_both_workers_run():
        # Only the parent dies, once both workers have started replicates (however slowly a busy
        # machine starts them); after 60 s without, it dies anyway and the test says so.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with open(sys.argv[1]) as out:
                    if len(set(out.read().split())) >= 2:
                        break
            except OSError:
                pass
            time.sleep(0.05)
        os.kill(os.getpid(), 9)

    threading.Thread(target=kill_once_both_workers_run, daemon=True).start()
    run_experiment(experiment, replicates=10_000, plugins=[ParallelExecution(2, kind="process")])
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its entry waits for a reaper


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_leave_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    pids_file = tmp_path / "pids"
    try:
        # Output goes to files: a pipe would wait for the workers too.
        done = subprocess.run(
            [sys.executable, str(script), str(pids_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=120, check=False, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        workers = {int(line) for line in pids_file.read_text().split()} if pids_file.exists() else set()
    assert done.returncode == -9
    assert len(workers) == 2
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # never leave them to the rest of the suite
        os.kill(pid, 9)
    assert not left, f"worker processes {left} outlived their killed parent"


DRIVEN_BY_HAND = """
    from pytest_crystallize import ParallelExecution
    from pytest_crystallize.core.experiment import Experiment
    from pytest_crystallize.core.replicates import BatchRunner

    def experiment(ctx):
        ctx.metrics.add("x", 1.0)

    # A run_batch nobody closes (no runner): its workers wait for a next look that never comes.
    defined = Experiment.define(experiment, replicates=8)
    batches = ParallelExecution(2).crystallize_replicates_run(
        experiment=defined, tasks=[(0, r) for r in range(8)], run_batch=BatchRunner(defined, None),
    )
    print(sum(batch.task_count for batch in batches))
"""


def test_a_pool_nobody_closed_never_keeps_the_interpreter_from_exiting(tmp_path: Path) -> None:
    script = tmp_path / "by_hand.py"
    script.write_text(textwrap.dedent(DRIVEN_BY_HAND))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["8"]
