"""Adaptive sweeps: decided treatments get no more replicates; the familywise error stays at alpha."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_crystallize import ConfigurationError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.report.text import summarize, summary_lines


def _grid(ctx):
    shared = np.random.default_rng(ctx.seed).normal()
    own = np.random.default_rng([ctx.seed, 1 + int(ctx.get("setting", -1))]).normal()
    ctx.metrics.add("x", shared + own + ctx.get("shift", 0.0))


def _sweep(shifts: list[float], *, seed: int = 1, **kw):
    options = {"replicates": "auto", "max_replicates": 80, "looks": 4, "adaptive": True, **kw}
    return run_experiment(
        _grid, seed=seed, treatments=[Treatment(f"s{i}", {"setting": i, "shift": s}) for i, s in enumerate(shifts)],
        hypotheses=[hypothesis("x", "maximize", test="paired_t")], **options,
    )


def test_a_decided_treatment_gets_no_more_replicates() -> None:
    result = _sweep([0.0, -0.5, 1.0, 0.0, 0.0, 0.0])
    schedule = (20, 40, 60, 80)
    ran = 0
    for verdict in result.verdicts:
        replicates, _ = result.select("x", verdict.treatment)
        seq = verdict.details["sequential"]
        # Its replicates stop at the look that decided it: the sweep spent nothing more on it.
        assert replicates.max() + 1 == schedule[seq["look"] - 1], verdict.treatment
        ran += len(replicates)
    baseline, _ = result.select("x", "baseline")
    assert result.provenance.tasks_run == ran + len(baseline)
    assert result.provenance.tasks_run < 7 * result.provenance.replicates  # some treatment was dropped early
    assert result.verdicts[2].holds
    assert "adaptive sweep" in result.verdicts[0].details["design"]
    line = summary_lines(summarize(result))[-1]
    assert f"({result.provenance.tasks_run} of 560 run: the adaptive sweep dropped decided treatments)" in line


def test_adaptive_turns_on_futility_unless_told_otherwise() -> None:
    assert _sweep([0.0]).verdicts[0].details["sequential"]["futility"] == "non_binding"
    assert _sweep([0.0], futility="binding").verdicts[0].details["sequential"]["futility"] == "binding"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"adaptive": "yes"}, "adaptive must be True or False"),
        ({"replicates": "anytime", "max_replicates": 40}, "adaptive=True needs replicates='auto'"),
    ],
)
def test_bad_adaptive_options_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _sweep([0.0], **options)


def test_the_sweep_keeps_the_familywise_error_at_alpha() -> None:
    """200 sweeps of 4 null settings: any false positive counts; within binomial noise of alpha."""
    experiments, alpha = 200, 0.05
    false = sum(any(v.holds for v in _sweep([0.0] * 4, seed=seed, max_replicates=20).verdicts)
                for seed in range(experiments))
    assert false <= stats.binom.ppf(0.999, experiments, alpha), false


def test_the_summary_table_s_diff_is_the_verdict_s_paired_difference() -> None:
    # A treatment dropped at an early look has fewer replicates than the baseline: its row's diff
    # must be over the replicates both ran (as its paired verdict), not its mean minus all the baseline's.
    result = _sweep([0.0, -0.5, 1.0, 0.0, 0.0, 0.0])
    rows = {row["condition"]: row for row in summarize(result)["rows"]}
    base_rep, base_val = result.select("x", "baseline")
    dropped = 0
    for verdict in result.verdicts:
        replicates, values = result.select("x", verdict.treatment)
        dropped += len(replicates) < len(base_rep)
        paired = float(np.mean(values[np.argsort(replicates)] - base_val[np.isin(base_rep, replicates)]))
        assert rows[verdict.treatment]["difference"] == pytest.approx(paired, abs=1e-12), verdict.treatment
        assert verdict.difference == pytest.approx(paired, abs=1e-12), verdict.treatment
    assert dropped  # the premise: some treatment stopped before the baseline did
    assert any("shares with the baseline" in note for note in summarize(result)["notes"])
