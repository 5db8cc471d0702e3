"""Dotted keys that would pass silently: a path set twice, a new key under a baseline mapping."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_crystallize import ConfigurationError, FrozenContext, Treatment, TreatmentError, grid, run_experiment

LLM = {"llm": {"model": "base", "temperature": 0.5}}
RAN: list[str] = []


def _records(ctx: FrozenContext) -> None:
    RAN.append(ctx.condition)
    ctx.metrics.add("one", 1)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"llm.model": "x", "llm": {"model": "y"}}, "'llm.model' and 'llm' -> {'model': ...} both set 'llm.model'"),
        ({"llm": {"model": "y"}, "llm.model": "x"}, "'llm' -> {'model': ...} and 'llm.model' both set 'llm.model'"),
        ({"llm": 5, "llm.model": "x"}, "'llm' and 'llm.model' both set 'llm'"),
        ({"a.b": {"c": 1}, "a.b.c": 2}, "'a.b' -> {'c': ...} and 'a.b.c' both set 'a.b.c'"),
    ],
)
def test_a_treatment_setting_one_path_twice_names_both_spellings(params: dict[str, Any], message: str) -> None:
    with pytest.raises(TreatmentError, match=r"treatment 't': .*set each path once") as info:
        Treatment("t", params)
    assert message in str(info.value)


def test_baseline_params_setting_one_path_twice_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"params: 'llm' -> \{'model': ...\} and 'llm.model' both set"):
        run_experiment(_records, replicates=1, params={"llm": {"model": "y"}, "llm.model": "x"})


def test_literal_dotted_keys_inside_a_mapping_are_another_path() -> None:
    # Keys inside nested mappings are literal: {"llm": {"a.b": 1}} sets llm -> "a.b", not llm.a.b.
    assert dict(Treatment("t", {"llm": {"a.b": 1}, "llm.a.c": 2}).params) == {"llm": {"a.b": 1}, "llm.a.c": 2}


@pytest.mark.parametrize(
    "params",
    [{"llm.modle": "y"}, {"llm": {"modle": "y"}}],
    ids=["dotted", "nested"],
)
def test_a_new_key_under_a_baseline_mapping_is_refused_before_any_replicate(params: dict[str, Any]) -> None:
    RAN.clear()
    with pytest.raises(TreatmentError) as info:
        run_experiment(_records, replicates=2, params=LLM, treatments=[Treatment("typo", params)])
    message = str(info.value)
    assert message.startswith("experiment '_records': treatment 'typo': ")
    assert "adds a new key 'modle' under 'llm', whose keys in the baseline are 'model', 'temperature'" in message
    assert "did you mean 'llm.model'?" in message
    assert RAN == []


def test_a_new_key_deeper_down_is_refused_and_a_new_branch_too() -> None:
    params = {"llm": {"sampling": {"temperature": 0.5}}}
    with pytest.raises(TreatmentError, match=r"adds a new key 'top_p' under 'llm\.sampling'"):
        run_experiment(_records, replicates=1, params=params, treatments=[Treatment("t", {"llm.sampling.top_p": 0.9})])
    with pytest.raises(TreatmentError, match="adds a new key 'extra' under 'llm'"):
        run_experiment(_records, replicates=1, params=params, treatments=[Treatment("t", {"llm.extra.deep": 1})])


def test_what_stays_allowed_new_top_level_keys_new_mappings_and_empty_baseline_mappings() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("keys", len(ctx["headers"]) + len(ctx.get("new", {})) + ("flag" in ctx))

    params = {**LLM, "headers": {}}
    treatments = [
        Treatment("top", {"flag": True}),  # a new top-level key
        Treatment("branch", {"new.x": 1, "new.y": 2}),  # a mapping the baseline does not have
        Treatment("open", {"headers.a": 1, "headers": {"b": 2}}),  # an empty baseline mapping is open
        Treatment("known", {"llm.model": "other"}),
    ]
    result = run_experiment(fn, replicates=1, params=params, treatments=treatments)
    assert not result.errors, result.errors
    assert {c: result.select("keys", c)[1].tolist() for c in result.conditions} == {
        "baseline": [0.0], "top": [1.0], "branch": [2.0], "open": [2.0], "known": [0.0],
    }


def test_grid_follows_the_same_rules() -> None:
    with pytest.raises(TreatmentError, match=r"'llm\.temprature' adds a new key 'temprature' under 'llm'.*did you mean"):
        run_experiment(_records, replicates=1, params=LLM, treatments=grid({"llm.temprature": [0.1, 0.9]}))
    with pytest.raises(TreatmentError, match=r"'llm.model' and 'llm' -> \{'model': ...\} both set 'llm.model'"):
        grid({"llm.model": ["a"]}, llm=[{"model": "b"}])
