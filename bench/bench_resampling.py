"""Resampling verdicts on 10,000 replicates: permutation and bootstrap, time and peak memory.

Each figure compares ``compare(...)`` (the whole verdict: test, interval,
effect size, power) with a plain chunked numpy computation of the same
resamples, in interleaved rounds in one invocation, as medians with their
spread and a ratio:

* **paired permutation**: ``compare(b, t, test="permutation", paired=True)``
  against a chunked numpy sign-flip of the 9,999 resamples (random signs,
  one matrix-vector product per chunk). Targets: time <= 2x the sign-flip;
  peak memory (``tracemalloc``, fresh interpreter) <= 300 MB.
* **unpaired permutation**: ``compare(b, t, test="permutation")`` (label
  shuffles), time and peak memory, shown against the same 300 MB.
* **paired bootstrap**: ``compare(b, t, test="bootstrap", paired=True)``
  against drawing the 9,999 bootstrap means once with chunked numpy: a
  ratio near 2 means the resamples are drawn twice (test, then interval).

Usage::

    python bench/bench_resampling.py            # 10,000 replicates, 5 rounds
    python bench/bench_resampling.py --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from bench_data import interleave
from bench_plugin_import import spread

REPLICATES = 10_000
RESAMPLES = 9_999
ROUNDS = 5
QUICK_ROUNDS = 3
CHUNK_ELEMENTS = 1 << 22
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 300.0
SEED = 5


def samples(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    baseline = rng.normal(10.0, 2.0, size=n)
    return baseline, baseline + rng.normal(0.02, 1.0, size=n)


def sign_flip(differences: np.ndarray, seed: int) -> float:
    """Two-sided sign-flip p-value of the mean difference, chunked plain numpy."""
    rng = np.random.default_rng(seed)
    n = differences.size
    observed = differences.mean()
    chunk = max(1, CHUNK_ELEMENTS // n)
    low = high = 0
    for start in range(0, RESAMPLES, chunk):
        k = min(chunk, RESAMPLES - start)
        signs = rng.integers(0, 2, size=(k, n)).astype(np.float64) * 2.0 - 1.0
        null = signs @ differences / n
        low += int(np.count_nonzero(null <= observed))
        high += int(np.count_nonzero(null >= observed))
    return min(1.0, 2.0 * (min(low, high) + 1) / (RESAMPLES + 1))


def bootstrap_once(differences: np.ndarray, seed: int) -> np.ndarray:
    """The 9,999 bootstrap means of the differences, drawn once, chunked plain numpy."""
    rng = np.random.default_rng(seed)
    n = differences.size
    out = np.empty(RESAMPLES)
    chunk = max(1, CHUNK_ELEMENTS // n)
    for start in range(0, RESAMPLES, chunk):
        k = min(chunk, RESAMPLES - start)
        out[start:start + k] = differences[rng.integers(0, n, size=(k, n))].mean(axis=1)
    return out


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


PEAK_CHILD = r'''
import json, sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import numpy as np
from bench_resampling import REPLICATES, SEED, samples, sign_flip
from pytest_crystallize.core.stats import compare
variant = sys.argv[2]
b, t = samples(REPLICATES)
compare(b[:50], t[:50], test="permutation", paired=True)  # warm-up: scipy
runs = {
    "paired permutation": lambda: compare(b, t, test="permutation", paired=True, seed=SEED),
    "unpaired permutation": lambda: compare(b, t, test="permutation", seed=SEED),
    "paired bootstrap": lambda: compare(b, t, test="bootstrap", paired=True, seed=SEED),
    "numpy sign-flip": lambda: sign_flip(t - b, SEED),
}
tracemalloc.start()
runs[variant]()
print(json.dumps({"peak": tracemalloc.get_traced_memory()[1]}))
'''


def peak_mb(variant: str) -> float:
    child = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(Path(__file__).resolve().parent), variant],
                           capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise RuntimeError(f"peak-memory child failed for {variant!r}:\n{child.stderr[-3000:]}")
    return float(json.loads(child.stdout.strip().splitlines()[-1])["peak"]) / 1e6


def report(label: str, a: Sequence[float], b: Sequence[float], target: float | None) -> float:
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    ratio = statistics.median(ratios)
    verdict = "" if target is None else f"  target <= {target:g}: {'PASS' if ratio <= target else 'MISS'}"
    print(f"  {label}")
    print(f"    A {spread(a, '.3f')} s")
    print(f"    B {spread(b, '.3f')} s")
    print(f"    A/B median of rounds {ratio:.2f} [{min(ratios):.2f}-{max(ratios):.2f}]{verdict}")
    return ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds")
    parser.add_argument("--rounds", type=int, default=None, help=f"rounds (default {ROUNDS})")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    args = parser.parse_args(argv)
    rounds = max(1, args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS))
    from pytest_crystallize.core.stats import compare

    b, t = samples(REPLICATES)
    d = t - b
    compare(b[:50], t[:50], test="permutation", paired=True)  # warm-up: scipy
    print(f"bench_resampling: {REPLICATES:,} replicates per condition, {RESAMPLES:,} resamples, {rounds} rounds")
    missed = 0
    print("\ntime (A = compare(...), B = plain chunked numpy):")
    paired = report(
        "paired permutation: A = compare(test='permutation', paired=True), B = numpy sign-flip",
        *interleave(rounds, lambda: timed(lambda: compare(b, t, test="permutation", paired=True, seed=SEED)),
                    lambda: timed(lambda: sign_flip(d, SEED))), TARGET_RATIO)
    missed += paired > TARGET_RATIO
    report("unpaired permutation: A = compare(test='permutation'), B = numpy sign-flip (for scale)",
           *interleave(rounds, lambda: timed(lambda: compare(b, t, test="permutation", seed=SEED)),
                       lambda: timed(lambda: sign_flip(d, SEED))), None)
    report("paired bootstrap: A = compare(test='bootstrap', paired=True), B = numpy bootstrap drawn once",
           *interleave(rounds, lambda: timed(lambda: compare(b, t, test="bootstrap", paired=True, seed=SEED)),
                       lambda: timed(lambda: bootstrap_once(d, SEED))), None)
    if not args.no_memory:
        print(f"\npeak memory (tracemalloc, fresh interpreter each), target <= {TARGET_PEAK_MB:g} MB:")
        for variant in ("paired permutation", "unpaired permutation", "paired bootstrap", "numpy sign-flip"):
            peak = peak_mb(variant)
            verdict = "" if variant == "numpy sign-flip" else (
                f"  {'PASS' if peak <= TARGET_PEAK_MB else 'MISS'}")
            if variant == "paired permutation":
                missed += peak > TARGET_PEAK_MB
            print(f"  {variant:<22} {peak:9.1f} MB{verdict}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
