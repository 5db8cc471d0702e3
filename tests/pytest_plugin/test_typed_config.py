"""Sweeps, configuration files, typed binding and evaluators under pytest."""

from __future__ import annotations

import pytest

pytest.importorskip("pydantic")


def test_a_bad_treatment_is_an_error_at_setup_naming_experiment_treatment_and_field(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from __future__ import annotations

        from typing import Annotated

        import pydantic
        import pytest
        from pytest_crystallize import Bind, Treatment, grid

        RAN = []

        class LLMConfig(pydantic.BaseModel):
            model: str
            temperature: float
            max_tokens: int | None = None

        @pytest.mark.experiment(
            replicates=3, params={"llm": {"model": "m", "temperature": 0.5}},
            treatments=[*grid({"llm.temperature": [0.1, 0.9]}), Treatment("typo", {"llm.temprature": 1.0})],
        )
        def experiment_llm(ctx, llm: Annotated[LLMConfig, Bind("llm")]):
            RAN.append(1)

        def test_nothing_ran():
            assert RAN == []
    """)
    result = pytester.runpytest("--crystallize", "-p", "no:randomly")
    result.assert_outcomes(errors=1, passed=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of experiment_llm*",
        "*experiment 'experiment_llm': treatment 'typo': parameter 'llm' (LLMConfig from 'llm'): "
        "field 'llm.temprature' is not a field of LLMConfig*",
    ])


def test_a_wrong_value_type_names_the_treatment_and_field(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        from dataclasses import dataclass
        from typing import Annotated

        import pytest
        from pytest_crystallize import Bind, grid

        @dataclass
        class LLMConfig:
            model: str
            temperature: float

        @pytest.mark.experiment(
            replicates=3, params={"llm": {"model": "m", "temperature": 0.5}},
            treatments=grid({"llm.temperature": [0.1, "hot"]}),
        )
        def experiment_llm(ctx, llm: Annotated[LLMConfig, Bind("llm")]):
            ctx.metrics.add("t", llm.temperature)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*experiment 'experiment_llm': treatment 'llm.temperature=hot': parameter 'llm' (LLMConfig from 'llm'): "
        "field 'llm.temperature' expects float, got str 'hot'*",
    ])


def test_typed_parameters_are_not_looked_up_as_fixtures_unless_a_fixture_has_the_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("""
        from dataclasses import dataclass
        from typing import Annotated

        import pytest
        from pytest_crystallize import Bind, Treatment

        @dataclass
        class Knobs:
            gain: float

        @dataclass
        class Other:
            label: str

        @pytest.fixture
        def other():
            return Other(label="from fixture")

        @pytest.fixture
        def knobs():
            raise AssertionError("Bind beats a fixture of the same name")

        @pytest.mark.experiment(replicates=2, params={"knobs": {"gain": 1.0}, "label": "ctx"},
                                treatments=[Treatment("double", {"knobs.gain": 2.0})])
        def experiment_typed(ctx, knobs: Annotated[Knobs, Bind("knobs")], other: Other):
            assert other.label == "from fixture"
            ctx.metrics.add("gain", knobs.gain)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline*gain*2*1*", "*double*gain*2*2*"])


def test_evaluators_on_the_marker_record_metrics_a_hypothesis_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import data_source, grid, hypothesis

        @data_source
        def sample(ctx):
            return {"question": ctx.replicate, "expected": ctx.replicate * 2}

        def exact(output, expected):
            return output == expected

        @pytest.mark.experiment(replicates=20, treatments=grid(skill=[0.9]), params={"skill": 0.0},
                                evaluators=[exact])
        @hypothesis(metric="exact", direction="maximize")
        def experiment_scored(ctx, sample):
            right = ctx.rng.random() < ctx["skill"]
            return sample["question"] * 2 if right else -1
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PASS 'exact maximize' skill=0.9 vs baseline*"])


def test_an_evaluator_error_reports_the_evaluator(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        def broken(output):
            raise KeyError("no score")

        @pytest.mark.experiment(replicates=2, evaluators=[broken])
        def experiment_broken(ctx):
            return 1
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*step 'evaluator:broken'*KeyError*no score*"])


def test_a_generator_of_treatments_on_a_shared_marker_is_read_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        from pytest_crystallize import Treatment

        @pytest.mark.parametrize("offset", [0, 10])
        @pytest.mark.experiment(replicates=2, treatments=(Treatment(f"t{i}", {"i": i}) for i in range(3)))
        def experiment_generated(ctx, offset):
            ctx.metrics.add("i", ctx.get("i", -1) + offset)
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=2)
    for offset in (0, 10):
        result.stdout.fnmatch_lines([f"*experiment_generated?{offset}?*", "*t0*", "*t1*", "*t2*"])


def test_treatments_from_a_configuration_directory(pytester: pytest.Pytester) -> None:
    configs = pytester.mkdir("configs")
    (configs / "baseline.toml").write_text('[llm]\nmodel = "base"\ntemperature = 0.5\n')
    (configs / "hot.json").write_text('{"llm.temperature": 1.5}')
    pytester.makepyfile("""
        from pathlib import Path

        import pytest
        from pytest_crystallize import load_config

        CONFIG = load_config(Path(__file__).with_name("configs"))

        @pytest.mark.experiment(replicates=2, params=CONFIG.params, treatments=CONFIG.treatments)
        def experiment_from_files(ctx):
            ctx.metrics.add("t", ctx["llm"]["temperature"])
            assert ctx["llm"]["model"] == "base"
    """)
    result = pytester.runpytest("--crystallize")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*baseline*t*2*0.5*", "*hot*t*2*1.5*"])


FACTORY_EXPERIMENTS = """
    from __future__ import annotations

    from dataclasses import dataclass

    import pytest

    def make_unresolvable():
        @dataclass
        class Cfg:
            x: int = 1

        @pytest.mark.experiment(replicates=2, params={"cfg": {"x": 3}})
        def experiment_local(ctx, cfg: Cfg):  # 'Cfg' only in the annotation
            ctx.metrics.add("x", cfg.x)

        return experiment_local

    def make_with_localns():
        @dataclass
        class Cfg:
            x: int = 1

        @pytest.mark.experiment(replicates=2, params={"cfg": {"x": 3}}, localns={"Cfg": Cfg})
        def experiment_localns(ctx, cfg: Cfg):
            ctx.metrics.add("x", cfg.x)

        return experiment_localns

    def make_closure():
        @dataclass
        class Cfg:
            x: int = 1

        @pytest.mark.experiment(replicates=2, params={"cfg": {"x": 3}})
        def experiment_closure(ctx, cfg: Cfg):
            assert isinstance(cfg, Cfg)  # the body names 'Cfg': found through the closure
            ctx.metrics.add("x", cfg.x)

        return experiment_closure

    experiment_local = make_unresolvable()
    experiment_localns = make_with_localns()
    experiment_closure = make_closure()

    def test_neighbour():
        pass
"""


def test_a_model_local_to_a_factory_is_a_binding_error_not_a_missing_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FACTORY_EXPERIMENTS)
    result = pytester.runpytest("--crystallize", "-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at setup of experiment_local*",
        "experiment 'experiment_local': parameter 'cfg': its annotation 'Cfg' cannot be resolved "
        "(NameError: name 'Cfg' is not defined)*define Cfg at module level*localns={'Cfg': Cfg}*",
    ])
    result.stdout.no_fnmatch_line("*fixture 'cfg' not found*")
    for name in ("experiment_localns", "experiment_closure"):
        result.stdout.fnmatch_lines([f"*::{name} (2 replicates*: passed"])


def test_collect_only_lists_wrongly_defined_experiments_and_keeps_their_neighbours(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FACTORY_EXPERIMENTS)
    pytester.makepyfile(test_typo="""
        import pytest
        from pytest_crystallize import Treatment

        @pytest.mark.experiment(params={"llm": {"model": "m"}}, treatments=[Treatment("typo", {"llm.modle": "x"})])
        def experiment_typo(ctx):
            ctx.metrics.add("one", 1)
    """)
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:randomly")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "crystallize: 2 experiment(s) defined wrongly (each errors at setup):",
        "  test_collect_only*.py::experiment_local: experiment 'experiment_local': parameter 'cfg': "
        "its annotation 'Cfg' cannot be resolved*",
        "  test_typo.py::experiment_typo: experiment 'experiment_typo': treatment 'typo': 'llm.modle' adds a new key "
        "'modle' under 'llm'*did you mean 'llm.model'?*",
    ])
    result.stdout.fnmatch_lines(["*::experiment_local", "*::experiment_localns", "*::test_neighbour", "*5 tests collected*"])
