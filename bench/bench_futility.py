"""Replicates saved by futility stops, under the null and under the design alternative.

Run: ``python bench/bench_futility.py [experiments]``. Each experiment is a
paired comparison (``replicates="auto"``, ``max_replicates=100``, 5 looks,
O'Brien-Fleming alpha spending) run end to end with ``run_experiment``; the
same seeds run without futility (A) and with non-binding futility (B),
interleaved. Prints, per scenario, the replicates per condition each design
used (median, quartiles, mean), the rejection rate, and the ratio B / A of
the mean replicates. The alternative is the design's own: the effect at which
``max_replicates`` has 80% power with the futility bounds (``plan.drift``).
"""

from __future__ import annotations

import math
import sys

import numpy as np

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.stats import SequentialPlan

MAX, LOOKS, ALPHA = 100, 5, 0.05


def _paired(ctx):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    shared = np.random.default_rng(ctx.seed).normal()
    ctx.metrics.add("x", shared + rng.normal() + ctx.get("shift", 0.0))


def _used(shift: float, seed: int, futility: bool) -> tuple[int, bool]:
    result = run_experiment(
        _paired, seed=seed, replicates="auto", max_replicates=MAX, looks=LOOKS, alpha=ALPHA,
        futility=futility, treatments=[Treatment("t", {"shift": shift})],
        hypotheses=[hypothesis("x", "maximize", test="paired_t")],
    )
    return result.provenance.replicates, result.verdicts[0].holds


def _line(label: str, used: list[int], rejected: list[bool]) -> str:
    q1, median, q3 = np.percentile(used, [25, 50, 75])
    return (f"  {label:<18} replicates median {median:5.0f} [IQR {q1:3.0f}-{q3:3.0f}]  mean {np.mean(used):6.1f}"
            f"  rejected {np.mean(rejected):6.1%}")


def main() -> None:
    experiments = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    plan = SequentialPlan(MAX, LOOKS, ALPHA, futility="non_binding")
    # Paired differences have SD sqrt(2) here; the design drift is the expected final z.
    alternative = plan.drift * math.sqrt(2.0) / math.sqrt(MAX)
    print(f"{experiments} experiments per scenario, max_replicates={MAX}, looks={LOOKS}, alpha={ALPHA}, "
          f"design power {plan.power:.0%} (drift {plan.drift:.3f})")
    print(f"futility bounds (z): {', '.join(f'{a:.3f}' for a in plan.futility_bounds)}")
    for name, shift in (("null (no effect)", 0.0), ("design alternative", alternative)):
        runs: dict[bool, tuple[list[int], list[bool]]] = {False: ([], []), True: ([], [])}
        for seed in range(experiments):
            for futility in (False, True):  # A and B interleaved on the same seed
                used, holds = _used(shift, seed, futility)
                runs[futility][0].append(used)
                runs[futility][1].append(holds)
        print(f"{name}: shift {shift:.4f}")
        print(_line("A efficacy only", *runs[False]))
        print(_line("B with futility", *runs[True]))
        ratio = np.mean(runs[True][0]) / np.mean(runs[False][0])
        print(f"  B / A mean replicates {ratio:.3f}: futility saves {1 - ratio:.1%} of the replicates")


if __name__ == "__main__":
    main()
