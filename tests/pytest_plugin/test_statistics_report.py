"""What the terminal shows of the statistics: verdict lines, -v details, corrections, warnings."""

from __future__ import annotations

import re

import pytest
from scipy import stats

TWO_HYPOTHESES = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=15, seed=3, treatments=[Treatment("t", {{"shift": 0.6}})]{extra})
    @hypothesis(metric="a", direction="maximize", test="welch_t")
    @hypothesis(metric="b", direction="maximize", test="welch_t")
    def experiment_two(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        # Means well away from zero, so the relative difference is printed.
        ctx.metrics.add("a", 10 + rng.normal() + ctx.get("shift", 0.0))
        ctx.metrics.add("b", 10 + rng.normal() + ctx.get("shift", 0.0) / 2)
"""


def _p_values(text: str) -> dict[str, tuple[float, float | None]]:
    """Raw and adjusted p per hypothesis from the verdict lines."""
    out = {}
    for match in re.finditer(r"'(\w) maximize' t vs baseline: .*?, p ([\d.e-]+)(?: \(adjusted ([\d.e-]+)\))?", text):
        out[match.group(1)] = (float(match.group(2)), float(match.group(3)) if match.group(3) else None)
    return out


def test_verdict_lines_show_difference_interval_effect_size_and_adjusted_p(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_HYPOTHESES.format(extra=""))
    result = pytester.runpytest("--crystallize")
    text = result.stdout.str()
    assert re.search(r"'a maximize' t vs baseline: diff \+[\d.]+ \([+\d.]+%\) \[95% CI [-+][\d.e-]+, \+[\d.e-]+\], "
                     r"hedges_g \+[\d.]+, p [\d.e-]+", text), text
    p = _p_values(text)
    raw = [p["a"][0], p["b"][0]]
    # Holm over two p-values, written out: the smaller is doubled, the larger kept (monotone).
    low, high = sorted(raw)
    holm = {low: min(1, 2 * low), high: min(1, max(2 * low, high))}
    for raw_p, adjusted in p.values():
        shown = adjusted if adjusted is not None else raw_p
        assert shown == pytest.approx(holm[raw_p], rel=1e-3)


def test_the_correction_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_HYPOTHESES.format(extra=""))
    result = pytester.runpytest("--crystallize", "--crystallize-correction", "none")
    assert all(adjusted is None for _, adjusted in _p_values(result.stdout.str()).values())


def test_bonferroni_from_the_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TWO_HYPOTHESES.format(extra=', correction="bonferroni"'))
    result = pytester.runpytest("--crystallize")
    for raw_p, adjusted in _p_values(result.stdout.str()).values():
        assert (adjusted if adjusted is not None else raw_p) == pytest.approx(min(1, 2 * raw_p), rel=1e-3)


def test_verbose_shows_why_the_test_was_chosen(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=10, treatments=[Treatment("t", {"p": 0.9})])
        @hypothesis(metric="win", direction="maximize")
        def experiment_auto(ctx):
            ctx.metrics.add("win", int(ctx.rng.random() < ctx.get("p", 0.3)))
    """)
    result = pytester.runpytest("--crystallize", "-v")
    result.stdout.fnmatch_lines([
        "*'win maximize' t vs baseline: *risk_difference*mcnemar*",
        "*test choice: *0/1*",
    ])


def test_a_users_own_test_reports_like_a_builtin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from scipy import stats
        from pytest_crystallize import Treatment, hypothesis

        def brunner_munzel(baseline, treatment, alternative):
            return stats.brunnermunzel(treatment, baseline, alternative=alternative).pvalue

        @pytest.mark.experiment(replicates=20, treatments=[Treatment("t", {"shift": 2.0})])
        @hypothesis(metric="x", direction="maximize", test=brunner_munzel)
        def experiment_custom(ctx):
            ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0) * ctx.rng.random())
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASS 'x maximize' t vs baseline: *, brunner_munzel: significant"])


def test_an_underpowered_experiment_warns_in_the_warnings_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=5, treatments=[Treatment("t", {"shift": 0.1})])
        @hypothesis(metric="x", direction="maximize", test="welch_t", mde=0.5)
        def experiment_small(ctx):
            rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
            ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))
    """)
    result = pytester.runpytest("--crystallize")
    result.stdout.fnmatch_lines([
        "*LowPowerWarning: experiment 'experiment_small': hypothesis 'x maximize' for treatment 't' has *% "
        "power to detect an effect of 0.5 with 5 replicates; about * replicates per condition would give 80%",
    ])


def test_too_few_replicates_for_the_test_say_the_minimum(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=1, treatments=[Treatment("t")])
        @hypothesis(metric="x", direction="maximize", test="paired_t")
        def experiment_one(ctx):
            ctx.metrics.add("x", ctx.rng.normal())
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*at least 2*"])


def test_the_summary_counts_match_scipy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import json
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates=12, seed=9, treatments=[Treatment("t", {"shift": 1.0})])
        @hypothesis(metric="x", direction="maximize", test="paired_t")
        def experiment_paired(ctx):
            ctx.metrics.add("x", ctx.rng.normal() + ctx.get("shift", 0.0) * ctx.rng.random())
    """)
    result = pytester.runpytest("--crystallize")
    text = result.stdout.str()
    shown = float(re.search(r"'x maximize' t vs baseline: .*?, p ([\d.e-]+)", text).group(1))
    # Recompute the same replicates independently of the plugin.
    import numpy as np

    base, treat = [], []
    for r in range(12):
        seed = int(np.random.SeedSequence(9, spawn_key=(r,)).generate_state(1, np.uint32)[0])
        b = np.random.default_rng(seed)
        base.append(b.normal())
        t = np.random.default_rng(seed)
        treat.append(t.normal() + 1.0 * t.random())
    expected = stats.ttest_rel(treat, base, alternative="greater").pvalue
    assert shown == pytest.approx(expected, rel=1e-3)


def test_a_sequential_experiment_reports_its_looks_and_the_replicates_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from pytest_crystallize import Treatment, hypothesis

        @pytest.mark.experiment(replicates="auto", max_replicates=80, looks=4,
                                treatments=[Treatment("t", {"shift": 3.0})])
        @hypothesis(metric="x", direction="maximize", test="welch_t")
        def experiment_sequential(ctx):
            rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
            ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*experiment_sequential (20 replicates, seed *): passed",
        "*PASS 'x maximize' t vs baseline: *significant",
        "*sequential: stopped at look 1 of 4 after 20 of 80 replicates per condition; saved 120 replicate runs",
    ])


UNDERPOWERED = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=5, treatments=[Treatment("t", {"shift": 0.1})])
    @hypothesis(metric="x", direction="maximize", test="welch_t", mde=0.5)
    def experiment_small(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))
"""


def test_the_low_power_warning_points_at_the_experiments_own_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_power=UNDERPOWERED)
    # A subprocess: in-process runs inherit this suite's filterwarnings=error.
    result = pytester.runpytest_subprocess("--crystallize")
    result.stdout.fnmatch_lines(["*test_power.py:*: LowPowerWarning: experiment 'experiment_small'*"])
    result.stdout.no_fnmatch_line("*pytest_crystallize/core*LowPowerWarning*")


def test_warnings_as_errors_fail_the_experiment_with_the_message_not_a_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_power=UNDERPOWERED)
    result = pytester.runpytest_subprocess("--crystallize", "-W", "error::pytest_crystallize.LowPowerWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["LowPowerWarning: experiment 'experiment_small': hypothesis 'x maximize'*"])
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.fnmatch_lines(["*= crystallize =*", "*experiment_small (5 replicates*"])


MARGINS = """
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates=20, seed=5, treatments=[Treatment("t", {{"d": {shift}}})])
    @hypothesis(metric="acc", direction="{direction}", margin=0.02, better="{better}")
    def experiment_margin(ctx):
        ctx.metrics.add("acc", 0.8 + 0.01 * ctx.rng.normal() + ctx.get("d", 0.0))
"""


@pytest.mark.parametrize(
    ("direction", "better", "shift", "outcome", "shown"),
    [
        ("no_worse", "higher", -0.03, "FAIL", "margin -0.02"),
        ("no_worse", "higher", -0.01, "PASS", "margin -0.02"),
        ("no_worse", "lower", 0.01, "PASS", "margin +0.02"),
        ("equivalent", "higher", 0.03, "FAIL", "margin ±0.02"),
        ("equivalent", "higher", 0.0, "PASS", "margin ±0.02"),
    ],
)
def test_margin_verdicts_show_their_margin_passing_or_failing(
    pytester: pytest.Pytester, direction: str, better: str, shift: float, outcome: str, shown: str
) -> None:
    pytester.makepyfile(MARGINS.format(direction=direction, better=better, shift=shift))
    result = pytester.runpytest("--crystallize")
    result.stdout.fnmatch_lines([f"*{outcome} 'acc {direction}' t vs baseline: diff *{shown}, *"])
