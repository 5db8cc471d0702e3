"""Verdicts against statistics computed independently with scipy and statsmodels.

Every expected number here is computed from data regenerated in the test
(the documented seed scheme + numpy) and scipy / statsmodels, not read back
from the code under test.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from pytest_crystallize import FrozenContext, Treatment, hypothesis, run_experiment

N = 20


def _seed_of(master: int, replicate: int) -> int:
    return int(np.random.SeedSequence(master, spawn_key=(replicate,)).generate_state(1, np.uint32)[0])


def _score(noise: np.ndarray, shift: float, jitter: float) -> float:
    """The data model shared by the experiment and the independent reference."""
    return float(10.0 + noise[0] + shift + jitter * noise[1])


def _exp_model(ctx: FrozenContext) -> None:
    noise = ctx.rng.normal(size=2)
    ctx.metrics.add("score", _score(noise, ctx.get("shift", 0.0), ctx.get("jitter", 0.0)))


def _reference(master: int, shift: float, jitter: float, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and treatment values of replicates 0..n-1, regenerated here."""
    base, treat = [], []
    for r in range(n):
        noise = np.random.default_rng(_seed_of(master, r)).normal(size=2)
        base.append(_score(noise, 0.0, 0.0))
        treat.append(_score(noise, shift, jitter))
    return np.array(base), np.array(treat)


def _run(seed: int, shift: float, jitter: float, direction: str, **options: Any) -> Any:
    return run_experiment(
        _exp_model,
        replicates=N,
        seed=seed,
        treatments=[Treatment("treated", {"shift": shift, "jitter": jitter})],
        hypotheses=[hypothesis("score", direction)],
        **options,
    )


# -- one hypothesis ---------------------------------------------------------------------------


def test_a_clear_effect_holds_with_every_field_right() -> None:
    result = _run(seed=101, shift=1.0, jitter=0.5, direction="maximize")
    base, treat = _reference(101, 1.0, 0.5)
    expected_p = stats.ttest_rel(treat, base, alternative="greater").pvalue
    assert expected_p < 1e-6  # the design really is a clear effect

    (v,) = result.verdicts
    assert (v.metric, v.treatment, v.direction) == ("score", "treated", "maximize")
    assert v.test == "paired_t"
    assert (v.n_baseline, v.n_treatment) == (N, N)
    assert v.mean_baseline == pytest.approx(base.mean(), rel=1e-12)
    assert v.mean_treatment == pytest.approx(treat.mean(), rel=1e-12)
    assert v.difference == pytest.approx(treat.mean() - base.mean(), rel=1e-12)
    assert v.p_value == pytest.approx(expected_p, rel=1e-9)
    assert v.p_adjusted == pytest.approx(expected_p, rel=1e-9)  # one comparison: nothing to correct
    assert v.alpha == 0.05
    assert v.holds is True
    assert v.reason.startswith("significant")
    assert result.passed


def test_no_effect_is_not_significant() -> None:
    result = _run(seed=5, shift=0.0, jitter=0.3, direction="maximize")
    base, treat = _reference(5, 0.0, 0.3)
    expected_p = stats.ttest_rel(treat, base, alternative="greater").pvalue
    # Preconditions of the design: a small positive difference, far from significant.
    assert treat.mean() > base.mean()
    assert expected_p > 0.2

    (v,) = result.verdicts
    assert v.p_value == pytest.approx(expected_p, rel=1e-9)
    assert v.difference == pytest.approx(treat.mean() - base.mean(), rel=1e-9)
    assert v.holds is False
    assert v.reason.startswith("not significant")
    assert "0.05" in v.reason
    assert not result.passed


def test_an_effect_in_the_wrong_direction_does_not_hold() -> None:
    result = _run(seed=101, shift=-1.0, jitter=0.5, direction="maximize")
    base, treat = _reference(101, -1.0, 0.5)
    (v,) = result.verdicts
    assert v.difference == pytest.approx(treat.mean() - base.mean(), rel=1e-12)
    assert v.difference < 0
    assert v.p_value == pytest.approx(stats.ttest_rel(treat, base, alternative="greater").pvalue, rel=1e-9)
    assert v.holds is False
    assert v.reason.startswith("wrong direction")
    assert "'maximize'" in v.reason


def test_the_same_effect_holds_for_minimize() -> None:
    result = _run(seed=101, shift=-1.0, jitter=0.5, direction="minimize")
    base, treat = _reference(101, -1.0, 0.5)
    (v,) = result.verdicts
    assert v.p_value == pytest.approx(stats.ttest_rel(treat, base, alternative="less").pvalue, rel=1e-9)
    assert v.holds is True


def test_two_sided_p_value_matches_scipy() -> None:
    result = _run(seed=77, shift=0.4, jitter=1.0, direction="two-sided")
    base, treat = _reference(77, 0.4, 1.0)
    (v,) = result.verdicts
    expected = stats.ttest_rel(treat, base).pvalue
    assert v.p_value == pytest.approx(expected, rel=1e-9)
    assert v.holds is bool(expected < 0.05)


def test_a_hypothesis_alpha_overrides_the_experiment_alpha() -> None:
    base, treat = _reference(12, 0.0, 0.3)
    expected_p = stats.ttest_rel(treat, base, alternative="greater").pvalue
    assert 0.01 < expected_p < 0.05  # significant at 0.05, not at 0.01
    result = run_experiment(
        _exp_model,
        replicates=N,
        seed=12,
        alpha=0.05,
        treatments=[Treatment("treated", {"jitter": 0.3})],
        # Named, not auto: auto's skewness screen may refuse small normal samples (stats docs).
        hypotheses=[hypothesis("score", "maximize", alpha=0.01, test="paired_t")],
    )
    (v,) = result.verdicts
    assert v.alpha == 0.01
    assert v.holds is False
    loose = run_experiment(
        _exp_model, replicates=N, seed=12, alpha=0.05, treatments=[Treatment("treated", {"jitter": 0.3})],
        hypotheses=[hypothesis("score", "maximize", test="paired_t")],
    )
    assert loose.verdicts[0].holds is True


# -- pairing ----------------------------------------------------------------------------------


def test_paired_test_is_chosen_when_replicates_align() -> None:
    result = _run(seed=101, shift=0.3, jitter=1.0, direction="two-sided")
    (v,) = result.verdicts
    assert v.test == "paired_t"
    assert v.details["paired"] is True


def test_an_unpaired_test_is_used_when_replicates_do_not_align() -> None:
    def fn(ctx: FrozenContext) -> None:
        noise = ctx.rng.normal(size=2)
        if ctx.condition == "baseline" and ctx.replicate == 0:
            return  # baseline has no value for replicate 0: nothing to pair it with
        ctx.metrics.add("score", _score(noise, ctx.get("shift", 0.0), ctx.get("jitter", 0.0)))

    result = run_experiment(
        fn,
        replicates=N,
        seed=101,
        treatments=[Treatment("treated", {"shift": 1.0, "jitter": 0.5})],
        hypotheses=[hypothesis("score", "maximize")],
    )
    base, treat = _reference(101, 1.0, 0.5)
    base = base[1:]
    (v,) = result.verdicts
    assert v.test == "welch_t"
    assert v.details["paired"] is False
    assert (v.n_baseline, v.n_treatment) == (N - 1, N)
    expected = stats.ttest_ind(treat, base, equal_var=False, alternative="greater").pvalue
    assert v.p_value == pytest.approx(expected, rel=1e-9)


def test_a_failed_replicate_is_dropped_from_both_sides_and_pairing_survives() -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.condition == "treated" and ctx.replicate == 4:
            raise RuntimeError("crashed")
        _exp_model(ctx)

    result = run_experiment(
        fn,
        replicates=N,
        seed=101,
        treatments=[Treatment("treated", {"shift": 0.5, "jitter": 1.0})],
        hypotheses=[hypothesis("score", "maximize")],
    )
    base, treat = _reference(101, 0.5, 1.0)
    keep = np.arange(N) != 4
    (v,) = result.verdicts
    assert v.test == "paired_t"
    assert (v.n_baseline, v.n_treatment) == (N - 1, N - 1)
    expected = stats.ttest_rel(treat[keep], base[keep], alternative="greater").pvalue
    assert v.p_value == pytest.approx(expected, rel=1e-9)
    assert v.mean_baseline == pytest.approx(base[keep].mean(), rel=1e-12)


def test_paired_zero_one_outcomes_use_the_exact_mcnemar_test() -> None:
    # Replicates 0-1: both fail, 2-11: only the treatment succeeds, 12-13: only
    # the baseline succeeds, 14-19: both succeed. Discordant pairs: 10 vs 2.
    def fn(ctx: FrozenContext) -> None:
        r = ctx.replicate
        treated = ctx.condition == "treated"
        success = r >= 14 or (2 <= r < 12 and treated) or (12 <= r < 14 and not treated)
        ctx.metrics.add("converted", success)

    result = run_experiment(
        fn, replicates=N, treatments=[Treatment("treated")], hypotheses=[hypothesis("converted", "two-sided")]
    )
    (v,) = result.verdicts
    assert v.test == "mcnemar"
    assert v.p_value == pytest.approx(stats.binomtest(2, 12, 0.5).pvalue, rel=1e-9)
    assert v.mean_baseline == pytest.approx(8 / N)
    assert v.mean_treatment == pytest.approx(16 / N)


# -- several hypotheses: multiple-testing correction ------------------------------------------


#: metric -> (effect per unit of shift, spread of the treatment's extra noise, noise index)
_EFFECTS = {"big": (1.0, 0.5, 1), "small": (0.25, 0.5, 2), "none": (0.0, 0.6, 3)}
_MASTER = 2020
_SHIFTS = {"one": 1.0, "two": 0.6}


def _three(noise: np.ndarray, shift: float, treated: bool) -> dict[str, float]:
    """The data model shared by the experiment and the independent reference."""
    return {
        m: float(5.0 + noise[0] + ((effect * shift + spread * noise[k]) if treated else 0.0))
        for m, (effect, spread, k) in _EFFECTS.items()
    }


def _exp_three_metrics(ctx: FrozenContext) -> None:
    values = _three(ctx.rng.normal(size=4), ctx.get("shift", 0.0), ctx.condition != "baseline")
    for metric, value in values.items():
        ctx.metrics.add(metric, value)


def _three_metric_reference(master: int, shift: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    base: dict[str, list[float]] = {m: [] for m in _EFFECTS}
    treat: dict[str, list[float]] = {m: [] for m in _EFFECTS}
    for r in range(N):
        noise = np.random.default_rng(_seed_of(master, r)).normal(size=4)
        for m, value in _three(noise, 0.0, False).items():
            base[m].append(value)
        for m, value in _three(noise, shift, True).items():
            treat[m].append(value)
    return {m: (np.array(base[m]), np.array(treat[m])) for m in _EFFECTS}


def _run_three(
    correction: str = "holm",
    metrics: tuple[str, ...] = ("big", "small", "none"),
    treatments: tuple[str, ...] = ("one", "two"),
) -> Any:
    return run_experiment(
        _exp_three_metrics,
        replicates=N,
        seed=_MASTER,
        correction=correction,
        treatments=[Treatment(name, {"shift": _SHIFTS[name]}) for name in treatments],
        hypotheses=[hypothesis(m, "two-sided") for m in metrics],
    )


@pytest.mark.parametrize(
    ("correction", "sm_method"), [("holm", "holm"), ("bh", "fdr_bh"), ("bonferroni", "bonferroni")]
)
def test_p_values_are_corrected_across_all_hypotheses_and_treatments(correction: str, sm_method: str) -> None:
    result = _run_three(correction)
    assert len(result.verdicts) == 6
    assert {(v.metric, v.treatment) for v in result.verdicts} == {(m, t) for m in _EFFECTS for t in _SHIFTS}
    expected_raw = []
    for v in result.verdicts:
        base, treat = _three_metric_reference(_MASTER, _SHIFTS[v.treatment])[v.metric]
        expected_raw.append(stats.ttest_rel(treat, base).pvalue)
    expected_adjusted = multipletests(expected_raw, method=sm_method)[1]
    # The design must make the correction matter: some raw p below alpha, not all.
    assert any(p < 0.05 for p in expected_raw)
    assert not all(p < 0.05 for p in expected_raw)
    assert any(a != pytest.approx(p) for a, p in zip(expected_adjusted, expected_raw, strict=True))

    for v, raw, adjusted in zip(result.verdicts, expected_raw, expected_adjusted, strict=True):
        assert v.test == "paired_t"
        assert v.p_value == pytest.approx(raw, rel=1e-9)
        assert v.p_adjusted == pytest.approx(adjusted, rel=1e-9)
        assert v.holds is bool(adjusted < 0.05), (v.metric, v.treatment, v.reason)


def test_holm_adjustment_can_turn_a_raw_significant_p_into_a_failure() -> None:
    result = _run_three("holm")
    raw_only = [v for v in result.verdicts if v.p_value < 0.05 <= v.p_adjusted]
    assert raw_only, "design error: no verdict is significant only before correction"
    for v in raw_only:
        assert v.holds is False
        assert v.reason.startswith("not significant")
        assert "holm" in v.reason


def test_correction_none_leaves_p_values_alone() -> None:
    result = _run_three("none")
    assert all(v.p_adjusted == v.p_value for v in result.verdicts)


def test_a_missing_metric_does_not_count_in_the_correction() -> None:
    result = run_experiment(
        _exp_three_metrics,
        replicates=N,
        seed=_MASTER,
        treatments=[Treatment("one", {"shift": _SHIFTS["one"]})],
        hypotheses=[
            hypothesis("big", "two-sided"),
            hypothesis("ghost", "two-sided"),
            hypothesis("small", "two-sided"),
        ],
    )
    ref = _three_metric_reference(_MASTER, _SHIFTS["one"])
    raw = [stats.ttest_rel(ref[m][1], ref[m][0]).pvalue for m in ("big", "small")]
    adjusted = multipletests(raw, method="holm")[1]
    big, ghost, small = result.verdicts
    assert big.p_adjusted == pytest.approx(adjusted[0], rel=1e-9)
    assert small.p_adjusted == pytest.approx(adjusted[1], rel=1e-9)
    assert math.isnan(ghost.p_value)
    assert math.isnan(ghost.p_adjusted)
    assert not ghost.holds


# -- values a test cannot use -------------------------------------------------------------------


def test_a_non_finite_value_is_reported_with_the_replicate_it_came_from() -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.condition == "treated" and ctx.replicate == 0:
            raise RuntimeError("crashed")
        bad = ctx.condition == "baseline" and ctx.replicate == 3
        ctx.metrics.add("score", math.nan if bad else ctx.replicate + ctx.rng.normal())

    result = run_experiment(
        fn, replicates=6, treatments=[Treatment("treated")], hypotheses=[hypothesis("score")]
    )
    (v,) = result.verdicts
    assert not v.holds
    assert "'baseline'" in v.reason
    assert "replicate(s) [3]" in v.reason, v.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"direction": "no_worse", "margin": "lots"}, "margin must be a number >= 0 (in the metric's units) or a percentage"),
        ({"direction": "no_worse", "margin": -1}, "margin must be a number >= 0"),
        ({"direction": "two-sided", "margin": 0.1}, "a margin has no meaning for direction 'two-sided'"),
        ({"direction": "equivalent", "margin": 0}, "direction 'equivalent' needs a margin > 0"),
    ],
)
def test_bad_margins_are_refused_before_any_replicate_runs(options, message) -> None:
    from pytest_crystallize import HypothesisError

    calls = []

    def counted(ctx):
        calls.append(ctx.replicate)
        ctx.metrics.add("x", 1.0)

    with pytest.raises(HypothesisError, match=re.escape(message)) as info:
        run_experiment(counted, name="margins", replicates=3, treatments=[Treatment("t")],
                       hypotheses=[hypothesis("x", **options)])
    assert "experiment 'margins'" in str(info.value)
    assert calls == []


def test_a_percentage_margin_is_relative_to_the_baseline_mean() -> None:
    from scipy import stats

    def shifted(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        ctx.metrics.add("x", 100 + rng.normal() + ctx.get("shift", 0.0))

    result = run_experiment(shifted, replicates=20, seed=3, treatments=[Treatment("t", {"shift": -0.5})],
                            hypotheses=[hypothesis("x", "no_worse", test="welch_t", margin="2%")])
    _, base = result.select("x", "baseline")
    _, treat = result.select("x", "t")
    margin = 0.02 * abs(base.mean())
    expected = stats.ttest_ind(treat + margin, base, equal_var=False, alternative="greater").pvalue
    assert result.verdicts[0].p_value == pytest.approx(expected, rel=1e-9)


def _shift_metric(ctx):
    rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
    ctx.metrics.add("x", rng.normal(0, 0.1) + ctx.get("shift", 0.0))


def test_a_no_worse_failure_says_by_how_much_and_names_the_margin() -> None:
    result = run_experiment(_shift_metric, replicates=10, treatments=[Treatment("t", {"shift": -1.0})],
                            hypotheses=[hypothesis("x", "no_worse", margin=0.5)])
    verdict = result.verdicts[0]
    worse = -verdict.difference
    assert not verdict.holds
    assert verdict.reason.startswith(f"worse by {worse:.4g}, more than the margin 0.5")


def test_an_equivalence_failure_says_the_difference_lies_outside_the_margin() -> None:
    result = run_experiment(_shift_metric, replicates=10, treatments=[Treatment("t", {"shift": 1.0})],
                            hypotheses=[hypothesis("x", "equivalent", margin=0.5)])
    verdict = result.verdicts[0]
    assert verdict.reason.startswith(f"difference {verdict.difference:+.4g} lies outside ±0.5")


def test_a_users_test_that_raises_fails_its_verdict_naming_the_test() -> None:
    def fragile(baseline, treatment, alternative):
        raise RuntimeError("mine broke")

    result = run_experiment(_shift_metric, replicates=5, treatments=[Treatment("t")],
                            hypotheses=[hypothesis("x", "maximize", test=fragile)])
    verdict = result.verdicts[0]
    assert not verdict.holds
    assert verdict.reason == "test 'fragile' raised RuntimeError: mine broke"
