"""run_experiment end to end: seeds, reproducibility, errors, configuration, hypotheses."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pytest_crystallize
from pytest_crystallize import (
    DEFAULT_SEED,
    ConfigurationError,
    DataSourceError,
    FrozenContext,
    HypothesisError,
    Treatment,
    TreatmentError,
    hypothesis,
    pipeline_step,
    run_experiment,
)

PACKAGE_DIR = str(Path(pytest_crystallize.__file__).resolve().parent)
THIS_FILE = str(Path(__file__).resolve())


def _seed_of(master: int, replicate: int) -> int:
    """The documented seed scheme, written out independently of the package."""
    return int(np.random.SeedSequence(master, spawn_key=(replicate,)).generate_state(1, np.uint32)[0])


def _by_replicate(result: Any, metric: str, condition: str) -> dict[int, float]:
    reps, values = result.select(metric, condition)
    return dict(zip(reps.tolist(), values.tolist(), strict=True))


def _exp_seeds(ctx: FrozenContext) -> None:
    ctx.metrics.add("seed", ctx.seed)
    ctx.metrics.add("draw", ctx.rng.normal())


def _exp_shift(ctx: FrozenContext) -> None:
    noise = ctx.rng.normal(size=2)
    shift = ctx.get("shift", 0.0)
    ctx.metrics.add("score", 10.0 + noise[0] + shift * (1.0 + 0.3 * noise[1]))


# -- end to end ------------------------------------------------------------------------


def test_run_experiment_runs_every_replicate_of_every_condition() -> None:
    calls: list[tuple[str, int]] = []

    def fn(ctx: FrozenContext) -> None:
        calls.append((ctx.condition, ctx.replicate))
        ctx.metrics.add("x", ctx.replicate)

    result = run_experiment(fn, replicates=4, treatments=[Treatment("a"), Treatment("b")])
    assert sorted(calls) == sorted((c, r) for c in ("baseline", "a", "b") for r in range(4))
    assert result.experiment == "fn"
    assert result.conditions == ("baseline", "a", "b")
    assert result.metrics == ("x",)
    assert len(result) == 12
    assert result.errors == ()
    assert result.verdicts == ()
    assert result.passed
    assert result.provenance.replicates == 4
    assert result.provenance.conditions == ("baseline", "a", "b")


def test_name_option_names_the_experiment() -> None:
    result = run_experiment(lambda ctx: None, name="my study", replicates=1)
    assert result.experiment == "my study"
    assert result.provenance.experiment == "my study"


def test_default_number_of_replicates_is_used_when_none_is_given() -> None:
    seen: set[int] = set()
    run_experiment(lambda ctx: seen.add(ctx.replicate))
    assert len(seen) >= 2
    assert seen == set(range(len(seen)))


def test_treatment_params_are_recorded_in_provenance() -> None:
    result = run_experiment(lambda ctx: None, replicates=1, treatments=[Treatment("t", {"lr": 0.5})])
    assert "0.5" in result.provenance.treatments["t"]["lr"]


# -- seeds -----------------------------------------------------------------------------------


def test_replicate_r_gets_the_same_seed_in_every_condition_from_the_seed_sequence() -> None:
    result = run_experiment(
        _exp_seeds, replicates=6, seed=4242, treatments=[Treatment("a", {"shift": 1}), Treatment("b")]
    )
    expected = {r: float(_seed_of(4242, r)) for r in range(6)}
    for condition in ("baseline", "a", "b"):
        assert _by_replicate(result, "seed", condition) == expected
    assert len(set(expected.values())) == 6  # replicates differ from one another


def test_common_random_numbers_give_every_condition_the_same_draws() -> None:
    result = run_experiment(_exp_seeds, replicates=5, seed=9, treatments=[Treatment("a")])
    base = _by_replicate(result, "draw", "baseline")
    assert base == _by_replicate(result, "draw", "a")
    assert base == {r: np.random.default_rng(_seed_of(9, r)).normal() for r in range(5)}


def test_provenance_seeds_match_the_seeds_replicates_ran_with() -> None:
    result = run_experiment(_exp_seeds, replicates=4, seed=31)
    assert result.provenance.master_seed == 31
    assert list(result.provenance.replicate_seeds()) == [_seed_of(31, r) for r in range(4)]


def test_default_master_seed_is_fixed_and_recorded_in_provenance() -> None:
    result = run_experiment(_exp_seeds, replicates=3)
    assert result.provenance.master_seed == DEFAULT_SEED
    assert _by_replicate(result, "seed", "baseline") == {
        r: float(_seed_of(DEFAULT_SEED, r)) for r in range(3)
    }
    explicit = run_experiment(_exp_seeds, replicates=3, seed=DEFAULT_SEED)
    np.testing.assert_array_equal(result.values, explicit.values)


def test_a_different_master_seed_gives_different_draws() -> None:
    a = run_experiment(_exp_seeds, replicates=3, seed=1)
    b = run_experiment(_exp_seeds, replicates=3, seed=2)
    assert not np.array_equal(a.select("draw", "baseline")[1], b.select("draw", "baseline")[1])


def test_two_runs_give_identical_values_and_verdicts() -> None:
    def run() -> Any:
        return run_experiment(
            _exp_shift,
            replicates=12,
            treatments=[Treatment("up", {"shift": 0.5})],
            hypotheses=[hypothesis("score", "maximize")],
        )

    first, second = run(), run()
    np.testing.assert_array_equal(first.values, second.values)
    np.testing.assert_array_equal(first.replicates, second.replicates)
    np.testing.assert_array_equal(first.condition_codes, second.condition_codes)
    assert [v.p_value for v in first.verdicts] == [v.p_value for v in second.verdicts]
    assert [v.holds for v in first.verdicts] == [v.holds for v in second.verdicts]


# -- errors in replicates -------------------------------------------------------------------


@pipeline_step()
def _parse_rows(data: int, ctx: FrozenContext) -> int:
    if ctx.condition == "strict" and ctx.replicate == 2:
        raise ValueError("bad row 17")
    return data


def _exp_with_failing_step(ctx: FrozenContext) -> None:
    ctx.metrics.add("rows", _parse_rows(ctx.replicate))


def test_a_step_that_raises_becomes_a_replicate_error_naming_condition_replicate_step() -> None:
    result = run_experiment(_exp_with_failing_step, replicates=4, treatments=[Treatment("strict")])
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.condition == "strict"
    assert error.replicate == 2
    assert error.step == "_parse_rows"
    assert error.error_type == "ValueError"
    assert error.message == "bad row 17"
    assert not result.passed


def test_the_error_traceback_shows_user_code_and_no_package_frames() -> None:
    result = run_experiment(_exp_with_failing_step, replicates=3, treatments=[Treatment("strict")])
    tb = result.errors[0].traceback
    assert "Traceback" in tb
    assert 'raise ValueError("bad row 17")' in tb
    assert "in _parse_rows" in tb
    assert "in _exp_with_failing_step" in tb
    assert THIS_FILE in tb
    files = re.findall(r'File "([^"]+)"', tb)
    assert files, tb
    assert not [f for f in files if f.startswith(PACKAGE_DIR)], tb
    assert tb.rstrip().endswith("ValueError: bad row 17")


def test_other_replicates_still_run_after_one_fails() -> None:
    result = run_experiment(_exp_with_failing_step, replicates=4, treatments=[Treatment("strict")])
    assert _by_replicate(result, "rows", "baseline") == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}
    assert _by_replicate(result, "rows", "strict") == {0: 0.0, 1: 1.0, 3: 3.0}


def test_an_error_outside_any_step_has_no_step_name() -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.replicate == 1:
            raise KeyError("missing column")

    result = run_experiment(fn, replicates=3)
    assert [(e.condition, e.replicate, e.step, e.error_type) for e in result.errors] == [
        ("baseline", 1, None, "KeyError")
    ]


def test_the_innermost_failing_step_is_named() -> None:
    @pipeline_step()
    def inner_step(data: int) -> int:
        raise RuntimeError("deep")

    @pipeline_step()
    def outer_step(data: int) -> int:
        return inner_step(data)

    result = run_experiment(lambda ctx: outer_step(1), replicates=1)
    assert result.errors[0].step == "inner_step"
    assert "in inner_step" in result.errors[0].traceback


def test_an_error_in_a_datasource_becomes_a_replicate_error() -> None:
    def broken(ctx: FrozenContext) -> int:
        if ctx.replicate == 0:
            raise OSError("disk gone")
        return 1

    def fn(ctx: FrozenContext, data: int) -> None:
        ctx.metrics.add("data", data)

    result = run_experiment(fn, replicates=2, datasources={"data": broken})
    assert [(e.replicate, e.error_type, e.message) for e in result.errors] == [(0, "OSError", "disk gone")]
    assert _by_replicate(result, "data", "baseline") == {1: 1.0}


def test_errors_in_several_replicates_are_all_reported() -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.replicate % 2:
            raise ValueError(f"odd {ctx.replicate} in {ctx.condition}")

    result = run_experiment(fn, replicates=4, treatments=[Treatment("t")])
    assert sorted((e.condition, e.replicate) for e in result.errors) == [
        ("baseline", 1),
        ("baseline", 3),
        ("t", 1),
        ("t", 3),
    ]
    assert all(e.message == f"odd {e.replicate} in {e.condition}" for e in result.errors)


# -- bad configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "mentions"),
    [
        ({"replicates": 0}, ConfigurationError, "replicates"),
        ({"replicates": -3}, ConfigurationError, "replicates"),
        ({"replicates": 2.5}, ConfigurationError, "replicates"),
        ({"alpha": 1.5}, ConfigurationError, "alpha"),
        ({"alpha": 0.0}, ConfigurationError, "alpha"),
        ({"seed": -1}, ConfigurationError, "seed"),
        ({"correction": "magic"}, ConfigurationError, "'magic'"),
        ({"hypotheses": [hypothesis("score", "upward")]}, HypothesisError, "'upward'"),
        (
            {"hypotheses": [hypothesis("score", "maximize", test="magic_test")]},
            HypothesisError,
            "'magic_test'",
        ),
        ({"hypotheses": [hypothesis("score", alpha=2.0)]}, HypothesisError, "alpha"),
        ({"hypotheses": [hypothesis("score", "no_worse")]}, HypothesisError, "margin"),
        ({"treatments": [Treatment("a"), Treatment("a")]}, TreatmentError, "'a'"),
        ({"treatments": [Treatment("baseline")]}, TreatmentError, "'baseline'"),
    ],
)
def test_bad_configuration_raises_naming_the_experiment(
    options: dict[str, Any], error: type[Exception], mentions: str
) -> None:
    calls = []

    def _exp_misconfigured(ctx: FrozenContext) -> None:
        calls.append(1)

    options.setdefault("treatments", [Treatment("t")])
    with pytest.raises(error) as info:
        run_experiment(_exp_misconfigured, **options)
    assert isinstance(info.value, ConfigurationError)
    assert "'_exp_misconfigured'" in str(info.value)
    assert mentions in str(info.value)
    assert calls == []


def test_an_unknown_datasource_parameter_raises_naming_experiment_and_parameter() -> None:
    def _exp_unknown_param(ctx: FrozenContext, tr_no_such_source: int) -> None:
        pass

    with pytest.raises(DataSourceError) as info:
        run_experiment(_exp_unknown_param, replicates=2)
    assert isinstance(info.value, ConfigurationError)
    assert "'_exp_unknown_param'" in str(info.value)
    assert "'tr_no_such_source'" in str(info.value)


def test_the_name_option_is_the_name_in_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="'renamed study'"):
        run_experiment(lambda ctx: None, name="renamed study", replicates=0)


def test_arguments_fill_parameters_that_are_not_datasources() -> None:
    def fn(ctx: FrozenContext, threshold: float) -> None:
        ctx.metrics.add("t", threshold)

    result = run_experiment(fn, replicates=2, arguments={"threshold": 0.25})
    assert result.select("t", "baseline")[1].tolist() == [0.25, 0.25]


# -- hypotheses -----------------------------------------------------------------------------


def test_stacked_and_listed_hypotheses_are_all_checked() -> None:
    @hypothesis("score", "maximize", name="higher score")
    @hypothesis("cost", "minimize")
    def _exp_stacked(ctx: FrozenContext) -> None:
        _exp_shift(ctx)
        ctx.metrics.add("cost", 5.0 + ctx.rng.normal() - ctx.get("shift", 0.0))

    result = run_experiment(
        _exp_stacked,
        replicates=15,
        treatments=[Treatment("up", {"shift": 2.0})],
        hypotheses=[hypothesis("score", "two-sided", name="listed")],
    )
    assert [(v.hypothesis, v.metric, v.direction, v.treatment) for v in result.verdicts] == [
        ("higher score", "score", "maximize", "up"),
        ("cost minimize", "cost", "minimize", "up"),
        ("listed", "score", "two-sided", "up"),
    ]
    assert all(v.holds for v in result.verdicts), [v.reason for v in result.verdicts]


def test_every_hypothesis_is_checked_for_every_treatment() -> None:
    result = run_experiment(
        _exp_shift,
        replicates=10,
        treatments=[Treatment("up", {"shift": 2.0}), Treatment("down", {"shift": -2.0})],
        hypotheses=[hypothesis("score", "maximize")],
    )
    by_treatment = {v.treatment: v for v in result.verdicts}
    assert set(by_treatment) == {"up", "down"}
    assert by_treatment["up"].holds
    assert not by_treatment["down"].holds


def test_a_predicate_hypothesis_gets_numpy_arrays_of_both_conditions() -> None:
    received: list[tuple[Any, Any]] = []

    @hypothesis("score", "maximize")
    def clearly_better(baseline: Any, treatment: Any) -> bool:
        received.append((baseline, treatment))
        return bool(treatment.mean() - baseline.mean() > 1.0)

    result = run_experiment(
        _exp_shift, replicates=10, treatments=[Treatment("up", {"shift": 2.0})], hypotheses=[clearly_better]
    )
    assert len(received) == 1
    baseline, treatment = received[0]
    assert isinstance(baseline, np.ndarray)
    assert isinstance(treatment, np.ndarray)
    # Aligned by replicate: element i of both comes from replicate i.
    base_expected = _by_replicate(result, "score", "baseline")
    treat_expected = _by_replicate(result, "score", "up")
    assert baseline.tolist() == [base_expected[r] for r in range(10)]
    assert treatment.tolist() == [treat_expected[r] for r in range(10)]
    (verdict,) = result.verdicts
    assert verdict.hypothesis == "clearly_better"
    assert verdict.holds, verdict.reason


def test_a_false_predicate_fails_the_verdict_with_a_reason() -> None:
    @hypothesis("score", "maximize")
    def doubles_the_score(baseline: Any, treatment: Any) -> bool:
        return bool(treatment.mean() >= 2 * baseline.mean())

    result = run_experiment(
        _exp_shift,
        replicates=10,
        treatments=[Treatment("up", {"shift": 2.0})],
        hypotheses=[doubles_the_score],
    )
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert "doubles_the_score" in verdict.reason
    assert "false" in verdict.reason.lower()
    assert not result.passed


def test_a_predicate_that_raises_fails_the_verdict_and_says_why() -> None:
    @hypothesis("score", "maximize")
    def broken(baseline: Any, treatment: Any) -> bool:
        raise ZeroDivisionError("oops")

    result = run_experiment(
        _exp_shift, replicates=10, treatments=[Treatment("up", {"shift": 2.0})], hypotheses=[broken]
    )
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert "ZeroDivisionError" in verdict.reason
    assert "oops" in verdict.reason


def test_a_missing_metric_gives_a_failed_verdict_naming_it() -> None:
    result = run_experiment(
        _exp_shift,
        replicates=5,
        treatments=[Treatment("up", {"shift": 2.0})],
        hypotheses=[hypothesis("accuracy", "maximize")],
    )
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert verdict.metric == "accuracy"
    assert "missing" in verdict.reason
    assert "'accuracy'" in verdict.reason
    assert "'score'" in verdict.reason  # what was recorded instead
    assert (verdict.n_baseline, verdict.n_treatment) == (0, 0)
    assert not result.passed


def test_a_metric_missing_in_the_treatment_only_names_the_treatment() -> None:
    def fn(ctx: FrozenContext) -> None:
        if ctx.condition == "baseline":
            ctx.metrics.add("score", ctx.rng.normal())

    result = run_experiment(
        fn, replicates=5, treatments=[Treatment("silent")], hypotheses=[hypothesis("score", "maximize")]
    )
    (verdict,) = result.verdicts
    assert not verdict.holds
    assert "'silent'" in verdict.reason
    assert "missing" in verdict.reason


# -- async ---------------------------------------------------------------------------------


def test_an_async_experiment_function_runs_every_replicate() -> None:
    async def fn(ctx: FrozenContext) -> None:
        await asyncio.sleep(0)
        ctx.metrics.add("seed", ctx.seed)
        ctx.metrics.add("x", ctx.replicate * 2 + (ctx.condition == "t"))

    result = run_experiment(fn, replicates=3, seed=8, treatments=[Treatment("t")])
    assert not result.errors
    assert _by_replicate(result, "x", "baseline") == {0: 0.0, 1: 2.0, 2: 4.0}
    assert _by_replicate(result, "x", "t") == {0: 1.0, 1: 3.0, 2: 5.0}
    assert _by_replicate(result, "seed", "t") == {r: float(_seed_of(8, r)) for r in range(3)}


def test_an_async_experiment_error_becomes_a_replicate_error() -> None:
    async def fn(ctx: FrozenContext) -> None:
        await asyncio.sleep(0)
        if ctx.replicate == 1:
            raise RuntimeError("async failure")
        ctx.metrics.add("x", 1)

    result = run_experiment(fn, replicates=3)
    assert [(e.replicate, e.message) for e in result.errors] == [(1, "async failure")]
    assert _by_replicate(result, "x", "baseline") == {0: 1.0, 2: 1.0}


def test_run_experiment_works_inside_a_running_event_loop() -> None:
    async def fn(ctx: FrozenContext) -> None:
        await asyncio.sleep(0)
        ctx.metrics.add("x", ctx.replicate)

    async def main() -> Any:
        # As from a notebook cell or an async test: a loop is already running.
        return run_experiment(fn, replicates=2)

    result = asyncio.run(main())
    assert not result.errors
    assert _by_replicate(result, "x", "baseline") == {0: 0.0, 1: 1.0}


def test_a_datasource_that_raises_is_named_in_the_replicate_error() -> None:
    from pytest_crystallize import data_source

    @data_source
    def tds_fragile_source(ctx):
        return {"x": 1}["y"]

    def uses(tds_fragile_source, ctx):
        ctx.metrics.add("m", 1)

    result = run_experiment(uses, replicates=2, datasources={"tds_fragile_source": tds_fragile_source})
    assert {e.step for e in result.errors} == {"datasource:tds_fragile_source"}
    assert "condition 'baseline', replicate 0, step 'datasource:tds_fragile_source': KeyError" in result.errors[0].headline


# -- the plain path and the hooked one -------------------------------------------------
# A sync experiment with no timeout, replicate hooks, typed parameters or evaluators runs
# inline (BatchRunner._run_tasks); one with a replicate hook runs the body
# written for every case. Both must give the same result.


class _WatchesReplicates:
    """A plugin with a replicate hook: its experiment takes the general path."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    @pytest_crystallize.hookimpl
    def crystallize_replicate_before(self, experiment: Any, ctx: FrozenContext) -> None:
        self.seen.append((ctx.condition, ctx.replicate))


def _source(ctx: FrozenContext) -> int:
    return 10 * ctx.replicate


def _mixed(data: int, ctx: FrozenContext, factor: float = 1.0) -> None:
    if ctx.replicate == 2 and ctx.condition == "t":
        raise ValueError("replicate 2 of t fails")
    ctx.metrics.add("x", data * factor + ctx.rng.normal())
    ctx.record("y", float(ctx.replicate), tags={"half": ctx.replicate % 2})
    ctx.artifacts.add("note.txt", f"{ctx.condition}/{ctx.replicate}".encode())


def _run(plugins: list[object]) -> Any:
    return run_experiment(
        _mixed, replicates=5, seed=9, treatments=[Treatment("t", {"factor": 2.0})],
        datasources={"data": _source}, hypotheses=[hypothesis("x", "maximize")],
        keep_artifacts=True, plugins=plugins,
    )


def test_the_plain_path_and_the_hooked_path_give_the_same_result() -> None:
    watcher = _WatchesReplicates()
    plain, hooked = _run([]), _run([watcher])
    assert len(watcher.seen) == 10  # the hook ran: the second run took the general path
    assert plain.values.tolist() == hooked.values.tolist()
    assert plain.tags == hooked.tags
    assert [(e.condition, e.replicate, e.error_type, e.message) for e in plain.errors] == [
        (e.condition, e.replicate, e.error_type, e.message) for e in hooked.errors
    ] == [("t", 2, "ValueError", "replicate 2 of t fails")]
    assert plain.verdicts[0].p_value == hooked.verdicts[0].p_value
    assert plain.artifacts == hooked.artifacts
    assert len(plain.artifacts) == 9  # the failed replicate keeps none
