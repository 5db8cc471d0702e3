"""Treatments and baseline values from YAML, TOML and JSON: one file or a directory; safe; strict."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_crystallize import (
    ConfigurationError,
    FrozenContext,
    LoadedConfig,
    Treatment,
    data_source,
    load_config,
    load_treatments,
    run_experiment,
)

yaml = pytest.importorskip("yaml")

YAML_LIST = """\
- name: hot
  params:
    llm.temperature: 1.5
- name: small
  params:
    llm:
      model: small
"""

TOML_TABLES = """\
[[treatments]]
name = "hot"
params = { "llm.temperature" = 1.5 }

[[treatments]]
name = "small"
[treatments.params.llm]
model = "small"
"""

JSON_LIST = json.dumps([
    {"name": "hot", "params": {"llm.temperature": 1.5}},
    {"name": "small", "params": {"llm": {"model": "small"}}},
])


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _summary(treatments: tuple[Treatment, ...]) -> list[tuple[str, dict[str, Any]]]:
    return [(t.name, dict(t.params)) for t in treatments]


# -- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "text"), [("t.yaml", YAML_LIST), ("t.toml", TOML_TABLES), ("t.json", JSON_LIST)])
def test_a_list_of_treatments_reads_the_same_from_every_format(tmp_path: Path, file: str, text: str) -> None:
    treatments = load_treatments(_write(tmp_path / file, text))
    assert _summary(treatments) == [
        ("hot", {"llm.temperature": 1.5}),
        ("small", {"llm": {"model": "small"}}),
    ]


def test_a_file_with_params_treatments_and_a_grid(tmp_path: Path) -> None:
    path = _write(tmp_path / "sweep.yml", """\
params:
  llm: {model: base, temperature: 0.7}
treatments:
  - name: tiny
    params: {llm.model: tiny}
grid:
  llm.temperature: [0.1, 0.9]
""")
    config = load_config(path)
    assert isinstance(config, LoadedConfig)
    assert dict(config.params) == {"llm": {"model": "base", "temperature": 0.7}}
    assert [t.name for t in config.treatments] == ["tiny", "llm.temperature=0.1", "llm.temperature=0.9"]
    assert config.source == str(path)


def test_a_directory_holds_one_treatment_per_file_and_the_baseline(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "baseline.yaml", "llm: {model: base, temperature: 0.7}\n")
    _write(tmp_path / "cfg" / "hot.toml", '"llm.temperature" = 1.5\n')
    _write(tmp_path / "cfg" / "cold.json", '{"llm": {"temperature": 0.1}}')
    _write(tmp_path / "cfg" / ".DS_Store", "ignored")
    config = load_config(tmp_path / "cfg")
    assert dict(config.params) == {"llm": {"model": "base", "temperature": 0.7}}
    assert _summary(config.treatments) == [
        ("cold", {"llm": {"temperature": 0.1}}),
        ("hot", {"llm.temperature": 1.5}),
    ]


def test_loaded_values_reach_the_context_merged_into_the_baseline(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "baseline.json", '{"llm": {"model": "base", "temperature": 0.7}}')
    _write(tmp_path / "cfg" / "hot.yaml", "llm: {temperature: 1.5}\n")
    config = load_config(tmp_path / "cfg")

    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("temperature", ctx["llm"]["temperature"])
        ctx.metrics.add("base_model", ctx["llm"]["model"] == "base")

    result = run_experiment(fn, replicates=2, params=config.params, treatments=config.treatments)
    assert result.select("temperature", "hot")[1].tolist() == [1.5, 1.5]
    assert result.select("base_model", "hot")[1].tolist() == [1.0, 1.0]
    assert result.select("temperature", "baseline")[1].tolist() == [0.7, 0.7]


def test_datasources_are_named_by_their_registered_name(tmp_path: Path) -> None:
    @data_source("configs_test_noisy_source", register=True)
    def noisy(ctx: FrozenContext) -> float:
        return 9.0

    path = _write(tmp_path / "t.yaml", """\
- name: swapped
  datasource: configs_test_noisy_source
- name: mapped
  datasource: {data: configs_test_noisy_source}
""")
    treatments = load_treatments(path)
    assert treatments[0].datasource is noisy
    assert dict(treatments[1].datasource or {}) == {"data": noisy}


# -- nothing is dropped silently -------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("t.yaml", "params: {}\ntreatmnts: []\n", r"the top level: unknown key 'treatmnts'"),
        ("t.yaml", "- name: hot\n  parms: {x: 1}\n", r"treatments\[0\] \('hot'\): unknown key 'parms'"),
        ("t.yaml", "- name: hot\n- name: hot\n", "'hot' is used more than once"),
        ("t.yaml", "- name: hot\n  params: {x: 1, x: 2}\n", "found the key 'x' twice"),
        ("t.json", '[{"name": "a", "name": "b"}]', "key 'name' appears twice"),
        ("t.toml", 'x = 1\nx = 2\n', "not valid TOML"),
        ("t.yaml", "- name: hot\n  params: [1, 2]\n", r"treatments\[0\] \('hot'\)\.params must be a mapping"),
        ("t.yaml", "- name: hot\n  params: {1: 2}\n", "key 1 is not a string"),
        ("t.yaml", "- just-a-string\n", r"treatments\[0\]: a treatment must be a mapping"),
        ("t.yaml", "- params: {x: 1}\n", "'name' must be a non-empty string"),
        ("t.yaml", "- name: baseline\n", "reserved"),
        ("t.yaml", "42\n", "expected a list of treatments or a mapping"),
        ("t.yaml", "", "is empty"),
        ("t.yaml", "- name: [unclosed\n", "not valid YAML"),
        ("t.yaml", "treatments: {name: hot}\n", "'treatments' must be a list"),
        ("t.yaml", "grid: {k: 3}\n", r"'grid': grid: the values of 'k' must be a list"),
        ("t.yaml", "- name: hot\n  datasource: no_such_source_here\n", r"no datasource named 'no_such_source_here'"),
        ("t.yaml", "- name: hot\n  datasource: 3\n", "a datasource name or a mapping"),
        ("t.yaml", "params: {a..b: 1}\n", r"'a\.\.b' is not a valid dotted path"),
        ("t.ini", "x = 1\n", r"unknown configuration format '\.ini'"),
        ("t.yaml", "- name: hot\n  params: {llm.model: x, llm: {model: y}}\n",
         r"treatment 'hot': 'llm.model' and 'llm' -> \{'model': ...\} both set 'llm.model'"),
        ("t.json", '{"params": {"llm": {"model": "y"}, "llm.model": "x"}}',
         r"params: 'llm' -> \{'model': ...\} and 'llm.model' both set 'llm.model'"),
        ("t.toml", '[[treatments]]\nname = "hot"\n[treatments.params]\n"llm.model" = "x"\nllm = { model = "y" }\n',
         r"'llm.model' and 'llm' -> \{'model': ...\} both set 'llm.model'"),
    ],
)
def test_problems_are_errors_naming_the_file_and_the_key(tmp_path: Path, file: str, text: str, message: str) -> None:
    path = _write(tmp_path / file, text)
    with pytest.raises(ConfigurationError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(str(path)), str(info.value)


def test_a_stray_file_in_a_configuration_directory_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "hot.yaml", "x: 1\n")
    _write(tmp_path / "cfg" / "notes.txt", "remember to sweep")
    with pytest.raises(ConfigurationError, match=r"notes\.txt: is not a configuration file"):
        load_config(tmp_path / "cfg")


def test_an_empty_configuration_directory_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    _write(tmp_path / "cfg" / ".hidden.yaml", "x: 1\n")  # dotfiles do not count
    with pytest.raises(ConfigurationError, match=r"configuration directory '.*cfg' holds no configuration file"):
        load_config(tmp_path / "cfg")


@pytest.mark.parametrize(
    ("first", "second", "what"),
    [("big.yaml", "big.yml", "treatment 'big'"), ("baseline.json", "baseline.yaml", "the baseline")],
)
def test_two_files_of_one_name_in_a_directory_are_both_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str, second: str, what: str
) -> None:
    _write(tmp_path / "cfg" / first, '{"x": 1}')
    _write(tmp_path / "cfg" / second, "x: 2\n")
    monkeypatch.chdir(tmp_path / "cfg")
    with pytest.raises(ConfigurationError) as info:
        load_config(".")
    assert str(info.value).startswith(f"{first} and {second} both define {what}"), str(info.value)


def test_a_directory_treatment_adding_a_key_to_a_baseline_mapping_is_refused_by_the_experiment(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "baseline.yaml", "llm: {model: base, temperature: 0.7}\n")
    _write(tmp_path / "cfg" / "typo.json", '{"llm.temprature": 1.5}')
    config = load_config(tmp_path / "cfg")
    with pytest.raises(ConfigurationError, match=r"treatment 'typo': 'llm.temprature' adds a new key.*did you mean"):
        run_experiment(lambda ctx: None, replicates=1, params=config.params, treatments=config.treatments)


def test_a_directory_file_must_hold_a_mapping(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "hot.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match=r"hot\.yaml: the top level must be a mapping"):
        load_config(tmp_path / "cfg")


def test_load_treatments_refuses_to_drop_baseline_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.yaml", "params: {x: 1}\ntreatments: [{name: hot}]\n")
    with pytest.raises(ConfigurationError, match=r"use load_config\(path\)"):
        load_treatments(path)
    _write(tmp_path / "cfg" / "baseline.yaml", "x: 1\n")
    with pytest.raises(ConfigurationError, match="baseline"):
        load_treatments(tmp_path / "cfg")


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


# -- safe loading --------------------------------------------------------------------------


def test_yaml_is_loaded_safely_no_code_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write(
        tmp_path / "evil.yaml",
        f"- name: evil\n  params: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n",
    )
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_reading_yaml_without_pyyaml_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "t.yaml", "- name: hot\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    with pytest.raises(ConfigurationError) as info:
        load_config(path)
    assert str(info.value).startswith(f"reading {path} needs PyYAML: pip install 'pytest-crystallize[config]'")
    assert "not valid YAML" not in str(info.value)
    # TOML and JSON need nothing extra.
    assert load_treatments(_write(tmp_path / "t.json", '[{"name": "hot"}]'))[0].name == "hot"


DEEP = 100_000


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("t.json", '{"params": {"x": ' + "[" * DEEP + "]" * DEEP + "}}"),
        ("t.yaml", "params:\n  x: " + "[" * DEEP + "]" * DEEP + "\n"),
        ("t.toml", "[params]\nx = " + "[" * DEEP + "]" * DEEP + "\n"),
        ("t.toml", "[params]\nx = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
        ("t.json", '{"params": {"x": ' + "[" * 101 + "]" * 101 + "}}"),  # parses, but deeper than the bound
        ("t.yaml", "params:\n  x: &loop [*loop]\n"),  # contains itself
        ("dir/hot.json", '{"x": ' + "[" * DEEP + "]" * DEEP + "}"),
    ],
    ids=["json", "yaml", "toml-arrays", "toml-tables", "json-101-levels", "yaml-alias-cycle", "directory-file"],
)
def test_a_file_nested_too_deeply_is_an_error_naming_it(tmp_path: Path, file: str, text: str) -> None:
    path = _write(tmp_path / file, text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path.parent if file.startswith("dir/") else path)
    assert str(info.value).startswith(f"{path}: nested more than 100 levels deep")
    assert str(info.value).endswith("; flatten it, e.g. with dotted keys such as 'llm.temperature'")
    assert path.read_text(encoding="utf-8") == text


def test_nesting_short_of_the_bound_loads(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.json", '{"params": {"x": ' + "[" * 98 + "]" * 98 + "}}")  # 100 levels in all
    value = load_config(path).params["x"]
    for _ in range(97):
        (value,) = value
    assert value == []
