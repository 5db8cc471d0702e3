"""Resampling designs: cv(k, repeats), holdout(test_size), ctx.folds and the corrected verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold

from pytest_crystallize import (
    ConfigurationError,
    HypothesisError,
    Treatment,
    cv,
    data_source,
    holdout,
    hypothesis,
    run_experiment,
    standalone_context,
)
from pytest_crystallize.core.designs import replicate_split
from pytest_crystallize.core.report.text import summarize, summary_lines
from pytest_crystallize.core.report.verdict_text import verdict_lines

N = 53


@pytest.mark.parametrize(("k", "repeats"), [(5, 3), (10, 2), (2, 1)])
def test_each_repeat_partitions_the_samples_into_k_folds_of_kfold_sizes(k, repeats):
    design = cv(k=k, repeats=repeats)
    expected = sorted(len(test) for _, test in KFold(n_splits=k).split(np.zeros(N)))
    for repeat in range(repeats):
        tests = [replicate_split(design, N, repeat * k + fold, master_seed=3)[1] for fold in range(k)]
        assert sorted(len(t) for t in tests) == expected
        assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(N))  # disjoint, and cover everything
    train, test = replicate_split(design, N, 1, master_seed=3)
    assert np.array_equal(np.union1d(train, test), np.arange(N))
    assert not np.intersect1d(train, test).size


def test_repeats_shuffle_differently_and_the_master_seed_decides():
    design = cv(k=5, repeats=2)
    first, second = (replicate_split(design, N, r, master_seed=1)[1] for r in (0, 5))
    assert not np.array_equal(first, second)
    assert np.array_equal(replicate_split(design, N, 0, master_seed=1)[1], first)
    assert not np.array_equal(replicate_split(design, N, 0, master_seed=2)[1], first)


def test_holdout_holds_out_the_fraction_rounded_up():
    train, test = replicate_split(holdout(test_size=0.3), N, 4, master_seed=1)
    assert len(test) == 16  # ceil(0.3 * 53)
    assert len(train) == N - 16


def test_every_condition_sees_the_same_folds():
    @hypothesis(metric="score")
    def fold_recorder(ctx):
        train, test = ctx.folds(N)
        ctx.metrics.add("first_test", int(test[0]))
        ctx.metrics.add("size", len(train))
        ctx.metrics.add("score", float(ctx.rng.random()) + ctx.get("shift", 0.0))

    result = run_experiment(fold_recorder, design=cv(k=4, repeats=2), seed=9,
                            treatments=[Treatment("shifted", {"shift": 1.0})])
    assert result.provenance.replicates == 8
    assert result.provenance.design == "cv(k=4, repeats=2)"
    base = result.select("first_test", "baseline")[1]
    treated = result.select("first_test", "shifted")[1]
    assert np.array_equal(base, treated)
    expected = [replicate_split(cv(k=4, repeats=2), N, r, master_seed=9)[1][0] for r in range(8)]
    assert base.tolist() == expected
    (verdict,) = result.verdicts
    assert verdict.test == "corrected_repeated_kfold_t"
    assert dict(verdict.details["resampling"]) == {"design": "cv", "k": 4, "repeats": 2}
    # The label every verdict line shows (a fixed design's says "fixed design"), not the parameters.
    assert verdict.details["design"] == "design cv(k=4, repeats=2)"
    [line] = verdict_lines(summarize(result)["verdicts"][0])
    assert ", design cv(k=4, repeats=2), corrected_repeated_kfold_t" in line
    assert verdict.details["variance_factor"] == pytest.approx(1 / 8 + 1 / 3)


def test_the_marker_declares_the_design_for_run_experiment():
    pytest_mark = pytest.mark.experiment(design=holdout(test_size=0.25), replicates=12)

    @pytest_mark
    @hypothesis(metric="score")
    def marked(ctx):
        ctx.folds(40)
        ctx.metrics.add("score", float(ctx.rng.random()) + ctx.get("shift", 0.0))

    result = run_experiment(marked, treatments=[Treatment("shifted", {"shift": 0.1})])
    assert result.provenance.replicates == 12
    assert result.verdicts[0].test == "corrected_resampled_t"


def test_folds_without_a_design_say_what_to_declare():
    with pytest.raises(ConfigurationError, match=r"declare design=cv\(k=\.\.\., repeats=\.\.\.\)"):
        standalone_context().folds(10)
    train, test = standalone_context(design=cv(k=5, repeats=1)).folds(10)
    assert (len(train), len(test)) == (8, 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [(lambda: cv(k=1), r"cv\(k=\.\.\.\) must be an integer >= 2"),
     (lambda: cv(repeats=0), "repeats"),
     (lambda: holdout(test_size=1.5), "strictly between 0 and 1"),
     (lambda: replicate_split(cv(k=5), 3, 0, 0), "at least k=5 samples")],
)
def test_bad_designs_are_refused(call, match):
    with pytest.raises(ConfigurationError, match=match):
        call()


def _scores(ctx):
    ctx.metrics.add("score", float(ctx.rng.random()))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"design": cv(), "hypotheses": [hypothesis("score", test="paired_t")]}, ConfigurationError,
         "treats the replicates as independent"),
        ({"design": cv(), "replicates": "auto", "max_replicates": 10}, ConfigurationError, "cannot be sequential"),
        ({"design": cv(), "futility": True}, ConfigurationError, r"futility=True .* runs every fold: drop futility="),
        ({"design": cv(), "adaptive": True}, ConfigurationError, r"adaptive=True .* runs every fold: drop adaptive="),
        ({"design": "cv"}, ConfigurationError, "design must be made with cv"),
        ({"hypotheses": [hypothesis("score", test="corrected_resampled_t")]}, ConfigurationError,
         "declare the design"),
        ({"design": cv(), "hypotheses": [hypothesis("score", covariate="pre")]}, ConfigurationError,
         "covariate adjustment is not available"),
        ({"hypotheses": [hypothesis("score", test="mcb")]}, HypothesisError, "needs direction='best'"),
    ],
)
def test_definitions_that_cannot_be_run_are_refused(options, error, match):
    with pytest.raises(error, match=match):
        run_experiment(_scores, treatments=[Treatment("t", {"x": 1})], **options)


def _fold_scores(ctx):
    _, test = ctx.folds(40)
    noise = np.random.default_rng([int(test[0]), int(test[-1])]).normal(0.0, 0.02)
    ctx.metrics.add("score", 0.8 + noise + ctx.get("shift", 0.0) + float(ctx.rng.normal(0.0, 0.01)))


@pytest.mark.parametrize(("options", "label"), [
    ({"design": cv(k=4, repeats=2)}, "design cv(k=4, repeats=2)"),
    ({"design": holdout(test_size=0.25), "replicates": 6}, "design holdout(test_size=0.25)"),
])
def test_every_verdict_line_names_the_resampling_design(options, label, tmp_path):
    """A pair verdict and a best verdict under a design both say so on their line, as a fixed
    design's say "fixed design"; cut short by the budget or confirmed, the label keeps the design."""
    treatments = [Treatment("better", {"shift": 0.05})]
    hypotheses = [hypothesis("score", "maximize"), hypothesis("score", "best", name="best score")]
    result = run_experiment(_fold_scores, treatments=treatments, hypotheses=hypotheses, **options)
    assert [v.details["design"] for v in result.verdicts] == [label, label]
    lines = summary_lines(summarize(result))
    pair_line = next(line for line in lines if "'score maximize' better vs baseline" in line)
    assert f", {label}, {result.verdicts[0].test}:" in pair_line
    best_line = next(line for line in lines if "'best score'" in line)
    assert f"({label}, mcb, 95% simultaneous)" in best_line
    fixed = run_experiment(_scores, treatments=[Treatment("t", {"x": 1})], hypotheses=[hypothesis("score", "best")])
    assert "(fixed design, mcb, 95% simultaneous)" in "\n".join(summary_lines(summarize(fixed)))
    cut = run_experiment(_fold_scores, treatments=treatments, hypotheses=hypotheses, budget=1e-9, **options)
    assert {v.details["design"] for v in cut.verdicts} == {f"{label}, stopped by budget: not valid"}
    confirmed = run_experiment(_fold_scores, treatments=treatments, hypotheses=hypotheses,
                               confirm=str(tmp_path / ".crystallize"), **options)
    assert all(v.details["design"].startswith(f"{label}; confirmatory attempt 1") for v in confirmed.verdicts)


# -- replicates that share data without a design -----------------------------------

X = np.random.default_rng(0).normal(size=(60, 3))


@data_source
def whole_data(ctx):
    return {"X": X, "note": "the same every time"}


def test_identical_data_in_every_replicate_warns_naming_the_experiment_and_the_design():
    @hypothesis(metric="score")
    def manual_cv(whole_data, ctx):
        fold = ctx.replicate % 5
        ctx.metrics.add("score", float(whole_data["X"][fold::5].mean()) + ctx.get("shift", 0.0))

    from pytest_crystallize import SharedDataWarning

    with pytest.warns(SharedDataWarning, match=r"experiment 'manual_cv': datasource 'whole_data' handed identical "
                                               r"data to 10 of 10 replicates.*design=cv\(k=\.\.\., repeats"):
        result = run_experiment(manual_cv, replicates=10, treatments=[Treatment("t", {"shift": 0.01})])
    assert len(result.provenance.shared_data) == 1


@pytest.mark.filterwarnings("error")
def test_no_warning_with_a_design_fresh_data_a_configuration_or_no_hypothesis():
    @data_source
    def fresh(ctx):
        return ctx.rng.normal(size=(20, 2))

    @data_source
    def config(ctx):
        return {"temperature": 0.7, "layers": [1, 2, 3]}

    def uses(fresh, config, ctx):
        ctx.metrics.add("score", float(fresh.mean()) + ctx.get("shift", 0.0))

    treatments = [Treatment("t", {"shift": 0.1})]
    run_experiment(hypothesis("score")(uses), replicates=5, treatments=treatments,
                   datasources={"fresh": fresh, "config": config})

    def folds_of_whole(whole_data, ctx):
        train, _ = ctx.folds(60)
        ctx.metrics.add("score", float(whole_data["X"][train].mean()) + ctx.get("shift", 0.0))

    run_experiment(hypothesis("score")(folds_of_whole), design=cv(k=5, repeats=1), treatments=treatments)

    def no_claim(whole_data, ctx):
        ctx.metrics.add("score", 1.0)

    run_experiment(no_claim, replicates=5)
