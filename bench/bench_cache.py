"""The step cache: what a warm hit costs next to recomputing a step that takes 10 ms.

One experiment, ``--replicates`` replicates of a baseline and one treatment,
calls a ``@pipeline_step(cache=True)`` step that takes about 10 ms (a sleep,
so the figure does not depend on how busy the CPUs are), reads the replicate
seed (so every call is its own entry), records a metric and a tagged record
and returns a small numpy array. Each round runs, interleaved:

* **uncached**: the step without the cache (``cache=None``);
* **cold**: with an empty cache, every call a miss that computes and stores;
* **warm**: the same again, every call a hit that replays.

Printed: the median over rounds of warm / uncached and cold / uncached wall
time, with their min and max, and the warm time per call. Target: a warm hit
costs a small fraction (< 10 %) of recomputing. The three runs are also
checked to give identical results.

Usage::

    python bench/bench_cache.py              # 40 replicates per condition, 7 rounds
    python bench/bench_cache.py --quick      # 10 replicates, 3 rounds
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_crystallize import FrozenContext, Treatment, pipeline_step, run_experiment

STEP_SECONDS = 0.010


@pipeline_step(cache=True)
def expensive(data: float, ctx: FrozenContext, scale: float = 1.0) -> np.ndarray:
    time.sleep(STEP_SECONDS)
    values = np.random.default_rng(ctx.seed).normal(data, scale, size=16)
    ctx.metrics.add("mean", float(values.mean()))
    ctx.record("spread", float(values.std()), tags={"scale": scale})
    return values


def _exp(ctx: FrozenContext) -> None:
    ctx.metrics.add("first", float(expensive(1.0, ctx)[0]))


def _run(replicates: int, cache: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = run_experiment(_exp, replicates=replicates, seed=5, cache=cache,
                            treatments=[Treatment("wide", {"scale": 2.0})])
    return time.perf_counter() - start, result


def _summary(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    replicates, rounds = (10, 3) if args.quick else (args.replicates, args.rounds)
    calls = 2 * replicates
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    os.environ.setdefault("CRYSTALLIZE_CACHE_SECRET", str(work / "secret"))
    warm_ratios, cold_ratios, per_hit = [], [], []
    try:
        _run(2, work / "warmup")  # imports and the secret, outside the figures
        for round_number in range(rounds):
            store = work / f"round-{round_number}"
            plain, reference = _run(replicates, None)
            cold, cold_result = _run(replicates, store)
            warm, warm_result = _run(replicates, store)
            for other in (cold_result, warm_result):
                if not reference.to_dataframe().equals(other.to_dataframe()):
                    raise SystemExit("the cached runs differ from the uncached one")
            warm_ratios.append(warm / plain)
            cold_ratios.append(cold / plain)
            per_hit.append(warm / calls)
            shutil.rmtree(store)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"step of {STEP_SECONDS * 1000:.0f} ms, {calls} calls per run, {rounds} rounds, interleaved")
    print(f"warm / uncached wall time: {_summary(warm_ratios)}")
    print(f"cold / uncached wall time: {_summary(cold_ratios)}   (computing and storing every call)")
    print(f"warm run per call: {statistics.median(per_hit) * 1e6:.0f} us "
          f"(min {min(per_hit) * 1e6:.0f}, max {max(per_hit) * 1e6:.0f})")


if __name__ == "__main__":
    main()
