"""FrozenContext: reading, adding, refusing writes, seeds, metrics, artifacts."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from pytest_crystallize import (
    ConfigurationError,
    ContextMutationError,
    CrystallizeError,
    FrozenContext,
    MetricError,
    Treatment,
    run_experiment,
    standalone_context,
)


def _seed_of(master: int, replicate: int) -> int:
    return int(np.random.SeedSequence(master, spawn_key=(replicate,)).generate_state(1, np.uint32)[0])


# -- reading -------------------------------------------------------------------


def test_get_getitem_and_in_read_the_values() -> None:
    ctx = standalone_context({"lr": 0.1, "layers": 3})
    assert ctx["lr"] == 0.1
    assert ctx.get("layers") == 3
    assert ctx.get("absent") is None
    assert ctx.get("absent", "fallback") == "fallback"
    assert "lr" in ctx
    assert "absent" not in ctx


def test_getitem_of_a_missing_key_is_a_key_error_naming_it() -> None:
    ctx = standalone_context({"lr": 0.1})
    with pytest.raises(KeyError, match="'momentum'") as info:
        ctx["momentum"]
    # The message lists what is there, so a typo is easy to spot.
    assert "'lr'" in str(info.value)


def test_a_value_that_is_none_is_returned_not_the_default() -> None:
    ctx = standalone_context({"maybe": None})
    assert "maybe" in ctx
    assert ctx.get("maybe", "default") is None


# -- adding and refusing writes -------------------------------------------------


def test_add_creates_a_new_key() -> None:
    ctx = standalone_context({"a": 1})
    ctx.add("b", [1, 2])
    assert ctx["b"] == [1, 2]
    assert "b" in ctx
    assert ctx["a"] == 1


def test_add_of_an_existing_value_raises_and_keeps_the_old_value() -> None:
    ctx = standalone_context({"a": 1})
    with pytest.raises(ContextMutationError, match="'a'") as info:
        ctx.add("a", 2)
    assert info.value.key == "a"
    assert ctx["a"] == 1


def test_add_of_a_key_added_before_raises() -> None:
    ctx = standalone_context()
    ctx.add("model", "first")
    with pytest.raises(ContextMutationError, match="'model'"):
        ctx.add("model", "second")
    assert ctx["model"] == "first"


def test_item_assignment_to_an_existing_key_raises_naming_it() -> None:
    ctx = standalone_context({"a": 1})
    with pytest.raises(ContextMutationError, match="'a'") as info:
        ctx["a"] = 2
    assert info.value.key == "a"
    assert ctx["a"] == 1


def test_item_assignment_of_a_new_key_raises_too_and_adds_nothing() -> None:
    ctx = standalone_context()
    with pytest.raises(ContextMutationError, match="'fresh'") as info:
        ctx["fresh"] = 1
    assert info.value.key == "fresh"
    assert "fresh" not in ctx


def test_context_mutation_error_is_catchable_as_key_error_and_root_error() -> None:
    ctx = standalone_context({"a": 1})
    with pytest.raises(KeyError):
        ctx["a"] = 2
    with pytest.raises(CrystallizeError):
        ctx["a"] = 2


def test_context_mutation_error_message_is_readable_not_quoted() -> None:
    ctx = standalone_context({"a": 1})
    with pytest.raises(ContextMutationError) as info:
        ctx["a"] = 2
    text = str(info.value)
    # KeyError's default str() wraps the whole message in quotes.
    assert not text.startswith(("'", '"'))
    assert "override" in text


def test_override_replaces_existing_values_and_adds_new_ones() -> None:
    ctx = standalone_context({"a": 1})
    ctx.add("b", 2)
    ctx.override(a=10, b=20, c=30)
    assert (ctx["a"], ctx["b"], ctx["c"]) == (10, 20, 30)


@pytest.mark.parametrize("key", ["replicate", "condition", "seed"])
def test_builtin_keys_cannot_be_overridden_added_or_assigned(key: str) -> None:
    ctx = standalone_context(replicate=2, condition="fast")
    before = ctx.get(key)
    with pytest.raises(ContextMutationError, match=repr(key)):
        ctx.override(**{key: 99})
    with pytest.raises(ContextMutationError, match=repr(key)):
        ctx.add(key, 99)
    with pytest.raises(ContextMutationError, match=repr(key)):
        ctx[key] = 99
    assert ctx.get(key) == before


@pytest.mark.parametrize("attribute", ["replicate", "condition", "seed"])
def test_replicate_condition_and_seed_attributes_are_read_only(attribute: str) -> None:
    ctx = standalone_context(replicate=2, condition="fast")
    before = getattr(ctx, attribute)
    with pytest.raises(AttributeError):
        setattr(ctx, attribute, 5)
    assert getattr(ctx, attribute) == before


def test_builtin_keys_answer_get_getitem_and_in() -> None:
    ctx = standalone_context(replicate=4, condition="fast", seed=11)
    assert ctx.get("replicate") == 4 == ctx["replicate"] == ctx.replicate
    assert ctx.get("condition") == "fast" == ctx["condition"] == ctx.condition
    assert ctx.get("seed") == ctx.seed == ctx["seed"]
    assert {"replicate", "condition", "seed"} <= set(ctx.keys())
    assert all(k in ctx for k in ("replicate", "condition", "seed"))


def test_builtin_keys_inside_an_experiment_match_the_running_replicate() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("replicate", ctx.get("replicate"))
        ctx.metrics.add("is_t", ctx.get("condition") == "t")
        ctx.metrics.add("seed", ctx.get("seed"))

    result = run_experiment(fn, replicates=4, seed=5, treatments=[Treatment("t")])
    for condition, is_t in (("baseline", 0.0), ("t", 1.0)):
        reps, values = result.select("replicate", condition)
        assert sorted(values.tolist()) == [0.0, 1.0, 2.0, 3.0]
        np.testing.assert_array_equal(values, reps)
        assert result.select("is_t", condition)[1].tolist() == [is_t] * 4
        reps, seeds = result.select("seed", condition)
        assert seeds.tolist() == [float(_seed_of(5, int(r))) for r in reps]


@pytest.mark.parametrize("key", ["replicate", "condition", "seed"])
def test_experiment_params_cannot_shadow_a_builtin_key(key: str) -> None:
    """A param named like a built-in is refused, or the built-in still wins."""

    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("same", ctx.get(key) == getattr(ctx, key))

    try:
        result = run_experiment(fn, replicates=2, params={key: 12345})
    except ConfigurationError as exc:
        # Refusing is one of the two acceptable outcomes, so no pytest.raises here.
        assert repr(key) in str(exc)  # noqa: PT017
    else:
        assert not result.errors
        assert result.select("same", "baseline")[1].tolist() == [1.0, 1.0]


# -- randomness --------------------------------------------------------------------


def test_rng_is_a_numpy_generator_seeded_with_ctx_seed() -> None:
    ctx = standalone_context(seed=99, replicate=3)
    assert isinstance(ctx.rng, np.random.Generator)
    reference = np.random.default_rng(ctx.seed)
    np.testing.assert_array_equal(ctx.rng.random(5), reference.random(5))
    # The same generator keeps going: the stream continues, it does not restart.
    np.testing.assert_array_equal(ctx.rng.normal(size=3), reference.normal(size=3))


def test_rng_inside_an_experiment_equals_default_rng_of_the_replicate_seed() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("draw", ctx.rng.random())

    result = run_experiment(fn, replicates=5, seed=1234)
    reps, draws = result.select("draw", "baseline")
    expected = [np.random.default_rng(_seed_of(1234, int(r))).random() for r in reps]
    assert draws.tolist() == expected


# -- metrics -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0.93", None, [0.9], {"v": 1}, complex(1, 2), object()])
def test_metrics_add_with_a_non_numeric_value_raises_naming_the_metric(bad: object) -> None:
    ctx = standalone_context()
    with pytest.raises(MetricError, match="'accuracy'"):
        ctx.metrics.add("accuracy", bad)  # type: ignore[arg-type]
    assert "accuracy" not in ctx.metrics
    assert ctx.metrics.as_dict() == {}


def test_metric_error_is_a_value_error() -> None:
    ctx = standalone_context()
    with pytest.raises(ValueError, match="'loss'"):
        ctx.metrics.add("loss", "high")  # type: ignore[arg-type]


def test_metrics_add_accepts_python_and_numpy_numbers_as_floats() -> None:
    ctx = standalone_context()
    ctx.metrics.add("a", 3)
    ctx.metrics.add("a", np.float32(1.5))
    ctx.metrics.add("b", np.int64(7))
    ctx.metrics.add("c", True)
    ctx.metrics.add("d", Fraction(1, 4))
    ctx.metrics.add("e", np.array(2.5))
    recorded = ctx.metrics.as_dict()
    assert recorded == {"a": [3.0, 1.5], "b": [7.0], "c": [1.0], "d": [0.25], "e": [2.5]}
    assert all(type(v) is float for values in recorded.values() for v in values)


def test_metrics_get_getitem_and_in() -> None:
    ctx = standalone_context()
    ctx.metrics.add("loss", 0.5)
    ctx.metrics.add("loss", 0.25)
    assert ctx.metrics.get("loss") == (0.5, 0.25)
    assert ctx.metrics["loss"] == (0.5, 0.25)
    assert "loss" in ctx.metrics
    assert "accuracy" not in ctx.metrics
    assert ctx.metrics.get("accuracy") == ()
    with pytest.raises(KeyError, match="'accuracy'"):
        ctx.metrics["accuracy"]


@pytest.mark.parametrize("name", ["", None, 3])
def test_metric_names_must_be_non_empty_strings(name: object) -> None:
    ctx = standalone_context()
    with pytest.raises(MetricError):
        ctx.metrics.add(name, 1.0)  # type: ignore[arg-type]


def test_each_replicate_sees_only_its_own_metrics() -> None:
    def fn(ctx: FrozenContext) -> None:
        for _ in range(ctx.replicate + 1):
            ctx.metrics.add("x", ctx.replicate)
        ctx.metrics.add("seen", len(ctx.metrics.get("x")))
        ctx.metrics.add("all_mine", all(v == ctx.replicate for v in ctx.metrics.get("x")))

    result = run_experiment(fn, replicates=3, treatments=[Treatment("t")])
    for condition in ("baseline", "t"):
        reps, seen = result.select("seen", condition)
        assert dict(zip(reps.tolist(), seen.tolist(), strict=True)) == {0: 1.0, 1: 2.0, 2: 3.0}
        assert result.select("all_mine", condition)[1].tolist() == [1.0, 1.0, 1.0]


def test_record_stores_tags_with_the_value() -> None:
    def fn(ctx: FrozenContext) -> None:
        for epoch in range(2):
            ctx.record("loss", 1.0 / (epoch + 1), tags={"epoch": epoch, "phase": "train"})
        ctx.record("untagged", 1.0)

    frame = run_experiment(fn, replicates=2).to_dataframe()
    losses = frame[frame["metric"] == "loss"]
    assert len(losses) == 4
    assert sorted((t["epoch"], v) for t, v in zip(losses["tags"], losses["value"], strict=True)) == [
        (0, 1.0),
        (0, 1.0),
        (1, 0.5),
        (1, 0.5),
    ]
    assert all(t["phase"] == "train" for t in losses["tags"])
    untagged = frame[frame["metric"] == "untagged"]
    assert list(untagged["tags"]) == [None, None]


def test_record_counts_as_a_metric_of_the_replicate() -> None:
    ctx = standalone_context()
    ctx.record("loss", 0.5, tags={"epoch": 1})
    assert ctx.metrics.get("loss") == (0.5,)


def test_record_with_non_json_tags_raises_naming_the_metric() -> None:
    ctx = standalone_context()
    with pytest.raises(MetricError, match="'loss'"):
        ctx.record("loss", 0.5, tags={"model": object()})
    assert ctx.metrics.as_dict() == {}


def test_record_with_a_non_numeric_value_raises_naming_the_metric() -> None:
    ctx = standalone_context()
    with pytest.raises(MetricError, match="'loss'"):
        ctx.record("loss", "low", tags={"epoch": 1})  # type: ignore[arg-type]


# -- artifacts ------------------------------------------------------------------------


def test_artifacts_store_text_and_bytes_under_relative_names() -> None:
    ctx = standalone_context()
    ctx.artifacts.add("model.json", '{"w": 1}')
    ctx.artifacts.add("plots/loss.png", b"\x89PNG")
    assert ctx.artifacts["model.json"] == '{"w": 1}'
    assert ctx.artifacts["plots/loss.png"] == b"\x89PNG"
    assert set(ctx.artifacts) == {"model.json", "plots/loss.png"}
    assert len(ctx.artifacts) == 2


@pytest.mark.parametrize(
    "name",
    [
        "../escape.txt",
        "a/../../escape.txt",
        "sub/..",
        "..\\escape.txt",
        "/etc/passwd",
        "C:\\temp\\x.txt",
        "C:x.txt",
        "",
    ],
)
def test_unsafe_artifact_names_are_refused(name: str) -> None:
    ctx = standalone_context()
    with pytest.raises(ConfigurationError, match="artifact name"):
        ctx.artifacts.add(name, "data")
    assert len(ctx.artifacts) == 0


def test_unsafe_artifact_name_message_quotes_the_name() -> None:
    ctx = standalone_context()
    with pytest.raises(ConfigurationError) as info:
        ctx.artifacts.add("../../secrets", "x")
    assert "'../../secrets'" in str(info.value)


def test_artifact_data_must_be_bytes_or_text() -> None:
    ctx = standalone_context()
    with pytest.raises(ConfigurationError, match=r"'weights\.bin'"):
        ctx.artifacts.add("weights.bin", [1, 2, 3])  # type: ignore[arg-type]
    assert "weights.bin" not in ctx.artifacts


# -- standalone_context -----------------------------------------------------------------


def test_standalone_context_defaults() -> None:
    ctx = standalone_context()
    assert isinstance(ctx, FrozenContext)
    assert ctx.replicate == 0
    assert ctx.condition == "baseline"
    assert isinstance(ctx.seed, int)
    assert ctx.as_dict() == {}


def test_standalone_context_copies_the_values_it_is_given() -> None:
    values = {"lr": 0.1}
    ctx = standalone_context(values)
    values["lr"] = 0.5
    values["new"] = 1
    assert ctx["lr"] == 0.1
    assert "new" not in ctx
    ctx.add("added", 2)
    assert "added" not in values


def test_standalone_context_reproduces_the_seed_and_rng_of_an_experiment_replicate() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("seed", ctx.seed)
        ctx.metrics.add("draw", ctx.rng.random())

    result = run_experiment(fn, replicates=4, seed=77)
    reps, seeds = result.select("seed", "baseline")
    _, draws = result.select("draw", "baseline")
    for r, seed, draw in zip(reps.tolist(), seeds.tolist(), draws.tolist(), strict=True):
        ctx = standalone_context(seed=77, replicate=r)
        assert ctx.seed == seed
        assert ctx.rng.random() == draw


def test_two_standalone_contexts_with_the_same_arguments_draw_the_same_numbers() -> None:
    a = standalone_context(seed=3, replicate=1)
    b = standalone_context(seed=3, replicate=1)
    c = standalone_context(seed=3, replicate=2)
    assert a.seed == b.seed != c.seed
    np.testing.assert_array_equal(a.rng.random(4), b.rng.random(4))


def test_each_replicate_reads_back_only_its_own_metrics_even_when_interleaved() -> None:
    import asyncio

    from pytest_crystallize import AsyncExecution, Treatment, run_experiment

    seen: dict[tuple[str, int], tuple[float, ...]] = {}

    async def interleaved(ctx):
        ctx.metrics.add("m", ctx.replicate)
        await asyncio.sleep(0.001 * (ctx.replicate % 3))  # let other replicates record in between
        ctx.metrics.add("m", ctx.replicate + 0.5)
        seen[(ctx.condition, ctx.replicate)] = ctx.metrics.get("m")

    run_experiment(interleaved, replicates=6, treatments=[Treatment("t")], plugins=[AsyncExecution(max_workers=4)])
    assert seen == {(c, r): (float(r), r + 0.5) for c in ("baseline", "t") for r in range(6)}


def test_assigning_a_new_key_points_to_add() -> None:
    from pytest_crystallize import ContextMutationError, standalone_context

    ctx = standalone_context()
    with pytest.raises(ContextMutationError, match=r"add the new key with ctx.add\('fresh', value\)"):
        ctx["fresh"] = 1


def _recorded_tags(records: list[dict[str, object] | None]) -> tuple[str | None, ...]:
    """The tags texts a run keeps for ``records``, recorded in order into one replicate."""
    def fn(ctx: FrozenContext) -> None:
        for tags in records:
            ctx.record("m", 1.0, tags=tags)

    return run_experiment(fn, replicates=1).tags


def test_equal_tag_sets_of_other_types_keep_their_own_json() -> None:
    # 1, 1.0 and True are equal (and hash alike) in Python but are different JSON; so are 0.0 and -0.0.
    sets: list[dict[str, object] | None] = [
        {"k": 1}, {"k": True}, {"k": 1.0}, {"k": 1}, {"k": 0.0}, {"k": -0.0}, {"k": 0.0},
        {"a": 1, "b": 2}, {"a": 1, "b": 2.0}, {"a": True, "b": 2}, {"a": 1, "b": 2}, None, {},
    ]
    expected = tuple(None if not t else json.dumps(t, sort_keys=True) for t in sets)
    assert _recorded_tags(sets) == expected


def test_tag_sets_sharing_keys_in_another_order_or_a_prefix_keep_their_own_json() -> None:
    # Sets are found again key by key: one that extends another, or stops short of it, is its own set.
    sets: list[dict[str, object] | None] = [
        {"a": 1, "b": "x"}, {"a": 1}, {"b": "x", "a": 1}, {"a": 1, "b": "x", "c": None}, {"a": 1},
        {"a": 1, "b": "x"}, {"a": 1, "b": True}, {"a": 1, "b": "x"}, {"a": "1"}, {"a": None}, {"a": 1},
    ]
    expected = tuple(None if not t else json.dumps(t, sort_keys=True) for t in sets)
    assert _recorded_tags(sets) == expected


def test_tags_given_as_pairs_are_recorded_whole_and_other_shapes_are_refused_by_name() -> None:
    # Not a mapping, so nothing may be read from it before it is turned into one (a generator reads once).
    pairs = [("a", 1), ("b", 2)]
    sets = [{"a": 1}, (pair for pair in pairs), pairs[:1], {"a": 1, "b": 2}]
    assert _recorded_tags(sets) == ('{"a": 1}', '{"a": 1, "b": 2}', '{"a": 1}', '{"a": 1, "b": 2}')  # type: ignore[arg-type]
    ctx = standalone_context()
    for shape in ("ab", [5], {"a"}):
        with pytest.raises(MetricError, match=r"tags of metric 'm' must be a mapping of names"):
            ctx.record("m", 1.0, tags=shape)  # type: ignore[arg-type]


def test_tags_are_copied_when_recorded() -> None:
    tags: dict[str, object] = {"step": 0}
    records: list[dict[str, object] | None] = []

    def fn(ctx: FrozenContext) -> None:
        for step in range(3):
            tags["step"] = step  # one dict, changed after each record
            ctx.record("m", 1.0, tags=tags)
            records.append(dict(tags))

    result = run_experiment(fn, replicates=1)
    assert result.tags == tuple(json.dumps(t) for t in records)


def test_tags_from_any_mapping_or_with_lists_are_recorded() -> None:
    from types import MappingProxyType

    sets = [MappingProxyType({"b": 2, "a": "x"}), {"runs": [1, 2]}, {"runs": [1, 2]}, {"nested": {"x": 1}}]
    expected = ('{"a": "x", "b": 2}', '{"runs": [1, 2]}', '{"runs": [1, 2]}', '{"nested": {"x": 1}}')
    assert _recorded_tags(sets) == expected  # type: ignore[arg-type]


def test_a_sink_extended_by_another_holds_both_as_if_one_had_recorded_them() -> None:
    from pytest_crystallize.core.sink import MetricSink

    one, two, whole = MetricSink(), MetricSink(), MetricSink()
    first = [(0, 0, "a", 1.0, None), (0, 0, "b", 2.0, '{"k": 1}'), (1, 0, "a", 3.0, None)]
    second = [(0, 1, "b", 4.0, '{"k": 2}'), (0, 1, "c", 5.0, '{"k": 1}'), (1, 1, "a", 6.0, None)]
    for sink, records in ((one, first), (two, second), (whole, first + second)):
        for record in records:
            sink.append(*record)
    one.extend(two)
    joined, expected = one.columns(), whole.columns()
    assert joined.metric_names == expected.metric_names
    for column in ("condition", "replicate", "metric", "value"):
        assert getattr(joined, column).tolist() == getattr(expected, column).tolist()
    assert joined.tags() == expected.tags()
    assert one.tasks() == whole.tasks()


def test_a_replicates_context_is_freed_when_it_ends_without_the_garbage_collector() -> None:
    # ctx.metrics holds no reference to its context, so a run of many small replicates frees each
    # context by reference counting as it ends, even when its recorder is kept, instead of leaving
    # the garbage collector to find them.
    import gc
    import weakref

    class Probe:
        """Held by a context only: it dies with the context (contexts take no weak references)."""

    seen: list[weakref.ref[Probe]] = []
    kept: list[object] = []

    def trial(ctx: FrozenContext) -> None:
        ctx.metrics.add("x", ctx.replicate)
        kept.append(ctx.metrics)  # a recorder kept past the replicate does not keep its context
        probe = Probe()
        ctx.add("probe", probe)
        seen.append(weakref.ref(probe))

    gc.collect()
    gc.disable()
    try:
        result = run_experiment(trial, name="freed", replicates=3)
        freed = [ref() is None for ref in seen]
    finally:
        gc.enable()
    assert len(kept) == 3
    assert freed == [True, True, True]
    assert result.select("x", "baseline")[1].tolist() == [0.0, 1.0, 2.0]


def test_a_third_positional_argument_to_metrics_add_is_the_replicates_error_not_a_tag() -> None:
    # ctx.metrics.add(name, value, step) is a TensorBoard habit; it must fail where it is written.
    def trial(ctx: FrozenContext) -> None:
        ctx.record("final", 1.0, tags={"lr": 0.5})
        ctx.metrics.add("loss", 0.5, ctx.replicate)  # type: ignore[call-arg]

    result = run_experiment(trial, name="third", replicates=3)
    assert len(result.errors) == 3
    assert {error.error_type for error in result.errors} == {"TypeError"}
    assert all("positional" in error.message for error in result.errors)
    assert "loss" not in result.metrics
