"""Sequential designs under pytest: futility stops, anytime-valid monitoring, the time budget."""

from __future__ import annotations

import pytest

FUTILE = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates="auto", max_replicates=80, looks=4, futility=True,
                            treatments=[Treatment("t", {"shift": -1.0})])
    @hypothesis(metric="x", direction="maximize", test="welch_t")
    def experiment_hopeless(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))
"""


def test_a_futile_hypothesis_fails_early_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FUTILE)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*experiment_hopeless (20 replicates, seed *): FAILED",
        "*FAIL 'x maximize' t vs baseline: *, group-sequential design (O'Brien-Fleming spending, non-binding "
        "futility), welch_t: stopped for futility at look 1 of 4",
        "*sequential: stopped at look 1 of 4 after 20 of 80 replicates per condition; saved 120 replicate runs",
    ])
    result.stdout.fnmatch_lines(["*hypothesis 'x maximize' for treatment 't': stopped for futility at look 1 of 4:*"])


ANYTIME = """
    import time
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, hypothesis

    @pytest.mark.experiment(replicates="anytime", max_replicates=400, treatments=[Treatment("t", {"shift": 1.5})])
    @hypothesis(metric="x", direction="maximize")
    def experiment_anytime(ctx):
        rng = np.random.default_rng([ctx.seed, len(ctx.condition)])
        ctx.metrics.add("x", rng.normal() + ctx.get("shift", 0.0))

    @pytest.mark.experiment(replicates="anytime", max_replicates=100_000, treatments=[Treatment("t")])
    @hypothesis(metric="x", direction="maximize")
    def experiment_slow(ctx):
        time.sleep(0.005)
        ctx.metrics.add("x", ctx.rng.normal())

    @pytest.mark.experiment(replicates=20, treatments=[Treatment("t")])
    @hypothesis(metric="x", direction="maximize")
    def experiment_after_the_budget(ctx):
        ctx.metrics.add("x", ctx.rng.normal())
"""


def test_an_anytime_experiment_names_its_design_and_the_replicates_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ANYTIME)
    result = pytester.runpytest("--crystallize", "-k", "experiment_anytime")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines([
        "*PASS 'x maximize' t vs baseline: *, anytime design (t-mixture e-process, normal differences assumed), "
        "t_mixture: significant",
        "*anytime: stopped after * of 400 replicates per condition (verdicts valid at any stop); saved * replicate runs",
    ])


def test_the_budget_stops_a_running_experiment_and_skips_those_not_started(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ANYTIME)
    result = pytester.runpytest("--crystallize", "--crystallize-budget=3", "-k", "slow or after")
    result.assert_outcomes(failed=1, skipped=1, deselected=1)
    result.stdout.fnmatch_lines([
        "*FAIL 'x maximize' t vs baseline: *t_mixture: stopped by budget after * of 100000 replicates (still valid)",
        "*anytime: stopped by the time budget after * of 100000 replicates per condition; the verdicts are valid*",
    ])
    result = pytester.runpytest("--crystallize", "-rs", "-k", "after", "-o", "crystallize_budget=0.000001")
    result.assert_outcomes(skipped=1, deselected=2)
    result.stdout.fnmatch_lines(["*the crystallize budget of 1e-06 s was spent before this experiment started*"])


def test_an_experiment_skipped_by_the_budget_shows_its_own_location(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(ANYTIME)
    line = 1 + next(i for i, text in enumerate(path.read_text().splitlines()) if "def experiment_after_the_budget" in text)
    result = pytester.runpytest("--crystallize", "-rs", "-k", "after", "-o", "crystallize_budget=0.000001")
    result.assert_outcomes(skipped=1, deselected=2)
    # pytest -rs shows where a test was skipped: the experiment's file and line, as for a skip mark.
    result.stdout.fnmatch_lines([
        f"SKIPPED [[]1[]] {path.name}:{line - 2}: the crystallize budget of 1e-06 s was spent before this "
        f"experiment started",
    ])
    assert "items.py" not in result.stdout.str()


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_a_bad_budget_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile(ANYTIME)
    result = pytester.runpytest("--crystallize", f"--crystallize-budget={value}")
    result.stderr.fnmatch_lines([f"*--crystallize-budget must be a number of seconds > 0, or none*{value!r}*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


SWEEP = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, grid, hypothesis

    @pytest.mark.experiment(replicates="auto", max_replicates=80, looks=4, adaptive=True,
                            treatments=grid(shift=[-1.0, 0.0, 2.0]))
    @hypothesis(metric="x", direction="maximize", test="paired_t")
    def experiment_sweep(ctx):
        shared = np.random.default_rng(ctx.seed).normal()
        own = np.random.default_rng([ctx.seed, int(10 * ctx.get("shift", 0.0)) + 100]).normal()
        ctx.metrics.add("x", shared + own + ctx.get("shift", 0.0))
"""


def test_an_adaptive_sweep_reports_the_replicate_runs_it_spent(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SWEEP)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*, group-sequential design (O'Brien-Fleming spending, non-binding futility, adaptive sweep), paired_t: *",
        "*sequential: stopped at look * of 4 after * of 80 replicates per condition; saved * replicate runs "
        "(* of 320 run: the adaptive sweep dropped decided treatments)",
    ])
