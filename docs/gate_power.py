"""How often the regression gate catches a regression: the tables of docs/explanation/gate-power.md.

The gate fails a metric when a one-sided test shows it worse than the saved
run by more than the margin. With replicates paired by seed that is the
paired t-test of H0 "regression <= margin" against "regression > margin" at
alpha (0.05 by default). Its power when the true regression exceeds the
margin by ``excess`` is that of a one-sample t-test with effect size
``d = excess / sd`` (``sd``: the standard deviation of the paired
differences), computed from the noncentral t distribution:

    power = P(T' > t_{1-alpha, n-1}),  T' ~ noncentral t(n - 1, d * sqrt(n))

One gated metric, no correction; with several gated metrics or conditions
the correction (Holm by default) lowers it. Run ``python docs/gate_power.py``
to print the tables; the suite checks the page shows what it prints, that
the formula agrees with statsmodels, and that the real gate's detection rate
in a simulation agrees with the formula.
"""

from __future__ import annotations

import math

from scipy import stats

ALPHA = 0.05
REPLICATES = (10, 20, 30, 50, 100, 200)
EXCESS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)  # regression beyond the margin, in SDs of the paired differences
MULTIPLES = (1.0, 1.25, 1.5, 2.0, 3.0)  # regression as a multiple of the margin
MARGIN_IN_SD = 0.25  # the example: a margin of a quarter of the paired differences' SD


def power(n: int, excess: float, alpha: float = ALPHA) -> float:
    """Probability that the gate fails a regression ``excess`` SDs beyond the margin, with ``n`` pairs."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha, df)
    return float(stats.nct.sf(critical, df, excess * math.sqrt(n)))


def replicates_for(excess: float, target: float = 0.8, alpha: float = ALPHA) -> int:
    """The fewest pairs that catch a regression ``excess`` SDs beyond the margin ``target`` of the time."""
    n = 2
    while power(n, excess, alpha) < target:
        n += 1
    return n


def _percent(p: float) -> str:
    return ">99%" if p >= 0.995 else f"{p:.0%}"  # never round a miss rate away to "100%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows])


def by_excess() -> str:
    """Detection rate by replicates and by regression beyond the margin (in SDs of the differences)."""
    header = ["replicates", *(f"+{e:g} SD" for e in EXCESS)]
    rows = [[str(n), *(_percent(power(n, e)) for e in EXCESS)] for n in REPLICATES]
    rows.append(["for 80%", *(str(replicates_for(e)) for e in EXCESS)])
    return _table(header, rows)


def by_multiple() -> str:
    """Detection rate by replicates and by regression as a multiple of a margin of MARGIN_IN_SD SDs."""
    header = ["replicates", *(f"{k:g}x margin" for k in MULTIPLES)]
    rows = [[str(n), *(_percent(power(n, (k - 1) * MARGIN_IN_SD)) for k in MULTIPLES)] for n in REPLICATES]
    return _table(header, rows)


def main() -> None:
    print(f"Gate detection rate, one metric, paired, one-sided alpha {ALPHA}")
    print()
    print("Regression beyond the margin, in SDs of the paired differences:")
    print(by_excess())
    print()
    print(f"Regression as a multiple of the margin, when the margin is {MARGIN_IN_SD:g} SD:")
    print(by_multiple())


if __name__ == "__main__":
    main()
