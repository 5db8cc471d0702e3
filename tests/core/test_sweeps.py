"""grid(): Cartesian treatments, stable names, dotted keys into nested values, size guard."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import (
    CrystallizeWarning,
    FrozenContext,
    ParallelExecution,
    Treatment,
    TreatmentError,
    grid,
    run_experiment,
)


class _Opaque:
    """An object whose repr() holds its memory address, different in every process."""


def _record_nested(ctx: FrozenContext) -> None:
    llm = ctx["llm"]
    ctx.metrics.add("temperature", llm["temperature"])
    ctx.metrics.add("max_tokens", llm["max_tokens"])
    ctx.metrics.add("top_keys", len(ctx.as_dict()))


def _by_condition(result: Any, metric: str) -> dict[str, list[float]]:
    return {c: result.select(metric, c)[1].tolist() for c in result.conditions}


# -- names and order ---------------------------------------------------------------------


def test_grid_is_the_cartesian_product_first_key_slowest_with_readable_names() -> None:
    treatments = grid(temperature=[0.5, 1.0], model=["a", "b"])
    assert [t.name for t in treatments] == [
        "temperature=0.5,model=a",
        "temperature=0.5,model=b",
        "temperature=1.0,model=a",
        "temperature=1.0,model=b",
    ]
    assert dict(treatments[2].params) == {"temperature": 1.0, "model": "a"}
    assert all(isinstance(t, Treatment) for t in treatments)


def test_positional_mapping_takes_dotted_keys_before_keyword_keys() -> None:
    treatments = grid({"llm.temperature": [0.1, 0.9]}, seed_offset=range(2))
    assert [t.name for t in treatments] == [
        "llm.temperature=0.1,seed_offset=0",
        "llm.temperature=0.1,seed_offset=1",
        "llm.temperature=0.9,seed_offset=0",
        "llm.temperature=0.9,seed_offset=1",
    ]


def test_values_without_a_short_stable_form_are_named_by_position_never_by_address() -> None:
    first, second = _Opaque(), _Opaque()
    treatments = grid(tokenizer=[first, second], flag=[None, True])
    assert [t.name for t in treatments] == [
        "tokenizer=#0,flag=None", "tokenizer=#0,flag=True", "tokenizer=#1,flag=None", "tokenizer=#1,flag=True",
    ]
    assert treatments[2].params["tokenizer"] is second
    assert not any("0x" in t.name for t in treatments)


def test_numpy_scalars_and_short_lists_read_as_plain_values() -> None:
    treatments = grid(lr=[np.float64(0.5), np.int64(3)], layers=[[64, 32]])
    assert [t.name for t in treatments] == ["lr=0.5,layers=[64,32]", "lr=3,layers=[64,32]"]


def test_a_mapping_of_values_names_each_value_by_its_label() -> None:
    small, large = _Opaque(), _Opaque()
    treatments = grid(model={"small": small, "large": large})
    assert [t.name for t in treatments] == ["model=small", "model=large"]
    assert treatments[1].params["model"] is large


def test_names_are_the_same_in_another_process() -> None:
    code = (
        "import numpy as np\n"
        "from pytest_crystallize import grid\n"
        "class Opaque: pass\n"
        "ts = grid({'llm.temperature': [0.1, 1/3, np.float64(2.5)]}, model=['a', None], obj=[Opaque(), Opaque()])\n"
        "print('|'.join(t.name for t in ts))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    class Opaque:
        pass

    here = grid({"llm.temperature": [0.1, 1 / 3, np.float64(2.5)]}, model=["a", None], obj=[Opaque(), Opaque()])
    assert out.split("|") == [t.name for t in here]


# -- iterables, pickling -----------------------------------------------------------------


def test_a_generator_is_read_once_and_the_grid_can_be_iterated_again() -> None:
    reads = []

    def values() -> Any:
        for v in (1, 2, 3):
            reads.append(v)
            yield v

    treatments = grid(k=values())
    assert reads == [1, 2, 3]
    assert [t.name for t in treatments] == ["k=1", "k=2", "k=3"]
    assert [t.name for t in treatments] == ["k=1", "k=2", "k=3"]  # a tuple, not a spent generator


def test_grid_treatments_pickle_even_when_built_from_generators() -> None:
    # Spearmint fault: sweeps built from generators could not be pickled to workers.
    treatments = grid({"llm.temperature": (t / 10 for t in range(3))}, model=iter(["a", "b"]))
    again = pickle.loads(pickle.dumps(treatments))
    assert again == treatments
    assert [dict(t.params) for t in again] == [dict(t.params) for t in treatments]


def _spawn_target(ctx: FrozenContext) -> None:
    ctx.metrics.add("t", ctx["llm"]["temperature"] * 10 + ctx.replicate)


def test_a_grid_experiment_runs_in_spawned_worker_processes() -> None:
    # Under spawn the experiment (treatments, params) is pickled, not forked.
    options: dict[str, Any] = {
        "replicates": 3, "params": {"llm": {"temperature": 0.0, "model": "m"}},
        "treatments": grid({"llm.temperature": (x for x in (0.1, 0.2))}),
    }
    serial = run_experiment(_spawn_target, **options)
    spawned = run_experiment(
        _spawn_target, **options, plugins=[ParallelExecution(max_workers=2, start_method="spawn")]
    )
    assert not spawned.errors, spawned.errors
    assert _by_condition(spawned, "t") == _by_condition(serial, "t")
    assert _by_condition(spawned, "t")["llm.temperature=0.2"] == pytest.approx([2.0, 3.0, 4.0])


# -- dotted keys reach into nested configuration -------------------------------------------


def test_dotted_keys_change_one_nested_value_and_keep_the_others() -> None:
    # Spearmint fault: sweeps over nested dicts wrote a literal "llm.temperature" key instead.
    seen: list[dict[str, Any]] = []

    def fn(ctx: FrozenContext) -> None:
        seen.append(ctx.as_dict())
        _record_nested(ctx)

    result = run_experiment(
        fn, replicates=2, params={"llm": {"temperature": 0.5, "max_tokens": 100}},
        treatments=grid({"llm.temperature": [0.1, 0.9]}),
    )
    assert not result.errors
    assert _by_condition(result, "temperature") == {
        "baseline": [0.5, 0.5], "llm.temperature=0.1": [0.1, 0.1], "llm.temperature=0.9": [0.9, 0.9],
    }
    assert _by_condition(result, "max_tokens")["llm.temperature=0.9"] == [100.0, 100.0]
    assert all(set(values) == {"llm"} for values in seen)  # no literal "llm.temperature" key anywhere


def test_the_baseline_mapping_is_not_changed_by_a_treatment() -> None:
    base = {"llm": {"temperature": 0.5, "max_tokens": 100}}
    result = run_experiment(
        _record_nested, replicates=1, params=base, treatments=[Treatment("hot", {"llm.temperature": 2.0})]
    )
    assert _by_condition(result, "temperature") == {"baseline": [0.5], "hot": [2.0]}
    assert base == {"llm": {"temperature": 0.5, "max_tokens": 100}}


def test_a_nested_mapping_value_merges_into_the_baselines_mapping() -> None:
    result = run_experiment(
        _record_nested, replicates=1, params={"llm": {"temperature": 0.5, "max_tokens": 100}},
        treatments=[Treatment("hot", {"llm": {"temperature": 2.0}})],
    )
    assert _by_condition(result, "temperature")["hot"] == [2.0]
    assert _by_condition(result, "max_tokens")["hot"] == [100.0]


def test_deeper_paths_are_created_when_missing_and_dotted_baseline_params_nest_too() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("top_p", ctx["llm"]["sampling"]["top_p"])
        ctx.metrics.add("n", len(ctx.as_dict()))

    result = run_experiment(
        fn, replicates=1, params={"llm.sampling.top_p": 0.9}, treatments=[Treatment("low", {"llm.sampling.top_p": 0.1})]
    )
    assert _by_condition(result, "top_p") == {"baseline": [0.9], "low": [0.1]}
    assert _by_condition(result, "n") == {"baseline": [1.0], "low": [1.0]}


def test_a_path_through_a_non_mapping_is_refused_before_anything_runs_naming_treatment_and_key() -> None:
    calls = []
    with pytest.raises(TreatmentError) as info:
        run_experiment(
            lambda ctx: calls.append(1), name="nested", replicates=2, params={"llm": "gpt"},
            treatments=[Treatment("hot", {"llm.temperature": 1.0})],
        )
    message = str(info.value)
    assert "'nested'" in message
    assert "'hot'" in message
    assert "'llm.temperature'" in message
    assert "not a mapping" in message
    assert calls == []


def test_an_empty_path_segment_is_refused() -> None:
    with pytest.raises(TreatmentError, match=r"'llm\.\.t'"):
        Treatment("bad", {"llm..t": 1})


# -- size guard and bad input -----------------------------------------------------------


def test_a_large_grid_warns() -> None:
    with pytest.warns(CrystallizeWarning, match=r"10 x 10 = 100 treatments"):
        treatments = grid(a=range(10), b=range(10))
    assert len(treatments) == 100


def test_the_warning_threshold_can_be_raised_or_switched_off() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(grid(a=range(10), b=range(10), warn_at=100)) == 100
        assert len(grid(a=range(10), b=range(10), warn_at=None)) == 100


def test_a_grid_past_the_limit_is_refused_unless_allowed() -> None:
    with pytest.raises(TreatmentError, match=r"33 x 32 = 1056 treatments exceeds the limit of 1024.*limit=1056"):
        grid(a=range(33), b=range(32), warn_at=None)
    assert len(grid(a=range(33), b=range(32), warn_at=None, limit=None)) == 1056
    with pytest.raises(TreatmentError, match="limit of 3"):
        grid(a=range(4), limit=3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: grid(), "at least one parameter"),
        (lambda: grid(model="abc"), r"values of 'model' must be a list.*model=\['abc'\]"),
        (lambda: grid(k=3), "values of 'k' must be a list"),
        (lambda: grid(k=[]), "'k' has no values"),
        (lambda: grid({"k": [1]}, k=[2]), "'k' is given twice"),
        (lambda: grid(k=[1, 1]), "both labelled '1'"),
        (lambda: grid(k=[1, "1"]), "both labelled '1'"),
        (lambda: grid(k={"": 1}), "labels of 'k'"),
        (lambda: grid({"": [1]}), "non-empty strings"),
    ],
)
def test_bad_grids_are_refused_with_a_message(call: Any, message: str) -> None:
    with pytest.raises(TreatmentError, match=message):
        call()
