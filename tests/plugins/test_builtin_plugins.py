"""SeedPlugin, LoggingPlugin and ArtifactPlugin, driven through run_experiment."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_crystallize import (
    ArtifactPlugin,
    ConfigurationError,
    FrozenContext,
    LoggingPlugin,
    ParallelExecution,
    SeedPlugin,
    Treatment,
    pipeline_step,
    run_experiment,
    standalone_context,
)
from pytest_crystallize.core.seeds import replicate_seed
from pytest_crystallize.plugins.seeding import default_seed_function

TREATMENTS = [Treatment("hot", {"temperature": 1.5})]


def _global_draws(ctx: FrozenContext) -> None:
    ctx.metrics.add("py", random.random())
    ctx.metrics.add("np", np.random.random())  # the global generator on purpose


def _by(result: Any, metric: str, condition: str = "baseline") -> list[float]:
    reps, values = result.select(metric, condition)
    return [v for _, v in sorted(zip(reps.tolist(), values.tolist(), strict=True))]


# -- SeedPlugin ------------------------------------------------------------------------------


def test_seed_plugin_seeds_global_generators_with_each_replicates_seed() -> None:
    result = run_experiment(_global_draws, replicates=3, seed=11, treatments=TREATMENTS, plugins=[SeedPlugin()])
    expected_py = []
    for r in range(3):
        random.seed(replicate_seed(11, r))
        expected_py.append(random.random())
    assert _by(result, "py") == expected_py
    # Common random numbers: every condition's replicate r draws the same.
    assert _by(result, "py", "hot") == expected_py
    assert _by(result, "np") == _by(result, "np", "hot")
    assert len(set(_by(result, "np"))) == 3


def test_seed_plugin_with_its_own_seed_derives_replicate_seeds_from_it_and_leaves_ctx_seed_alone() -> None:
    def fn(ctx: FrozenContext) -> None:
        ctx.metrics.add("py", random.random())
        ctx.metrics.add("ctx_seed", ctx.seed)

    result = run_experiment(fn, replicates=2, seed=11, plugins=[SeedPlugin(seed=42)])
    random.seed(replicate_seed(42, 1))
    assert _by(result, "py")[1] == random.random()
    assert _by(result, "ctx_seed") == [replicate_seed(11, 0), replicate_seed(11, 1)]


@pytest.mark.parametrize(("seed", "expected"), [(None, 11), (42, 42)])
def test_seed_plugin_without_auto_seed_uses_one_seed_for_every_replicate(seed: Any, expected: int) -> None:
    seen: list[int] = []
    result = run_experiment(
        _global_draws, replicates=3, seed=11,
        plugins=[SeedPlugin(seed=seed, auto_seed=False, seed_fn=seen.append)],
    )
    assert seen == [expected] * 3
    assert len(result) == 6


def test_seed_plugin_runs_before_other_plugins_and_in_worker_processes() -> None:
    result = run_experiment(_global_draws, replicates=4, seed=3, plugins=[ParallelExecution(2), SeedPlugin()])
    serial = run_experiment(_global_draws, replicates=4, seed=3, plugins=[SeedPlugin()])
    assert _by(result, "np") == _by(serial, "np")


def test_default_seed_function_seeds_random_and_numpy() -> None:
    default_seed_function(2**32 + 5)
    first = (random.random(), np.random.random())
    default_seed_function(2**32 + 5)
    assert (random.random(), np.random.random()) == first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seed": -1}, "seed must be an integer >= 0"), ({"seed_fn": 3}, "seed_fn must be a function")],
)
def test_seed_plugin_options_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SeedPlugin(**kwargs)


# -- LoggingPlugin -----------------------------------------------------------------------------


@pipeline_step()
def fragile(data: int, ctx: FrozenContext) -> int:
    if ctx.replicate == 1:
        raise ValueError("bad replicate")
    ctx.metrics.add("x", data)
    return data


def _fragile_exp(ctx: FrozenContext) -> None:
    fragile(ctx.replicate, ctx)


def test_logging_plugin_logs_start_end_and_errors_but_no_line_per_replicate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="crystallize"), caplog.at_level(logging.DEBUG):
        run_experiment(_fragile_exp, name="logged", replicates=3, plugins=[LoggingPlugin()])
        assert logging.getLogger("crystallize").level == logging.WARNING  # restored after the run
    records = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert [r[:2] for r in records] == [
        ("crystallize", "INFO"), ("crystallize", "WARNING"), ("crystallize", "INFO"),
    ]
    assert "experiment 'logged': running 3 replicates of 1 conditions" in records[0][2]
    assert "replicate 1, step 'fragile': ValueError: bad replicate" in records[1][2]
    assert "finished in" in records[2][2]
    assert "1 failed replicates" in records[2][2]


def test_logging_plugin_verbose_logs_every_step(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="crystallize"):
        run_experiment(_fragile_exp, name="chatty", replicates=3, plugins=[LoggingPlugin(verbose=True)])
    steps = [r.getMessage() for r in caplog.records if "step 'fragile' done" in r.getMessage()]
    assert steps == [
        "experiment 'chatty': condition 'baseline', replicate 0: step 'fragile' done",
        "experiment 'chatty': condition 'baseline', replicate 2: step 'fragile' done",
    ]


def test_logging_plugin_level_filters_and_quiet_plugins_cost_no_step_hook(caplog: pytest.LogCaptureFixture) -> None:
    from pytest_crystallize.core.lifecycle import make_plugin_manager

    with caplog.at_level(logging.DEBUG):
        run_experiment(_fragile_exp, replicates=3, plugins=[LoggingPlugin(log_level="warning")])
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    manager = make_plugin_manager([LoggingPlugin()])
    assert not manager.hook.crystallize_step_after.get_hookimpls()
    with pytest.raises(ConfigurationError, match="log_level must be a logging level"):
        LoggingPlugin(log_level="LOUD")


# -- ArtifactPlugin ----------------------------------------------------------------------------


@pipeline_step()
def produce(data: int, ctx: FrozenContext) -> int:
    ctx.artifacts.add("model.json", json.dumps({"replicate": ctx.replicate}))
    ctx.artifacts.add("nested/weights.bin", bytes([ctx.replicate]))
    return data


@pipeline_step()
def summarize(data: int, ctx: FrozenContext) -> int:
    ctx.artifacts.add("summary.txt", f"done {ctx.condition}")
    ctx.metrics.add("x", data)
    return data


def _artifact_exp(ctx: FrozenContext) -> None:
    summarize(produce(ctx.replicate, ctx), ctx)


def test_artifact_plugin_writes_each_steps_new_artifacts_and_metadata(tmp_path: Path) -> None:
    result = run_experiment(
        _artifact_exp, name="arts", replicates=2, treatments=TREATMENTS,
        plugins=[ArtifactPlugin(root_dir=tmp_path)],
    )
    run = tmp_path / "arts" / "v0"
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    expected = [
        f"{c}/replicate_{r}/{step}/{name}"
        for c in ("baseline", "hot") for r in range(2)
        for step, name in (("produce", "model.json"), ("produce", "nested/weights.bin"),
                           ("summarize", "summary.txt"))
    ]
    assert files == sorted([*expected, "metadata.json"])
    assert json.loads((run / "hot/replicate_1/produce/model.json").read_text()) == {"replicate": 1}
    assert (run / "baseline/replicate_1/produce/nested/weights.bin").read_bytes() == b"\x01"
    metadata = json.loads((run / "metadata.json").read_text())
    assert metadata["experiment"] == "arts"
    assert metadata["replicates"] == 2
    assert metadata["conditions"] == ["baseline", "hot"]
    assert metadata["passed"] is result.passed


def test_artifact_plugin_versions_runs_and_prunes_to_keep(tmp_path: Path) -> None:
    plugin = ArtifactPlugin(root_dir=tmp_path, versioned=True, keep=2)
    for _ in range(4):
        run_experiment(_artifact_exp, name="v", replicates=1, plugins=[plugin])
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["v2", "v3"]
    unversioned = ArtifactPlugin(root_dir=tmp_path)
    for _ in range(2):
        run_experiment(_artifact_exp, name="u", replicates=1, plugins=[unversioned])
    assert [p.name for p in (tmp_path / "u").iterdir()] == ["v0"]


def test_artifact_plugin_writes_from_worker_processes(tmp_path: Path) -> None:
    run_experiment(
        _artifact_exp, name="par", replicates=4,
        plugins=[ArtifactPlugin(root_dir=tmp_path), ParallelExecution(2)],
    )
    written = sorted((tmp_path / "par" / "v0" / "baseline").iterdir())
    assert [p.name for p in written] == [f"replicate_{r}" for r in range(4)]


def test_artifact_plugin_refuses_names_that_escape(tmp_path: Path) -> None:
    link_target = tmp_path / "elsewhere"
    link_target.mkdir()

    @pipeline_step()
    def sneaky(data: int, ctx: FrozenContext) -> int:
        step_dir = tmp_path / "root" / "esc" / "v0" / "baseline" / f"replicate_{ctx.replicate}" / "sneaky"
        step_dir.mkdir(parents=True, exist_ok=True)
        if not (step_dir / "out").exists():
            (step_dir / "out").symlink_to(link_target)
        ctx.artifacts.add("out/x.txt", "escaped")
        return data

    def fn(ctx: FrozenContext) -> None:
        sneaky(1, ctx)

    result = run_experiment(fn, name="esc", replicates=1, plugins=[ArtifactPlugin(root_dir=tmp_path / "root")])
    assert [e.error_type for e in result.errors] == ["ConfigurationError"]
    assert "would be written outside its step directory" in result.errors[0].message
    assert list(link_target.iterdir()) == []
    artifacts = standalone_context().artifacts
    with pytest.raises(ConfigurationError, match="escape the artifact directory"):
        artifacts.add("../up.txt", "no")


def test_artifact_plugin_defaults_to_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plugin = ArtifactPlugin()
    assert plugin.root == tmp_path / "crystallize_artifacts"
    plugin.anchor(tmp_path / "project")
    assert plugin.root == tmp_path / "project" / "crystallize_artifacts"
    with pytest.raises(ConfigurationError, match="keep must be"):
        ArtifactPlugin(keep=0)


def test_artifacts_added_outside_a_step_are_written_after_the_replicate_once(tmp_path: Path) -> None:
    def score(output: int, ctx: FrozenContext) -> float:
        ctx.artifacts.add("eval/score.txt", f"scored {output}")
        return float(output)

    def fn(ctx: FrozenContext) -> int:
        summarize(produce(ctx.replicate, ctx), ctx)  # step artifacts: written by their steps
        ctx.artifacts.add("sub/ok.txt", b"x")  # in the experiment body
        ctx.artifacts.add("summary.txt", "replaced in the body")  # a step's artifact, replaced later
        if ctx.condition == "hot":
            raise RuntimeError("after adding artifacts")  # a failed replicate keeps them too
        return ctx.replicate

    run_experiment(fn, name="body", replicates=2, treatments=TREATMENTS,
                   evaluators=[score], plugins=[ArtifactPlugin(root_dir=tmp_path)])
    run = tmp_path / "body" / "v0"
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.name != "metadata.json")
    steps = [
        f"{c}/replicate_{r}/{step}/{name}"
        for c in ("baseline", "hot") for r in range(2)
        for step, name in (("produce", "model.json"), ("produce", "nested/weights.bin"), ("summarize", "summary.txt"))
    ]
    outside = [
        f"{c}/replicate_{r}/_experiment/{name}"
        for c in ("baseline", "hot") for r in range(2)
        for name in ("sub/ok.txt", "summary.txt", *(("eval/score.txt",) if c == "baseline" else ()))
    ]
    assert files == sorted([*steps, *outside])
    assert (run / "baseline/replicate_1/_experiment/sub/ok.txt").read_bytes() == b"x"
    assert (run / "baseline/replicate_1/_experiment/eval/score.txt").read_text() == "scored 1"
    assert (run / "hot/replicate_0/_experiment/summary.txt").read_text() == "replaced in the body"
    assert (run / "hot/replicate_0/summarize/summary.txt").read_text() == "done hot"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"root_dir": 5}, r"ArtifactPlugin: root_dir must be a path \(str or pathlib.Path\) or None, got int 5"),
        ({"keep": 2}, r"ArtifactPlugin: keep=2 needs versioned=True"),
        ({"keep": 2, "versioned": False}, r"keep=2 needs versioned=True"),
    ],
)
def test_artifact_plugin_arguments_are_checked_naming_them(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ArtifactPlugin(**options)
