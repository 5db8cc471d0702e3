"""Treatments: names, frozen params, and datasource swaps seen end to end."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_crystallize import (
    ConfigurationError,
    FrozenContext,
    Treatment,
    TreatmentError,
    data_source,
    run_experiment,
)


@data_source
def _clean(ctx: FrozenContext) -> float:
    return 1.0


@data_source
def _noisy(ctx: FrozenContext) -> float:
    return 100.0


@data_source
def _labels(ctx: FrozenContext) -> float:
    return 5.0


@data_source
def _shuffled_labels(ctx: FrozenContext) -> float:
    return 50.0


def test_baseline_is_a_reserved_treatment_name_refused_naming_the_experiment() -> None:
    calls = []

    def _exp_reserved(ctx: FrozenContext) -> None:
        calls.append(1)

    with pytest.raises(TreatmentError, match=r"'baseline'.*reserved") as info:
        run_experiment(_exp_reserved, replicates=2, treatments=[Treatment("baseline", {"x": 1})])
    assert "'_exp_reserved'" in str(info.value)
    assert calls == []


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_treatment_needs_a_non_empty_string_name(name: object) -> None:
    with pytest.raises(TreatmentError):
        Treatment(name)  # type: ignore[arg-type]


def test_treatment_errors_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        Treatment("")


def test_duplicate_treatment_names_are_refused_naming_name_and_experiment() -> None:
    calls = []

    def _exp_dups(ctx: FrozenContext) -> None:
        calls.append(1)

    with pytest.raises(TreatmentError) as info:
        run_experiment(_exp_dups, replicates=2, treatments=[Treatment("fast"), Treatment("fast", {"x": 1})])
    assert "'fast'" in str(info.value)
    assert "'_exp_dups'" in str(info.value)
    assert calls == []


def test_params_are_a_frozen_copy() -> None:
    params = {"lr": 0.1}
    treatment = Treatment("high_lr", params)
    params["lr"] = 0.9
    params["extra"] = 1
    assert dict(treatment.params) == {"lr": 0.1}
    with pytest.raises(TypeError):
        treatment.params["lr"] = 0.5  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        treatment.name = "other"  # type: ignore[misc]


def test_params_must_be_a_mapping_with_string_keys() -> None:
    with pytest.raises(TreatmentError, match="'t'"):
        Treatment("t", [("lr", 0.1)])  # type: ignore[arg-type]
    with pytest.raises(TreatmentError, match="'t'"):
        Treatment("t", {1: 0.1})  # type: ignore[dict-item]


def test_treatment_params_reach_the_context_and_override_the_baseline_params() -> None:
    params = {"lr": 0.5}
    treatment = Treatment("small_lr", params)
    params["lr"] = 99.0  # an edit after construction must not leak into the run

    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("lr", ctx["lr"])
        ctx.metrics.add("layers", ctx["layers"])

    result = run_experiment(fn, replicates=2, params={"lr": 1.0, "layers": 3}, treatments=[treatment])
    assert result.select("lr", "baseline")[1].tolist() == [1.0, 1.0]
    assert result.select("lr", "small_lr")[1].tolist() == [0.5, 0.5]
    assert result.select("layers", "small_lr")[1].tolist() == [3.0, 3.0]


def test_a_single_datasource_swap_replaces_the_only_datasource_parameter() -> None:
    def fn(ctx: FrozenContext, data: float) -> None:
        ctx.metrics.add("data", data)

    result = run_experiment(
        fn,
        replicates=3,
        datasources={"data": _clean},
        treatments=[Treatment("noisy", datasource=_noisy), Treatment("plain")],
    )
    assert not result.errors
    assert result.select("data", "baseline")[1].tolist() == [1.0] * 3
    assert result.select("data", "noisy")[1].tolist() == [100.0] * 3
    assert result.select("data", "plain")[1].tolist() == [1.0] * 3


def test_a_mapping_swap_replaces_only_the_named_parameter() -> None:
    def fn(ctx: FrozenContext, features: float, labels: float) -> None:
        ctx.metrics.add("features", features)
        ctx.metrics.add("labels", labels)

    result = run_experiment(
        fn,
        replicates=2,
        datasources={"features": _clean, "labels": _labels},
        treatments=[Treatment("shuffled", datasource={"labels": _shuffled_labels})],
    )
    assert not result.errors
    assert result.select("labels", "shuffled")[1].tolist() == [50.0, 50.0]
    assert result.select("features", "shuffled")[1].tolist() == [1.0, 1.0]
    assert result.select("labels", "baseline")[1].tolist() == [5.0, 5.0]


def test_a_single_swap_named_like_one_of_several_parameters_replaces_that_one() -> None:
    @data_source("labels")
    def other_labels(ctx: FrozenContext) -> float:
        return -1.0

    def fn(ctx: FrozenContext, features: float, labels: float) -> None:
        ctx.metrics.add("features", features)
        ctx.metrics.add("labels", labels)

    result = run_experiment(
        fn,
        replicates=2,
        datasources={"features": _clean, "labels": _labels},
        treatments=[Treatment("relabel", datasource=other_labels)],
    )
    assert result.select("labels", "relabel")[1].tolist() == [-1.0, -1.0]
    assert result.select("features", "relabel")[1].tolist() == [1.0, 1.0]


def test_an_ambiguous_single_swap_is_refused_before_anything_runs() -> None:
    calls = []

    def _exp_two_sources(ctx: FrozenContext, features: float, labels: float) -> None:
        calls.append(1)

    with pytest.raises(TreatmentError) as info:
        run_experiment(
            _exp_two_sources,
            replicates=2,
            datasources={"features": _clean, "labels": _labels},
            treatments=[Treatment("noisy", datasource=_noisy)],
        )
    message = str(info.value)
    assert "'noisy'" in message
    assert "'_exp_two_sources'" in message
    assert "features" in message
    assert "labels" in message
    assert calls == []


def test_a_mapping_swap_of_an_unknown_parameter_is_refused() -> None:
    def _exp_one_source(ctx: FrozenContext, data: float) -> None:
        pass

    with pytest.raises(TreatmentError) as info:
        run_experiment(
            _exp_one_source,
            replicates=2,
            datasources={"data": _clean},
            treatments=[Treatment("typo", datasource={"dta": _noisy})],
        )
    assert "'dta'" in str(info.value)
    assert "'_exp_one_source'" in str(info.value)


def test_a_datasource_swap_must_be_a_data_source() -> None:
    with pytest.raises(TreatmentError, match="'raw'"):
        Treatment("raw", datasource=lambda ctx: 1.0)  # type: ignore[arg-type]
    with pytest.raises(TreatmentError, match="'raw'"):
        Treatment("raw", datasource={"data": lambda ctx: 1.0})  # type: ignore[dict-item]


def test_an_async_swapped_datasource_is_awaited() -> None:
    @data_source
    async def remote(ctx: FrozenContext) -> float:
        return 7.0

    def fn(ctx: FrozenContext, data: float) -> None:
        ctx.metrics.add("data", data)

    result = run_experiment(
        fn, replicates=2, datasources={"data": _clean}, treatments=[Treatment("remote", datasource=remote)]
    )
    assert not result.errors
    assert result.select("data", "remote")[1].tolist() == [7.0, 7.0]
    assert result.select("data", "baseline")[1].tolist() == [1.0, 1.0]


def test_provenance_records_a_swapped_datasource() -> None:
    from pytest_crystallize import data_source

    @data_source
    def tds_prov_main(ctx):
        return 1.0

    @data_source
    def tds_prov_other(ctx):
        return 2.0

    def uses(tds_prov_main, ctx):
        ctx.metrics.add("v", tds_prov_main)

    result = run_experiment(uses, replicates=2, datasources={"tds_prov_main": tds_prov_main},
                            treatments=[Treatment("swap", {"k": [1, 2]}, datasource=tds_prov_other)])
    assert dict(result.provenance.treatments["swap"]) == {"k": "[1, 2]", "@datasource": "tds_prov_other"}
    _, values = result.select("v", "swap")
    assert values.tolist() == [2.0, 2.0]
