"""Execution backends: process speedup for CPU-bound replicates, async concurrency for I/O-bound ones.

Two figures, measured in one invocation:

* **process speedup**: an experiment whose replicates each burn about 20 ms of
  pure-Python CPU (baseline + one treatment, ``--replicates`` each) runs
  serially, then with ``ParallelExecution(max_workers=2)``; speedup = serial
  wall time / parallel wall time, best of ``--repeat``. Target: >= 1.7x on 2 cores.
* **async wall time**: 100 replicates of an ``async def`` experiment that each
  await ``asyncio.sleep(0.05)`` run with ``AsyncExecution(max_workers=20)``;
  ideal 5 waves x 50 ms = 0.25 s. Target: within 20 % of 0.25 s.

The parallel and serial runs are also checked to give identical results.

Usage::

    python bench/bench_execution.py              # 40 replicates per condition, 3 repeats
    python bench/bench_execution.py --quick      # 16 replicates, 1 repeat
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from pytest_crystallize import (
    AsyncExecution,
    FrozenContext,
    ParallelExecution,
    Treatment,
    run_experiment,
)

TARGET_MS = 20.0
_loops = 1


def burn(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def _calibrate() -> int:
    """Loop count for about TARGET_MS of CPU in this interpreter."""
    loops = 10_000
    while True:
        start = time.perf_counter()
        burn(loops)
        took = (time.perf_counter() - start) * 1000
        if took > 5:
            return max(1, int(loops * TARGET_MS / took))
        loops *= 2


def _cpu_exp(ctx: FrozenContext) -> None:
    ctx.metrics.add("burned", burn(_loops + ctx.get("extra", 0)) % 1000 + ctx.rng.normal())


async def _io_exp(ctx: FrozenContext) -> None:
    await asyncio.sleep(0.05)
    ctx.metrics.add("waited", 1.0)


def _best(repeat: int, run: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def _columns(result: Any) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("provenance")
    return data


def main() -> None:
    global _loops  # set once before the runs; forked workers inherit it
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.replicates, args.repeat = 16, 1
    _loops = _calibrate()
    treatments = [Treatment("more", {"extra": 1})]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def serial() -> Any:
        return run_experiment(_cpu_exp, name="cpu", replicates=args.replicates, treatments=treatments)

    def parallel() -> Any:
        return run_experiment(_cpu_exp, name="cpu", replicates=args.replicates, treatments=treatments,
                              plugins=[ParallelExecution(max_workers=2)])

    serial_s, serial_result = _best(args.repeat, serial)
    parallel_s, parallel_result = _best(args.repeat, parallel)
    same = _columns(serial_result) == _columns(parallel_result)
    tasks = 2 * args.replicates
    print(f"CPU-bound: {tasks} replicate tasks of ~{serial_s / tasks * 1000:.1f} ms, {cores} cores available")
    print(f"  serial                        {serial_s:7.3f} s")
    print(f"  ParallelExecution(2 procs)    {parallel_s:7.3f} s")
    print(f"  speedup                       {serial_s / parallel_s:7.2f}x   (target >= 1.7x)")
    print(f"  identical to serial           {same}")

    def io() -> Any:
        return run_experiment(_io_exp, name="io", replicates=100, plugins=[AsyncExecution(max_workers=20)])

    io_s, io_result = _best(args.repeat, io)
    print("I/O-bound: 100 async replicates awaiting 50 ms, 20 in flight (ideal 0.250 s)")
    print(f"  AsyncExecution(20)            {io_s:7.3f} s   ({(io_s / 0.25 - 1) * 100:+.1f} % of ideal, "
          f"target within 20 %); {len(io_result)} values")


if __name__ == "__main__":
    main()
