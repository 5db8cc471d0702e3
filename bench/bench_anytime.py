"""Replicates used by anytime-valid monitoring against a fixed and a group-sequential design.

Run: ``python bench/bench_anytime.py [experiments]``. Each experiment is a
paired comparison run end to end with ``run_experiment``, on the same seeds
with three designs, interleaved: A fixed (``replicates=200``), B
group-sequential (``replicates="auto"``, 5 looks, O'Brien-Fleming), C anytime
(``replicates="anytime"``, checked after every replicate). Scenarios: no
effect, and effects of 0.3 and 0.6 standard deviations of the paired
difference. Prints per design the replicates per condition used (median,
quartiles, mean), the rejection rate, and the ratio of mean replicates to A.
Anytime pays for stopping at any time with less power at the same maximum.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from pytest_crystallize import Treatment, hypothesis, run_experiment

MAX = 200
DESIGNS = {
    "A fixed": {"replicates": MAX},
    "B group-sequential": {"replicates": "auto", "max_replicates": MAX, "looks": 5},
    "C anytime": {"replicates": "anytime", "max_replicates": MAX},
}


def _paired(ctx):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))


def main() -> None:
    experiments = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f"{experiments} experiments per scenario, at most {MAX} paired replicates, alpha 0.05, one-sided")
    for effect in (0.0, 0.3, 0.6):
        shift = effect * math.sqrt(2.0)  # the paired difference of two unit normals has SD sqrt(2)
        used: dict[str, list[int]] = {name: [] for name in DESIGNS}
        held: dict[str, list[bool]] = {name: [] for name in DESIGNS}
        for seed in range(experiments):
            for name, options in DESIGNS.items():  # interleaved on the same seed
                # The anytime design tests with its e-process and refuses a named test.
                test = "auto" if options["replicates"] == "anytime" else "paired_t"
                result = run_experiment(
                    _paired, seed=seed, treatments=[Treatment("t", {"shift": shift})],
                    hypotheses=[hypothesis("x", "maximize", test=test)], **options,  # type: ignore[arg-type]
                )
                used[name].append(result.provenance.replicates)
                held[name].append(result.verdicts[0].holds)
        print(f"effect {effect} SD of the difference:")
        fixed = np.mean(used["A fixed"])
        for name in DESIGNS:
            q1, median, q3 = np.percentile(used[name], [25, 50, 75])
            print(f"  {name:<20} replicates median {median:5.0f} [IQR {q1:3.0f}-{q3:3.0f}]  mean "
                  f"{np.mean(used[name]):6.1f}  ratio to A {np.mean(used[name]) / fixed:5.2f}  "
                  f"rejected {np.mean(held[name]):6.1%}")


if __name__ == "__main__":
    main()
