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

Every backend's values are checked to equal the serial run's. Beside the
wall-time ratio, the CPU-time ratio (this process and its children) says
what the work cost whatever the load. The machine's load
(``/proc/loadavg``) is printed before and after: on a shared machine a
speedup is only as good as the CPUs that were free.

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

from pytest_crystallize import (
    AsyncExecution,
    FrozenContext,
    ParallelExecution,
    SerialExecution,
    Treatment,
    run_experiment,
)

TARGET_MS = 20.0
_loops = 1


def _calibrate() -> int:
    """Loop count for about TARGET_MS of CPU in this interpreter.

    Timed at full length, twice (a first guess from a short burn, then the
    median of five burns of that guess): a short burn alone, extrapolated,
    made tasks of 14 ms where 20 were meant, which overheads weigh more on.
    """
    loops = 20_000
    for _ in range(2):
        seconds = []
        for _ in range(5):
            start = time.process_time()
            burn(loops)
            seconds.append(time.process_time() - start)
        loops = max(1, int(loops * TARGET_MS / 1000 / statistics.median(seconds)))
    return loops


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


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children: what the work cost, however busy the machine."""
    children = os.times()  # finished children, in clock ticks; this process at full resolution
    return time.process_time() + children.children_user + children.children_system


def _rounds(
    rounds: int, runs: dict[str, Callable[[], Any]], repeat: int = 1,
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, Any]]:
    """Run every entry of ``runs`` ``repeat`` times per round, in turn; (wall, CPU) seconds and last results."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    results: dict[str, Any] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            start, cpu = time.perf_counter(), _cpu_seconds()
            for _ in range(repeat):
                results[name] = run()
            times[name].append((time.perf_counter() - start, _cpu_seconds() - cpu))
    return times, results


def _ratios(taken: list[float], serial: list[float]) -> str:
    ratios = [t / s for t, s in zip(taken, serial, strict=True)]
    return f"{statistics.median(ratios):5.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def _report(
    title: str, times: dict[str, list[tuple[float, float]]], results: dict[str, Any], targets: dict[str, str],
) -> None:
    serial_wall = [w for w, _ in times["serial"]]
    serial_cpu = [c for _, c in times["serial"]]
    print(title)
    print(f"  {'backend':<32} {'median s':>9}  {'wall / serial (min-max)':<24} {'CPU / serial (min-max)':<24} target")
    for name, taken in times.items():
        wall = [w for w, _ in taken]
        cpu = [c for _, c in taken]
        same = "" if name == "serial" or _columns(results[name]) == _columns(results["serial"]) else (
            "  VALUES DIFFER FROM SERIAL")
        speed = statistics.median(s / w for s, w in zip(serial_wall, wall, strict=True))
        target = targets.get(name, "")
        if target:
            target = f"{target}: measured {speed:.2f}x {'faster' if speed >= 1 else 'slower'}" if "faster" in target \
                else f"{target}: measured {1 / speed:.2f}x"
        print(f"  {name:<32} {statistics.median(wall):9.4f}  {_ratios(wall, serial_wall):<24} "
              f"{_ratios(cpu, serial_cpu):<24} {target}{same}")
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
        # What registering any backend plugin costs the engine, for scale.
        "SerialExecution() plugin": lambda: run_experiment(
            trivial_exp, name="trivial", replicates=1000, plugins=[SerialExecution()]),
        "ParallelExecution() [process]": lambda: run_experiment(
            trivial_exp, name="trivial", replicates=1000, plugins=[ParallelExecution()]),
        "AsyncExecution() on a plain def": lambda: run_experiment(
            trivial_exp, name="trivial", replicates=1000, plugins=[AsyncExecution()]),
    }
    times, results = _rounds(args.rounds * 3, trivial, repeat=5)
    _report("trivial: 1,000 replicates recording one value each (5 runs per sample)", times, results,
            {"ParallelExecution() [process]": "<= 1.1x serial wall time"})

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
    took = statistics.median(w for w, _ in times["serial"]) / (2 * args.replicates) * 1000
    _report(f"CPU-bound: {2 * args.replicates} replicate tasks of ~{took:.1f} ms", times, results, {
        "ParallelExecution() [process]": ">= 1.8x faster on 2 cores",
        "DaskExecution, local 2 workers": ">= 1.6x faster on 2 cores",
    })
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
