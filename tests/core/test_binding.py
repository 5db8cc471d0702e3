"""Typed binding: dataclass and Pydantic parameters built from the context, checked per condition.

This module uses ``from __future__ import annotations`` on purpose: every
annotation below is a string resolved later, and most models are defined
inside the test functions.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

import pytest

from pytest_crystallize import (
    Bind,
    ConfigurationError,
    FrozenContext,
    Treatment,
    grid,
    pipeline_step,
    run_experiment,
    standalone_context,
)

if TYPE_CHECKING:
    from collections import OrderedDict  # only for type checkers: unresolvable at run time

pydantic = pytest.importorskip("pydantic")


@dataclass
class Sampling:
    temperature: float = 0.7
    top_p: float | None = None


@dataclass
class LLMConfig:
    model: str
    sampling: Sampling = field(default_factory=Sampling)
    max_tokens: Optional[int] = None  # noqa: UP045 - the Optional spelling is what broke Spearmint
    stop: tuple[str, ...] = ()


class PydanticLLM(pydantic.BaseModel):
    model: str
    temperature: float = 0.7
    max_tokens: int | None = None
    stop: Optional[list[str]] = None  # noqa: UP045 - the Optional spelling is what broke Spearmint


LLM_PARAMS = {"llm": {"model": "base", "sampling": {"temperature": 0.5}}}


def _values(result: Any, metric: str) -> dict[str, list[float]]:
    return {c: result.select(metric, c)[1].tolist() for c in result.conditions}


# -- where the model comes from ----------------------------------------------------------


def test_bind_builds_a_dataclass_from_a_sub_path_per_condition() -> None:
    def fn(ctx: FrozenContext, llm: Annotated[LLMConfig, Bind("llm")]) -> None:
        assert isinstance(llm, LLMConfig)
        assert isinstance(llm.sampling, Sampling)
        ctx.metrics.add("temperature", llm.sampling.temperature)
        ctx.metrics.add("is_base", llm.model == "base")

    result = run_experiment(fn, replicates=2, params=LLM_PARAMS, treatments=grid({"llm.sampling.temperature": [0.1]}))
    assert not result.errors, result.errors
    assert _values(result, "temperature") == {"baseline": [0.5, 0.5], "llm.sampling.temperature=0.1": [0.1, 0.1]}
    assert _values(result, "is_base")["llm.sampling.temperature=0.1"] == [1.0, 1.0]


def test_without_bind_a_parameter_reads_the_key_of_its_name_else_the_top_level() -> None:
    @dataclass
    class Flat:
        lr: float
        layers: int = 2

    def fn(ctx: FrozenContext, llm: LLMConfig, flat: Flat) -> None:
        ctx.metrics.add("model_len", len(llm.model))
        ctx.metrics.add("lr", flat.lr)
        ctx.metrics.add("layers", flat.layers)

    result = run_experiment(
        fn, replicates=1, params={**LLM_PARAMS, "lr": 0.1}, treatments=[Treatment("deep", {"layers": 8})]
    )
    assert not result.errors, result.errors
    assert _values(result, "lr") == {"baseline": [0.1], "deep": [0.1]}
    assert _values(result, "layers") == {"baseline": [2.0], "deep": [8.0]}
    assert _values(result, "model_len") == {"baseline": [4.0], "deep": [4.0]}


def test_bind_with_no_path_reads_the_top_level() -> None:
    def fn(ctx: FrozenContext, cfg: Annotated[PydanticLLM, Bind()]) -> None:
        ctx.metrics.add("t", cfg.temperature)

    result = run_experiment(fn, replicates=1, params={"model": "m", "temperature": 0.3, "unrelated": object()})
    assert not result.errors, result.errors
    assert _values(result, "t") == {"baseline": [0.3]}


def test_a_pydantic_model_is_validated_and_coerced_by_pydantic() -> None:
    seen: list[PydanticLLM] = []

    def fn(ctx: FrozenContext, llm: Annotated[PydanticLLM, Bind("llm")]) -> None:
        seen.append(llm)

    result = run_experiment(fn, replicates=1, params={"llm": {"model": "m", "temperature": "0.25"}})
    assert not result.errors, result.errors
    assert seen == [PydanticLLM(model="m", temperature=0.25)]


def test_models_defined_inside_a_function_resolve_under_future_annotations() -> None:
    @dataclass
    class Local:
        name: str
        size: Literal["s", "m", "l"] = "m"

    class LocalModel(pydantic.BaseModel):
        local: Local | None = None
        k: int

    def fn(ctx: FrozenContext, cfg: Annotated[LocalModel, Bind("cfg")], local: Annotated[Local, Bind("local")]) -> None:
        ctx.metrics.add("k", cfg.k)
        ctx.metrics.add("large", local.size == "l")

    params = {"cfg": {"k": 3}, "local": {"name": "x", "size": "l"}}
    result = run_experiment(fn, replicates=1, params=params)
    assert not result.errors, result.errors
    assert _values(result, "k") == {"baseline": [3.0]}
    assert _values(result, "large") == {"baseline": [1.0]}


def test_optional_fields_and_optional_parameters_work() -> None:
    # Spearmint fault: validation crashed on Optional fields.
    seen: list[Any] = []

    def fn(
        ctx: FrozenContext,
        llm: Annotated[LLMConfig, Bind("llm")],
        pyd: Annotated[PydanticLLM, Bind("pyd")] | None,
        extra: Annotated[Optional[Sampling], Bind("extra")],  # noqa: UP045 - both spellings must work
        kept: Annotated[Sampling, Bind("missing")] = Sampling(temperature=9.0),  # noqa: B008 - a default on purpose
    ) -> None:
        seen.append((llm.max_tokens, llm.sampling.top_p, pyd, extra, kept.temperature))

    params = {"llm": {"model": "m", "max_tokens": None, "sampling": {"top_p": None}}, "pyd": {"model": "m", "stop": None}}
    capped = Treatment("capped", {"llm.max_tokens": 64, "pyd.max_tokens": 64})
    result = run_experiment(fn, replicates=1, params=params, treatments=[capped])
    assert not result.errors, result.errors
    assert seen[0] == (None, None, PydanticLLM(model="m"), None, 9.0)
    assert seen[1][0] == 64
    assert seen[1][2] == PydanticLLM(model="m", max_tokens=64)


def test_lists_become_tuples_where_the_field_says_tuple() -> None:
    seen: list[LLMConfig] = []

    def fn(llm: Annotated[LLMConfig, Bind("llm")]) -> None:
        seen.append(llm)

    run_experiment(fn, replicates=1, params={"llm": {"model": "m", "stop": ["\n", "END"]}})
    assert seen[0].stop == ("\n", "END")


def test_each_replicate_gets_a_fresh_model_and_copies_of_nested_values() -> None:
    @dataclass
    class Bag:
        items: list[int]

    lengths: list[int] = []

    def fn(bag: Annotated[Bag, Bind("bag")]) -> None:
        bag.items.append(1)  # must not leak into the next replicate or the baseline values
        lengths.append(len(bag.items))

    params = {"bag": {"items": [0]}}
    run_experiment(fn, replicates=3, params=params)
    assert lengths == [2, 2, 2]
    assert params == {"bag": {"items": [0]}}


def test_an_instance_in_the_context_is_passed_as_it_is() -> None:
    given = LLMConfig(model="ready")
    seen: list[LLMConfig] = []

    def fn(llm: LLMConfig) -> None:
        seen.append(llm)

    run_experiment(fn, replicates=1, params={"llm": given})
    assert seen[0] is given


# -- every condition is checked before anything runs --------------------------------------


def test_a_bad_treatment_fails_before_any_replicate_naming_treatment_and_field() -> None:
    calls = []

    def fn(llm: Annotated[LLMConfig, Bind("llm")]) -> None:
        calls.append(1)

    treatments = [Treatment("fine", {"llm.sampling.temperature": 0.1}), Treatment("broken", {"llm.sampling.temperature": "hot"})]
    with pytest.raises(ConfigurationError) as info:
        run_experiment(fn, name="sweep", replicates=5, params=LLM_PARAMS, treatments=treatments)
    message = str(info.value)
    assert "experiment 'sweep'" in message
    assert "treatment 'broken'" in message
    assert "'llm.sampling.temperature'" in message
    assert "expects float" in message
    assert calls == []


def test_pydantic_errors_name_the_treatment_and_every_bad_field() -> None:
    def fn(llm: Annotated[PydanticLLM, Bind("llm")]) -> None:
        pass

    with pytest.raises(ConfigurationError) as info:
        run_experiment(
            fn, replicates=1, params={"llm": {"model": "m"}},
            treatments=[Treatment("bad", {"llm.temperature": "warm", "llm.max_tokens": "many"})],
        )
    message = str(info.value)
    assert "treatment 'bad'" in message
    assert "'llm.temperature'" in message
    assert "'llm.max_tokens'" in message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"llm": {"sampling": {}}}, r"baseline: parameter 'llm' \(LLMConfig from 'llm'\): field 'llm\.model' is missing"),
        ({"llm": {"model": "m", "colour": "red"}}, r"field 'llm\.colour' is not a field of LLMConfig"),
        ({"llm": "gpt"}, r"expected a mapping of LLMConfig's fields at 'llm'"),
        ({}, r"the context has no 'llm'"),
        ({"llm": {"model": "m", "sampling": {"temperature": True}}}, r"'llm\.sampling\.temperature' expects float"),
        ({"llm": {"model": "m", "max_tokens": 1.5}}, r"'llm\.max_tokens' expects int \| NoneType"),
    ],
)
def test_bad_configuration_messages(params: dict[str, Any], message: str) -> None:
    def fn(llm: Annotated[LLMConfig, Bind("llm")]) -> None:
        pass

    with pytest.raises(ConfigurationError, match=message):
        run_experiment(fn, replicates=1, params=params)


def test_unknown_keys_for_a_pydantic_model_are_refused_unless_its_config_allows_them() -> None:
    class Lenient(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="ignore")
        model: str

    seen: list[Any] = []

    def fn(strict: Annotated[PydanticLLM, Bind("llm")], lenient: Annotated[Lenient, Bind("llm")]) -> None:
        seen.append(lenient)

    with pytest.raises(ConfigurationError, match=r"treatment 'typo'.*'llm\.temprature' is not a field of PydanticLLM"):
        run_experiment(fn, replicates=1, params={"llm": {"model": "m"}}, treatments=[Treatment("typo", {"llm.temprature": 1})])

    def lenient_only(lenient: Annotated[Lenient, Bind("llm")]) -> None:
        seen.append(lenient)

    run_experiment(lenient_only, replicates=1, params={"llm": {"model": "m", "colour": "red"}})
    assert seen == [Lenient(model="m")]


def test_a_dataclass_post_init_error_is_reported() -> None:
    @dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    def fn(p: Annotated[Positive, Bind("p")]) -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"treatment 'zero'.*n must be positive"):
        run_experiment(fn, replicates=1, params={"p": {"n": 1}}, treatments=[Treatment("zero", {"p.n": 0})])


def test_bind_on_a_type_that_is_not_a_model_is_refused() -> None:
    def fn(x: Annotated[int, Bind("x")]) -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"parameter 'x' has Bind\('x'\).*neither a dataclass nor a Pydantic"):
        run_experiment(fn, replicates=1, params={"x": 1})


def test_a_bad_bind_path_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="dotted path"):
        Bind("llm..x")


def test_an_annotation_that_cannot_be_resolved_is_not_a_crash() -> None:
    def fn(ctx: FrozenContext, cache: OrderedDict[str, int] | None = None) -> None:
        ctx.metrics.add("ok", cache is None)

    result = run_experiment(fn, replicates=1)
    assert _values(result, "ok") == {"baseline": [1.0]}


def test_an_unclaimed_parameter_with_an_unresolvable_annotation_says_why() -> None:
    def fn(cache: OrderedDict[str, int]) -> None:
        pass

    with pytest.raises(ConfigurationError, match=r"parameter 'cache': its annotation .* cannot be resolved \(NameError"):
        run_experiment(fn, replicates=1)


def _factory_whose_body_never_names_the_class() -> tuple[Any, type]:
    @dataclass
    class Cfg:
        x: int = 1

    def fn(ctx: FrozenContext, cfg: Cfg) -> None:
        ctx.metrics.add("x", cfg.x)  # 'Cfg' only in the annotation: not a closure variable

    return fn, Cfg


def _factory_whose_body_names_the_class() -> Any:
    @dataclass
    class Cfg:
        x: int = 1

    def fn(ctx: FrozenContext, cfg: Cfg) -> None:
        assert isinstance(cfg, Cfg)  # the body uses 'Cfg': a closure variable
        ctx.metrics.add("x", cfg.x)

    return fn


def _run_from_another_function(fn: Any, **options: Any) -> Any:
    return run_experiment(fn, replicates=1, params={"cfg": {"x": 2}}, **options)


def test_a_model_local_to_a_returned_factory_is_a_binding_error_naming_the_class_and_the_fixes() -> None:
    from pytest_crystallize import DataSourceError

    fn, _ = _factory_whose_body_never_names_the_class()
    with pytest.raises(ConfigurationError) as info:
        _run_from_another_function(fn)
    assert not isinstance(info.value, DataSourceError)  # not "define a @data_source named cfg"
    message = str(info.value)
    assert message.startswith("experiment 'fn': parameter 'cfg': its annotation 'Cfg' cannot be resolved")
    assert "NameError: name 'Cfg' is not defined" in message
    assert "define Cfg at module level" in message
    assert "localns={'Cfg': Cfg}" in message


def test_localns_resolves_a_model_local_to_a_returned_factory() -> None:
    fn, cfg_class = _factory_whose_body_never_names_the_class()
    result = _run_from_another_function(fn, localns={"Cfg": cfg_class})
    assert not result.errors, result.errors
    assert _values(result, "x") == {"baseline": [2.0]}


def test_a_model_the_function_body_uses_resolves_through_its_closure() -> None:
    result = _run_from_another_function(_factory_whose_body_names_the_class())
    assert not result.errors, result.errors
    assert _values(result, "x") == {"baseline": [2.0]}


def test_localns_must_be_a_mapping() -> None:
    fn, _ = _factory_whose_body_never_names_the_class()
    with pytest.raises(ConfigurationError, match="localns must be a mapping"):
        _run_from_another_function(fn, localns=["Cfg"])


def test_a_new_key_under_a_bound_mapping_is_left_to_the_model() -> None:
    # The baseline leaves the defaulted field out; a treatment may set it (the model knows
    # its fields), and a misspelt one is refused by the model, naming the field.
    def fn(ctx: FrozenContext, pyd: Annotated[PydanticLLM, Bind("pyd")]) -> None:
        ctx.metrics.add("max_tokens", pyd.max_tokens or 0)

    params = {"pyd": {"model": "m"}}
    result = run_experiment(fn, replicates=1, params=params, treatments=[Treatment("capped", {"pyd.max_tokens": 5})])
    assert _values(result, "max_tokens") == {"baseline": [0.0], "capped": [5.0]}
    with pytest.raises(ConfigurationError, match=r"treatment 'typo'.*'pyd\.max_tokns' is not a field of PydanticLLM"):
        run_experiment(fn, replicates=1, params=params, treatments=[Treatment("typo", {"pyd.max_tokns": 5})])


def test_a_datasource_or_an_argument_of_the_same_name_wins_over_a_plain_annotation() -> None:
    seen: list[Any] = []

    def fn(llm: LLMConfig) -> None:
        seen.append(llm)

    run_experiment(fn, replicates=1, params=LLM_PARAMS, arguments={"llm": "fixed"})
    run_experiment(fn, replicates=1, params=LLM_PARAMS, datasources={"llm": lambda ctx: "from source"})
    assert seen == ["fixed", "from source"]


# -- steps ---------------------------------------------------------------------------------


def test_a_step_parameter_is_built_from_the_context() -> None:
    @dataclass
    class StepConfig:
        factor: float

    @pipeline_step()
    def scale(data: float, cfg: Annotated[StepConfig, Bind("scaling")]) -> float:
        return data * cfg.factor

    @pipeline_step()
    def shift(data: float, llm: PydanticLLM) -> float:
        return data + llm.temperature

    ctx = standalone_context({"scaling": {"factor": 3.0}, "llm": {"model": "m", "temperature": 0.5}})
    assert scale(2.0, ctx) == 6.0
    assert shift(1.0, ctx) == 1.5
    assert scale(2.0, ctx, cfg=StepConfig(factor=10.0)) == 20.0  # explicit arguments win


def test_a_step_binding_error_names_the_step_and_the_field() -> None:
    @pipeline_step()
    def use(data: float, llm: Annotated[LLMConfig, Bind("llm")]) -> float:
        return data

    def fn(ctx: FrozenContext) -> None:
        use(1.0)

    result = run_experiment(fn, replicates=1, params={"llm": {"model": 3}})
    assert len(result.errors) == 1
    assert "step 'use'" in result.errors[0].message
    assert "'llm.model' expects str" in result.errors[0].message


def test_a_step_whose_model_is_defined_later_in_the_module_resolves_on_first_call() -> None:
    assert _late_step(1.0, standalone_context({"late": {"k": 2.0}})) == 3.0


@pipeline_step()
def _late_step(data: float, late: Annotated[_Late, Bind("late")]) -> float:
    return data + late.k


@dataclass
class _Late:
    k: float


def _module_level(ctx: FrozenContext, llm: Annotated[LLMConfig, Bind("llm")]) -> None:
    ctx.metrics.add("temperature", llm.sampling.temperature)


def test_an_experiment_with_bindings_pickles_for_worker_processes() -> None:
    import pickle
    import threading

    from pytest_crystallize import Experiment, ParallelExecution

    unpicklable_local = threading.Lock()  # in the caller's locals, which resolve annotations
    experiment = Experiment.define(
        _module_level, replicates=2, params=LLM_PARAMS, treatments=grid({"llm.sampling.temperature": [0.9]}),
        localns={"lock": unpicklable_local},
    )
    again = pickle.loads(pickle.dumps(experiment))
    assert again.bindings == experiment.bindings
    spawned = run_experiment(
        _module_level, replicates=2, params=LLM_PARAMS, treatments=grid({"llm.sampling.temperature": [0.9]}),
        plugins=[ParallelExecution(max_workers=2, start_method="spawn")],
    )
    assert not spawned.errors, spawned.errors
    assert _values(spawned, "temperature") == {"baseline": [0.5, 0.5], "llm.sampling.temperature=0.9": [0.9, 0.9]}


def test_a_dataclass_with_one_unresolvable_field_still_checks_the_others() -> None:
    @dataclass
    class Partly:
        known: int
        unknown: Missing  # type: ignore[name-defined]  # noqa: F821 - never defined on purpose

    def fn(p: Annotated[Partly, Bind("p")]) -> None:
        pass

    run_experiment(fn, replicates=1, params={"p": {"known": 1, "unknown": object()}})
    with pytest.raises(ConfigurationError, match=r"'p\.known' expects int"):
        run_experiment(fn, replicates=1, params={"p": {"known": "one", "unknown": 1}})


def test_binding_works_without_pydantic_installed_or_imported() -> None:
    code = (
        "import sys\n"
        "sys.modules['pydantic'] = None  # as if not installed\n"
        "from dataclasses import dataclass\n"
        "from typing import Annotated\n"
        "from pytest_crystallize import Bind, run_experiment\n"
        "@dataclass\n"
        "class C:\n"
        "    x: float\n"
        "def fn(ctx, c: Annotated[C, Bind('c')]):\n"
        "    ctx.metrics.add('x', c.x)\n"
        "r = run_experiment(fn, replicates=2, params={'c': {'x': 1.5}})\n"
        "print(r.select('x', 'baseline')[1].tolist(), r.errors)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[1.5, 1.5] ()"
