"""Backends that choose well: each backend's wall time as a ratio to a serial run of the same work.

Two kinds of work, each run by every backend in turn, round after round
(interleaved, so a busy machine slows all alike), reported as the median
ratio to serial with its spread (min-max over the rounds):

* **trivial**: 1,000 replicates that record one value. Targets:
  ``ParallelExecution()`` at most 1.1x serial (it must notice the work is too
  small for a pool); ``AsyncExecution()`` on a plain ``def`` is reported.
* **CPU-bound**: replicates that each burn about 20 ms of pure-Python CPU
  (baseline + one treatment). Targets on 2 cores: ``ParallelExecution()`` at
  least 1.8x faster than serial; ``DaskExecution`` on a local cluster of 2
  single-threaded workers (started once, before the rounds) at least 1.6x.

Every backend's values are checked to equal the serial run's. The machine's
load (``/proc/loadavg``) is printed before and after: on a shared machine
the figures are only as good as the CPUs that were free.

Usage::

    python bench/bench_backends.py                # 7 rounds, 40 CPU-bound replicates per condition
    python bench/bench_backends.py --quick        # 3 rounds, 16 replicates
    python bench/bench_backends.py --no-dask      # without the dask extra
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_execution import burn  # the same 20 ms of pure-Python CPU; a sibling script's function

from pytest_crystallize import AsyncExecution, FrozenContext, ParallelExecution, Treatment, run_experiment

TARGET_MS = 20.0
_loops = 1


def _calibrate() -> int:
    """Loop count for about TARGET_MS of CPU in this interpreter (the fastest of a few tries)."""
    loops = 20_000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        burn(loops)
        best = min(best, time.perf_counter() - start)
    return max(1, int(loops * TARGET_MS / 1000 / best))


def trivial_exp(ctx: FrozenContext) -> None:
    ctx.metrics.add("v", ctx.replicate)


def cpu_exp(ctx: FrozenContext, loops: int = 1) -> None:
    ctx.metrics.add("burned", burn(loops + ctx.get("extra", 0)) % 1000 + ctx.rng.normal())


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ")[0]
    except OSError:
        return "?"


def _columns(result: Any) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("provenance")
    return data


def _rounds(rounds: int, runs: dict[str, Callable[[], Any]]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run every entry of ``runs`` once per round, in turn; their wall times and last results."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return times, results


def _report(title: str, times: dict[str, list[float]], results: dict[str, Any], targets: dict[str, str]) -> None:
    serial = times["serial"]
    print(title)
    print(f"  {'backend':<34} {'median s':>9}  {'ratio to serial (min-max)':<28} target")
    for name, taken in times.items():
        ratios = [t / s for t, s in zip(taken, serial, strict=True)]
        median = statistics.median(ratios)
        speedup = 1 / median
        figure = f"{median:5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        if name != "serial":
            figure += f" = {speedup:.2f}x faster" if speedup >= 1 else f" = {median:.2f}x slower"
        same = "" if name == "serial" else ("" if _columns(results[name]) == _columns(results["serial"])
                                           else "  VALUES DIFFER FROM SERIAL")
        print(f"  {name:<34} {statistics.median(taken):9.4f}  {figure:<28} {targets.get(name, '')}{same}")
        notes = results[name].provenance.execution
        if notes:
            print(f"      ({notes[0]})")


def main() -> None:
    global _loops
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--replicates", type=int, default=40, help="CPU-bound replicates per condition")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.replicates = 3, 16
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores available; load average before: {_load()}")
    _loops = _calibrate()

    trivial: dict[str, Callable[[], Any]] = {
        "serial": lambda: run_experiment(trivial_exp, name="trivial", replicates=1000),
        "ParallelExecution() [process]": lambda: run_experiment(
            trivial_exp, name="trivial", replicates=1000, plugins=[ParallelExecution()]),
        "AsyncExecution() on a plain def": lambda: run_experiment(
            trivial_exp, name="trivial", replicates=1000, plugins=[AsyncExecution()]),
    }
    times, results = _rounds(args.rounds, trivial)
    _report("trivial: 1,000 replicates recording one value each", times, results,
            {"ParallelExecution() [process]": "<= 1.1x serial"})

    options: dict[str, Any] = {"name": "cpu", "replicates": args.replicates, "seed": 1,
                               "treatments": [Treatment("more", {"extra": 1})], "arguments": {"loops": _loops}}
    cpu: dict[str, Callable[[], Any]] = {
        "serial": lambda: run_experiment(cpu_exp, **options),
        "ParallelExecution() [process]": lambda: run_experiment(cpu_exp, plugins=[ParallelExecution()], **options),
    }
    dask = None
    if not args.no_dask:
        from pytest_crystallize.plugins.dask import DaskExecution

        dask = DaskExecution(n_workers=2)
        dask.client.wait_for_workers(2)
        cpu["DaskExecution, local 2 workers"] = lambda: run_experiment(cpu_exp, plugins=[dask], **options)
    try:
        times, results = _rounds(args.rounds, cpu)
    finally:
        if dask is not None:
            dask.close()
    took = statistics.median(times["serial"]) / (2 * args.replicates) * 1000
    _report(f"CPU-bound: {2 * args.replicates} replicate tasks of ~{took:.1f} ms", times, results, {
        "ParallelExecution() [process]": ">= 1.8x faster on 2 cores",
        "DaskExecution, local 2 workers": ">= 1.6x faster on 2 cores",
    })
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
