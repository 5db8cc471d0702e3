"""Evaluators: score the experiment's return value per replicate, with ctx and the expected answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_crystallize import (
    ConfigurationError,
    FrozenContext,
    Treatment,
    data_source,
    hypothesis,
    run_experiment,
)


@dataclass(frozen=True)
class Sample:
    question: int
    expected: int


@data_source
def _qa(ctx: FrozenContext) -> dict[str, int]:
    return {"question": ctx.replicate, "expected": ctx.replicate * 2}


@data_source
def _sample(ctx: FrozenContext) -> Sample:
    return Sample(question=ctx.replicate, expected=ctx.replicate * 2)


def _doubler(ctx: FrozenContext, qa: dict[str, int]) -> int:
    # Right on even replicates in the baseline; always right with the "fixed" treatment.
    right = ctx.get("fixed", False) or ctx.replicate % 2 == 0
    return qa["question"] * 2 if right else -1


def exact_match(output: int, expected: int) -> float:
    return float(output == expected)


def _values(result: Any, metric: str) -> dict[str, list[float]]:
    return {c: result.select(metric, c)[1].tolist() for c in result.conditions}


def test_a_number_is_recorded_as_the_metric_named_after_the_evaluator() -> None:
    result = run_experiment(
        _doubler, replicates=4, datasources={"qa": _qa}, evaluators=[exact_match],
        treatments=[Treatment("fixed", {"fixed": True})],
    )
    assert not result.errors, result.errors
    assert _values(result, "exact_match") == {"baseline": [1.0, 0.0, 1.0, 0.0], "fixed": [1.0, 1.0, 1.0, 1.0]}


def test_a_mapping_records_one_metric_per_key_and_ctx_can_be_taken() -> None:
    def scores(output: int, ctx: FrozenContext, expected: int) -> dict[str, float]:
        return {"error": abs(output - expected), "replicate_seen": ctx.replicate}

    result = run_experiment(_doubler, replicates=2, datasources={"qa": _qa}, evaluators=[scores])
    assert _values(result, "error") == {"baseline": [0.0, 3.0]}
    assert _values(result, "replicate_seen") == {"baseline": [0.0, 1.0]}


def test_expected_comes_from_an_attribute_a_key_or_a_datasource_named_expected() -> None:
    def answer(sample: Sample) -> int:
        return sample.question * 2

    by_attribute = run_experiment(answer, replicates=2, datasources={"sample": _sample}, evaluators=[exact_match])
    assert _values(by_attribute, "exact_match") == {"baseline": [1.0, 1.0]}

    def answer_two(question: int, expected: int) -> int:
        return question + 1

    named = run_experiment(
        answer_two, replicates=3, evaluators=[exact_match],
        datasources={"question": lambda ctx: ctx.replicate, "expected": lambda ctx: ctx.replicate + 1},
    )
    assert _values(named, "exact_match") == {"baseline": [1.0, 1.0, 1.0]}


def test_an_evaluator_may_take_a_datasource_value_by_its_parameter_name() -> None:
    def echo(output: int, qa: dict[str, int]) -> float:
        return qa["question"] + output

    result = run_experiment(lambda qa: 100, replicates=2, datasources={"qa": _qa}, evaluators=[echo])
    assert _values(result, "echo") == {"baseline": [100.0, 101.0]}


def test_the_output_parameter_may_come_after_the_named_ones() -> None:
    def accuracy(expected: int, output: int) -> bool:  # Spearmint's order
        return expected == output

    result = run_experiment(_doubler, replicates=2, datasources={"qa": _qa}, evaluators=[accuracy])
    assert _values(result, "accuracy") == {"baseline": [1.0, 0.0]}


def test_a_mapping_of_evaluators_names_the_metrics() -> None:
    result = run_experiment(
        lambda: 3, replicates=1, evaluators={"three": lambda out: out, "is_odd": lambda out: out % 2 == 1}
    )
    assert _values(result, "three") == {"baseline": [3.0]}
    assert _values(result, "is_odd") == {"baseline": [1.0]}


def test_a_hypothesis_can_test_an_evaluator_metric() -> None:
    result = run_experiment(
        _doubler, replicates=20, datasources={"qa": _qa}, evaluators=[exact_match],
        treatments=[Treatment("fixed", {"fixed": True})],
        hypotheses=[hypothesis(metric="exact_match", direction="maximize")],
    )
    assert result.passed, result.verdicts


def test_async_evaluators_are_awaited_also_for_a_sync_experiment() -> None:
    async def slow_match(output: int, expected: int) -> float:
        await asyncio.sleep(0)
        return float(output == expected)

    result = run_experiment(_doubler, replicates=2, datasources={"qa": _qa}, evaluators=[slow_match])
    assert not result.errors, result.errors
    assert _values(result, "slow_match") == {"baseline": [1.0, 0.0]}


def test_evaluators_score_the_awaited_result_of_an_async_experiment() -> None:
    async def answer(qa: dict[str, int]) -> int:
        await asyncio.sleep(0)
        return qa["question"] * 2

    result = run_experiment(answer, replicates=2, datasources={"qa": _qa}, evaluators=[exact_match])
    assert _values(result, "exact_match") == {"baseline": [1.0, 1.0]}


# -- errors ------------------------------------------------------------------------------


def test_an_evaluator_error_is_an_error_of_that_replicate_only() -> None:
    def picky(output: int, ctx: FrozenContext) -> float:
        if ctx.replicate == 1:
            raise ZeroDivisionError("cannot score replicate 1")
        return 1.0

    result = run_experiment(_doubler, replicates=3, datasources={"qa": _qa}, evaluators=[picky])
    assert [(e.replicate, e.error_type, e.step) for e in result.errors] == [(1, "ZeroDivisionError", "evaluator:picky")]
    assert "cannot score replicate 1" in result.errors[0].message
    assert sorted(result.select("picky", "baseline")[0].tolist()) == [0, 2]


def test_an_async_evaluator_error_after_its_await_names_the_evaluator_and_shows_the_users_line() -> None:
    async def picky(output: int, ctx: FrozenContext) -> float:
        await asyncio.sleep(0)
        if ctx.replicate == 1:
            raise ZeroDivisionError("cannot score replicate 1")
        return float(output)

    result = run_experiment(_doubler, replicates=3, datasources={"qa": _qa}, evaluators=[picky])
    assert [(e.replicate, e.error_type, e.step) for e in result.errors] == [(1, "ZeroDivisionError", "evaluator:picky")]
    assert 'raise ZeroDivisionError("cannot score replicate 1")' in result.errors[0].traceback
    assert sorted(result.select("picky", "baseline")[0].tolist()) == [0, 2]


@pytest.mark.parametrize(
    ("evaluator", "message"),
    [
        (lambda out: None, "returned None"),
        (lambda out: "good", "got a value of type str"),
        (lambda out: {"m": [1, 2]}, "metric 'm' got a value of type list"),
    ],
)
def test_a_result_that_is_not_a_number_is_a_replicate_error(evaluator: Any, message: str) -> None:
    result = run_experiment(lambda: 1, replicates=2, evaluators={"score": evaluator})
    assert len(result.errors) == 2
    assert all(message in e.message and e.step == "evaluator:score" for e in result.errors), result.errors


def test_expected_that_is_missing_or_ambiguous_is_a_replicate_error() -> None:
    missing = run_experiment(lambda: 1, replicates=1, evaluators=[exact_match])
    assert "no datasource value of this replicate has an 'expected'" in missing.errors[0].message
    two = run_experiment(
        lambda qa, sample: 1, replicates=1, datasources={"qa": _qa, "sample": _sample}, evaluators=[exact_match]
    )
    assert "datasources qa, sample all carry one" in two.errors[0].message


@pytest.mark.parametrize(
    ("evaluators", "message"),
    [
        ([lambda out: 1], "has no usable name"),
        ([exact_match, exact_match], "two evaluators are named 'exact_match'"),
        ({"two": lambda a, b: 1}, r"'two' must take the experiment's return value as one parameter.*takes \(a, b\)"),
        ({"none": lambda ctx: 1}, "'none' must take the experiment's return value as one parameter"),
        ({"x": 3}, "evaluator 'x' is not callable"),
        (exact_match, "evaluators must be a list"),
    ],
)
def test_bad_evaluators_are_refused_before_anything_runs(evaluators: Any, message: str) -> None:
    calls = []
    with pytest.raises(ConfigurationError, match=message) as info:
        run_experiment(lambda: calls.append(1), name="scored", replicates=1, evaluators=evaluators)
    assert "experiment 'scored'" in str(info.value)
    assert calls == []
