"""@data_source, the registry, and datasources feeding an experiment.

The registry is process-wide, so every name registered here starts with
``tds_`` to stay out of other tests' way.
"""

from __future__ import annotations

import asyncio

import pytest

from pytest_crystallize import (
    ConfigurationError,
    DataSource,
    DataSourceError,
    FrozenContext,
    data_source,
    get_datasource,
    run_experiment,
    standalone_context,
)


@data_source
def tds_module_rows(ctx: FrozenContext) -> list[int]:
    return [ctx.replicate] * 3


def test_bare_decorator_makes_a_datasource_named_after_the_function() -> None:
    @data_source
    def load_rows(ctx: FrozenContext) -> int:
        return ctx.replicate * 10

    assert isinstance(load_rows, DataSource)
    assert load_rows.name == "load_rows"
    assert load_rows(standalone_context(replicate=4)) == 40


def test_a_datasource_without_parameters_is_called_without_the_context() -> None:
    @data_source
    def constant() -> str:
        return "fixed"

    assert constant(standalone_context()) == "fixed"


def test_decorator_with_a_name_uses_that_name() -> None:
    @data_source("tds_renamed")
    def loader(ctx: FrozenContext) -> str:
        return ctx.condition

    assert isinstance(loader, DataSource)
    assert loader.name == "tds_renamed"
    assert loader(standalone_context(condition="x")) == "x"


def test_naming_without_register_does_not_register() -> None:
    @data_source("tds_not_registered")
    def loader(ctx: FrozenContext) -> int:
        return 1

    with pytest.raises(DataSourceError, match="'tds_not_registered'"):
        get_datasource("tds_not_registered")


def test_register_makes_get_datasource_find_it() -> None:
    @data_source("tds_registered", register=True)
    def loader(ctx: FrozenContext) -> int:
        return ctx.replicate + 100

    found = get_datasource("tds_registered")
    assert found is loader
    assert found(standalone_context(replicate=1)) == 101


def test_register_without_a_name_uses_the_function_name() -> None:
    @data_source(register=True)
    def tds_by_function_name(ctx: FrozenContext) -> int:
        return 5

    assert get_datasource("tds_by_function_name") is tds_by_function_name


def test_get_datasource_of_an_unknown_name_lists_the_known_names() -> None:
    @data_source("tds_known_one", register=True)
    def one(ctx: FrozenContext) -> int:
        return 1

    @data_source("tds_known_two", register=True)
    def two(ctx: FrozenContext) -> int:
        return 2

    with pytest.raises(DataSourceError) as info:
        get_datasource("tds_no_such_source")
    message = str(info.value)
    assert "'tds_no_such_source'" in message
    assert "'tds_known_one'" in message
    assert "'tds_known_two'" in message


def test_unknown_datasource_error_is_a_lookup_and_configuration_error() -> None:
    with pytest.raises(LookupError):
        get_datasource("tds_missing_again")
    with pytest.raises(ConfigurationError):
        get_datasource("tds_missing_again")


def test_registering_a_different_function_under_a_taken_name_errors() -> None:
    @data_source("tds_clash", register=True)
    def first_loader(ctx: FrozenContext) -> str:
        return "first"

    with pytest.raises(DataSourceError) as info:

        @data_source("tds_clash", register=True)
        def second_loader(ctx: FrozenContext) -> str:
            return "second"

    message = str(info.value)
    assert "'tds_clash'" in message
    assert "first_loader" in message
    assert "second_loader" in message
    # The first registration is kept.
    assert get_datasource("tds_clash")(standalone_context()) == "first"


def test_registering_the_same_function_again_is_allowed() -> None:
    def loader(ctx: FrozenContext) -> int:
        return 3

    data_source("tds_reloaded", register=True)(loader)
    again = data_source("tds_reloaded", register=True)(loader)
    assert get_datasource("tds_reloaded") is again


def test_a_datasource_with_two_required_parameters_is_refused() -> None:
    def two_args(ctx: FrozenContext, other: int) -> int:
        return other

    with pytest.raises(DataSourceError, match="two_args"):
        data_source(two_args)


def test_an_experiment_parameter_is_filled_from_the_registry_by_name() -> None:
    @data_source("tds_from_registry", register=True)
    def loader(ctx: FrozenContext) -> float:
        return ctx.replicate * 2.0

    def fn(ctx: FrozenContext, tds_from_registry: float) -> None:
        ctx.metrics.add("x", tds_from_registry)

    result = run_experiment(fn, replicates=3)
    reps, values = result.select("x", "baseline")
    assert values.tolist() == [r * 2.0 for r in reps.tolist()]


def test_an_experiment_parameter_is_filled_from_a_module_level_datasource() -> None:
    def fn(ctx: FrozenContext, tds_module_rows: list[int]) -> None:
        ctx.metrics.add("total", sum(tds_module_rows))

    result = run_experiment(fn, replicates=3)
    reps, values = result.select("total", "baseline")
    assert values.tolist() == [3.0 * r for r in reps.tolist()]


def test_datasources_option_fills_a_parameter_with_a_plain_function() -> None:
    def rows(ctx: FrozenContext) -> int:
        return ctx.replicate + 1

    def fn(ctx: FrozenContext, data: int) -> None:
        ctx.metrics.add("data", data)

    result = run_experiment(fn, replicates=3, datasources={"data": rows})
    reps, values = result.select("data", "baseline")
    assert values.tolist() == [r + 1.0 for r in reps.tolist()]


def test_an_async_datasource_is_awaited_before_the_experiment_gets_it() -> None:
    @data_source
    async def slow(ctx: FrozenContext) -> int:
        await asyncio.sleep(0)
        return ctx.replicate + 7

    assert slow.is_async

    def fn(ctx: FrozenContext, data: int) -> None:
        ctx.metrics.add("data", data)

    result = run_experiment(fn, replicates=2, datasources={"data": slow})
    assert not result.errors
    reps, values = result.select("data", "baseline")
    assert values.tolist() == [r + 7.0 for r in reps.tolist()]
