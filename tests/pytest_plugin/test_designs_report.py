"""Resampling designs, the best condition and shared data, as a pytest user sees them."""

from __future__ import annotations

import pytest

CV_EXPERIMENT = """
    import numpy as np
    import pytest
    from pytest_crystallize import Treatment, cv, data_source, hypothesis

    X = np.random.default_rng(0).normal(size=(80, 2))

    @data_source
    def data(ctx):
        return X

    @pytest.mark.experiment(design=cv(k=4, repeats=2), seed=5, treatments=[Treatment("t", {"shift": 0.5})])
    @hypothesis(metric="score", direction="maximize")
    def experiment_folds(data, ctx):
        train, test = ctx.folds(len(data))
        ctx.metrics.add("score", float(data[test, 0].mean()) + ctx.get("shift", 0.0))
"""


def test_a_cv_design_runs_k_times_repeats_and_names_the_corrected_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CV_EXPERIMENT)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*experiment_folds (8 replicates, seed 5): passed",
        "*note: design cv(k=4, repeats=2): replicates share training data; verdicts use a corrected test",
        "*PASS 'score maximize' t vs baseline: diff +0.5*, corrected_repeated_kfold_t: significant",
    ])
    assert "SharedDataWarning" not in result.stdout.str()


def test_a_command_line_replicate_count_does_not_override_the_design(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CV_EXPERIMENT)
    result = pytester.runpytest("--crystallize", "--crystallize-replicates=3")
    result.stdout.fnmatch_lines(["*experiment_folds (8 replicates, seed 5): passed"])


def test_folds_done_by_hand_warn_naming_the_experiment_and_the_design(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CV_EXPERIMENT.replace("design=cv(k=4, repeats=2), ", "replicates=8, ").replace(
        "train, test = ctx.folds(len(data))", "test = np.arange(ctx.replicate % 4, len(data), 4)"))
    # A subprocess: in-process runs inherit this suite's filterwarnings=error.
    result = pytester.runpytest_subprocess("--crystallize")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([
        "*SharedDataWarning: experiment 'experiment_folds': datasource 'data' handed identical data to 8 of 8 "
        "replicates*declare design=cv(k=..., repeats=...)*",
    ])


def test_shared_data_under_filterwarnings_error_fails_the_item_with_the_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CV_EXPERIMENT.replace("design=cv(k=4, repeats=2), ", "replicates=8, ").replace(
        "train, test = ctx.folds(len(data))", "test = np.arange(ctx.replicate % 4, len(data), 4)"))
    result = pytester.runpytest("--crystallize", "-W", "error::pytest_crystallize.SharedDataWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SharedDataWarning: experiment 'experiment_folds'*"])


def test_best_names_the_winner_in_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from pytest_crystallize import grid, hypothesis

        @pytest.mark.experiment(replicates=12, seed=1, treatments=grid(lr=[0.1, 0.3]))
        @hypothesis(metric="acc", direction="best")
        def experiment_sweep(ctx):
            shared = np.random.default_rng(ctx.seed).normal()
            own = np.random.default_rng([ctx.seed, int(100 * ctx.get("lr", 0.0))]).normal(0, 0.1)
            ctx.metrics.add("acc", shared + own + (1.0 if ctx.get("lr") == 0.3 else 0.0))
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASS 'acc best': 'lr=0.3' is best: lr=0.3 [[]+0, +*[]] (mcb, 95% simultaneous), p *"])


def test_an_unknown_design_fails_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.experiment(design="10-fold")
        def experiment_bad(ctx):
            ctx.metrics.add("x", 1.0)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*design must be made with cv(k=..., repeats=...) or holdout(test_size=...)*"])
