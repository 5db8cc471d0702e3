"""The data path at a million recorded values: saving, conversions, tags, memory.

Five figures, each a ratio of two variants measured in interleaved rounds in
one invocation (A, B, B, A, ...), reported as medians with their spread:

* **save**: ``pytest --crystallize`` on one experiment recording ``--values``
  values, with and without ``--crystallize-save``, each a fresh pytest
  process: CPU seconds (user + system) and peak RSS. Target: a save adds at
  most 20 % to either (ratio <= 1.2). A third variant, unsaved but making
  the save's one-off pyarrow import in a conftest (pyarrow and
  pyarrow.parquet loaded the way the save loads them, a one-value Parquet
  file written, nothing else), gives the save's cost excluding that import,
  and the import's own share of the unsaved run; both are printed next to
  the total, which is the figure the target applies to.
* **to_dataframe**: ``ExperimentResult.to_dataframe()`` against building the
  very same frame straight from the result's arrays (checked equal). Target <= 2x.
* **from_parquet**: ``ExperimentResult.from_parquet`` against a raw
  ``pyarrow.parquet.read_table`` of the same file. Target <= 1.5x.
* **tags**: ``ctx.record(name, value, tags={"winner": w})`` against
  ``ctx.record(name, value)``, per call, in the same loop. Target <= 2x.
  Also shown: a tag set of two keys, one a number.
* **memory**: peak bytes traced (``tracemalloc``, in a fresh interpreter per
  round) per recorded value while ``run_experiment`` runs, next to the bytes
  the final result holds per value. Target: peak <= 64 bytes per value.

Usage::

    python bench/bench_data.py                # 1,000,000 values, 5 rounds
    python bench/bench_data.py --quick        # 200,000 values, 3 rounds
    python bench/bench_data.py --only save,tags
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_plugin_import import spread

VALUES = 1_000_000
QUICK_VALUES = 200_000
ROUNDS = 5
QUICK_ROUNDS = 3
REPLICATES = 1_000  # per condition; two conditions
TAG_LOOP = 200_000

TARGETS = {"save CPU": 1.2, "save peak RSS": 1.2, "to_dataframe": 2.0, "from_parquet": 1.5, "tags": 2.0}
TARGET_BYTES_PER_VALUE = 64.0

SECTIONS = ("save", "frame", "tags", "memory")


def per_replicate(values: int) -> int:
    """``K``: each replicate of each condition records ``2 K + 1`` values."""
    return max(1, (values // (2 * REPLICATES) - 1) // 2)


# The experiment every section runs: two conditions, REPLICATES replicates; per replicate
# K values of ``x`` (untagged), K of ``y`` (tagged, two tag sets) and one ``score`` that a
# hypothesis tests.
EXPERIMENT_SOURCE = '''
import pytest
from pytest_crystallize import Treatment, hypothesis

K = {k}


@pytest.mark.experiment(replicates={replicates}, seed=11, treatments=[Treatment("hot", {{"shift": 1.0}})])
@hypothesis(metric="score", direction="maximize")
def experiment_big(ctx):
    shift = ctx.get("shift", 0.0)
    base = ctx.replicate * 0.001
    add, record = ctx.metrics.add, ctx.record
    for i in range(K):
        add("x", base + i * 0.5 + shift)
        record("y", base - i, tags={{"phase": "warm" if i < K // 2 else "hot"}})
    add("score", base + shift)
'''


def experiment_module(values: int) -> str:
    return EXPERIMENT_SOURCE.format(k=per_replicate(values), replicates=REPLICATES)


def run_engine(values: int) -> Any:
    """The experiment above, run with ``run_experiment`` in this process."""
    namespace: dict[str, Any] = {}
    exec(compile(experiment_module(values), "<bench_data experiment>", "exec"), namespace)
    from pytest_crystallize import run_experiment

    return run_experiment(namespace["experiment_big"])


@dataclass(frozen=True, slots=True)
class Process:
    """One child process: CPU seconds (user + system) and peak RSS in MiB."""

    cpu: float
    rss_mib: float


def run_child(command: Sequence[str], cwd: Path, output: Path, extra_env: dict[str, str] | None = None) -> Process:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    env.update(extra_env or {})
    with output.open("wb") as sink:
        child = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = "\n".join(output.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{' '.join(command)} failed (exit code {child.returncode}):\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss_kib = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss / 1024
    return Process(cpu, rss_kib / 1024)


def ratio_line(label: str, a: Sequence[float], b: Sequence[float], unit: str, fmt: str) -> float:
    """Print both variants' spreads and the median of per-round ratios; return that median."""
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    ratio = statistics.median(ratios)
    target = TARGETS.get(label)
    verdict = "" if target is None else f"  target <= {target:.2f}: {'PASS' if ratio <= target else 'MISS'}"
    print(f"  {label:<14} A {spread(a, fmt)} {unit}")
    print(f"  {'':<14} B {spread(b, fmt)} {unit}")
    print(f"  {'':<14} A/B median of rounds {ratio:.2f} [{min(ratios):.2f}-{max(ratios):.2f}]{verdict}")
    return ratio


def interleave(rounds: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Run ``a`` and ``b`` alternately (ABBA...) ``rounds`` times each; return their measurements."""
    out_a: list[float] = []
    out_b: list[float] = []
    for index in range(rounds):
        order = ((a, out_a), (b, out_b)) if index % 2 == 0 else ((b, out_b), (a, out_a))
        for run, out in order:
            out.append(run())
    return out_a, out_b


# -- save -------------------------------------------------------------------------------

#: In the save benchmark's project: make the save's one-off pyarrow import when asked, when the save would make
#: it (at the end of the session) and the way it makes it (the same modules, the same allocator, a one-value
#: Parquet file written), so that a third variant (unsaved, pyarrow loaded) separates that fixed footprint from
#: the cost of writing the values.
LOAD_PYARROW_CONFTEST = """
import os


def pytest_sessionfinish(session, exitstatus):
    if not os.environ.get("BENCH_LOAD_PYARROW"):
        return
    import numpy as np

    from pytest_crystallize.core.arrow_columns import load_pyarrow_on_system_allocator

    load_pyarrow_on_system_allocator()
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.Array.from_buffers(pa.float64(), 1, [None, pa.py_buffer(np.zeros(1))])
    pq.write_table(pa.table({"x": column}), pa.BufferOutputStream())
"""


def bench_save(values: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench_data_save_") as directory:
        root = Path(directory)
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (root / "conftest.py").write_text(LOAD_PYARROW_CONFTEST, encoding="utf-8")
        (root / "test_big.py").write_text(experiment_module(values), encoding="utf-8")
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--crystallize", "test_big.py"]
        store = root / ".crystallize"

        def run(variant: str) -> Process:
            shutil.rmtree(store, ignore_errors=True)
            save = variant == "saved"
            env = {"BENCH_LOAD_PYARROW": "1"} if variant == "unsaved, pyarrow loaded" else {}
            measured = run_child([*base, "--crystallize-save"] if save else base, root, root / "out.txt", env)
            text = (root / "out.txt").read_text(encoding="utf-8")
            if "1 passed" not in text or (save and "saved run" not in text.lower()):
                raise RuntimeError(f"unexpected pytest output:\n{text[-2000:]}")
            return measured

        variants = ("saved", "unsaved", "unsaved, pyarrow loaded")
        runs: dict[str, list[Process]] = {name: [] for name in variants}
        run("saved")  # warm-up: bytecode, file cache
        for index in range(rounds):
            for name in (variants if index % 2 == 0 else variants[::-1]):
                runs[name].append(run(name))
            print(f"    round {index + 1}/{rounds}: " + ", ".join(
                f"{name} {runs[name][-1].cpu:.2f}s {runs[name][-1].rss_mib:.0f} MiB" for name in variants), flush=True)
    saved, unsaved, loaded = (runs[name] for name in variants)
    print(f"\nsave: pytest --crystallize, {values:,} values, A = with --crystallize-save, B = without")
    out = {
        "save CPU": ratio_line("save CPU", [p.cpu for p in saved], [p.cpu for p in unsaved], "s", ".3f"),
        "save peak RSS": ratio_line("save peak RSS", [p.rss_mib for p in saved], [p.rss_mib for p in unsaved],
                                    "MiB", ".0f"),
    }
    print("  B = without, but with the save's one-off pyarrow import (excluding it from the save's cost):")
    out["save CPU excl. import"] = ratio_line(
        "save CPU excl. import", [p.cpu for p in saved], [p.cpu for p in loaded], "s", ".3f")
    out["save RSS excl. import"] = ratio_line(
        "save RSS excl. import", [p.rss_mib for p in saved], [p.rss_mib for p in loaded], "MiB", ".0f")
    print("  the import alone, A = unsaved with pyarrow loaded, B = unsaved:")
    out["import CPU share"] = ratio_line(
        "import CPU", [p.cpu for p in loaded], [p.cpu for p in unsaved], "s", ".3f")
    out["import RSS share"] = ratio_line(
        "import RSS", [p.rss_mib for p in loaded], [p.rss_mib for p in unsaved], "MiB", ".0f")
    return out


# -- to_dataframe, from_parquet ---------------------------------------------------------------

def frame_from_arrays(result: Any) -> Any:
    """The frame ``to_dataframe`` returns, built straight from the result's arrays."""
    import pandas as pd

    decoded = {text: json.loads(text) for text in set(result.tags) if text is not None}
    return pd.DataFrame({
        "experiment": result.experiment,
        "condition": pd.Categorical.from_codes(result.condition_codes, categories=pd.Index(result.conditions)),
        "replicate": result.replicates,
        "metric": pd.Categorical.from_codes(result.metric_codes, categories=pd.Index(result.metrics)),
        "value": result.values,
        "tags": list(map(decoded.get, result.tags)),
    })


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_frame(values: int, rounds: int) -> dict[str, float]:
    import pandas as pd
    import pyarrow.parquet as pq

    from pytest_crystallize import ExperimentResult

    result = run_engine(values)
    pd.testing.assert_frame_equal(result.to_dataframe(), frame_from_arrays(result))
    out: dict[str, float] = {}
    print(f"\nconversions: one result of {len(result):,} values")
    a, b = interleave(rounds, lambda: timed(result.to_dataframe), lambda: timed(lambda: frame_from_arrays(result)))
    print("  A = result.to_dataframe(), B = the same frame built from the arrays")
    out["to_dataframe"] = ratio_line("to_dataframe", a, b, "s", ".3f")
    with tempfile.TemporaryDirectory(prefix="bench_data_parquet_") as directory:
        path = Path(directory) / "result.parquet"
        written = [timed(lambda: result.to_parquet(path)) for _ in range(rounds)]
        if ExperimentResult.from_parquet(path) != result:
            raise RuntimeError("the Parquet round trip changed the result")
        a, b = interleave(rounds, lambda: timed(lambda: ExperimentResult.from_parquet(path)),
                          lambda: timed(lambda: pq.read_table(path)))
        print("  A = ExperimentResult.from_parquet(path), B = pyarrow.parquet.read_table(path)")
        out["from_parquet"] = ratio_line("from_parquet", a, b, "s", ".3f")
        print(f"  (to_parquet alone: {spread(written, '.3f')} s; file {path.stat().st_size / 2**20:.1f} MiB)")
    return out


# -- tags -------------------------------------------------------------------------------

def bench_tags(rounds: int) -> dict[str, float]:
    from pytest_crystallize import standalone_context

    winners = ("aligned", "rogue", "draw", "aligned") * (TAG_LOOP // 4)

    def loop(kind: str) -> Callable[[], float]:
        def run() -> float:
            record = standalone_context().record
            start = time.perf_counter()
            if kind == "winner":  # the README's example: one string tag
                for w in winners:
                    record("rounds", 3.0, tags={"winner": w})
            elif kind == "winner+round":
                for w in winners:
                    record("rounds", 3.0, tags={"winner": w, "round": 3})
            else:
                for _ in winners:
                    record("rounds", 3.0)
            return 1e9 * (time.perf_counter() - start) / len(winners)
        return run

    one, none_a = interleave(rounds, loop("winner"), loop("untagged"))
    two, none_b = interleave(rounds, loop("winner+round"), loop("untagged"))
    print(f"\ntags: {len(winners):,} ctx.record calls per loop (the dict literal included), B = no tags")
    print("  A = tags={'winner': w} (the README's example)")
    out = {"tags": ratio_line("tags", one, none_a, "ns/call", ".0f")}
    print("  A = tags={'winner': w, 'round': 3} (a number: its type is checked too)")
    out["tags, 2 keys"] = ratio_line("tags, 2 keys", two, none_b, "ns/call", ".0f")
    return out


# -- memory -----------------------------------------------------------------------------

MEMORY_CHILD = r'''
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from bench_data import run_engine
values, backend = int(sys.argv[2]), sys.argv[3]
run_engine(20_000)  # warm-up: imports, scipy, version metadata
plugins = []
if backend == "process":
    from pytest_crystallize import ParallelExecution
    plugins = [ParallelExecution(max_workers=2, kind="process")]
import bench_data
namespace = {}
exec(compile(bench_data.experiment_module(values), "<bench>", "exec"), namespace)
from pytest_crystallize import run_experiment
tracemalloc.start()
result = run_experiment(namespace["experiment_big"], plugins=plugins)
current, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
held = sum(a.nbytes for a in (result.condition_codes, result.replicates, result.metric_codes, result.values))
held += 8 * len(result.tags)
print(json.dumps({"values": len(result), "peak": peak, "current": current, "held": held}))
'''


def memory_child(values: int, backend: str) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(Path(__file__).resolve().parent), str(values), backend],
        capture_output=True, text=True, check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{child.stdout}\n{child.stderr[-3000:]}")
    data = json.loads(child.stdout.strip().splitlines()[-1])
    n = data["values"]
    return {"peak": data["peak"] / n, "current": data["current"] / n, "held": data["held"] / n}


def bench_memory(values: int, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    print(f"\nmemory: run_experiment of {values:,} values, tracemalloc in a fresh interpreter per round")
    for backend in ("serial", "process"):
        runs = [memory_child(values, backend) for _ in range(rounds)]
        peak = [r["peak"] for r in runs]
        current = [r["current"] for r in runs]
        held = statistics.median(r["held"] for r in runs)
        ok = "PASS" if statistics.median(peak) <= TARGET_BYTES_PER_VALUE else "MISS"
        print(f"  {backend:<8} peak {spread(peak, '.1f')} B/value; after the run {spread(current, '.1f')} "
              f"B/value; the result's columns {held:.1f} B/value"
              + (f"  target peak <= {TARGET_BYTES_PER_VALUE:.0f}: {ok}" if backend == "serial" else ""))
        out[f"peak B/value {backend}"] = statistics.median(peak)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_VALUES:,} values, {QUICK_ROUNDS} rounds")
    parser.add_argument("--values", type=int, default=None, help=f"recorded values (default {VALUES:,})")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds per figure (default {ROUNDS})")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = parser.parse_args(argv)
    values = args.values or (QUICK_VALUES if args.quick else VALUES)
    rounds = max(1, args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS))
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    print(f"bench_data: {values:,} values, {rounds} rounds, Python {sys.version.split()[0]}")
    figures: dict[str, float] = {}
    if "save" in chosen:
        figures |= bench_save(values, rounds)
    if "frame" in chosen:
        figures |= bench_frame(values, rounds)
    if "tags" in chosen:
        figures |= bench_tags(rounds)
    if "memory" in chosen:
        figures |= bench_memory(values, rounds)
    print("\nsummary:")
    missed = 0
    for name, figure in figures.items():
        target = TARGETS.get(name, TARGET_BYTES_PER_VALUE if name == "peak B/value serial" else None)
        if target is None:
            print(f"  {name:<24} {figure:8.2f}")
            continue
        ok = figure <= target
        missed += not ok
        print(f"  {name:<24} {figure:8.2f}  target <= {target:g}: {'PASS' if ok else 'MISS'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
