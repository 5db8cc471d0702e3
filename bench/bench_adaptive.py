"""An adaptive sweep against the fixed design: a 16-setting grid with one real winner.

Run: ``python bench/bench_adaptive.py [experiments]``. Each experiment
compares 16 treatments with the baseline (paired replicates, one-sided
paired t, familywise alpha 0.05). The winner's effect is the one a fixed
design of ``FIXED`` replicates per condition detects with 80% power at
alpha/16 (Bonferroni; the fixed design uses Holm, at least as powerful). The
adaptive design (``replicates="auto"``, 4 looks, non-binding futility,
``adaptive=True``) has the same 80% power by construction: its
``max_replicates`` is the fixed size scaled by the plan's drift, and its plan
shares alpha by Bonferroni. Same seeds, interleaved. Prints per design the
replicate runs (condition x replicate tasks) used, the power (winner shown)
and, on a second grid with no winner at all, the familywise error rate.
Target (issue 15): at least 40% fewer replicate runs at the same power,
familywise error at most alpha.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from scipy import stats

from pytest_crystallize import Treatment, hypothesis, run_experiment
from pytest_crystallize.core.stats import SequentialPlan

SETTINGS, FIXED, LOOKS, ALPHA = 16, 40, 4, 0.05


def _grid(ctx):  # type: ignore[no-untyped-def]
    shared = np.random.default_rng(ctx.seed).normal()
    own = np.random.default_rng([ctx.seed, 1 + int(ctx.get("setting", -1))]).normal()
    ctx.metrics.add("x", shared + own + ctx.get("shift", 0.0))


def main() -> None:
    experiments = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    share = ALPHA / SETTINGS
    z = stats.norm.isf(share) + stats.norm.isf(0.2)
    effect = z * math.sqrt(2.0) / math.sqrt(FIXED)  # paired differences have SD sqrt(2)
    plan = SequentialPlan(100, LOOKS, share, futility="non_binding", power=0.8)
    maximum = math.ceil(FIXED * (plan.drift / z) ** 2)
    designs = {
        "A fixed": {"replicates": FIXED},
        "B adaptive sweep": {"replicates": "auto", "max_replicates": maximum, "looks": LOOKS, "adaptive": True},
    }
    print(f"{experiments} experiments, {SETTINGS} settings, fixed {FIXED} replicates per condition, adaptive at "
          f"most {maximum} in {LOOKS} looks; winner effect {effect:.3f} (paired difference SD sqrt(2))")
    for scenario, winner in (("one winner", 0), ("no winner", None)):
        runs: dict[str, list[int]] = {name: [] for name in designs}
        shown: dict[str, list[bool]] = {name: [] for name in designs}
        false: dict[str, list[bool]] = {name: [] for name in designs}
        treatments = [Treatment(f"s{i}", {"setting": i, "shift": effect if i == winner else 0.0})
                      for i in range(SETTINGS)]
        for seed in range(experiments):
            for name, options in designs.items():  # interleaved on the same seed
                result = run_experiment(
                    _grid, seed=seed, treatments=treatments, alpha=ALPHA,
                    hypotheses=[hypothesis("x", "maximize", test="paired_t")], **options,  # type: ignore[arg-type]
                )
                tasks = result.provenance.tasks_run
                runs[name].append(tasks if tasks is not None else FIXED * (SETTINGS + 1))
                holds = {v.treatment: v.holds for v in result.verdicts}
                shown[name].append(winner is not None and holds[f"s{winner}"])
                false[name].append(any(h for t, h in holds.items() if t != f"s{winner}"))
        print(f"{scenario}:")
        for name in designs:
            q1, median, q3 = np.percentile(runs[name], [25, 50, 75])
            line = (f"  {name:<17} replicate runs median {median:6.0f} [IQR {q1:5.0f}-{q3:5.0f}] mean "
                    f"{np.mean(runs[name]):7.1f}  familywise error {np.mean(false[name]):5.1%}")
            if winner is not None:
                line += f"  power {np.mean(shown[name]):5.1%}"
            print(line)
        ratio = np.mean(runs["B adaptive sweep"]) / np.mean(runs["A fixed"])
        print(f"  B / A mean replicate runs {ratio:.3f}: the adaptive sweep saves {1 - ratio:.1%}")


if __name__ == "__main__":
    main()
