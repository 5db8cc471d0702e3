"""Chained experiments in the engine: upstream(...) datasources, conditions along the chain, run mode."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import (
    ChainError,
    ConfigurationError,
    ExperimentResult,
    ParallelExecution,
    Treatment,
    run_experiment,
    upstream,
)
from pytest_crystallize.core.defaults import DEFAULT_REPLICATES

SHIFT = {"shift": 10.0}
CALLS: list[str] = []


def train(ctx: Any) -> None:
    """The upstream: a 'model' per replicate, its value known from the seed (and the treatment's shift)."""
    CALLS.append(ctx.condition)
    weight = float(ctx.rng.normal()) + ctx.get("shift", 0.0)
    buffer = io.BytesIO()
    np.save(buffer, np.array([weight]))
    ctx.artifacts.add("model.npy", buffer.getvalue())
    ctx.artifacts.add("card.txt", f"weight={weight!r}")
    ctx.metrics.add("weight", weight)


model = upstream("train", "model.npy", loader=lambda blob: float(np.load(io.BytesIO(blob))[0]))
weight = upstream("train", metric="weight")


def evaluate(model: float, weight: float, ctx: Any) -> None:
    ctx.metrics.add("model", model)
    ctx.metrics.add("agrees", float(model == weight))


def _values(result: ExperimentResult, metric: str, condition: str) -> list[float]:
    replicates, values = result.select(metric, condition)
    return [float(v) for _, v in sorted(zip(replicates.tolist(), values.tolist(), strict=True))]


def _trained(**options: Any) -> ExperimentResult:
    return run_experiment(train, replicates=4, seed=3, keep_artifacts=True, **options)


def test_each_condition_and_replicate_reads_its_own_upstream_replicate() -> None:
    up = _trained(treatments=[Treatment("hot", SHIFT)])
    down = run_experiment(evaluate, replicates=4, treatments=[Treatment("hot")], upstreams={"train": up})
    assert not down.errors
    for condition in ("baseline", "hot"):
        assert _values(down, "model", condition) == _values(up, "weight", condition)
    # The treated upstream replicate is the baseline's plus the shift (same seed per replicate):
    # the downstream's treated condition got the treated model, not the baseline's.
    assert np.allclose(np.subtract(_values(down, "model", "hot"), _values(down, "model", "baseline")), 10.0)
    assert _values(down, "agrees", "hot") == [1.0] * 4
    assert down.provenance.upstream_notes == ()


def test_a_condition_the_upstream_lacks_reads_its_baseline_and_the_notes_say_so() -> None:
    up = _trained()
    down = run_experiment(evaluate, replicates=4, treatments=[Treatment("cold")], upstreams={"train": up})
    assert _values(down, "model", "cold") == _values(up, "weight", "baseline")
    (note,) = down.provenance.upstream_notes
    assert "treatment 'cold' reads the baseline of upstream 'train'" in note
    assert "'model', 'weight'" in note
    from pytest_crystallize.core.report.text import summarize

    assert any(n.startswith("upstream: treatment 'cold'") for n in summarize(down)["notes"])


def test_run_mode_runs_an_upstream_not_given_first_and_uses_a_given_one_as_is() -> None:
    CALLS.clear()
    first = run_experiment(evaluate, replicates=3, seed=5)
    # Found by name in the module, and run with its own options (the default replicates), not evaluate's.
    assert CALLS == ["baseline"] * DEFAULT_REPLICATES
    assert _values(first, "agrees", "baseline") == [1.0] * 3
    given = _trained()
    CALLS.clear()
    second = run_experiment(evaluate, replicates=3, upstreams={"train": given})
    assert CALLS == []
    assert _values(second, "model", "baseline") == _values(given, "weight", "baseline")[:3]


def test_an_upstream_given_as_the_function_is_run_first() -> None:
    source = upstream(train, metric="weight")

    def scaled(w: float, ctx: Any) -> None:
        ctx.metrics.add("twice", 2 * w)

    result = run_experiment(scaled, replicates=2, datasources={"w": source})
    expected = run_experiment(train, replicates=2)
    assert _values(result, "twice", "baseline") == [2 * v for v in _values(expected, "weight", "baseline")]


def test_upstream_failures_and_missing_outputs_are_errors_of_those_replicates_only() -> None:
    def flaky(ctx: Any) -> None:
        if ctx.replicate == 1:
            raise RuntimeError("out of memory")
        if ctx.replicate != 2:
            ctx.artifacts.add("model.npy", b"\x00")
        ctx.metrics.add("weight", 1.0)
        if ctx.replicate == 3:
            ctx.metrics.add("weight", 2.0)

    up = run_experiment(flaky, replicates=4, keep_artifacts=True)

    def read(blob: bytes, w: float, ctx: Any) -> None:
        ctx.metrics.add("ok", 1)

    down = run_experiment(
        read, replicates=4, upstreams={"flaky": up},
        datasources={"blob": upstream("flaky", "model.npy"), "w": upstream("flaky", metric="weight")},
    )
    messages = {e.replicate: e.message for e in down.errors}
    assert sorted(messages) == [1, 2, 3]
    assert "upstream 'flaky', baseline replicate 1 failed (RuntimeError: out of memory)" in messages[1]
    assert "left no artifact 'model.npy' in ctx.artifacts (it left: none)" in messages[2]
    assert "recorded 2 values of 'weight'" in messages[3]
    assert _values(down, "ok", "baseline") == [1.0]


def test_binding_problems_name_the_experiment_parameter_and_fix() -> None:
    up = run_experiment(train, replicates=2)  # artifacts not kept
    with pytest.raises(ChainError, match=r"ran 2 replicates, but 'evaluate' runs 3"):
        run_experiment(evaluate, replicates=3, upstreams={"train": up})
    with pytest.raises(ChainError, match=r"parameter 'model' .* keeps no artifacts: .*keep_artifacts=True"):
        run_experiment(evaluate, replicates=2, upstreams={"train": up})

    def lonely(data: Any, ctx: Any) -> None:
        pass

    with pytest.raises(ChainError, match=r"no result of 'nowhere' was given and its module has no function"):
        run_experiment(lonely, replicates=2, datasources={"data": upstream("nowhere", metric="x")})


def left(right_value: float, ctx: Any) -> None:
    ctx.metrics.add("x", right_value)


def right(left_value: float, ctx: Any) -> None:
    ctx.metrics.add("x", left_value)


right_value = upstream("right", metric="x")
left_value = upstream("left", metric="x")


def test_a_cycle_in_run_mode_is_an_error_naming_it() -> None:
    with pytest.raises(ChainError, match=r"its upstreams form a cycle \(left -> right -> left\)"):
        run_experiment(left, replicates=2)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("train",), {}, "takes one output"),
        (("train", "a.txt"), {"metric": "m"}, "takes one output"),
        (("train", "../a.txt"), {}, "escape the artifact directory"),
        (("train",), {"metric": ""}, "needs a metric name"),
        (("train",), {"metric": "m", "loader": float}, "loader= must be a function and goes with an artifact"),
        (("",), {"metric": "m"}, "needs the upstream experiment's name or function"),
    ],
)
def test_upstream_refuses_what_it_cannot_read(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        upstream(*args, **kwargs)


def test_an_unbound_upstream_says_how_to_bind_it() -> None:
    from pytest_crystallize import standalone_context

    with pytest.raises(ChainError, match=r"upstream\('train', metric='weight'\) was called before"):
        weight(standalone_context())


def test_artifacts_cross_process_workers_both_ways() -> None:
    backend = {"plugins": [ParallelExecution(max_workers=2)]}
    up = _trained(treatments=[Treatment("hot", SHIFT)], **backend)
    serial = _trained(treatments=[Treatment("hot", SHIFT)])
    assert up.artifacts == serial.artifacts
    down = run_experiment(
        evaluate, replicates=4, treatments=[Treatment("hot")], upstreams={"train": up}, **backend
    )
    assert not down.errors
    assert _values(down, "model", "hot") == _values(serial, "weight", "hot")


def test_a_treatment_cannot_swap_in_an_upstream() -> None:
    with pytest.raises(ChainError, match=r"treatment 'other' swaps in an upstream\(...\) datasource"):
        run_experiment(
            evaluate, replicates=2, upstreams={"train": _trained()},
            treatments=[Treatment("other", datasource={"weight": upstream("train", metric="weight")})],
        )
