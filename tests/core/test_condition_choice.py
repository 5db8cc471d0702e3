"""crystallize_conditions_choose: a lifecycle plugin chooses and orders the treatments to run."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_crystallize import (
    FrozenContext,
    Treatment,
    TreatmentError,
    grid,
    hookimpl,
    hypothesis,
    run_experiment,
)


def _draw(ctx: FrozenContext) -> None:
    ctx.metrics.add("draw", ctx.rng.normal() + ctx.get("shift", 0.0))


class Chooser:
    def __init__(self, choice: Any) -> None:
        self.choice = choice
        self.offered: list[str] = []

    @hookimpl
    def crystallize_conditions_choose(self, experiment: Any, treatments: Any) -> Any:
        self.offered = [t.name for t in treatments]
        return self.choice(treatments) if callable(self.choice) else self.choice


TREATMENTS = grid(shift=[1.0, 2.0, 3.0])


def _table(result: Any) -> dict[str, list[float]]:
    return {c: result.select("draw", c)[1].tolist() for c in result.conditions}


def test_a_plugin_chooses_and_orders_treatments_and_the_numbers_do_not_change() -> None:
    chooser = Chooser(lambda ts: [ts[2].name, ts[0]])
    chosen = run_experiment(_draw, replicates=4, treatments=TREATMENTS, plugins=[chooser])
    full = run_experiment(_draw, replicates=4, treatments=TREATMENTS)
    assert chooser.offered == ["shift=1.0", "shift=2.0", "shift=3.0"]
    assert chosen.conditions == ("baseline", "shift=3.0", "shift=1.0")
    full_table = _table(full)
    assert _table(chosen) == {c: full_table[c] for c in chosen.conditions}  # same seeds per replicate


def test_none_keeps_every_treatment() -> None:
    result = run_experiment(_draw, replicates=2, treatments=TREATMENTS, plugins=[Chooser(None)])
    assert result.conditions == ("baseline", "shift=1.0", "shift=2.0", "shift=3.0")


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (["shift=9.0"], r"chose 'shift=9\.0', which is not one of its treatments \('shift=1\.0'"),
        (["shift=1.0", "shift=1.0"], "chose treatment 'shift=1.0' twice"),
        ([Treatment("shift=1.0", {"shift": 5.0})], "chose a changed treatment 'shift=1.0'"),
        ("shift=1.0", "return a list of treatments"),
        ([], "chose no treatment, so its hypotheses have nothing to compare"),
    ],
)
def test_a_wrong_choice_fails_naming_the_hook(choice: Any, message: str) -> None:
    calls = []

    def fn(ctx: FrozenContext) -> None:
        calls.append(1)

    with pytest.raises(TreatmentError, match=message) as info:
        run_experiment(
            fn, name="chosen", replicates=2, treatments=TREATMENTS, plugins=[Chooser(choice)],
            hypotheses=[hypothesis(metric="draw", direction="maximize")],
        )
    assert "experiment 'chosen'" in str(info.value)
    assert "crystallize_conditions_choose" in str(info.value)
    assert calls == []


def test_choosing_none_is_fine_without_hypotheses() -> None:
    result = run_experiment(_draw, replicates=2, treatments=TREATMENTS, plugins=[Chooser([])])
    assert result.conditions == ("baseline",)


def test_pattern_matches_tries_the_exact_name_then_a_literal_prefix_then_a_glob() -> None:
    from pytest_crystallize.core.experiment import matching_treatments, pattern_matches

    names = ["shape=[3],k=1", "shape=[3],k=2", "shape=3,k=1", "a*b", "a*bc"]
    assert pattern_matches(names, "shape=[3]*") == ["shape=[3],k=1", "shape=[3],k=2"]
    assert pattern_matches(names, "shape=[3],k=1") == ["shape=[3],k=1"]
    assert pattern_matches(names, "a*b") == ["a*b"]  # exact wins over the glob, which would also take 'a*bc'
    assert pattern_matches(names, "shape=?,k=1") == ["shape=3,k=1"]  # no exact or prefix match: a glob
    assert pattern_matches(names, "*") == names
    assert pattern_matches(names, "nothing*") == []
    treatments = [Treatment(name) for name in names]
    chosen = matching_treatments(treatments, ["shape=[3]*", "a*b"])
    assert [t.name for t in chosen] == ["shape=[3],k=1", "shape=[3],k=2", "a*b"]
