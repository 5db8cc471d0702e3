"""Runner mode: the same result from sync code, async code and inside a running event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from pytest_crystallize import (
    Bind,
    FrozenContext,
    arun_experiment,
    grid,
    hypothesis,
    run_experiment,
)


@dataclass
class Knobs:
    gain: float
    noise: float = 1.0


def _score(ctx: FrozenContext, knobs: Annotated[Knobs, Bind("knobs")]) -> float:
    return float(knobs.gain + knobs.noise * ctx.rng.normal())


async def _ascore(ctx: FrozenContext, knobs: Annotated[Knobs, Bind("knobs")]) -> float:
    await asyncio.sleep(0)
    return _score(ctx, knobs)


def as_metric(output: float) -> float:
    return output


OPTIONS: dict[str, Any] = {
    "replicates": 12,
    "params": {"knobs": {"gain": 0.0}},
    "treatments": grid({"knobs.gain": [2.0, 3.0]}),
    "evaluators": [as_metric],
    "hypotheses": [hypothesis(metric="as_metric", direction="maximize")],
}


def _table(result: Any) -> dict[str, list[float]]:
    return {c: result.select("as_metric", c)[1].tolist() for c in result.conditions}


def test_sync_and_async_functions_give_the_same_numbers() -> None:
    sync = run_experiment(_score, **OPTIONS)
    asynchronous = run_experiment(_ascore, **OPTIONS)
    assert not sync.errors, sync.errors
    assert sync.passed
    assert _table(sync) == _table(asynchronous)
    assert [v.treatment for v in sync.verdicts] == ["knobs.gain=2.0", "knobs.gain=3.0"]


def test_run_experiment_works_inside_a_running_event_loop() -> None:
    async def main() -> tuple[Any, Any]:
        return run_experiment(_score, **OPTIONS), run_experiment(_ascore, **OPTIONS)

    inside_sync, inside_async = asyncio.run(main())
    assert _table(inside_sync) == _table(run_experiment(_score, **OPTIONS))
    assert _table(inside_async) == _table(inside_sync)


def test_arun_experiment_lets_the_loop_run_meanwhile_and_gives_the_same_result() -> None:
    ticks: list[int] = []

    def slow(ctx: FrozenContext, knobs: Annotated[Knobs, Bind("knobs")]) -> float:
        import time

        time.sleep(0.002)  # blocking work: it must not block the loop
        return _score(ctx, knobs)

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(1)
            await asyncio.sleep(0.001)

    async def main() -> Any:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        result = await arun_experiment(slow, **OPTIONS)
        stop.set()
        await task
        return result

    result = asyncio.run(main())
    assert len(ticks) > 5  # the loop kept serving while the experiment ran
    assert _table(result) == _table(run_experiment(_score, **OPTIONS))


def test_arun_experiment_resolves_models_defined_in_the_awaiting_function() -> None:
    async def main() -> Any:
        @dataclass
        class Local:
            k: int

        def fn(ctx: FrozenContext, local: Annotated[Local, Bind("local")]) -> None:
            ctx.metrics.add("k", local.k)

        return await arun_experiment(fn, replicates=2, params={"local": {"k": 4}})

    result = asyncio.run(main())
    assert not result.errors, result.errors
    assert result.select("k", "baseline")[1].tolist() == [4.0, 4.0]
