"""Packing an experiment's run for the trip from a pytest-xdist worker to the controller."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest

from pytest_crystallize import ExperimentResult, FrozenContext, ResultsError, Treatment, hypothesis, run_experiment
from pytest_crystallize.core.store.packing import pack_experiment, unpack_experiment
from pytest_crystallize.core.store.records import ExperimentRun, NewRun
from pytest_crystallize.core.store.stores import DirectoryStore


def _exp(ctx: FrozenContext) -> None:
    ctx.metrics.add("score", ctx.rng.normal(ctx.get("shift", 0.0)))
    ctx.record("loss", 1.0 / (ctx.replicate + 1), tags={"epoch": ctx.replicate % 2, "note": "é"})
    ctx.metrics.add("odd", (math.nan, math.inf, -0.0)[ctx.replicate % 3])


def _run() -> ExperimentRun:
    result = run_experiment(_exp, replicates=6, seed=3, treatments=[Treatment("up", {"shift": 1.0})],
                            hypotheses=[hypothesis("score", "maximize")])
    return ExperimentRun(nodeid="t.py::experiment_x", result=result, definition={"replicates": 6},
                         fingerprint="abc", gate={"score": {"metric": "score", "better": "higher"}})


def test_a_packed_run_unpacks_value_for_value() -> None:
    run = _run()
    text = pack_experiment(run)
    json.loads(text)  # plain JSON: a report attribute pytest-xdist can send
    back = unpack_experiment(text, "worker gw0")
    assert back.result == run.result  # columns, tags, verdicts, provenance
    assert [math.copysign(1, v) for v in back.result.values] == [math.copysign(1, v) for v in run.result.values]
    assert (back.nodeid, dict(back.definition), back.fingerprint, dict(back.gate)) == (
        run.nodeid, dict(run.definition), run.fingerprint, dict(run.gate))


@pytest.mark.parametrize("text", ["{}", "[]", "not json", '{"format": "pytest-crystallize/packed-experiment"}'])
def test_unreadable_packed_text_is_a_results_error_naming_its_source(text: str) -> None:
    with pytest.raises(ResultsError, match="worker gw1"):
        unpack_experiment(text, "worker gw1")


def test_a_corrupt_result_in_packed_text_is_a_results_error() -> None:
    document = json.loads(pack_experiment(_run()))
    document["result"] = document["result"][:40]
    with pytest.raises(ResultsError, match="worker gw2"):
        unpack_experiment(json.dumps(document), "worker gw2")


def test_the_controller_saves_the_file_the_worker_wrote_without_encoding_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _run()
    document = json.loads(pack_experiment(run))
    back = unpack_experiment(json.dumps(document), "worker gw0")
    monkeypatch.setattr(ExperimentResult, "to_parquet", _no_second_encoding)
    store = DirectoryStore(tmp_path / ".crystallize")
    record = store.save(NewRun(experiments=(back,)))
    saved = Path(record.location) / record.experiments[run.nodeid].file
    assert saved.read_bytes() == base64.b64decode(document["result"])
    assert store.result(record, run.nodeid) == run.result
    assert record.experiments[run.nodeid].values == len(run.result)


def _no_second_encoding(self: ExperimentResult, path: object) -> None:
    raise AssertionError("the controller encoded the result again")
