"""The gate-power tables of the docs are right: the formula against statsmodels, the real gate against the formula.

``docs/gate_power.py`` computes the detection rate of the regression gate
from the noncentral t distribution; docs/explanation/gate-power.md shows its
tables. Here the formula is checked against statsmodels' ``TTestPower``
(computed independently), and the gate itself (``compare_results``) is run on
simulated paired runs: its detection rate must agree with the formula within
the binomial standard error of the simulation.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

import gate_power  # noqa: E402  (docs/ holds the script the page runs)


@pytest.mark.parametrize(("n", "excess"), [(10, 0.5), (30, 0.2), (30, 0.25), (100, 0.3), (200, 0.1)])
def test_the_formula_agrees_with_statsmodels(n: int, excess: float):
    from statsmodels.stats.power import TTestPower

    expected = TTestPower().power(effect_size=excess, nobs=n, alpha=0.05, alternative="larger")
    assert gate_power.power(n, excess) == pytest.approx(expected, abs=1e-6)


def test_replicates_for_80_percent_is_the_first_n_that_reaches_it():
    n = gate_power.replicates_for(0.3)
    assert gate_power.power(n, 0.3) >= 0.8 > gate_power.power(n - 1, 0.3)


def _result(values: np.ndarray):
    from pytest_crystallize import ExperimentResult, Provenance

    n = len(values)
    return ExperimentResult(
        experiment="e", conditions=("baseline",), metrics=("m",), condition_codes=np.zeros(n, dtype=int),
        replicates=np.arange(n), metric_codes=np.zeros(n, dtype=int), values=values, tags=(None,) * n,
        errors=(), verdicts=(),
        provenance=Provenance(experiment="e", master_seed=1, replicates=n, conditions=("baseline",), treatments={},
                              alpha=0.05, correction="holm", started_at="2025-01-01T00:00:00+00:00", duration_s=0.0),
    )


@pytest.mark.parametrize("multiple", [2.0, 3.0])
def test_the_real_gate_catches_what_the_table_says(multiple: float):
    # 30 replicates, a margin of a quarter of the differences' SD, the true regression a multiple of it:
    # the cells of the page's second table.
    from pytest_crystallize.core.store.gate_rows import REGRESSED, compare_results
    from pytest_crystallize.core.store.gate_specs import GateSpec

    n, margin, simulations = 30, 1.0, 300
    sd = margin / gate_power.MARGIN_IN_SD
    rng = np.random.default_rng([2024, int(multiple * 4)])
    caught = 0
    for _ in range(simulations):
        saved = rng.normal(100.0, 5.0, n)
        current = saved - multiple * margin + rng.normal(0.0, sd, n)
        (row,) = compare_results(_result(current), _result(saved), [GateSpec("m", "higher", margin=margin)])
        caught += row.status == REGRESSED
    expected = gate_power.power(n, (multiple - 1) * gate_power.MARGIN_IN_SD)
    standard_error = math.sqrt(expected * (1 - expected) / simulations)
    assert abs(caught / simulations - expected) < 4 * standard_error, (caught / simulations, expected)
