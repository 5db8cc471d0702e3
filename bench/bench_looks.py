"""Designs that look again: what a look costs on ``ParallelExecution`` (kind="process").

A sequential, anytime or adaptive design calls the backend once per look.
The worker processes are started by the first look and kept for the run's
later ones; this script shows it: for each start method it runs an anytime
design (about 15 looks) and a 5-look sequential design, serially and on 2
worker processes, interleaved round after round, and prints per design the
median wall time as a ratio to serial (with its min-max spread) and how many
worker processes each run started. Target: 2 per run, whatever the looks
(a pool per look started 2 per look: under forkserver, where a start costs
most of a second, the anytime run took 24 s instead of 2.4 s). Every run's
values are checked to equal the serial run's.

Usage::

    python bench/bench_looks.py            # 5 rounds
    python bench/bench_looks.py --quick    # 2 rounds
"""

from __future__ import annotations

import argparse
import multiprocessing.process
import statistics
import time
from typing import Any

from pytest_crystallize import FrozenContext, ParallelExecution, Treatment, hypothesis, run_experiment

STARTS = [0]
_start = multiprocessing.process.BaseProcess.start


def _counted_start(self: Any) -> None:
    STARTS[0] += 1
    _start(self)


def _replicate(ctx: FrozenContext) -> None:
    end = time.process_time() + 0.004  # 4 ms of CPU
    while time.process_time() < end:
        pass
    z = ctx.rng.normal(size=2)
    ctx.metrics.add("y", z[0 if ctx.condition == "baseline" else 1])  # no effect: every look is taken


DESIGNS: dict[str, dict[str, Any]] = {
    "anytime": {"replicates": "anytime", "max_replicates": 120},
    "sequential": {"replicates": "auto", "max_replicates": 120, "looks": 5},
}


def _run(design: dict[str, Any], plugins: list[Any]) -> tuple[float, int, Any]:
    STARTS[0] = 0
    began = time.perf_counter()
    result = run_experiment(
        _replicate, seed=3, treatments=[Treatment("t", {})], plugins=plugins,
        hypotheses=[hypothesis(metric="y", direction="maximize")], **design,
    )
    return time.perf_counter() - began, STARTS[0], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    rounds = 2 if parser.parse_args().quick else 5
    multiprocessing.process.BaseProcess.start = _counted_start  # type: ignore[method-assign]
    for name, design in DESIGNS.items():
        for method in ("fork", "forkserver"):
            ratios: list[float] = []
            starts: set[int] = set()
            for _ in range(rounds):
                serial_time, _, serial = _run(design, [])
                pool_time, started, pooled = _run(design, [ParallelExecution(2, start_method=method)])
                if pooled.values.tolist() != serial.values.tolist():
                    raise SystemExit(f"{name} on {method}: values differ from the serial run")
                ratios.append(pool_time / serial_time)
                starts.add(started)
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
            print(f"{name:10s} {method:10s} process/serial wall time {statistics.median(ratios):.2f}x "
                  f"({spread}), worker processes started per run: {sorted(starts)} (target: [2])")


if __name__ == "__main__":
    main()
