"""What a verdict says when the replicates that recorded its metric all failed."""

from __future__ import annotations

from pytest_crystallize import FrozenContext, Treatment, hypothesis, run_experiment


def test_a_metric_recorded_only_by_failed_replicates_says_they_failed_not_that_nobody_recorded_it() -> None:
    @hypothesis(metric="m", direction="maximize")
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("m", 1.0)
        raise RuntimeError("after recording")

    result = run_experiment(fn, replicates=3, treatments=[Treatment("t", {"x": 1})])
    message = result.verdicts[0].reason
    assert message.startswith(
        "metric missing: every replicate of 'baseline' and 't' that recorded 'm' failed, in 'baseline' or 't', "
        "and a failed replicate is left out of both (failed replicates: 0, 1, 2; see the errors)"
    ), message
    assert "no replicate" not in message


def test_a_metric_nobody_recorded_still_lists_the_recorded_ones() -> None:
    @hypothesis(metric="acuracy", direction="maximize")
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("accuracy", 1.0)

    result = run_experiment(fn, replicates=3, treatments=[Treatment("t", {"x": 1})])
    assert result.verdicts[0].reason == (
        "metric missing: no replicate of 'baseline' and 't' recorded 'acuracy' (recorded metrics: 'accuracy')"
    )
