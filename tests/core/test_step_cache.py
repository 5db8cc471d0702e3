"""The step cache end to end through run_experiment: hits replay everything, keys cover what a step read."""

from __future__ import annotations

import asyncio
import os
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pytest_crystallize import (
    ArtifactPlugin,
    AsyncExecution,
    CacheError,
    CachePlugin,
    ConfigurationError,
    CrystallizeWarning,
    FrozenContext,
    ParallelExecution,
    Treatment,
    cv,
    holdout,
    hypothesis,
    pipeline_step,
    run_experiment,
)

CALLS_ENV = "CRYSTALLIZE_TEST_STEP_CALLS"


@pytest.fixture(autouse=True)
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each step call appends a line here (an environment variable, so worker processes find it too)."""
    path = tmp_path / "calls.log"
    monkeypatch.setenv(CALLS_ENV, str(path))
    monkeypatch.setenv("CRYSTALLIZE_CACHE_SECRET", str(tmp_path / "secret" / "key"))
    return path


def _log(name: str, ctx: FrozenContext) -> None:
    # peek: unseen by the cache, which would otherwise key the step by condition and replicate
    with open(os.environ[CALLS_ENV], "a") as out:
        out.write(f"{name} {ctx.peek('condition')} {ctx.peek('replicate')}\n")


def _drain(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


Fit = namedtuple("Fit", "weights bias")  # pickled: a namedtuple keeps its type only through pickle


@pipeline_step(cache=True)
def fit(data: np.ndarray, ctx: FrozenContext, scale: float = 1.0) -> Fit:
    _log("fit", ctx)
    noise = ctx.rng.normal(size=data.shape)
    weights = data * scale + noise
    ctx.metrics.add("fit_loss", float(np.abs(noise).mean()) + ctx.get("penalty", 0.0))
    ctx.record("fit_rounds", 3, tags={"solver": "lbfgs", "scale": scale})
    ctx.artifacts.add("weights.json", str(weights.round(6).tolist()))
    ctx.add("features", pd.DataFrame({"w": weights}, index=pd.Index(range(len(data)), name="row")))
    return Fit(weights, float(noise[0]))


def _pipeline(ctx: FrozenContext) -> None:
    fitted = fit(np.arange(4.0), ctx)
    frame = ctx.get("features")
    # Draws after the cached step: the same only if a hit restores the generator's state.
    ctx.metrics.add("score", float(frame["w"].sum()) + fitted.bias + float(ctx.rng.normal()))


TREATMENTS = [Treatment("scaled", {"scale": 2.0}), Treatment("penalised", {"penalty": 0.5})]


def _run(tmp_path: Path, function: Any = _pipeline, **options: Any) -> Any:
    options.setdefault("replicates", 6)
    options.setdefault("treatments", TREATMENTS)
    return run_experiment(function, seed=11, cache=tmp_path / "store", **options)


def test_a_warm_cache_gives_the_cold_result_value_for_value_and_runs_nothing(tmp_path: Path, calls: Path) -> None:
    @hypothesis(metric="score", direction="maximize")
    def scaled_scores_higher(ctx: FrozenContext) -> None:
        _pipeline(ctx)

    artifacts = ArtifactPlugin(tmp_path / "artifacts")
    cold = _run(tmp_path, scaled_scores_higher, plugins=[artifacts])
    cold_files = {p.relative_to(tmp_path): p.read_text() for p in (tmp_path / "artifacts").rglob("fit/*")}
    assert len(_drain(calls)) == 18

    warm = _run(tmp_path, scaled_scores_higher, plugins=[artifacts])
    assert _drain(calls) == []
    pd.testing.assert_frame_equal(cold.to_dataframe(), warm.to_dataframe(), check_exact=True)
    assert len(cold.verdicts) == 2
    assert [(v.holds, v.p_value, v.difference, v.reason) for v in cold.verdicts] == [
        (v.holds, v.p_value, v.difference, v.reason) for v in warm.verdicts
    ]
    warm_files = {p.relative_to(tmp_path): p.read_text() for p in (tmp_path / "artifacts").rglob("fit/*")}
    assert len(warm_files) == 18
    assert warm_files == cold_files

    uncached = run_experiment(_pipeline, name="scaled_scores_higher", seed=11, replicates=6, treatments=TREATMENTS)
    pd.testing.assert_frame_equal(uncached.to_dataframe(), warm.to_dataframe(), check_exact=True)


def test_a_hit_replays_the_metrics_and_tagged_records_the_step_made(tmp_path: Path, calls: Path) -> None:
    _run(tmp_path)
    _drain(calls)
    warm = _run(tmp_path).to_dataframe()
    assert _drain(calls) == []
    rounds = warm[warm.metric == "fit_rounds"]
    assert len(rounds) == 18
    assert len(warm[warm.metric == "fit_loss"]) == 18
    assert {t["solver"] for t in rounds.tags} == {"lbfgs"}
    assert sorted({t["scale"] for t in rounds.tags}) == [1.0, 2.0]


@pipeline_step(cache=True)
def classify(data: float, ctx: FrozenContext) -> float:
    _log("classify", ctx)
    threshold = ctx.get("threshold", 0.5)  # read in the body: no parameter names it
    ctx.metrics.add("positive", float(data > threshold))
    return threshold


def _classifies(ctx: FrozenContext) -> None:
    ctx.metrics.add("threshold", classify(0.7, ctx))
    ctx.metrics.add("unread", ctx.get("other", 0.0))


def test_a_treatment_changing_a_value_the_step_reads_never_gets_the_baselines_output(
    tmp_path: Path, calls: Path
) -> None:
    treatments = [Treatment("strict", {"threshold": 0.9})]
    warm_baseline = _run(tmp_path, _classifies, treatments=[])
    assert len(_drain(calls)) == 1  # no seed read: one call serves every replicate
    result = _run(tmp_path, _classifies, treatments=treatments).to_dataframe()
    assert _drain(calls) == ["classify strict 0"]
    positive = result[result.metric == "positive"].groupby("condition", observed=True).value.mean()
    assert positive["baseline"] == 1.0
    assert positive["strict"] == 0.0
    baseline = warm_baseline.to_dataframe()
    assert list(baseline[baseline.metric == "positive"].value) == [1.0] * 6


def test_a_treatment_changing_only_values_the_step_never_reads_shares_its_entries(
    tmp_path: Path, calls: Path
) -> None:
    result = _run(tmp_path, _classifies, treatments=[Treatment("other", {"other": 3.0})]).to_dataframe()
    assert _drain(calls) == ["classify baseline 0"]
    assert set(result[result.metric == "unread"].groupby("condition", observed=True).value.mean()) == {0.0, 3.0}


@pipeline_step(cache=True)
def injected(data: float, ctx: FrozenContext, temperature: float = 0.7) -> float:
    _log("injected", ctx)
    ctx.metrics.add("heat", data * temperature)
    return data * temperature


def test_a_parameter_filled_from_the_context_is_part_of_the_key(tmp_path: Path, calls: Path) -> None:
    def exp(ctx: FrozenContext) -> None:
        injected(2.0, ctx)

    _run(tmp_path, exp, treatments=[])
    _drain(calls)
    result = _run(tmp_path, exp, treatments=[Treatment("hot", {"temperature": 1.5})]).to_dataframe()
    assert _drain(calls) == ["injected hot 0"]
    heat = result[result.metric == "heat"].groupby("condition", observed=True).value.mean().to_dict()
    assert heat == {"baseline": pytest.approx(2.0 * 0.7), "hot": pytest.approx(2.0 * 1.5)}


@pipeline_step(cache=True)
def seeded(data: float, ctx: FrozenContext) -> float:
    _log("seeded", ctx)
    return data + ctx.seed


def test_a_step_that_reads_the_seed_is_kept_per_replicate(tmp_path: Path, calls: Path) -> None:
    def exp(ctx: FrozenContext) -> None:
        ctx.metrics.add("x", seeded(1.0, ctx))

    cold = _run(tmp_path, exp, treatments=[])
    assert len(_drain(calls)) == 6
    warm = _run(tmp_path, exp, treatments=[])
    assert _drain(calls) == []
    assert len(set(cold.to_dataframe().value)) == 6
    pd.testing.assert_frame_equal(cold.to_dataframe(), warm.to_dataframe())


@pipeline_step(cache=True)
def fold_mean(data: np.ndarray, ctx: FrozenContext) -> float:
    _log("fold_mean", ctx)
    _train, test = ctx.folds(len(data))
    return float(data[test].mean())


def _folds_experiment(ctx: FrozenContext) -> None:
    ctx.metrics.add("fold_mean", fold_mean(np.linspace(0.0, 1.0, 40), ctx))


@pytest.mark.parametrize("design", [cv(k=4, repeats=2), holdout(test_size=0.25)], ids=str)
def test_a_step_that_reads_its_folds_is_kept_per_fold_seed_and_design(
    tmp_path: Path, calls: Path, design: Any,
) -> None:
    # ctx.folds() depends on the replicate, the master seed and the design, like ctx.seed on the seed.
    options: dict[str, Any] = {"treatments": [], "replicates": 8, "design": design}
    uncached = run_experiment(_folds_experiment, seed=11, **options)
    _drain(calls)
    cold = _run(tmp_path, _folds_experiment, **options)
    assert len(_drain(calls)) == 8
    pd.testing.assert_frame_equal(uncached.to_dataframe(), cold.to_dataframe(), check_exact=True)
    assert len(set(cold.values.tolist())) > 2  # each fold its own mean, not replicate 0's
    warm = _run(tmp_path, _folds_experiment, **options)
    assert _drain(calls) == []
    pd.testing.assert_frame_equal(cold.to_dataframe(), warm.to_dataframe(), check_exact=True)

    reseeded = run_experiment(_folds_experiment, seed=12, cache=tmp_path / "store", **options)
    assert len(_drain(calls)) == 8
    other = cv(k=8, repeats=1) if isinstance(design, type(cv())) else holdout(test_size=0.5)
    redesigned = run_experiment(_folds_experiment, seed=11, cache=tmp_path / "store", **{**options, "design": other})
    assert len(_drain(calls)) == 8
    for result, seed, chosen in ((reseeded, 12, design), (redesigned, 11, other)):
        fresh = run_experiment(_folds_experiment, seed=seed, **{**options, "design": chosen})
        assert result.values.tolist() == fresh.values.tolist()
        assert result.values.tolist() != cold.values.tolist()


class Opaque:
    def __init__(self, payload: int) -> None:
        self.payload = payload


@pipeline_step(cache=True)
def takes_opaque(data: Opaque, ctx: FrozenContext) -> int:
    return data.payload


@pipeline_step(cache=True, cache_key=lambda data: data.payload)
def described(data: Opaque, ctx: FrozenContext) -> int:
    _log("described", ctx)
    return data.payload * 2


@pipeline_step(cache=True)
def reads_opaque(data: int, ctx: FrozenContext) -> int:
    return data + ctx.get("client").payload


def test_an_input_the_cache_cannot_digest_is_an_error_naming_it_unless_cache_key_describes_it(
    tmp_path: Path, calls: Path
) -> None:
    result = _run(tmp_path, lambda ctx: takes_opaque(Opaque(3), ctx), treatments=[], replicates=1)
    [error] = result.errors
    assert error.error_type == "CacheError"
    assert error.step == "takes_opaque"
    assert "its data, of type" in error.message
    assert "Opaque" in error.message
    assert "cache_key=" in error.message

    def exp(ctx: FrozenContext) -> None:
        ctx.metrics.add("v", described(Opaque(ctx.get("p", 3)), ctx))

    for _ in range(2):
        result = _run(tmp_path, exp, treatments=[Treatment("four", {"p": 4})])
        assert not result.errors
    assert sorted(_drain(calls)) == ["described baseline 0", "described four 0"]
    assert set(result.to_dataframe().value) == {6.0, 8.0}


def test_a_context_value_the_step_read_and_the_cache_cannot_digest_is_an_error_naming_the_key(
    tmp_path: Path,
) -> None:
    result = _run(tmp_path, lambda ctx: reads_opaque(1, ctx), treatments=[], replicates=1,
                  params={"client": Opaque(5)})
    [error] = result.errors
    assert error.error_type == "CacheError"
    assert "context value 'client'" in error.message
    assert "Opaque" in error.message


def test_cache_options_are_checked_where_the_step_is_declared() -> None:
    with pytest.raises(ConfigurationError, match="add cache=True"):
        pipeline_step(cache_key=lambda data: data)(lambda data, ctx: data)
    with pytest.raises(ConfigurationError, match="cache= must be True or False"):
        pipeline_step(cache="yes")(lambda data, ctx: data)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cache= must be True"):
        run_experiment(_pipeline, replicates=2, cache=3)  # type: ignore[arg-type]


@pipeline_step(cache=True)
def inner(data: float, ctx: FrozenContext) -> float:
    _log("inner", ctx)
    ctx.metrics.add("inner", data)
    return data * ctx.get("factor", 1.0)


@pipeline_step(cache=True)
def outer(data: float, ctx: FrozenContext) -> float:
    _log("outer", ctx)
    return inner(data, ctx) + 1


def test_a_nested_cached_step_hit_inside_a_cold_caller_still_makes_the_caller_depend_on_its_reads(
    tmp_path: Path, calls: Path
) -> None:
    def only_inner(ctx: FrozenContext) -> None:
        inner(2.0, ctx)

    def both(ctx: FrozenContext) -> None:
        ctx.metrics.add("out", outer(2.0, ctx))

    _run(tmp_path, only_inner, treatments=[], replicates=1)
    assert _drain(calls) == ["inner baseline 0"]
    _run(tmp_path, both, treatments=[], replicates=1)
    assert _drain(calls) == ["outer baseline 0"]  # inner was a hit inside outer's cold run
    result = _run(tmp_path, both, treatments=[Treatment("doubled", {"factor": 2.0})], replicates=1)
    assert _drain(calls) == ["outer doubled 0", "inner doubled 0"]
    frame = result.to_dataframe()
    assert frame[frame.metric == "out"].set_index("condition").value.to_dict() == {"baseline": 3.0, "doubled": 5.0}
    assert len(frame[frame.metric == "inner"]) == 2  # the baseline's outer hit replayed inner's metric


@pipeline_step(cache=True)
async def fetch(prompt: str, ctx: FrozenContext) -> str:
    await asyncio.sleep(0)
    _log("fetch", ctx)
    ctx.metrics.add("tokens", len(prompt) * ctx.get("verbosity", 1))
    return prompt.upper() * ctx.get("verbosity", 1)


async def _asks(ctx: FrozenContext) -> None:
    first, second = await asyncio.gather(fetch("ab", ctx), fetch("cde", ctx))
    ctx.metrics.add("length", len(first) + len(second))


def test_async_steps_replay_on_await_with_the_same_values(tmp_path: Path, calls: Path) -> None:
    options: dict[str, Any] = {"treatments": [Treatment("loud", {"verbosity": 2})], "plugins": [AsyncExecution(3)]}
    cold = _run(tmp_path, _asks, **options)
    # Two prompts per condition and no seed read; replicates in flight at once may each compute them.
    assert {line.rsplit(" ", 1)[0] for line in _drain(calls)} == {"fetch baseline", "fetch loud"}
    warm = _run(tmp_path, _asks, **options)
    assert _drain(calls) == []
    pd.testing.assert_frame_equal(cold.to_dataframe(), warm.to_dataframe(), check_exact=True)


def test_process_workers_share_the_cache_and_match_a_serial_run(tmp_path: Path, calls: Path) -> None:
    serial = run_experiment(_pipeline, seed=11, replicates=6, treatments=TREATMENTS)
    _drain(calls)
    cold = _run(tmp_path, plugins=[ParallelExecution(2, kind="process")])
    assert len(_drain(calls)) == 18
    warm = _run(tmp_path, plugins=[ParallelExecution(2, kind="process")])
    assert _drain(calls) == []
    for result in (cold, warm):
        pd.testing.assert_frame_equal(serial.to_dataframe(), result.to_dataframe(), check_exact=True)


def test_an_edited_step_misses_its_old_entries(tmp_path: Path, calls: Path) -> None:
    def make(body: str) -> Any:
        namespace: dict[str, Any] = {"pipeline_step": pipeline_step, "_log": _log}
        exec(  # the same module and name, two versions of the code
            "@pipeline_step(cache=True)\ndef edited(data, ctx):\n    _log('edited', ctx)\n"
            f"    ctx.metrics.add('v', {body})\n    return data\n", namespace,
        )
        return namespace["edited"]

    for body, expected_calls in (("data + 1", 1), ("data + 1", 0), ("data + 2", 1)):
        step = make(body)
        result = _run(tmp_path, lambda ctx, step=step: step(1.0, ctx), treatments=[])
        assert len(_drain(calls)) == expected_calls
    assert set(result.to_dataframe().value) == {3.0}


class Model:  # not JSON, numpy or a table: needs pickle
    def __init__(self, coef: float) -> None:
        self.coef = coef


@pipeline_step(cache=True)
def train(data: float, ctx: FrozenContext) -> Model:
    _log("train", ctx)
    return Model(data * 2)


def test_without_a_usable_secret_pickled_outputs_stay_uncached_with_a_warning(
    tmp_path: Path, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("CRYSTALLIZE_CACHE_SECRET", str(blocker / "key"))

    def exp(ctx: FrozenContext) -> None:
        ctx.metrics.add("coef", train(1.5, ctx).coef)
        ctx.metrics.add("plain", classify(0.7, ctx))

    for _ in range(2):
        with pytest.warns(CrystallizeWarning, match="step 'train': its output is not cached.*cache secret"):
            result = _run(tmp_path, exp, treatments=[], replicates=2)
        assert set(result.to_dataframe().value[result.to_dataframe().metric == "coef"]) == {3.0}
    names = [line.split()[0] for line in _drain(calls)]
    assert names.count("train") == 4
    assert names.count("classify") == 1


def test_a_cache_plugin_registered_by_hand_counts_its_hits(tmp_path: Path, calls: Path) -> None:
    plugin = CachePlugin(tmp_path / "mine", max_size="10MB")
    for _ in range(2):
        run_experiment(_classifies, replicates=3, plugins=[plugin])
    assert (plugin.store.counts.hits, plugin.store.counts.misses, plugin.store.counts.stored) == (5, 1, 1)
    with pytest.raises(ConfigurationError, match="max_size"):
        CachePlugin(tmp_path, max_size="lots")


def test_cache_errors_are_crystallize_errors() -> None:
    assert issubclass(CacheError, ValueError)
