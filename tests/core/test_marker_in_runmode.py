"""run_experiment on a function decorated with @pytest.mark.experiment uses the marker's settings."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_crystallize import ConfigurationError, FrozenContext, Treatment, hypothesis, run_experiment


@pytest.mark.experiment(replicates=7, seed=3, treatments=[Treatment("hot", {"shift": 5.0})], alpha=0.01)
@hypothesis(metric="score", direction="maximize")
def marked(ctx: FrozenContext) -> None:
    shift = ctx.get("shift", 0.0)
    ctx.metrics.add("score", shift + ctx.rng.normal() * (1.5 if shift else 1.0))


def test_the_markers_settings_are_used() -> None:
    result = run_experiment(marked)
    assert result.provenance.replicates == 7
    assert result.provenance.master_seed == 3
    assert result.provenance.alpha == 0.01
    assert result.conditions == ("baseline", "hot")
    assert [v.holds for v in result.verdicts] == [True]


def test_explicit_keywords_win_over_the_marker() -> None:
    result = run_experiment(marked, replicates=4, seed=9, treatments=[Treatment("cold", {"shift": -5.0})])
    assert result.provenance.replicates == 4
    assert result.provenance.master_seed == 9
    assert result.conditions == ("baseline", "cold")
    assert result.provenance.alpha == 0.01  # not given here: still the marker's


def test_the_same_numbers_as_the_equivalent_explicit_call() -> None:
    explicit = run_experiment(
        _unmarked,
        replicates=7, seed=3, treatments=[Treatment("hot", {"shift": 5.0})], alpha=0.01,
        hypotheses=[hypothesis(metric="score", direction="maximize")],
        name="marked",
    )
    assert list(explicit.values) == list(run_experiment(marked).values)


def _unmarked(ctx: FrozenContext) -> None:
    shift = ctx.get("shift", 0.0)
    ctx.metrics.add("score", shift + ctx.rng.normal() * (1.5 if shift else 1.0))


@pytest.mark.experiment(replicates=5)
@pytest.mark.experiment(replicates=6, seed=11)
def stacked(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", ctx.rng.normal())


def test_the_marker_closest_to_the_function_wins_as_under_pytest() -> None:
    result = run_experiment(stacked)
    assert result.provenance.replicates == 6
    assert result.provenance.master_seed == 11


@pytest.mark.experiment(replicate=5)
def misspelt(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", 1.0)


def test_an_unknown_marker_option_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"experiment 'misspelt': unknown @pytest.mark.experiment option 'replicate'"):
        run_experiment(misspelt)


@pytest.mark.experiment(gate="no_worse", replicates=3)
def gated(ctx: FrozenContext) -> None:
    ctx.metrics.add("x", 1.0)


def test_options_only_the_pytest_layer_reads_are_left_out() -> None:
    assert run_experiment(gated).provenance.replicates == 3


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("treatments", "hot", r"treatments must be a list"),
        ("params", "x", r"params must be a mapping"),
        ("plugins", 3, r"plugins must be a list"),
        ("replicates", 10**15, r"replicates=1,000,000,000,000,000 is more than any machine"),
        ("hypotheses", {"metric": "x"}, r"hypotheses must be a list"),
    ],
)
def test_wrong_option_types_are_clear_errors(option: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        run_experiment(_unmarked, **{option: value})


def test_treatments_none_means_none() -> None:
    assert run_experiment(_unmarked, treatments=None, replicates=2).conditions == ("baseline",)
