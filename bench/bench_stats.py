"""Time the verdict path on 1,000,000 values per condition.

Run: ``python bench/bench_stats.py``. Target: under one second in total for
paired t, Welch t, Mann-Whitney and describe() of both conditions (scipy's
one-off import is timed separately, as the plugin pays it once per session).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pytest_crystallize.core.stats import compare, describe

N = 1_000_000


def _timed(label: str, fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<28} {elapsed * 1000:8.1f} ms")
    return elapsed


def main() -> None:
    rng = np.random.default_rng(0)
    baseline = rng.normal(10.0, 2.0, size=N)
    treatment = baseline + rng.normal(0.01, 1.0, size=N)

    print(f"values per condition: {N:,}")
    _timed("import scipy.stats (once)", lambda: __import__("scipy.stats"))
    total = 0.0
    total += _timed("compare paired_t (auto)", lambda: compare(baseline, treatment, paired=True))
    total += _timed("compare welch_t", lambda: compare(baseline, treatment, test="welch_t"))
    total += _timed("compare mann_whitney", lambda: compare(baseline, treatment, test="mann_whitney"))
    total += _timed("describe baseline", lambda: describe(baseline))
    total += _timed("describe treatment", lambda: describe(treatment))
    print(f"{'total':<28} {total * 1000:8.1f} ms  ({'OK' if total < 1.0 else 'OVER'} target 1000 ms)")


if __name__ == "__main__":
    main()
